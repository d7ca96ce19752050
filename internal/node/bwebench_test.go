package node

import (
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
)

// The cost and the speed of bandwidth estimation (docs/benchmarks.md,
// section 10; make bench-bwe). Measurements, not checks: skipped unless
// HALO_BENCH=1.

const bweBenchViewers = 100

// CPU per forwarded packet of a server process with 1 broadcaster (VP8
// 2.5 Mbit/s + Opus) and 100 viewers (Pion, with transport-cc feedback),
// with sfu.bandwidth_estimation on and off, run by run in turn.
func TestBWEBench_CPUPerPacket(t *testing.T) {
	p := benchSetup(t)
	bin := benchServers(t)[0].bin
	res := map[string][]float64{}
	perViewer := map[string][]float64{}
	for run := range p.runs {
		for _, mode := range []string{"always", "off"} {
			p.quietMachine()
			func() {
				srv := startServerProc(t, bin, "HALO_SFU_BANDWIDTH_ESTIMATION="+mode)
				room := newBenchRoom(t, srv)
				vs := room.viewers(t, fmt.Sprintf("bwe-%s-%d", mode, run), bweBenchViewers)
				time.Sleep(3 * time.Second)
				a := srv.sample(t)
				time.Sleep(p.window)
				b := srv.sample(t)
				c := costBetween(a, b)
				res[mode] = append(res[mode], c.perPacket())
				perViewer[mode] = append(perViewer[mode], c.corePercent()/bweBenchViewers)
				t.Logf("run %d, estimation %s: %.2f us CPU per forwarded packet, %.3f %% of a core per viewer, machine %.0f %% busy",
					run+1, mode, c.perPacket(), c.corePercent()/bweBenchViewers, 100*c.machineBusy)
				for _, v := range vs {
					_ = v.Close()
				}
				_ = room.pub.Close()
			}()
		}
	}
	for _, mode := range []string{"always", "off"} {
		t.Logf("estimation %s: median %.2f us per packet (runs %v), %.3f %% of a core per viewer", mode, median(res[mode]), res[mode], median(perViewer[mode]))
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// How fast a viewer's layer follows its link: on an open link it climbs to
// the top layer; the link then narrows to 600 kbit/s (the time to the low
// layer is measured), and opens again (the time back to the top layer).
func TestBWEBench_SwitchTimes(t *testing.T) {
	benchSetup(t)
	n := startNode(t, nil)
	publishSimulcastPackets(t, n, "bwe-bench", [3][]int{{250}, {1000, 1000}, {1000, 1000, 1000, 1000, 1000}})
	testutil.Eventually(t, "the simulcast track", func() bool {
		r := n.rooms.Room("bwe-bench")
		return r != nil && len(r.Tracks()) == 1 && len(r.Tracks()[0].Layers) == 3
	})
	v := newBWEViewer(t)
	var link *narrowLink
	connectBehindRelay(t, n, v.pc, "/whep/bwe-bench", n.token("bwe-bench", "v", false, true), func(server *net.UDPAddr) int {
		link = startNarrowLink(t, server, 50e6, time.Second)
		return link.port()
	})
	at := func(layer byte, limit time.Duration) time.Duration {
		start := time.Now()
		for time.Since(start) < limit {
			v.mu.Lock()
			n := len(v.ly)
			ok := n > 20
			for i := max(0, n-20); i < n && ok; i++ {
				ok = v.ly[i] == layer
			}
			v.mu.Unlock()
			if ok {
				return time.Since(start)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return -1
	}
	up := at(2, 60*time.Second)
	t.Logf("open link: on the top layer %v after the viewer joined", up.Round(10*time.Millisecond))
	link.setRate(600_000)
	down := at(0, 30*time.Second)
	t.Logf("link narrowed to 600 kbit/s: on the low layer %v later (queue 1 s, %d drops)", down.Round(10*time.Millisecond), link.drops())
	time.Sleep(5 * time.Second)
	link.setRate(50e6)
	back := at(2, 120*time.Second)
	t.Logf("link opened again: back on the top layer %v later", back.Round(10*time.Millisecond))
}
