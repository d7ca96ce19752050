package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// TestRelayBench_CostPerRoom measures what a relayed room costs each side:
// an origin and an edge as separate halo-sfu processes on one redis-server,
// relayBenchRooms rooms published on the origin (relayCostBitrate), then
// one viewer per room on the edge. Per room: the growth of each process's
// goroutines, Go heap in use (after a forced GC) and RSS between the two
// moments, over the number of rooms. The edge's figure includes its one
// local viewer per room; a third moment, one viewer per room on the
// origin, gives a local viewer's cost to set beside it. Every server of HALO_BENCH_SERVERS is measured in
// turn (to set an older build beside this one). Skipped unless
// HALO_BENCH=1.
func TestRelayBench_CostPerRoom(t *testing.T) {
	benchSetup(t)
	for _, srv := range benchServers(t) {
		t.Run(srv.label, func(t *testing.T) { relayCostPerRoom(t, srv.bin) })
	}
}

// relayBenchRooms is how many rooms TestRelayBench_CostPerRoom relays, and
// relayCostBitrate each broadcast's video bitrate (issue 27's figures).
const (
	relayBenchRooms  = 30
	relayCostBitrate = 300_000
)

func relayCostPerRoom(t *testing.T, bin string) {
	r := testutil.StartRedis(t)
	cs := make([]byte, 32)
	_, _ = rand.Read(cs)
	cluster := func(id, region string) []string {
		return []string{"HALO_REDIS_ADDRS=" + r.Addr(), "HALO_CLUSTER_SECRET=" + hex.EncodeToString(cs),
			"HALO_NODE_ID=" + id, "HALO_NODE_REGION=" + region,
			"HALO_CLUSTER_RELAY_TRUNKS=true"} // trunks are off by default; an older server ignores the key
	}
	origin := startServerProc(t, bin, cluster("origin", "eu")...)
	edge := startServerProc(t, bin, cluster("edge", "in")...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var rooms []string
	for i := range relayBenchRooms {
		room := fmt.Sprintf("cost-%02d", i)
		rooms = append(rooms, room)
		tok, err := loadtest.MintToken(origin.secret, loadtest.TokenClaims{Identity: "pub-" + room, Room: room, Grants: loadtest.Grants{Publish: true}})
		if err != nil {
			t.Fatal(err)
		}
		p := loadtest.NewPublisher(loadtest.PublisherConfig{URL: origin.wsURL, Room: room, Token: tok, VideoBitrate: relayCostBitrate})
		if err := p.Start(ctx); err != nil {
			t.Fatalf("publisher: %v", err)
		}
		t.Cleanup(func() { _ = p.Close() })
	}
	time.Sleep(3 * time.Second)
	o0, e0 := procCost(t, origin), procCost(t, edge)
	for _, room := range rooms {
		relayBenchViewers(t, ctx, edge, room, room, 1)
	}
	time.Sleep(5 * time.Second)
	o1, e1 := procCost(t, origin), procCost(t, edge)
	// What a local viewer costs, for comparison: one per room on the
	// origin.
	for _, room := range rooms {
		relayBenchViewers(t, ctx, origin, room, "local-"+room, 1)
	}
	time.Sleep(5 * time.Second)
	o2 := procCost(t, origin)
	n := float64(relayBenchRooms)
	fmt.Printf("relay cost per room (%d rooms, %d kbit/s each, one viewer per room on the edge):\n", relayBenchRooms, relayCostBitrate/1000)
	for _, side := range []struct {
		name   string
		before procSample
		after  procSample
	}{{"origin", o0, o1}, {"edge", e0, e1}} {
		fmt.Printf("  %-6s goroutines %5.1f   heap %6.0f KiB   RSS %6.0f KiB   (relay connections %v)\n", side.name,
			(side.after.goroutines-side.before.goroutines)/n, (side.after.heap-side.before.heap)/n/1024,
			(side.after.rss-side.before.rss)/n/1024, side.after.connections)
	}
	fmt.Printf("  a local viewer on the origin: goroutines %5.1f   heap %6.0f KiB   RSS %6.0f KiB\n",
		(o2.goroutines-o1.goroutines)/n, (o2.heap-o1.heap)/n/1024, (o2.rss-o1.rss)/n/1024)
}

// procSample is what procCost reads.
type procSample struct{ goroutines, heap, rss, connections float64 }

// procCost forces a GC in s (its pprof heap endpoint) and reads its
// goroutines, heap in use and RSS from its metrics.
func procCost(t *testing.T, s *serverProc) procSample {
	t.Helper()
	base := strings.TrimSuffix(s.metricsURL, "/metrics")
	if resp, err := http.Get(base + "/debug/pprof/heap?gc=1"); err == nil {
		_ = resp.Body.Close()
	}
	resp, err := http.Get(s.metricsURL)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	var out procSample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		name, labels, _ := strings.Cut(line[:sp], "{")
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case name == "go_goroutines":
			out.goroutines = v
		case name == "go_memstats_heap_inuse_bytes":
			out.heap = v
		case name == "process_resident_memory_bytes":
			out.rss = v
		case name == "halo_relay_connections_total" && strings.Contains(labels, `result="connected"`):
			out.connections += v
		}
	}
	return out
}
