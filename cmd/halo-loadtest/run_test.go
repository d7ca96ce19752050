package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// readJSON reads a report the command wrote.
func readJSON(t *testing.T, path string) *loadtest.Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("report not written: %v", err)
	}
	defer f.Close()
	r, err := loadtest.ReadReport(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func runCmd(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// The acceptance test: a short scenario against a real in-process
// server writes a JSON report whose packet counts match what the server's
// own metrics counted, within 1 %.
func TestRun_JSONReportPacketsMatchTheServersMetrics(t *testing.T) {
	srv := startServer(t)
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runCmd(t, context.Background(), "--url", srv.wsURL, "--secret", srv.secret,
		"--room", "match", "--viewers", "4", "--ramp", "20", "--duration", "3s", "--bitrate", "400000",
		"--metrics-url", srv.metricsURL, "--json", out)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	rep := readJSON(t, out)
	t.Logf("report:\n%s%s", stdout, stderr)
	forwarded, err := loadtest.ScrapeCounter(context.Background(), srv.metricsURL, "halo_forwarded_packets_total")
	if err != nil {
		t.Fatal(err)
	}
	got := float64(rep.Received.Packets)
	if forwarded == 0 || got < forwarded*0.99 || got > forwarded*1.01 {
		t.Fatalf("viewers received %v packets, the server forwarded %v: more than 1 %% apart", got, forwarded)
	}
	if rep.Server == nil || rep.Server.PacketsForwarded < forwarded*0.99 {
		t.Fatalf("report's server figures %+v, server metric %v", rep.Server, forwarded)
	}
	if rep.Viewers.Connected != 4 || len(rep.PerViewer) != 4 || rep.Received.VideoPackets+rep.Received.AudioPackets != rep.Received.Packets {
		t.Fatalf("viewers %+v, %d records, received %+v", rep.Viewers, len(rep.PerViewer), rep.Received)
	}
	m := rep.Measures
	for name, d := range map[string]loadtest.Dist{"join": m.JoinMS, "first packet": m.FirstPacketMS,
		"first keyframe": m.FirstKeyframeMS, "bitrate": m.BitrateKbps, "jitter": m.JitterMS} {
		if d.N != 4 || d.P50 <= 0 || d.Max < d.P95 || d.P95 < d.P50 {
			t.Errorf("%s: %+v", name, d)
		}
	}
	if m.LatencyMS.N == 0 || len(rep.LatencyCDF) == 0 || rep.LatencyCDF[len(rep.LatencyCDF)-1].Fraction != 1 {
		t.Errorf("latency %+v, CDF %v", m.LatencyMS, rep.LatencyCDF)
	}
	// 400 kbit/s of video plus audio, received by every viewer.
	if m.BitrateKbps.P50 < 200 || m.BitrateKbps.P50 > 1000 {
		t.Errorf("received bitrate p50 %.0f kbit/s for a 400 kbit/s stream", m.BitrateKbps.P50)
	}
	if rep.LoadTester.CPUSeconds <= 0 || rep.LoadTester.CPUMicrosPerPacket <= 0 {
		t.Errorf("load tester cost %+v", rep.LoadTester)
	}
	for _, want := range []string{"loss so far", "after NACK repair", "per viewer", "server forwarded"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}

// Memory per viewer comes only from a baseline this run can vouch for: a
// server that forwarded packets before the run gets a note, not a number.
func TestRun_ServerCostAndMemoryPerViewerOnlyFromAFreshBaseline(t *testing.T) {
	srv := startServer(t)
	dir := t.TempDir()
	args := func(out string) []string {
		return []string{"--url", srv.wsURL, "--secret", srv.secret, "--room", "cost", "--viewers", "3",
			"--ramp", "30", "--duration", "2s", "--bitrate", "300000",
			// The server runs in this test's process.
			"--server-pid", strconv.Itoa(os.Getpid()), "--metrics-url", srv.metricsURL, "--json", out}
	}
	first, second := filepath.Join(dir, "1.json"), filepath.Join(dir, "2.json")
	for _, out := range []string{first, second} {
		if code, stdout, stderr := runCmd(t, context.Background(), args(out)...); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
	}
	fresh, reused := readJSON(t, first).Server, readJSON(t, second).Server
	if fresh == nil || fresh.CPUSeconds <= 0 || fresh.CPUMicrosPerForwarded <= 0 || fresh.KernelPercent < 0 || fresh.KernelPercent > 100 ||
		fresh.RSSBaselineKiB <= 0 || fresh.AudienceAtRSS != 3 || fresh.KiBPerViewer == nil ||
		fresh.GoroutinesPerViewer == nil || *fresh.GoroutinesPerViewer <= 0 || fresh.GoroutinesAudience <= fresh.GoroutinesBaseline {
		t.Fatalf("server figures of a fresh server: %+v", fresh)
	}
	if reused == nil || reused.KiBPerViewer != nil || reused.GoroutinesPerViewer != nil || reused.GoroutinesAudience == 0 ||
		!strings.Contains(reused.MemoryNote, "already forwarded") {
		t.Fatalf("server figures of a server that ran before: %+v", reused)
	}
}

// A target that is down yields a report with every failure counted by
// code and exit status 1, without hanging.
func TestRun_DownTargetIsReportedNotHung(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	out := filepath.Join(t.TempDir(), "down.json")
	code, stdout, stderr := runCmd(t, context.Background(), "--url", "ws://"+addr+"/ws", "--secret", "s",
		"--viewers", "3", "--ramp", "50", "--duration", "500ms", "--json", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	rep := readJSON(t, out)
	if rep.Publishers.Failed != 1 || rep.Viewers.Failed != 3 || rep.FailedJoins["connection_refused"] != 4 {
		t.Fatalf("publishers %+v viewers %+v failed joins %v", rep.Publishers, rep.Viewers, rep.FailedJoins)
	}
	if !strings.Contains(stdout, "connection_refused 4") || !strings.Contains(stderr, "FAIL") {
		t.Fatalf("the table and stderr do not say what failed:\n%s\n%s", stdout, stderr)
	}
}

// A WHIP/WHEP target that answers errors: the failures carry the HTTP
// status as their code.
func TestRun_TargetAnsweringErrorsIsCountedByStatus(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer hs.Close()
	out := filepath.Join(t.TempDir(), "errors.json")
	code, stdout, stderr := runCmd(t, context.Background(), "--whip", hs.URL+"/whip/{room}", "--whep", hs.URL+"/whep/{room}",
		"--token", "t", "--viewers", "2", "--duration", "500ms", "--json", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	rep := readJSON(t, out)
	if rep.Target != "whip-whep" || rep.FailedJoins["http_503"] != 3 || rep.Viewers.Connected != 0 {
		t.Fatalf("target %s, failed joins %v, viewers %+v", rep.Target, rep.FailedJoins, rep.Viewers)
	}
}

// Ctrl-C (the context ending) stops the run cleanly and still writes both
// reports, marked interrupted, with exit status 1.
func TestRun_InterruptStillWritesTheReports(t *testing.T) {
	srv := startServer(t)
	dir := t.TempDir()
	jsonOut, htmlOut := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	var code int
	var stdout, stderr testutil.SyncBuffer
	go func() {
		defer close(done)
		code = run(ctx, []string{"--url", srv.wsURL, "--secret", srv.secret, "--room", "ctrlc", "--viewers", "2",
			"--duration", "10m", "--bitrate", "200000", "--json", jsonOut, "--html", htmlOut}, &stdout, &stderr)
	}()
	// Interrupt once the viewers are watching.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "2/2 connected") {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("viewers never connected:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	rep := readJSON(t, jsonOut)
	if !rep.Interrupted || rep.Viewers.Connected != 2 || rep.Received.Packets == 0 {
		t.Fatalf("interrupted %v viewers %+v received %+v", rep.Interrupted, rep.Viewers, rep.Received)
	}
	if b, err := os.ReadFile(htmlOut); err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Fatalf("HTML report: %v", err)
	}
}

// Ramp and churn behave as configured: every planned viewer (identities
// and rooms from the plan) starts, none before its planned time and in the
// planned order; each leaves no earlier than planned and a newcomer takes
// its place, so the audience never exceeds the slots.
func TestRun_RampAndChurnFollowTheScenario(t *testing.T) {
	srv := startServer(t)
	dir := t.TempDir()
	scenario := filepath.Join(dir, "churn.yaml")
	const yaml = `name: churn test
seed: 9
duration: 3s
ramp: 6
room_prefix: churn
rooms: [{count: 2, publishers: 1, viewers: 3}]
churn: {mean_watch: 1500ms}
publisher: {video_kbps: 200, fps: 15}
viewer: {chat_per_minute: 120, reactions_per_minute: 120}
`
	if err := os.WriteFile(scenario, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := loadtest.ParseScenario([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	plan := s.Plan()
	out := filepath.Join(dir, "churn.json")
	code, stdout, stderr := runCmd(t, context.Background(), "--scenario", scenario, "--secret", srv.secret,
		"--url", srv.wsURL, "--json", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	rep := readJSON(t, out)
	if len(rep.PerViewer) != len(plan.Viewers) || len(plan.Viewers) <= 6 {
		t.Fatalf("%d records for %d planned viewers (6 slots)", len(rep.PerViewer), len(plan.Viewers))
	}
	wantDeparted := 0
	lastStart := -1.0
	for i, pv := range plan.Viewers {
		rec := rep.PerViewer[i]
		if rec.Identity != pv.Identity || rec.Room != pv.Room || rec.PlannedStartMS != float64(pv.Start)/1e6 {
			t.Fatalf("record %d %s in %s at %.0f ms; plan %s in %s at %s", i, rec.Identity, rec.Room, rec.PlannedStartMS, pv.Identity, pv.Room, pv.Start)
		}
		if rec.Outcome != loadtest.OutcomeConnected {
			t.Fatalf("%s: %s %s", rec.Identity, rec.Outcome, rec.Error)
		}
		if rec.StartMS < rec.PlannedStartMS || rec.StartMS < lastStart {
			t.Fatalf("%s started at %.1f ms, planned %.1f ms (previous start %.1f ms)", rec.Identity, rec.StartMS, rec.PlannedStartMS, lastStart)
		}
		lastStart = rec.StartMS
		if pv.Leave > 0 {
			wantDeparted++
			if rec.LeftMS < rec.PlannedLeaveMS {
				t.Fatalf("%s left at %.1f ms, planned %.1f ms", rec.Identity, rec.LeftMS, rec.PlannedLeaveMS)
			}
		} else if rec.LeftMS != 0 {
			t.Fatalf("%s left at %.1f ms without a planned leave", rec.Identity, rec.LeftMS)
		}
	}
	if rep.Viewers.Departed != wantDeparted || wantDeparted == 0 {
		t.Fatalf("%d departed, plan has %d leaves", rep.Viewers.Departed, wantDeparted)
	}
	if rep.Viewers.PeakConnected > 6 || rep.Viewers.PeakConnected == 0 {
		t.Fatalf("peak audience %d with 6 slots", rep.Viewers.PeakConnected)
	}
	if rep.Publishers.Started != 2 || rep.Scenario != "churn test" {
		t.Fatalf("publishers %+v scenario %q", rep.Publishers, rep.Scenario)
	}
	// Two a second from each of ~6 viewers for ~4 s: some of each were sent.
	if rep.Sent.Chats == 0 || rep.Sent.Reactions == 0 {
		t.Fatalf("sent %+v", rep.Sent)
	}
}

// The same load pointed at plain WHIP/WHEP endpoints (as at any WHIP/WHEP
// server): no WebSocket protocol involved.
func TestRun_WHIPAndWHEPTarget(t *testing.T) {
	srv := startServer(t)
	out := filepath.Join(t.TempDir(), "whep.json")
	code, stdout, stderr := runCmd(t, context.Background(), "--whip", srv.base+"/whip/{room}", "--whep", srv.base+"/whep/{room}",
		"--secret", srv.secret, "--room", "whepload", "--viewers", "3", "--ramp", "20", "--duration", "2s", "--bitrate", "300000",
		"--metrics-url", srv.metricsURL, "--json", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	rep := readJSON(t, out)
	if rep.Target != "whip-whep" || rep.Viewers.Connected != 3 || rep.Received.VideoPackets == 0 || rep.Received.AudioPackets == 0 ||
		rep.Measures.FirstKeyframeMS.N != 3 {
		t.Fatalf("target %s viewers %+v received %+v", rep.Target, rep.Viewers, rep.Received)
	}
	if fwd := rep.Server.PacketsForwarded; float64(rep.Received.Packets) < fwd*0.99 || float64(rep.Received.Packets) > fwd*1.01 {
		t.Fatalf("received %d, server forwarded %.0f", rep.Received.Packets, fwd)
	}
}

// Two shards run side by side (as the pods of an Indexed Job) and merged
// give what one run of the whole scenario gives, on what is deterministic:
// identities, room assignment, planned times, counts.
func TestRun_MergedShardsEqualOneRun(t *testing.T) {
	srv := startServer(t)
	dir := t.TempDir()
	common := []string{"--url", srv.wsURL, "--secret", srv.secret, "--rooms", "2", "--viewers", "3",
		"--ramp", "10", "--duration", "2s", "--bitrate", "200000"}
	whole := filepath.Join(dir, "whole.json")
	if code, stdout, stderr := runCmd(t, context.Background(), append(common, "--room", "whole", "--json", whole)...); code != 0 {
		t.Fatalf("whole run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var wg sync.WaitGroup
	codes := make([]int, 2)
	logs := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var stdout, stderr bytes.Buffer
			codes[i] = run(context.Background(), append(common, "--room", "sharded", "--shard", strconv.Itoa(i)+"/2",
				"--json", filepath.Join(dir, "shard"+strconv.Itoa(i)+".json")), &stdout, &stderr)
			logs[i] = stdout.String() + stderr.String()
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 0 {
			t.Fatalf("shard %d: exit %d\n%s", i, c, logs[i])
		}
	}
	merged, html := filepath.Join(dir, "merged.json"), filepath.Join(dir, "merged.html")
	code, stdout, stderr := runCmd(t, context.Background(), "merge", filepath.Join(dir, "shard0.json"), filepath.Join(dir, "shard1.json"),
		"--json", merged, "--html", html)
	if code != 0 {
		t.Fatalf("merge: exit %d\n%s\n%s", code, stdout, stderr)
	}
	a, m := readJSON(t, whole), readJSON(t, merged)
	if len(a.PerViewer) != 6 || len(m.PerViewer) != len(a.PerViewer) {
		t.Fatalf("%d records in one run, %d merged", len(a.PerViewer), len(m.PerViewer))
	}
	for i := range a.PerViewer {
		x, y := a.PerViewer[i], m.PerViewer[i]
		// Room names differ only by the prefix the two runs were given.
		if x.Identity != y.Identity || strings.TrimPrefix(x.Room, "whole") != strings.TrimPrefix(y.Room, "sharded") ||
			x.PlannedStartMS != y.PlannedStartMS || x.Outcome != y.Outcome {
			t.Fatalf("viewer %d: one run %+v, merged %+v", i, x, y)
		}
	}
	av, mv := a.Viewers, m.Viewers
	av.PeakConnected, mv.PeakConnected = 0, 0 // sampled, not planned
	if av != mv || a.Publishers.Planned != m.Publishers.Planned || a.Publishers.Started != m.Publishers.Started ||
		!reflect.DeepEqual(a.FailedJoins, m.FailedJoins) || strings.Join(m.Shards, " ") != "0/2 1/2" {
		t.Fatalf("one run %+v %+v %v; merged %+v %+v %v %v", a.Viewers, a.Publishers, a.FailedJoins, m.Viewers, m.Publishers, m.FailedJoins, m.Shards)
	}
	if _, err := os.Stat(html); err != nil {
		t.Fatal(err)
	}
}
