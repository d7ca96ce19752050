package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// TestRelayBench_HopCost measures what a relay hop costs: an origin and an
// edge node as separate halo-sfu processes on one redis-server, one
// broadcaster on the origin, and per run five windows with the audience
// arranged so that each side's CPU for the relay can be told apart (each
// process's own CPU, exactly, from /proc/<pid>/task/*/sched):
//
//  1. origin alone: the broadcast, nobody watching (the origin's ingest);
//  2. relay: ten viewers on the edge, none on the origin (the origin's
//     ingest plus one copy to the edge; the edge's relay in plus ten copies);
//  3. both: ten viewers on the origin too (latency direct and relayed);
//  4. origin only: the edge's viewers gone and the relay closed (the
//     origin's ingest plus ten local copies);
//  5. local: on the edge, a broadcaster of its own with ten viewers (the
//     edge's ingest of a local publisher plus ten copies).
//
// The origin's cost per relayed packet is (2) - (1) and (3) - (4) per
// packet sent to the edge; the edge's is (2) per relayed packet received,
// against (5) per packet of a local publisher. Skipped unless HALO_BENCH=1
// (make bench-relay); HALO_BENCH_RUNS, HALO_BENCH_WINDOW and
// HALO_BENCH_MAX_LOAD as for bench-media.
func TestRelayBench_HopCost(t *testing.T) {
	p := benchSetup(t)
	r := testutil.StartRedis(t)
	bin := benchServers(t)[0].bin // this tree's, unless HALO_BENCH_SERVERS names one
	cs := make([]byte, 32)
	_, _ = rand.Read(cs)
	cluster := func(id, region string) []string {
		return []string{"HALO_REDIS_ADDRS=" + r.Addr(), "HALO_CLUSTER_SECRET=" + hex.EncodeToString(cs),
			"HALO_NODE_ID=" + id, "HALO_NODE_REGION=" + region, "HALO_CLUSTER_RELAY_GRACE=0s"}
	}
	origin := startServerProc(t, bin, cluster("origin", "eu")...)
	edge := startServerProc(t, bin, cluster("edge", "in")...)
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	pub := relayBenchPublisher(t, sctx, origin, "hop")

	var runs [][5]relayWindow
	var lat [4]stat // origin p50, p99, edge p50, p99
	var lost uint64
	for run := range p.runs {
		p.quietMachine()
		// Bounds the joins of this run (the windows and settles are sleeps).
		ctx, cancel := context.WithTimeout(context.Background(), 5*(p.window+relayBenchSettle)+2*time.Minute)
		defer cancel()
		var w [5]relayWindow
		measure := func(i int, local *loadtest.Publisher) {
			// Joins and leaves done: new viewers' replay of the picture
			// since the last keyframe, a relay's set-up or teardown.
			time.Sleep(relayBenchSettle)
			w[i] = measureWindow(t, p.window, origin, edge, pub, local)
		}
		measure(0, nil)
		edgeViewers := relayBenchViewers(t, ctx, edge, "hop", fmt.Sprintf("edge%d", run), relayBenchViewersN)
		measure(1, nil)
		originViewers := relayBenchViewers(t, ctx, origin, "hop", fmt.Sprintf("origin%d", run), relayBenchViewersN)
		time.Sleep(relayBenchSettle) // replayed frames carry old send times
		l0, e0 := latencies(originViewers), latencies(edgeViewers)
		measure(2, nil)
		l1, e1 := latencies(originViewers), latencies(edgeViewers)
		lat[0] = append(lat[0], medianQ(l0, l1, 0.5).Seconds()*1e3)
		lat[1] = append(lat[1], medianQ(l0, l1, 0.99).Seconds()*1e3)
		lat[2] = append(lat[2], medianQ(e0, e1, 0.5).Seconds()*1e3)
		lat[3] = append(lat[3], medianQ(e0, e1, 0.99).Seconds()*1e3)
		for _, v := range append(originViewers, edgeViewers...) {
			lost += v.Stats().Lost
		}
		closeAll(edgeViewers)
		eventuallyRelays(t, origin, 0)
		measure(3, nil)
		localRoom := fmt.Sprintf("local%d", run)
		local := relayBenchPublisher(t, ctx, edge, localRoom)
		localViewers := relayBenchViewers(t, ctx, edge, localRoom, localRoom, relayBenchViewersN)
		measure(4, local)
		closeAll(localViewers)
		_ = local.Close()
		closeAll(originViewers)
		runs = append(runs, w)
	}

	perRelayed := func(with, without relayWindow) float64 {
		extra := with.origin.cpu.Seconds() - without.origin.cpu.Seconds()*with.origin.wall.Seconds()/without.origin.wall.Seconds()
		return 1e6 * extra / with.relayedOut
	}
	us := func(c serverCost, packets float64) float64 { return float64(c.cpu.Microseconds()) / packets }
	var o0, o10, oFwd, oIngest, eRelay, eLocal, eFwdRelay, eFwdLocal stat
	fmt.Printf("relay hop: origin and edge as separate halo-sfu processes, %d runs of five %v windows, VP8 %d kbit/s + Opus (%.0f packets/s), %d viewers per side\n",
		p.runs, p.window, relayBenchBitrate/1000, runs[0][0].published/runs[0][0].origin.wall.Seconds(), relayBenchViewersN)
	fmt.Printf("  per window: origin %% of a core / edge %% of a core / machine busy, packets relayed out / in\n")
	for i, w := range runs {
		for j, x := range w {
			fmt.Printf("    run %d window %d %-44s %5.1f %% / %5.1f %% / %3.0f %%  %.0f / %.0f\n", i+1, j+1, relayWindowNames[j],
				x.origin.corePercent(), x.edge.corePercent(), 100*x.origin.machineBusy, x.relayedOut, x.relayedIn)
		}
		o0 = append(o0, perRelayed(w[1], w[0]))
		o10 = append(o10, perRelayed(w[2], w[3]))
		oFwd = append(oFwd, us(w[3].origin, w[3].origin.forwarded))
		oIngest = append(oIngest, us(w[0].origin, w[0].published))
		eRelay = append(eRelay, us(w[1].edge, w[1].relayedIn))
		eLocal = append(eLocal, us(w[4].edge, w[4].publishedLocal))
		eFwdRelay = append(eFwdRelay, us(w[1].edge, w[1].edge.forwarded))
		eFwdLocal = append(eFwdLocal, us(w[4].edge, w[4].edge.forwarded))
	}
	fmt.Printf("  median (min - max) over the runs:\n")
	fmt.Printf("  origin, CPU per relayed packet (its one copy to the edge): %s with no local viewers (2-1); %s with %d (3-4: one copy among eleven, within the spread of the windows)\n",
		o0.summary("%.1f us"), o10.summary("%.1f us"), relayBenchViewersN)
	fmt.Printf("  origin, for comparison: %s per packet forwarded to its own viewers (4); %s per published packet with nobody watching (1)\n",
		oFwd.summary("%.1f us"), oIngest.summary("%.1f us"))
	fmt.Printf("  edge, CPU per relayed packet received and sent to %d viewers: %s (2); per packet of a local publisher, same audience: %s (5)\n",
		relayBenchViewersN, eRelay.summary("%.1f us"), eLocal.summary("%.1f us"))
	fmt.Printf("  edge, CPU per packet forwarded to a viewer: %s fed by the relay (2), %s fed by a local publisher (5)\n",
		eFwdRelay.summary("%.1f us"), eFwdLocal.summary("%.1f us"))
	fmt.Printf("  latency (3), median of %d viewers' own percentiles: origin p50 %s p99 %s; edge p50 %s p99 %s; lost by all viewers of (3): %d packets\n",
		relayBenchViewersN, lat[0].summary("%.2f ms"), lat[1].summary("%.2f ms"), lat[2].summary("%.2f ms"), lat[3].summary("%.2f ms"), lost)
}

