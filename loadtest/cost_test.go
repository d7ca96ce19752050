package loadtest

import (
	"math"
	"strings"
	"testing"
)

func TestBottleneck_SaysWhoLimitedTheRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		lt   LoadTesterCost
		srv  *ServerCost
		want string // "" for no sentence
	}{
		{"idle machine", LoadTesterCost{Cores: 0.3, CoresAvailable: 2, MachineBusyPercent: 30}, &ServerCost{Cores: 0.2}, ""},
		{"tester uses most cores", LoadTesterCost{Cores: 1.7, CoresAvailable: 2, MachineBusyPercent: 95}, &ServerCost{Cores: 0.2}, "load tester was the bottleneck"},
		{"tester outweighs the server on a full machine", LoadTesterCost{Cores: 1.1, CoresAvailable: 2, MachineBusyPercent: 97}, &ServerCost{Cores: 0.8}, "the load tester, not the server, limited"},
		{"server outweighs the tester", LoadTesterCost{Cores: 0.6, CoresAvailable: 2, MachineBusyPercent: 97}, &ServerCost{Cores: 1.3}, ""},
		{"other work fills the machine", LoadTesterCost{Cores: 0.2, CoresAvailable: 2, MachineBusyPercent: 100}, &ServerCost{Cores: 0.15}, "mostly by other work"},
		{"full machine, server unknown", LoadTesterCost{Cores: 0.9, CoresAvailable: 2, MachineBusyPercent: 99}, nil, "give --server-pid"},
		{"tester waits for a CPU", LoadTesterCost{Cores: 0.5, CoresAvailable: 2, MachineBusyPercent: 80, SchedLatencyP99MS: 34}, &ServerCost{Cores: 0.6}, "waited up to 34 ms"},
		{"tester starved by other work", LoadTesterCost{Cores: 0.2, CoresAvailable: 2, MachineBusyPercent: 100, SchedLatencyP99MS: 40}, &ServerCost{Cores: 0.2}, "The machine was the bottleneck: it was 100 % busy mostly with other work (the server used 0.20)"},
		{"tester starved, server unknown", LoadTesterCost{Cores: 0.36, CoresAvailable: 2, MachineBusyPercent: 99, SchedLatencyP99MS: 84}, nil, "Fewer viewers per process will not help"},
		{"tester waits on a full machine it fills", LoadTesterCost{Cores: 1.2, CoresAvailable: 2, MachineBusyPercent: 99, SchedLatencyP99MS: 84}, nil, "Run fewer viewers per process"},
		{"short waits", LoadTesterCost{Cores: 0.5, CoresAvailable: 2, MachineBusyPercent: 50, SchedLatencyP99MS: 3}, &ServerCost{Cores: 0.6}, ""},
		{"server forwarders fell behind", LoadTesterCost{Cores: 0.3, CoresAvailable: 2, MachineBusyPercent: 50}, &ServerCost{Cores: 1.2, ForwarderSkipped: 4000}, "skipped 4000 packets"},
		{"machine share unknown", LoadTesterCost{Cores: 0.9, CoresAvailable: 2, MachineBusyPercent: -1}, nil, ""},
	} {
		got := bottleneck(tc.lt, tc.srv)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSchedLatency_QuantileOfTheWindow(t *testing.T) {
	b := []float64{0, 0.001, 0.01, 0.1, math.Inf(1)}
	before := schedLatency{counts: []uint64{100, 0, 0, 0}, buckets: b}
	after := schedLatency{counts: []uint64{190, 5, 4, 1}, buckets: b}
	// In the window: 90 waits under 1 ms, 5 under 10 ms, 4 under 100 ms, 1 over.
	for _, tc := range []struct{ q, want float64 }{{0.5, 1}, {0.95, 10}, {0.99, 100}, {1, 100}} {
		if got := after.quantileSince(before, tc.q); got != tc.want {
			t.Errorf("q%.2f = %v ms, want %v", tc.q, got, tc.want)
		}
	}
	if got := after.quantileSince(after, 0.99); got != 0 {
		t.Errorf("empty window: %v", got)
	}
	if real := readSchedLatency(); len(real.counts) == 0 || len(real.buckets) != len(real.counts)+1 {
		t.Fatalf("runtime metric %s unreadable: %d counts, %d buckets", schedLatencyMetric, len(real.counts), len(real.buckets))
	}
}
