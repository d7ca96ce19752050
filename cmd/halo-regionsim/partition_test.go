package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// The broadcaster's node, in nepal, is cut from every other region (its
// edges and Redis in india: UDP and TCP, both directions) for 20 s, long
// enough for the cluster to declare it lost, then the partition heals.
// Nothing stays split: after the heal every viewer of every region receives
// video again without rejoining, a viewer who joined during the partition
// gets the broadcast, and so does one joining the cut-off edges at the heal
// (never "nothing published"). Before the cluster believed a returning node
// again (97afa56), the edges' viewers stayed frozen and the new ones got
// nothing.
func TestRegionSim_OriginCutOff20s_EveryRegionReceivesAgainAfterTheHeal(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-region simulation with a 20 s partition (about 50 s)")
	}
	needRegionSim(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("the partition needs the user-space delay line, and /dev/net/tun is not available: %v", err)
	}
	sfu := buildSFU(t)
	part := partitionSpec{A: originRegion, At: 2 * time.Second, For: 20 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	rep, err := simulate(ctx, options{sfu: sfu, link: "auto", viewers: 2, bitrate: 300_000,
		duration: part.At + part.For + minAfterHeal, redisTimeout: 2 * time.Second, logLevel: "warn",
		lockWait: 2 * time.Minute, partition: part}, &log)
	if rep != nil {
		var b strings.Builder
		rep.print(&b)
		t.Logf("\n%s", b.String())
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if rep.CutDrops == 0 {
		t.Fatal("the partition dropped no packet")
	}
	if len(rep.Regions) != 3 {
		t.Fatalf("%d regions reported, want 3", len(rep.Regions))
	}
	// A few heartbeats (2 s each) and a relay set-up: frozen is "never".
	const within = 8 * time.Second
	for _, g := range rep.Regions {
		for i, d := range g.Recover {
			if d < 0 || d > within {
				t.Errorf("%s viewer %d: video again %v after the heal, want within %v (-1: never)", g.Region, i, d, within)
			}
		}
		if g.DuringErr != "" {
			t.Errorf("%s: a viewer who joined during the partition got nothing by the end: %s", g.Region, g.DuringErr)
		}
		if g.AfterErr != "" || g.AfterTTFF > within {
			t.Errorf("%s: a viewer joining at the heal got media after %v (%s), want within %v", g.Region, g.AfterTTFF, g.AfterErr, within)
		}
		if !part.cutOff(g.Region) {
			// The broadcaster's own region was never cut from it.
			for i, n := range g.Received {
				if float64(n) < 0.99*float64(rep.Sent) {
					t.Errorf("%s viewer %d received %d of %d packets", g.Region, i, n, rep.Sent)
				}
			}
			continue
		}
		// The cut-off regions' viewers really lost the broadcast.
		for i, gap := range g.GapMax {
			if gap < part.For {
				t.Errorf("%s viewer %d: longest gap %v, but the region was cut off for %v", g.Region, i, gap, part.For)
			}
		}
	}
}

func TestParsePartition_ReadsPairsAndWholeRegions(t *testing.T) {
	for _, c := range []struct {
		in   string
		want partitionSpec
		err  string
	}{
		{in: "nepal-europe@10s+20s", want: partitionSpec{A: "nepal", B: "europe", At: 10 * time.Second, For: 20 * time.Second}},
		{in: "nepal@0s+1m", want: partitionSpec{A: "nepal", At: 0, For: time.Minute}},
		{in: "nepal-europe", err: "want REGION-REGION@START+LENGTH"},
		{in: "nepal@10s", err: "want START+LENGTH"},
		{in: "nepal@x+20s", err: `start "x"`},
		{in: "nepal@-1s+20s", err: `start "-1s"`},
		{in: "nepal@1s+0s", err: `length "0s"`},
		{in: "mars@1s+2s", err: `unknown region "mars"`},
		{in: "nepal-@1s+2s", err: `unknown region ""`},
		{in: "nepal-nepal@1s+2s", err: "cut from itself"},
		{in: "nepal-india-europe@1s+2s", err: "at most two regions"},
	} {
		got, err := parsePartition(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestPartitionSpec_PairsAndCutOff(t *testing.T) {
	pair := partitionSpec{A: "nepal", B: "europe", For: time.Second}
	if got := pair.pairs(); len(got) != 1 || got[0] != [2]int{0, 2} {
		t.Errorf("nepal-europe pairs %v, want [[0 2]]", got)
	}
	if pair.cutOff("india") || !pair.cutOff("europe") || pair.cutOff("nepal") {
		t.Error("nepal-europe: only europe loses the broadcaster's node")
	}
	whole := partitionSpec{A: "nepal", For: time.Second}
	if got := whole.pairs(); len(got) != 2 || got[0] != [2]int{0, 1} || got[1] != [2]int{0, 2} {
		t.Errorf("nepal pairs %v, want [[0 1] [0 2]]", got)
	}
	if !whole.cutOff("india") || !whole.cutOff("europe") {
		t.Error("nepal cut from everyone: india and europe lose the broadcaster's node")
	}
}

// -partition never panics, and what it accepts it prints back the same.
func FuzzParsePartition(f *testing.F) {
	for _, s := range []string{"nepal-europe@10s+20s", "india@0s+1m", "nepal@", "@+", "-@1s+1s", "europe-nepal@1h+1ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePartition(s)
		if err != nil {
			return
		}
		again, err := parsePartition(p.String())
		if err != nil || again != p {
			t.Fatalf("%q parsed as %+v, printed %q, parsed again %+v, %v", s, p, p.String(), again, err)
		}
	})
}