func closeAll(vs []*loadtest.Viewer) {
	for _, v := range vs {
		_ = v.Close()
	}
}

const (
	relayBenchSettle   = 3 * time.Second // more than the publisher's keyframe interval (2 s)
	relayBenchBitrate  = 2_500_000
	relayBenchViewersN = 10
)

var relayWindowNames = []string{
	"origin alone (publisher, no viewers)",
	"relay: 10 viewers on the edge",
	"both: 10 viewers on each side",
	"origin only: 10 viewers there, no relay",
	"local: a publisher + 10 viewers on the edge",
}

// relayWindow is what both processes did in one window.
type relayWindow struct {
	origin, edge          serverCost
	relayedOut, relayedIn float64 // halo_relay_packets_total on each side
	published             float64 // packets the origin's broadcaster sent
	publishedLocal        float64 // packets the edge's own broadcaster sent
}

// measureWindow samples both processes over d.
func measureWindow(t *testing.T, d time.Duration, origin, edge *serverProc, pub, local *loadtest.Publisher) relayWindow {
	t.Helper()
	sent := func(p *loadtest.Publisher) float64 {
		if p == nil {
			return 0
		}
		s := p.Stats()
		return float64(s.VideoPackets + s.AudioPackets)
	}
	o0, e0, p0, l0 := exactSample(t, origin), exactSample(t, edge), sent(pub), sent(local)
	time.Sleep(d)
	o1, e1, p1, l1 := exactSample(t, origin), exactSample(t, edge), sent(pub), sent(local)
	return relayWindow{
		origin: costBetween(o0, o1), edge: costBetween(e0, e1),
		// one direction per node here: the origin only sends, the edge only receives
		relayedOut: o1.counters["halo_relay_packets_total"] - o0.counters["halo_relay_packets_total"],
		relayedIn:  e1.counters["halo_relay_packets_total"] - e0.counters["halo_relay_packets_total"],
		published:  p1 - p0, publishedLocal: l1 - l0,
	}
}

