package main

// The binary's own tests: flags, configuration errors, exit codes and the
// dev-mode banner, through run (main without the process). What a node
// does once it runs is tested in internal/node.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"go.uber.org/goleak"
)

// TestMain fails the package when any goroutine outlives the tests: run
// must stop everything it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// See internal/node's TestMain: Pion's ICE agent's task loop, once
		// in a while, outlives a closed connection.
		goleak.IgnoreTopFunction("github.com/pion/ice/v4/internal/taskloop.(*Loop).runLoop"),
	)
}

// The binary's own path: run() with --dev prints a token and a URL, serves,
// and exits 0 on SIGTERM within the shutdown timeout.
func TestRun_DevModePrintsTokenAndStopsOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testutil.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--dev", "--http.listen", "127.0.0.1:0", "--metrics.listen", "", "--sfu.udp_port", "0"}, nil, &out, &errOut)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "token") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "ws://") || !strings.Contains(out.String(), "eyJ") {
		t.Fatalf("dev output lacks a URL or token:\n%s\n%s", out.String(), errOut.String())
	}
	// main turns SIGTERM into this cancellation.
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", c, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after the signal")
	}
}

// A config error names the key and exits 2.
func TestRun_BadConfigNamesTheKey(t *testing.T) {
	var out, errOut testutil.SyncBuffer
	code := run(context.Background(), []string{"--sfu.udp_port", "70000", "--dev"}, nil, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "sfu.udp_port") {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
	code = run(context.Background(), nil, []string{"HALO_AUTH_SECRET="}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "auth.secret") {
		t.Fatalf("production start without a secret: code %d, stderr %q", code, errOut.String())
	}
}

// --print-config shows the effective configuration with the secret masked.
func TestRun_PrintConfigMasksSecrets(t *testing.T) {
	var out, errOut testutil.SyncBuffer
	secret := strings.Repeat("s3cr3t", 8)
	code := run(context.Background(), []string{"--print-config"}, []string{"HALO_AUTH_SECRET=" + secret, "HALO_SFU_UDP_PORT=9999"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut.String())
	}
	if strings.Contains(out.String(), secret) || !strings.Contains(out.String(), "******") || !strings.Contains(out.String(), "9999") {
		t.Fatalf("print-config output:\n%s", out.String())
	}
}

// A node that names Redis outside dev mode needs the cluster secret.
func TestRun_RedisWithoutClusterSecretIsRefused(t *testing.T) {
	var out, errOut testutil.SyncBuffer
	code := run(context.Background(), nil, []string{
		"HALO_AUTH_SECRET=" + strings.Repeat("c3", 20), "HALO_REDIS_ADDRS=127.0.0.1:6379",
	}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "cluster.secret") {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
}

// Dev mode opens /dev/token, which hands a signed token to anyone. HALO_DEV
// or `dev: true` left in a production environment must not open it: the
// server refuses to start and says that only --dev enables dev mode; a
// production node has no /dev/token at all.
func TestDevMode_HALODEVDoesNotEnableIt(t *testing.T) {
	secret := "HALO_AUTH_SECRET=" + strings.Repeat("0123456789abcdef", 4)
	args := []string{"--http.listen", "127.0.0.1:0", "--metrics.listen", "", "--sfu.udp_port", "0"}
	var out, errOut testutil.SyncBuffer
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
	errOut = testutil.SyncBuffer{}
	if code := run(ctx, args, []string{"HALO_DEV=1"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "HALO_DEV") {
		t.Fatalf("HALO_DEV=1 without a secret: exit %d, stderr %q", code, errOut.String())
	}
	// --dev never signs with a configured secret: /dev/token would sign
	// production tokens for anyone.
	errOut = testutil.SyncBuffer{}
	if code := run(ctx, append([]string{"--dev"}, args...), []string{secret}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "auth.secret: is set, but dev mode (--dev) always generates its own secret") {
		t.Fatalf("--dev with a secret: exit %d, stderr %q", code, errOut.String())
	}

}

// `make run` (halo-sfu --dev, nothing else about the listener) serves
// /dev/token, which signs a token for anyone who asks: it answers on
// loopback and on no other address of this machine.
func TestDevMode_MakeRunAnswersOnLoopbackOnly(t *testing.T) {
	var others []net.IP
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			others = append(others, n.IP)
		}
	}
	if len(others) == 0 {
		t.Skip("this machine has no non-loopback address to try (only lo): nothing to show")
	}
	// The media port and the metrics listener are moved so the test runs
	// beside anything else; the HTTP listener is make run's own default.
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testutil.SyncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--dev", "--metrics.listen", "", "--sfu.udp_port", "0"}, nil, &out, &errOut)
	}()
	defer func() {
		cancel()
		if c := <-code; c != 0 && !t.Skipped() {
			t.Errorf("exit code %d; stderr:\n%s", c, errOut.String())
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "token") && time.Now().Before(deadline) {
		if strings.Contains(errOut.String(), "http.listen 127.0.0.1:7880") && strings.Contains(errOut.String(), "address already in use") {
			t.Skipf("port 7880 is taken on this machine (another make run?): cannot try make run's default here\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "http://127.0.0.1:7880/") {
		t.Fatalf("dev banner does not show the loopback page:\n%s\n%s", out.String(), errOut.String())
	}
	resp, err := http.Get("http://127.0.0.1:7880/dev/token?room=demo&identity=me")
	if err != nil {
		t.Fatalf("loopback: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loopback /dev/token: %s", resp.Status)
	}
	for _, ip := range others {
		addr := net.JoinHostPort(ip.String(), "7880")
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			c.Close()
			t.Errorf("dev mode answers on %s: /dev/token is open to the network", addr)
		} else {
			t.Logf("%s: %v (as wanted)", addr, err)
		}
	}
}

// The media port taken by another process stops the start with exit 1 and
// an error naming sfu.udp_port, the key to change.
func TestRun_UDPPortClashNamesTheKey(t *testing.T) {
	taken, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.LocalAddr().(*net.UDPAddr).Port
	var out, errOut testutil.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := run(ctx, []string{"--http.listen", "127.0.0.1:0", "--metrics.listen", "", "--sfu.udp_port", strconv.Itoa(port)},
		[]string{"HALO_AUTH_SECRET=" + strings.Repeat("c4", 20), "HALO_SFU_UDP_ADDRESS=127.0.0.1"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), fmt.Sprintf("sfu.udp_port %d is in use", port)) {
		t.Fatalf("media port taken: exit %d, stderr %q; want exit 1 naming sfu.udp_port", code, errOut.String())
	}
}
