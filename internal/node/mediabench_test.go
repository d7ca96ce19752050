package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// Media benchmarks: the join storm and the NACK flood of docs/benchmarks.md.
// They measure, they do not check: they are skipped unless HALO_BENCH=1 and
// print tables (`make bench-media`). Each run starts a fresh server process
// (HALO_BENCH_SERVERS, see benchServers; several binaries are measured
// interleaved, run by run, so that they share the machine's noise), one
// synthetic broadcaster and its viewers in this process.
//
//	HALO_BENCH=1                required
//	HALO_BENCH_SERVERS          "label=path ..."; default: this tree, built
//	HALO_BENCH_RUNS             runs per server (default 3); the summary gives the median and the spread
//	HALO_BENCH_WINDOW           length of each measured window (default 10s)
//	HALO_BENCH_MAX_LOAD         before each run, wait (up to 3 min) for the 1-minute load average to drop below this
//	HALO_BENCH_TRACE            a file: the join storm takes a Go execution trace of the server over the
//	                            storm's first 8 s into it (needs a binary with metrics.pprof; for
//	                            `go tool trace -pprof=sched`)

const (
	benchViewers  = 20
	benchJoiners  = 100
	benchJoinRate = 100 // joiners started per second
	benchGOP      = 6 * time.Second
	benchBitrate  = 2_500_000
	benchNACKRate = 50   // NACK packets per second from the hostile viewer
	benchNACKSpan = 1700 // sequence numbers named by each
)

type benchParams struct {
	runs    int
	window  time.Duration
	maxLoad float64 // 0: do not wait
}

// quietMachine waits, up to 3 minutes, for the machine's 1-minute load
// average to drop below p.maxLoad: the machine is shared.
func (p benchParams) quietMachine() {
	if p.maxLoad <= 0 {
		return
	}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Second) {
		var l float64
		if _, err := fmt.Sscan(loadAverage(), &l); err != nil || l < p.maxLoad {
			return
		}
	}
}

func benchSetup(t *testing.T) benchParams {
	t.Helper()
	if os.Getenv("HALO_BENCH") != "1" {
		t.Skip("media benchmark: set HALO_BENCH=1 (make bench-media)")
	}
	if testBitrate != benchBitrate {
		t.Skip("media benchmark: not under the race detector")
	}
	p := benchParams{runs: 3, window: 10 * time.Second}
	if s := os.Getenv("HALO_BENCH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HALO_BENCH_RUNS=%q: want a positive integer", s)
		}
		p.runs = n
	}
	if s := os.Getenv("HALO_BENCH_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Second {
			t.Fatalf("HALO_BENCH_WINDOW=%q: want a duration of 1s or more", s)
		}
		p.window = d
	}
	if s := os.Getenv("HALO_BENCH_MAX_LOAD"); s != "" {
		l, err := strconv.ParseFloat(s, 64)
		if err != nil || l < 0 {
			t.Fatalf("HALO_BENCH_MAX_LOAD=%q: want a load average (0: do not wait)", s)
		}
		p.maxLoad = l
	}
	return p
}

// benchRoom is one broadcast on a server process: the publisher and the
// viewers of this process.
type benchRoom struct {
	srv  *serverProc
	room string
	mint func(identity string, publish bool) (string, error)
	pub  *loadtest.Publisher
}

