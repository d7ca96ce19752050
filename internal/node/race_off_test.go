//go:build !race

package node

// testBitrate is the video bitrate of test broadcasts.
const testBitrate = 2_500_000
