package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain also serves as the simulation's child: simulate re-executes
// the running binary (this test binary here) inside the namespaces.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	goleak.VerifyTestMain(m)
}

// A short three-region run: a broadcaster in nepal, three viewers in each
// region behind 0 / 40 / 180 ms of one-way delay. Every viewer receives the
// broadcast (>= 99 % of the packets sent in the window, first frame a
// keyframe), the origin sends each of its two tracks once to each of the
// two other nodes, and the far regions' latency is at least their delay
// (a fact of the network, which says the media really crossed it).
func TestRegionSim_EveryRegionReceivesTheBroadcastThroughTheDelays(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-region simulation (about 40 s)")
	}
	needRegionSim(t)
	if err := netemWorks(); err != nil {
		if _, terr := os.Stat("/dev/net/tun"); terr != nil {
			t.Skipf("neither tc netem (%v) nor /dev/net/tun (%v) is available", err, terr)
		}
		t.Logf("tc netem does not work here (%v): the user-space delay line makes the delays", err)
	}
	sfu := buildSFU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	rep, err := simulate(ctx, options{sfu: sfu, link: "auto", viewers: 3, bitrate: 500_000,
		duration: 8 * time.Second, redisTimeout: 2 * time.Second, logLevel: "warn",
		lockWait: 2 * time.Minute}, &log)
	if rep != nil {
		var b strings.Builder
		rep.print(&b)
		t.Logf("\n%s", b.String())
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(rep.Regions) != 3 {
		t.Fatalf("%d regions reported, want 3", len(rep.Regions))
	}
	if rep.Sent == 0 {
		t.Fatal("the broadcaster sent nothing in the window")
	}
	for _, g := range rep.Regions {
		if len(g.Received) != 3 {
			t.Errorf("%s: %d viewers reported, want 3", g.Region, len(g.Received))
		}
		for i, n := range g.Received {
			if float64(n) < 0.99*float64(rep.Sent) {
				t.Errorf("%s viewer %d received %d of %d packets (%.2f %%)", g.Region, i, n, rep.Sent, 100*float64(n)/float64(rep.Sent))
			}
			if !g.KeyframeFirst[i] {
				t.Errorf("%s viewer %d: first video frame was not a keyframe", g.Region, i)
			}
		}
		// The loadtest histogram reports a bucket's middle, buckets being
		// at most 1/16 of their lower edge wide: a true latency t is
		// reported as at least t*31/32.
		if g.Frames == 0 || g.LatP50*32/31 < g.Delay {
			t.Errorf("%s: latency p50 %v over %d frames, but packets from %s take at least %v to get there",
				g.Region, g.LatP50, g.Frames, originRegion, g.Delay)
		}
	}
	if rep.RelayTracksOut != 4 {
		t.Errorf("origin: halo_relay_tracks{direction=\"out\"} %v, want 4 (2 tracks x 2 edge nodes)", rep.RelayTracksOut)
	}
}

// needRegionSim skips the test where the simulation cannot run: no root,
// no network namespaces, no ip or tc, no redis-server.
func needRegionSim(t *testing.T) {
	t.Helper()
	if err := checkHost(); err != nil {
		t.Skipf("the region simulation cannot run here: %v", err)
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (make deps installs it)")
	}
}

// buildSFU builds halo-sfu for the simulation's nodes.
func buildSFU(t *testing.T) string {
	t.Helper()
	sfu := filepath.Join(t.TempDir(), "halo-sfu")
	if out, err := exec.Command("go", "build", "-o", sfu, "../halo-sfu").CombinedOutput(); err != nil {
		t.Fatalf("go build halo-sfu: %v\n%s", err, out)
	}
	return sfu
}

// The netem topology (bridge, veths, a class and filter per destination)
// carries each region's packets to the others through the class of their
// destination. The leaf is a plain FIFO instead of netem, so this runs on
// kernels without sch_netem too; the netem run itself is the test above.
func TestRegionSim_NetemTopologySortsPacketsByDestination(t *testing.T) {
	if err := checkHost(); err != nil {
		t.Skipf("the region simulation cannot run here: %v", err)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash here (its /dev/tcp connects)")
	}
	lock, err := lockRun(2 * time.Minute) // another run (a second make test) may hold it
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := cleanStale(); err != nil {
		t.Fatal(err)
	}
	saved := delayQdisc
	delayQdisc = func(time.Duration) []string { return []string{"pfifo", "limit", "1000"} }
	defer func() { delayQdisc = saved }()
	defer removeNamespaces()
	if err := createNamespaces(); err != nil {
		t.Fatal(err)
	}
	if err := setupNetem(); err != nil {
		t.Fatal(err)
	}
	// nepal -> europe goes through nepal's class for europe (1:12), and
	// nothing through its class for india (1:11): three connection
	// attempts to a closed port, each refused by europe (so it was reached).
	for range 3 {
		out, _ := exec.Command("ip", "netns", "exec", regions[0].ns, "timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/"+regions[2].addr+"/9").CombinedOutput()
		if !strings.Contains(string(out), "refused") {
			t.Fatalf("nepal does not reach europe: %s", out)
		}
	}
	out, err := exec.Command("ip", "netns", "exec", regions[0].ns, "tc", "-s", "class", "show", "dev", "wan0").CombinedOutput()
	if err != nil {
		t.Fatalf("tc: %v\n%s", err, out)
	}
	sent := classPackets(string(out))
	if sent["1:12"] < 3 || sent["1:11"] != 0 {
		t.Errorf("packets per class %v: want the 3 connection attempts in 1:12 (europe), none in 1:11 (india)\n%s", sent, out)
	}
}

// classPackets reads "class htb 1:12 ... Sent N bytes M pkt" from tc -s.
func classPackets(out string) map[string]int {
	m := map[string]int{}
	var class string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "class" {
			class = f[2]
		}
		if len(f) >= 4 && f[0] == "Sent" && class != "" {
			var n int
			_, _ = fmt.Sscan(f[3], &n)
			m[class] = n
		}
	}
	return m
}