// exactSample is sample with the process's CPU time from the scheduler's
// own accounting (nanoseconds, per thread) instead of /proc/<pid>/stat's
// clock ticks, where the kernel has it.
func exactSample(t *testing.T, s *serverProc) serverSample {
	t.Helper()
	out := s.sample(t)
	if cpu, ok := schedRuntime(s.cmd.Process.Pid); ok {
		out.cpu = cpu
	}
	return out
}

// schedRuntime sums se.sum_exec_runtime (ms with ns precision) over a
// process's threads from /proc/<pid>/task/*/sched.
func schedRuntime(pid int) (time.Duration, bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, false
	}
	var total time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/sched", pid, task.Name()))
		if err != nil {
			continue // exited meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "se.sum_exec_runtime"); ok {
				var ms float64
				if _, err := fmt.Sscan(strings.TrimLeft(v, " :"), &ms); err != nil {
					return 0, false
				}
				total += time.Duration(ms * float64(time.Millisecond))
			}
		}
	}
	return total, total > 0
}

func relayBenchPublisher(t *testing.T, ctx context.Context, s *serverProc, room string) *loadtest.Publisher {
	t.Helper()
	tok, err := loadtest.MintToken(s.secret, loadtest.TokenClaims{Identity: "pub-" + room, Room: room, Grants: loadtest.Grants{Publish: true}})
	if err != nil {
		t.Fatal(err)
	}
	p := loadtest.NewPublisher(loadtest.PublisherConfig{URL: s.wsURL, Room: room, Token: tok, VideoBitrate: relayBenchBitrate})
	if err := p.Start(ctx); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// relayBenchViewers starts n viewers and waits until each receives video
// and audio.
func relayBenchViewers(t *testing.T, ctx context.Context, s *serverProc, room, prefix string, n int) []*loadtest.Viewer {
	t.Helper()
	var vs []*loadtest.Viewer
	for i := range n {
		tok, err := loadtest.MintToken(s.secret, loadtest.TokenClaims{Identity: fmt.Sprintf("%s-%d", prefix, i), Room: room,
			Grants: loadtest.Grants{Subscribe: true}})
		if err != nil {
			t.Fatal(err)
		}
		v := loadtest.NewViewer(loadtest.ViewerConfig{URL: s.wsURL, Room: room, Token: tok})
		if err := v.Start(ctx); err != nil {
			t.Fatalf("viewer %s-%d: %v", prefix, i, err)
		}
		t.Cleanup(func() { _ = v.Close() })
		vs = append(vs, v)
	}
	for _, v := range vs {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	return vs
}

// eventuallyRelays waits until the origin's halo_relay_tracks is n.
func eventuallyRelays(t *testing.T, s *serverProc, n float64) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("origin relays %v tracks", n), func() bool {
		return s.sample(t).counters["halo_relay_tracks"] == n
	})
}

func latencies(vs []*loadtest.Viewer) []*loadtest.Latency {
	var out []*loadtest.Latency
	for _, v := range vs {
		out = append(out, v.Latency())
	}
	return out
}

// medianQ is the median over viewers of each one's q-quantile between two
// copies of their latency histograms.
func medianQ(before, after []*loadtest.Latency, q float64) time.Duration {
	var d []time.Duration
	for i := range after {
		d = append(d, after[i].Since(before[i]).Quantile(q))
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}
