package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/halobuzz/live/loadtest"
)

func TestParseFloor_ReadsCPUNanosPerPacket(t *testing.T) {
	out := "goos: linux\ngoarch: amd64\npkg: github.com/halobuzz/live/sfu\ncpu: AMD EPYC\n" +
		"BenchmarkFloor-2   \t  103070\t     13392 ns/op\t     12680 cpu-ns/pkt\t       0 B/op\t       0 allocs/op\nPASS\n"
	got, err := parseFloor(out)
	if err != nil || got != 12680 {
		t.Fatalf("parseFloor = %v, %v; want 12680", got, err)
	}
	three := "BenchmarkFloor-2 100 1 ns/op 9100 cpu-ns/pkt\nBenchmarkFloor-2 100 1 ns/op 7200 cpu-ns/pkt\nBenchmarkFloor-2 100 1 ns/op 10200 cpu-ns/pkt\n"
	if got, err := parseFloor(three); err != nil || got != 9100 {
		t.Fatalf("parseFloor of three runs = %v, %v; want the median 9100", got, err)
	}
	for name, bad := range map[string]string{
		"no benchmark line":   "PASS\nok  \tgithub.com/halobuzz/live/sfu\t1.5s\n",
		"no cpu-ns/pkt":       "BenchmarkFloor-2 100 13392 ns/op 0 B/op\n",
		"not a number":        "BenchmarkFloor-2 100 13392 ns/op NaNx cpu-ns/pkt\n",
		"zero":                "BenchmarkFloor-2 100 13392 ns/op 0 cpu-ns/pkt\n",
		"a build failure":     "# github.com/halobuzz/live/sfu\nsfu/x.go:1: syntax error\nFAIL\n",
		"another benchmark's": "BenchmarkFanout-2 100 13392 ns/op 5 cpu-ns/pkt\n",
		"a look-alike name":   "BenchmarkFloorless-2 100 13392 ns/op 5 cpu-ns/pkt\n",
		"infinite":            "BenchmarkFloor-2 100 13392 ns/op +Inf cpu-ns/pkt\n",
		"one good, one bad":   "BenchmarkFloor-2 100 1 ns/op 9100 cpu-ns/pkt\nBenchmarkFloor-2 100 1 ns/op x cpu-ns/pkt\n",
	} {
		if v, err := parseFloor(bad); err == nil {
			t.Errorf("%s: parseFloor = %v, want an error", name, v)
		}
	}
}

func TestParseViewerList(t *testing.T) {
	got, err := parseViewerList("100, 200")
	if err != nil || len(got) != 2 || got[0] != 100 || got[1] != 200 {
		t.Fatalf("parseViewerList = %v, %v", got, err)
	}
	for _, bad := range []string{"", ",", "0", "-5", "ten", "100,x", "1000000"} {
		if v, err := parseViewerList(bad); err == nil {
			t.Errorf("parseViewerList(%q) = %v, want an error", bad, v)
		}
	}
}

func TestBenchServer_BadUsageExitsTwo(t *testing.T) {
	for _, args := range [][]string{{"--viewers", "none"}, {"--duration", "0s"}, {"extra"}} {
		var stderr bytes.Buffer
		if code := runBench(t.Context(), args, io.Discard, &stderr); code != 2 {
			t.Errorf("bench-server %v: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
}

// The summary of a run gives the ratio to the floor and the per-viewer
// figures from the report, and says what was not measured.
func TestBenchResult_PrintsTheRatioToTheFloor(t *testing.T) {
	kib, gor := 390.0, 7.5
	rep := &loadtest.Report{Server: &loadtest.ServerCost{CPUMicrosPerForwarded: 18.2, KernelPercent: 55, PacketsForwarded: 250000,
		KiBPerViewer: &kib, GoroutinesPerViewer: &gor, RSSBaselineKiB: 20480, RSSAudienceKiB: 59480, AudienceAtRSS: 100,
		GoroutinesBaseline: 34, GoroutinesAudience: 784}}
	rep.Measures.FirstKeyframeMS = loadtest.Dist{N: 100, P50: 40, P95: 80}
	rep.Viewers.Planned, rep.Viewers.Connected = 100, 100
	var out bytes.Buffer
	(&benchResult{viewers: 100, rep: rep, floorNS: 9100, loadBefore: "1.00 0.50 0.20", loadAfter: "1.5 0.7 0.3"}).write(&out)
	for _, want := range []string{"18.20 us (55 % in the kernel)", "9.10 us; server / floor 2.00", "390 KiB", "7.5 (34 before",
		"40 / 80 ms", "100 of 100", "load average 1.00 0.50 0.20 before"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	rep.Server.KiBPerViewer, rep.Server.MemoryNote = nil, "no memory per viewer: the server had already forwarded"
	out.Reset()
	(&benchResult{viewers: 100, rep: rep}).write(&out)
	if !strings.Contains(out.String(), "not measured: no memory per viewer") || strings.Contains(out.String(), "floor") {
		t.Errorf("summary without a baseline or floor:\n%s", out.String())
	}
}
