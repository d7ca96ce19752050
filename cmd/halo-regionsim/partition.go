package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// partitionSpec is the -partition scenario: the links between two regions
// (or between one region and every other) are cut, both directions, from At
// into the measuring window for For.
type partitionSpec struct {
	A, B    string // B "": A is cut from every other region
	At, For time.Duration
}

// String is the flag's syntax back.
func (p partitionSpec) String() string {
	if p.A == "" {
		return ""
	}
	who := p.A
	if p.B != "" {
		who += "-" + p.B
	}
	return fmt.Sprintf("%s@%v+%v", who, p.At, p.For)
}

// describe says in words what is cut.
func (p partitionSpec) describe() string {
	if p.B == "" {
		return fmt.Sprintf("%s cut from every other region (Redis in %s included) from %v into the window for %v", p.A, redisRegion, p.At, p.For)
	}
	return fmt.Sprintf("%s and %s cut from each other (both still reach the rest) from %v into the window for %v", p.A, p.B, p.At, p.For)
}

// minAfterHeal is how long the window goes on after a partition heals: the
// viewers cut off must receive again, and a viewer joining at the heal get
// the broadcast, well within it (a few heartbeats and a relay set-up).
const minAfterHeal = 10 * time.Second

// parsePartition reads "a-b@at+for" (the links between regions a and b)
// or "a@at+for" (a cut from every other region), e.g. nepal-europe@10s+20s.
func parsePartition(s string) (partitionSpec, error) {
	var p partitionSpec
	who, when, ok := strings.Cut(s, "@")
	if !ok {
		return p, fmt.Errorf("%q: want REGION-REGION@START+LENGTH or REGION@START+LENGTH, e.g. nepal-europe@10s+20s", s)
	}
	at, length, ok := strings.Cut(when, "+")
	if !ok {
		return p, fmt.Errorf("%q: want START+LENGTH after @, e.g. 10s+20s", s)
	}
	var err error
	if p.At, err = time.ParseDuration(at); err != nil || p.At < 0 {
		return p, fmt.Errorf("%q: start %q is not a duration of 0 or more, e.g. 10s", s, at)
	}
	if p.For, err = time.ParseDuration(length); err != nil || p.For <= 0 {
		return p, fmt.Errorf("%q: length %q is not a positive duration, e.g. 20s", s, length)
	}
	if strings.Count(who, "-") > 1 {
		return p, fmt.Errorf("%q: at most two regions, e.g. nepal-europe", s)
	}
	var pair bool
	p.A, p.B, pair = strings.Cut(who, "-")
	names := []string{p.A}
	if pair {
		names = append(names, p.B)
	}
	for _, name := range names {
		if regionIndex(name) < 0 {
			return p, fmt.Errorf("%q: unknown region %q (nepal, india or europe)", s, name)
		}
	}
	if p.A == p.B {
		return p, fmt.Errorf("%q: a region cannot be cut from itself", s)
	}
	return p, nil
}

// pairs are the region index pairs whose links the partition cuts.
func (p partitionSpec) pairs() [][2]int {
	a := regionIndex(p.A)
	if p.B != "" {
		return [][2]int{{a, regionIndex(p.B)}}
	}
	var out [][2]int
	for j := range regions {
		if j != a {
			out = append(out, [2]int{a, j})
		}
	}
	return out
}

// cutOff reports whether region name loses its link to the broadcaster's
// region in the partition.
func (p partitionSpec) cutOff(name string) bool {
	if p.A == "" || name == originRegion {
		return false
	}
	if p.B == "" {
		return p.A == originRegion || p.A == name
	}
	return p.A == originRegion && p.B == name || p.B == originRegion && p.A == name
}

// regionIndex is the index of region name in regions, or -1.
func regionIndex(name string) int {
	for i, r := range regions {
		if r.name == name {
			return i
		}
	}
	return -1
}

// checkPartition says what of the region stayed frozen after the heal.
func (g regionReport) checkPartition() []error {
	var errs []error
	for i, d := range g.Recover {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s viewer %d received no video after the partition healed", g.Region, i))
		}
	}
	if g.DuringErr != "" {
		errs = append(errs, fmt.Errorf("%s: a viewer joining during the partition got no broadcast by the end of the window: %s", g.Region, g.DuringErr))
	}
	if g.AfterErr != "" {
		errs = append(errs, fmt.Errorf("%s: a viewer joining at the heal got no broadcast by the end of the window: %s", g.Region, g.AfterErr))
	}
	return errs
}

// printPartition writes the partition's table: per region, the viewers'
// longest gap, their recovery after the heal, and the two new viewers.
func (r *report) printPartition(w io.Writer) {
	p := r.Partition
	fmt.Fprintf(w, "\npartition: %s; %d packets dropped\n\n", p.describe(), r.CutDrops)
	fmt.Fprintf(w, "%-7s %8s %9s %12s %12s %16s %15s\n", "region", "cut off", "gap max", "recover p50", "recover max", "during ttff", "after-heal ttff")
	for _, g := range r.Regions {
		var rec []time.Duration
		for _, d := range g.Recover {
			if d < 0 {
				d = never
			}
			rec = append(rec, d)
		}
		sortDurations(rec)
		cut := "no"
		if p.cutOff(g.Region) {
			cut = "yes"
		}
		var gapMax time.Duration
		for _, d := range g.GapMax {
			gapMax = max(gapMax, d)
		}
		fmt.Fprintf(w, "%-7s %8s %9s %12s %12s %16s %15s\n", g.Region, cut, ms(gapMax),
			recovery(rec, len(rec)/2), recovery(rec, len(rec)-1), ttffOr(g.DuringTTFF, g.DuringErr), ttffOr(g.AfterTTFF, g.AfterErr))
	}
	fmt.Fprintf(w, "cut off: the region's node loses its link to the broadcaster's; gap max: the longest time any of its viewers got no video;\n")
	fmt.Fprintf(w, "recover: from the heal to a viewer's first video packet after it (never: none before the end of the window);\n")
	fmt.Fprintf(w, "during ttff: a new viewer joining halfway through the partition, from its start to media; after-heal ttff: one joining at the heal\n")
}

// never stands for a viewer that did not recover, sorted last.
const never = time.Duration(1<<63 - 1)

// recovery is sorted[i] as the table shows it.
func recovery(sorted []time.Duration, i int) string {
	switch {
	case len(sorted) == 0:
		return "-"
	case sorted[i] == never:
		return "never"
	}
	return ms(sorted[i])
}

func ttffOr(d time.Duration, err string) string {
	if err != "" {
		return "none"
	}
	return ms(d)
}
