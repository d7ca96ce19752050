package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

// --ice relay-udp and relay-tcp: the viewers reach the node only through
// its embedded TURN server, and watch as well as direct ones (an operator
// sizing TURN); the node counts their allocations. A mode it does not know
// is a usage error.
func TestRun_ICERelayModesWatchThroughTheNodesTURNServer(t *testing.T) {
	srv := startServer(t, func(c *config.Config) {
		c.Turn.Enabled, c.Turn.Secret = true, "turn-test-0123456789abcdef0123456789abcdef"
		c.Turn.Port, c.Turn.TLSPort = testutil.FreePort(t), 0
	})
	dir := t.TempDir()
	for _, mode := range []string{"relay-udp", "relay-tcp"} {
		out := filepath.Join(dir, mode+".json")
		code, stdout, stderr := runCmd(t, context.Background(), "--url", srv.wsURL, "--secret", srv.secret, "--room", mode,
			"--viewers", "2", "--ramp", "20", "--duration", "3s", "--bitrate", "300000", "--ice", mode, "--json", out,
			// What is checked is delivery through the relay: TURN over TCP
			// under the race detector on a busy 2-core machine took frames
			// 1.8 s (p95) in one CI run, which is not what this measures.
			"--max-latency", "5s")
		if code != 0 {
			t.Fatalf("--ice %s: exit %d\n%s%s", mode, code, stdout, stderr)
		}
		rep := readJSON(t, out)
		if rep.Received.FramesPercent < 95 {
			t.Errorf("--ice %s: %.1f %% of frames received, want the whole stream", mode, rep.Received.FramesPercent)
		}
	}
	resp, err := http.Get(srv.metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	total := 0
	for _, m := range regexp.MustCompile(`(?m)^halo_turn_allocations_total(?:\{[^}]*\})? (\d+)`).FindAllStringSubmatch(string(body), -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	if total < 4 {
		t.Errorf("halo_turn_allocations_total %d after 2 viewers over UDP and 2 over TCP, want at least 4", total)
	}
	if code, _, stderr := runCmd(t, context.Background(), "--url", srv.wsURL, "--secret", srv.secret, "--ice", "relay-quic"); code != 2 {
		t.Errorf("--ice relay-quic: exit %d (%s), want 2", code, stderr)
	}
}
