package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
)

// Dev mode opens /dev/token, which hands a signed token to anyone. HALO_DEV
// or `dev: true` left in a production environment must not open it: the
// server refuses to start and says that only --dev enables dev mode; a
// production node has no /dev/token at all.
func TestDevMode_HALODEVDoesNotEnableIt(t *testing.T) {
	secret := "HALO_AUTH_SECRET=" + strings.Repeat("0123456789abcdef", 4)
	args := []string{"--http.listen", "127.0.0.1:0", "--metrics.listen", "", "--sfu.udp_port", "0"}
	var out, errOut syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := run(ctx, args, []string{"HALO_DEV=true", secret}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "HALO_DEV: only the --dev flag enables dev mode") {
		t.Fatalf("HALO_DEV=true: exit %d, stderr %q; want exit 2 naming HALO_DEV", code, errOut.String())
	}
	if strings.Contains(out.String(), "eyJ") || strings.Contains(out.String(), "DEV mode") {
		t.Fatalf("HALO_DEV=true printed a dev token:\n%s", out.String())
	}
	// Without a secret the production rule is what the operator reads too.
	errOut = syncBuffer{}
	if code := run(ctx, args, []string{"HALO_DEV=1"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "HALO_DEV") {
		t.Fatalf("HALO_DEV=1 without a secret: exit %d, stderr %q", code, errOut.String())
	}
	// --dev never signs with a configured secret: /dev/token would sign
	// production tokens for anyone.
	errOut = syncBuffer{}
	if code := run(ctx, append([]string{"--dev"}, args...), []string{secret}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "auth.secret: is set, but dev mode (--dev) always generates its own secret") {
		t.Fatalf("--dev with a secret: exit %d, stderr %q", code, errOut.String())
	}

	n := startNode(t, nil)
	resp, err := http.Get(n.base + "/dev/token?room=demo&publish=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("production /dev/token: %d, want 404", resp.StatusCode)
	}
}

// Profiles are served only when metrics.pprof is on (default off), and never
// on the public listener.
func TestPprof_OnlyWhenEnabled(t *testing.T) {
	get := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	off := startNode(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	if got := get("http://" + off.metricsLn.Addr().String() + "/debug/pprof/"); got != http.StatusNotFound {
		t.Errorf("pprof with metrics.pprof false: %d, want 404", got)
	}
	if got := get("http://" + off.metricsLn.Addr().String() + "/metrics"); got != http.StatusOK {
		t.Errorf("/metrics: %d, want 200", got)
	}
	on := startNode(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0"; c.Metrics.Pprof = true })
	if got := get("http://" + on.metricsLn.Addr().String() + "/debug/pprof/"); got != http.StatusOK {
		t.Errorf("pprof with metrics.pprof true: %d, want 200", got)
	}
	if got := get(on.base + "/debug/pprof/"); got == http.StatusOK {
		t.Errorf("pprof on http.listen: %d", got)
	}
}
