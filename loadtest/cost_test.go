package loadtest

import (
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
		{"machine share unknown", LoadTesterCost{Cores: 0.9, CoresAvailable: 2, MachineBusyPercent: -1}, nil, ""},
	} {
		got := bottleneck(tc.lt, tc.srv)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
