package node

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

const coturnPath = "/usr/bin/turnserver"

// startCoturn runs Debian's coturn on a free loopback port with the
// use-auth-secret scheme and secret, and returns its port; it is stopped
// when the test ends. --allow-loopback-peers because the node's media port
// is on loopback in the test (production keeps coturn's refusal).
func startCoturn(t *testing.T, secret string) int {
	t.Helper()
	if _, err := os.Stat(coturnPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is missing (apt-get install coturn); CI fails here instead", coturnPath)
		}
		t.Fatalf("%s is missing in CI: %v", coturnPath, err)
	}
	port := testutil.FreePort(t)
	logs := &testutil.SyncBuffer{}
	cmd := exec.Command(coturnPath, "-n", "--no-cli", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
		"--listening-port="+strconv.Itoa(port), "--use-auth-secret", "--static-auth-secret="+secret,
		"--realm=halo.test", "--allow-loopback-peers", "--no-tls", "--no-dtls", "--no-multicast-peers",
		"--min-port=40000", "--max-port=40999", "--log-file=stdout", "--simple-log",
		"--pidfile="+t.TempDir()+"/turnserver.pid")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start coturn: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("coturn:\n%s", logs.String())
		}
	})
	testutil.Eventually(t, "coturn listening", func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return port
}

// The operator runs coturn instead of the embedded server, with the same
// secret: turn.external_urls names it, and Chromium, allowed only relay
// candidates and given only that URL with the credentials the node issued,
// watches over WHEP through coturn.
func TestTURN_ChromiumWatchesThroughAnExternalCoturnWithTheSameSecret(t *testing.T) {
	port := startCoturn(t, turnTestSecret)
	url := fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", port)
	n := startNode(t, func(c *config.Config) {
		c.Turn.Secret = turnTestSecret
		c.Turn.ExternalURLs = []string{url}
	})
	b := newTURNBrowser(t)
	live, viewer := b.ctx, b.tab("coturn-viewer")
	const room = "coturned"
	goLive(t, live, n, room, "")

	openRelayed(t, viewer, n, relayWatchJS, room, url, n.token(room, "coturn-fan", false, true))
	st := waitRelayed(t, viewer, "frames decoded through coturn", url, "udp",
		func(s relayStats) bool { return s.FramesDecoded > 30 })
	t.Logf("decoded %d frames through coturn at %s", st.FramesDecoded, st.URL)
	assertNoPageProblems(t, b)
}