func newBenchRoom(t *testing.T, srv *serverProc) *benchRoom {
	t.Helper()
	r := &benchRoom{srv: srv, room: "bench", mint: loadtest.TokenMinter(srv.secret, "bench", time.Hour)}
	tok, err := r.mint("bench-publisher", true)
	if err != nil {
		t.Fatal(err)
	}
	r.pub = loadtest.NewPublisher(loadtest.PublisherConfig{
		URL: srv.wsURL, Room: r.room, Token: tok,
		VideoBitrate: benchBitrate, FPS: 30, KeyframeInterval: benchGOP,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.pub.Start(ctx); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	t.Cleanup(func() { _ = r.pub.Close() })
	return r
}

// viewers starts n viewers and waits until each receives video and audio.
func (r *benchRoom) viewers(t *testing.T, prefix string, n int) []*loadtest.Viewer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list := make([]*loadtest.Viewer, n)
	for i := range list {
		tok, err := r.mint(fmt.Sprintf("%s-%d", prefix, i), false)
		if err != nil {
			t.Fatal(err)
		}
		v := loadtest.NewViewer(loadtest.ViewerConfig{URL: r.srv.wsURL, Room: r.room, Token: tok})
		if err := v.Start(ctx); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
		t.Cleanup(func() { _ = v.Close() })
		list[i] = v
	}
	for i, v := range list {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
	}
	return list
}

// viewerMark is what one viewer had received at one moment.
type viewerMark struct {
	latency        *loadtest.Latency
	lost, received uint64
}

func markViewers(vs []*loadtest.Viewer) []viewerMark {
	out := make([]viewerMark, len(vs))
	for i, v := range vs {
		s := v.Stats()
		out[i] = viewerMark{latency: v.Latency(), lost: s.Lost, received: s.VideoPackets + s.AudioPackets}
	}
	return out
}

// viewerWindow is what a group of viewers received between two marks.
type viewerWindow struct {
	p50, p95, p99, max time.Duration // one-way video latency, frame starts
	frames             uint64
	lost, received     uint64
}

func (w viewerWindow) lossPercent() float64 {
	if w.lost+w.received == 0 {
		return 0
	}
	return 100 * float64(w.lost) / float64(w.lost+w.received)
}

func between(a, b []viewerMark) viewerWindow {
	var lat loadtest.Latency
	var w viewerWindow
	for i := range a {
		lat.Add(b[i].latency.Since(a[i].latency))
		if b[i].lost > a[i].lost {
			w.lost += b[i].lost - a[i].lost
		}
		w.received += b[i].received - a[i].received
	}
	w.p50, w.p95, w.p99, w.max, w.frames = lat.Quantile(0.5), lat.Quantile(0.95), lat.Quantile(0.99), lat.Quantile(1), lat.Count()
	return w
}

// waitKeyframe returns when the publisher has sent its next keyframe.
func waitKeyframe(t *testing.T, p *loadtest.Publisher) {
	t.Helper()
	k := p.Stats().Keyframes
	deadline := time.Now().Add(2 * benchGOP)
	for p.Stats().Keyframes == k {
		if time.Now().After(deadline) {
			t.Fatal("no keyframe from the publisher")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// stat is one figure over the runs of one server.
type stat []float64

// summary is "median (min-max)" with the given format.
func (s stat) summary(format string) string {
	if len(s) == 0 {
		return "-"
	}
	x := slices.Clone(s)
	slices.Sort(x)
	med := x[len(x)/2]
	if len(x)%2 == 0 {
		med = (x[len(x)/2-1] + x[len(x)/2]) / 2
	}
	if len(x) == 1 {
		return fmt.Sprintf(format, med)
	}
	return fmt.Sprintf(format+" ("+format+" - "+format+")", med, x[0], x[len(x)-1])
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// --- join storm ---------------------------------------------------------

type stormResult struct {
	quiet, storm         viewerWindow
	quietCost, stormCost serverCost
	gopPackets           float64 // video packets per GOP at the publisher
	joined               joinerReport
	keyframeRequests     uint64 // PLIs the publisher got during the storm window
	// CPU used during the storm window by the joiners' process and by
	// this one (the publisher and the 20 measured viewers).
	joinersCPU, clientsCPU time.Duration
}

// TestMediaBench_JoinStorm measures the latency and loss of 20 viewers of a
// 2.5 Mbit/s VP8 broadcast (a keyframe every 6 s) over a window without
// joiners, then over a window in which 100 more viewers join at 100/s (in
// another process, so that their set-up costs these viewers' process
// nothing). The storm begins 4.5 s into a GOP: every joiner is replayed
// 4.5-5.5 s of picture, ~1,250-1,500 packets, all in the 2048-packet cache.
func TestMediaBench_JoinStorm(t *testing.T) {
	p := benchSetup(t)
	servers := benchServers(t)
	results := make([][]stormResult, len(servers))
	fmt.Printf("join storm: %d viewers, +%d joiners at %d/s; windows of %s; load average %s\n",
		benchViewers, benchJoiners, benchJoinRate, p.window, loadAverage())
	for run := range p.runs {
		for i, s := range servers {
			var r stormResult
			p.quietMachine()
			if !t.Run(fmt.Sprintf("%s/run%d", s.label, run+1), func(t *testing.T) { r = joinStormOnce(t, s, p) }) {
				t.FailNow()
			}
			results[i] = append(results[i], r)
			fmt.Printf("  %-10s run %d: quiet p50 %s p95 %s p99 %s max %s loss %.3f%% | storm %.1f s p50 %s p95 %s p99 %s max %s loss %.3f%% | joiners %d/%d first keyframe p50 %s p95 %s | kernel drops quiet/storm: viewers %d/%d server %d/%d | GOP %.0f packets | PLIs %d | server %.1f us/pkt quiet, %.0f/%.0f %% of a core quiet/storm | machine busy %.0f/%.0f %%, in the storm: joiners %.0f %% viewers %.0f %% of a core | load %s\n",
				s.label, run+1, ms(r.quiet.p50), ms(r.quiet.p95), ms(r.quiet.p99), ms(r.quiet.max), r.quiet.lossPercent(),
				r.stormCost.wall.Seconds(), ms(r.storm.p50), ms(r.storm.p95), ms(r.storm.p99), ms(r.storm.max), r.storm.lossPercent(),
				r.joined.connected, benchJoiners, ms(r.joined.firstKeyP50), ms(r.joined.firstKeyP95),
				r.quietCost.clientDrops, r.stormCost.clientDrops, r.quietCost.serverDrops, r.stormCost.serverDrops,
				r.gopPackets, r.keyframeRequests, r.quietCost.perPacket(), r.quietCost.corePercent(), r.stormCost.corePercent(),
				100*r.quietCost.machineBusy, 100*r.stormCost.machineBusy,
				100*r.joinersCPU.Seconds()/r.stormCost.wall.Seconds(), 100*r.clientsCPU.Seconds()/r.stormCost.wall.Seconds(), loadAverage())
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\njoin storm, median (min - max) of %d runs\nserver\tquiet p50\tquiet p99\tquiet loss\tstorm p50\tstorm p99\tstorm max\tstorm loss\tjoiners' first keyframe p95\tCPU/forwarded packet, quiet\n", p.runs)
	for i, s := range servers {
		var qp50, qp99, ql, sp50, sp99, smax, sl, jk, cpp stat
		for _, r := range results[i] {
			qp50 = append(qp50, r.quiet.p50.Seconds()*1e3)
			qp99 = append(qp99, r.quiet.p99.Seconds()*1e3)
			ql = append(ql, r.quiet.lossPercent())
			sp50 = append(sp50, r.storm.p50.Seconds()*1e3)
			sp99 = append(sp99, r.storm.p99.Seconds()*1e3)
			smax = append(smax, r.storm.max.Seconds()*1e3)
			sl = append(sl, r.storm.lossPercent())
			jk = append(jk, r.joined.firstKeyP95.Seconds()*1e3)
			cpp = append(cpp, r.quietCost.perPacket())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.label,
			qp50.summary("%.1f ms"), qp99.summary("%.1f ms"), ql.summary("%.2f %%"),
			sp50.summary("%.1f ms"), sp99.summary("%.1f ms"), smax.summary("%.0f ms"), sl.summary("%.2f %%"),
			jk.summary("%.0f ms"), cpp.summary("%.1f us"))
	}
	_ = tw.Flush()
}

func joinStormOnce(t *testing.T, s benchServer, p benchParams) stormResult {
	trace := os.Getenv("HALO_BENCH_TRACE")
	var env []string
	if trace != "" {
		env = append(env, "HALO_METRICS_PPROF=true")
	}
	srv := startServerProc(t, s.bin, env...)
	room := newBenchRoom(t, srv)
	viewers := room.viewers(t, "viewer", benchViewers)
	joiners := startClients(t, srv, room.room, "joiners", benchJoiners)

	time.Sleep(2 * time.Second) // past every viewer's start
	var r stormResult
	ps0, m0, c0 := room.pub.Stats(), markViewers(viewers), srv.sample(t)
	time.Sleep(p.window)
	ps1, m1, c1 := room.pub.Stats(), markViewers(viewers), srv.sample(t)
	r.quiet, r.quietCost = between(m0, m1), costBetween(c0, c1)
	r.gopPackets = float64(ps1.VideoPackets-ps0.VideoPackets) / c1.at.Sub(c0.at).Seconds() * benchGOP.Seconds()

	waitKeyframe(t, room.pub)
	time.Sleep(4500 * time.Millisecond)
	ps2, m2, c2 := room.pub.Stats(), markViewers(viewers), srv.sample(t)
	j2, self2 := procCPU(joiners.cmd.Process.Pid), procCPU(os.Getpid())
	joiners.command(t, "go")
	if trace != "" {
		traceServer(t, srv, trace, 8*time.Second)
	}
	time.Sleep(time.Until(c2.at.Add(p.window)))
	// The storm lasts until every joiner receives media (or gave up),
	// and a second more, if that is longer than the window.
	r.joined = joiners.joined(t)
	time.Sleep(time.Until(r.joined.at.Add(time.Second)))
	ps3, m3, c3 := room.pub.Stats(), markViewers(viewers), srv.sample(t)
	r.joinersCPU, r.clientsCPU = procCPU(joiners.cmd.Process.Pid)-j2, procCPU(os.Getpid())-self2
	r.storm, r.stormCost = between(m2, m3), costBetween(c2, c3)
	r.keyframeRequests = ps3.PLIs - ps2.PLIs
	return r
}

// traceServer writes a Go execution trace of the server over d to file.
func traceServer(t *testing.T, srv *serverProc, file string, d time.Duration) {
	t.Helper()
	url := strings.TrimSuffix(srv.metricsURL, "/metrics") + fmt.Sprintf("/debug/pprof/trace?seconds=%d", int(d.Seconds()))
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("trace: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("trace: %s (is metrics.pprof known to this binary?)", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatalf("trace: %v", err)
	}
}

// --- NACK flood ----------------------------------------------------------

type floodResult struct {
	quiet, flood         viewerWindow // the ordinary viewers
	quietCost, floodCost serverCost
	nacksSent            uint64
}

// TestMediaBench_NACKFlood measures the server's CPU beside 20 ordinary
// viewers and one more viewer, over a window in which that viewer behaves,
// then over one in which it sends 50 NACKs a second, each naming the last
// 1,700 packets; and the ordinary viewers' loss and latency in both. The
// server runs in its own process: its CPU time is its own.
func TestMediaBench_NACKFlood(t *testing.T) {
	p := benchSetup(t)
	servers := benchServers(t)
	results := make([][]floodResult, len(servers))
	fmt.Printf("NACK flood: %d viewers + 1 sending %d NACKs/s of %d packets; windows of %s; load average %s\n",
		benchViewers, benchNACKRate, benchNACKSpan, p.window, loadAverage())
	for run := range p.runs {
		for i, s := range servers {
			var r floodResult
			p.quietMachine()
			if !t.Run(fmt.Sprintf("%s/run%d", s.label, run+1), func(t *testing.T) { r = nackFloodOnce(t, s, p) }) {
				t.FailNow()
			}
			results[i] = append(results[i], r)
			fmt.Printf("  %-10s run %d: quiet %.1f %% core %.1f us/pkt loss %.3f%% p99 %s | flood %.1f %% core %.1f us/pkt loss %.3f%% p99 %s | CPU x%.2f | machine busy %.0f/%.0f %% | kernel drops quiet/flood: viewers %d/%d server %d/%d | NACKs sent %d, server: received %.0f answered %.0f ignored %.0f dropped %.0f | load %s\n",
				s.label, run+1, r.quietCost.corePercent(), r.quietCost.perPacket(), r.quiet.lossPercent(), ms(r.quiet.p99),
				r.floodCost.corePercent(), r.floodCost.perPacket(), r.flood.lossPercent(), ms(r.flood.p99),
				r.floodCost.corePercent()/r.quietCost.corePercent(), 100*r.quietCost.machineBusy, 100*r.floodCost.machineBusy,
				r.quietCost.clientDrops, r.floodCost.clientDrops, r.quietCost.serverDrops, r.floodCost.serverDrops, r.nacksSent,
				r.floodCost.nacks["received"], r.floodCost.nacks["answered"], r.floodCost.nacks["ignored"], r.floodCost.nacks["dropped"], loadAverage())
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nNACK flood, median (min - max) of %d runs\nserver\tCPU quiet\tCPU flood\tCPU ratio\tus/forwarded pkt quiet\tus/forwarded pkt flood\tresent per s\tloss quiet\tloss flood\tp99 quiet\tp99 flood\n", p.runs)
	for i, s := range servers {
		var cq, cf, ratio, pq, pf, resent, lq, lf, p99q, p99f stat
		for _, r := range results[i] {
			cq = append(cq, r.quietCost.corePercent())
			cf = append(cf, r.floodCost.corePercent())
			ratio = append(ratio, r.floodCost.corePercent()/r.quietCost.corePercent())
			pq = append(pq, r.quietCost.perPacket())
			pf = append(pf, r.floodCost.perPacket())
			resent = append(resent, r.floodCost.nacks["answered"]/r.floodCost.wall.Seconds())
			lq = append(lq, r.quiet.lossPercent())
			lf = append(lf, r.flood.lossPercent())
			p99q = append(p99q, r.quiet.p99.Seconds()*1e3)
			p99f = append(p99f, r.flood.p99.Seconds()*1e3)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.label,
			cq.summary("%.1f %%"), cf.summary("%.1f %%"), ratio.summary("%.2f x"),
			pq.summary("%.1f us"), pf.summary("%.1f us"), resent.summary("%.0f"),
			lq.summary("%.2f %%"), lf.summary("%.2f %%"), p99q.summary("%.1f ms"), p99f.summary("%.1f ms"))
	}
	_ = tw.Flush()
}

func nackFloodOnce(t *testing.T, s benchServer, p benchParams) floodResult {
	srv := startServerProc(t, s.bin)
	room := newBenchRoom(t, srv)
	ordinary := room.viewers(t, "viewer", benchViewers)
	hostile := startClients(t, srv, room.room, "hostile", 1)

	time.Sleep(2 * time.Second)
	var r floodResult
	m0, c0 := markViewers(ordinary), srv.sample(t)
	time.Sleep(p.window)
	m1, c1 := markViewers(ordinary), srv.sample(t)
	r.quiet, r.quietCost = between(m0, m1), costBetween(c0, c1)

	hostile.command(t, "go")
	time.Sleep(time.Second) // the flood's first answers are on their way
	m2, c2 := markViewers(ordinary), srv.sample(t)
	time.Sleep(p.window)
	m3, c3 := markViewers(ordinary), srv.sample(t)
	r.nacksSent = hostile.stopFlood(t)
	r.flood, r.floodCost = between(m2, m3), costBetween(c2, c3)
	return r
}
