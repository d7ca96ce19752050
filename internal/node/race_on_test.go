//go:build race

package node

// testBitrate is lower under the race detector, which slows the packet path
// several times on a two-core machine; the checks stay the same.
const testBitrate = 600_000
