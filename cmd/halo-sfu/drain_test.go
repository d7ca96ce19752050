package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// Draining (SIGTERM): readyz turns 503, connected clients are told
// server_shutting_down, new joins are refused, and everything is released.
func TestShutdown_DrainsClients(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.publisher(ctx, "drain", loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := n.viewer(ctx, "drain", "v")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(n.base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz before drain: %v %v", resp, err)
	}
	resp.Body.Close()
	done := make(chan error, 1)
	go func() { done <- n.server.Drain(ctx) }()
	sawShutdown := false
	for !sawShutdown {
		env, err := v.Conn().Next(ctx)
		if err != nil {
			break
		}
		if env.Type == "error" && strings.Contains(string(env.Data), "server_shutting_down") {
			sawShutdown = true
		}
	}
	if !sawShutdown {
		t.Fatal("viewer was not told server_shutting_down")
	}
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if s := n.engine.Stats(); s.Tracks != 0 || s.DownTracks != 0 || s.Publishers != 0 || s.Subscribers != 0 {
		t.Fatalf("media sessions left after drain: %+v", s)
	}
	resp, err = http.Get(n.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz during drain = %d, want 503", resp.StatusCode)
	}
}

// The binary's own path: run() with --dev prints a token and a URL, serves,
// and exits 0 on SIGTERM within the shutdown timeout.
func TestRun_DevModePrintsTokenAndStopsOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
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
	var out, errOut syncBuffer
	code := run(context.Background(), []string{"--sfu.udp_port", "70000", "--dev"}, nil, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "sfu.udp_port") {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
	code = run(context.Background(), nil, []string{"HALO_AUTH_SECRET="}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "auth.secret") {
		t.Fatalf("production start without a secret: code %d, stderr %q", code, errOut.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// --print-config shows the effective configuration with the secret masked.
func TestRun_PrintConfigMasksSecrets(t *testing.T) {
	var out, errOut syncBuffer
	secret := strings.Repeat("s3cr3t", 8)
	code := run(context.Background(), []string{"--print-config"}, []string{"HALO_AUTH_SECRET=" + secret, "HALO_SFU_UDP_PORT=9999"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut.String())
	}
	if strings.Contains(out.String(), secret) || !strings.Contains(out.String(), "******") || !strings.Contains(out.String(), "9999") {
		t.Fatalf("print-config output:\n%s", out.String())
	}
}
