package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// TestRelayBench_HopCost measures what a relay hop adds: one broadcaster on
// node a, ten viewers on a and ten on b (through a relay), one-way latency
// per group from the send time in every frame, and the relayed packets.
// Skipped unless HALO_BENCH=1 (make bench-relay); the nodes share this
// process, so CPU is not split per node here.
func TestRelayBench_HopCost(t *testing.T) {
	if os.Getenv("HALO_BENCH") == "" {
		t.Skip("a measurement: HALO_BENCH=1 (make bench-relay)")
	}
	r := startRedis(t)
	secret := strings.Repeat("h5", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	group := func(n *testNode) []*loadtest.Viewer {
		var vs []*loadtest.Viewer
		for i := range 10 {
			vs = append(vs, n.viewer(ctx, "hop", fmt.Sprintf("%s-%d", n.cfg.Node.ID, i)))
		}
		return vs
	}
	direct, relayed := group(a), group(b)
	a.publisher(ctx, "hop", loadtest.PublisherConfig{VideoBitrate: 1_000_000})
	for _, v := range append(append([]*loadtest.Viewer{}, direct...), relayed...) {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Second)
	med := func(vs []*loadtest.Viewer, f func(loadtest.ViewerStats) time.Duration) time.Duration {
		var d []time.Duration
		for _, v := range vs {
			d = append(d, f(v.Stats()))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	p50 := func(s loadtest.ViewerStats) time.Duration { return s.LatencyP50 }
	p99 := func(s loadtest.ViewerStats) time.Duration { return s.LatencyP99 }
	var lost [2]uint64
	for i, vs := range [][]*loadtest.Viewer{direct, relayed} {
		for _, v := range vs {
			lost[i] += v.Stats().Lost
		}
	}
	as, bs := a.engine.Stats(), b.engine.Stats()
	fmt.Printf("relay hop (median of 10 viewers' own percentiles, 20 s, 1 Mbit/s + audio)\n")
	fmt.Printf("  viewers on the origin: latency p50 %v p99 %v, lost %d\n", med(direct, p50), med(direct, p99), lost[0])
	fmt.Printf("  viewers on the edge:   latency p50 %v p99 %v, lost %d\n", med(relayed, p50), med(relayed, p99), lost[1])
	fmt.Printf("  relayed: origin sent %d packets over %d relays (%d track copies), edge received %d; edge forwarded %d to its viewers\n",
		as.RelayPacketsOut, as.RelaysOut, as.RelayTracksOut, bs.RelayPacketsIn, bs.PacketsForwarded)
}
