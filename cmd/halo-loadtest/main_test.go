package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/halobuzz/live/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun_UsageErrorsExitTwo(t *testing.T) {
	t.Setenv("HALO_LOADTEST_TOKEN", "")
	t.Setenv("HALO_LOADTEST_SECRET", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"both credentials", []string{"--token", "a", "--secret", "b"}, "not both"},
		{"bad number", []string{"--token", "a", "--fps", "0"}, "--fps"},
		{"nothing to publish", []string{"--token", "a", "--video-tracks", "0", "--no-audio"}, "nothing to publish"},
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
		{"stray argument", []string{"--token", "a", "extra"}, "unexpected arguments"},
		{"url and whip", []string{"--token", "a", "--url", "ws://x/ws", "--whip", "http://x/whip/{room}", "--whep", "http://x/whep/{room}"}, "not both"},
		{"whip without whep", []string{"--token", "a", "--whip", "http://x/whip/{room}"}, "go together"},
		{"scenario and shape flags", []string{"--token", "a", "--scenario", "x.yaml", "--viewers", "3"}, "not both"},
		{"missing scenario file", []string{"--token", "a", "--scenario", "/nonexistent.yaml"}, "--scenario"},
		{"bad shard", []string{"--token", "a", "--shard", "2/2"}, "--shard"},
		{"bad region", []string{"--token", "a", "--region", "a/b"}, "viewer.region"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr lacks %q:\n%s", tc.want, stderr.String())
			}
		})
	}
}

func TestRun_CredentialsFromEnvironment(t *testing.T) {
	t.Setenv("HALO_LOADTEST_SECRET", "from-env")
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil || o.secret != "from-env" || o.viewers != 50 || o.target.URL != "ws://127.0.0.1:7880/ws" || o.room != "demo" {
		t.Fatalf("options %+v, err %v", o, err)
	}
}

func TestRun_HelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "-viewers") {
		t.Fatalf("usage lacks flags:\n%s", stderr.String())
	}
}

func TestRun_HelpDoesNotPrintSecrets(t *testing.T) {
	t.Setenv("HALO_LOADTEST_SECRET", "do-not-show")
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"-h"}, &stdout, &stderr)
	if strings.Contains(stderr.String()+stdout.String(), "do-not-show") {
		t.Fatal("usage shows the secret")
	}
}

func TestRun_FlagCredentialsWinOverEnvironment(t *testing.T) {
	t.Setenv("HALO_LOADTEST_SECRET", "env-secret")
	o, err := parseFlags([]string{"--token", "flag-token"}, &bytes.Buffer{})
	if err != nil || o.token != "flag-token" || o.secret != "" {
		t.Fatalf("options %+v, err %v", o, err)
	}
}

func TestStatus_PlainLinesWhenNotATerminal(t *testing.T) {
	var b bytes.Buffer
	s := newStatus(&b)
	s.update("one")
	s.update("two")
	s.done()
	if b.String() != "one\ntwo\n" {
		t.Fatalf("status wrote %q", b.String())
	}
}

func TestStatus_RedrawsInPlaceOnATerminal(t *testing.T) {
	var b bytes.Buffer
	s := &status{w: &b, tty: true}
	s.update("one")
	s.update("two")
	s.done()
	if b.String() != "\r\x1b[Kone\r\x1b[Ktwo\n" {
		t.Fatalf("status wrote %q", b.String())
	}
}

// Without credentials, against our protocol: a server in dev mode (make
// run) gives each participant a token of its own from /dev/token; any
// other server is a usage error that says what to give.
func TestRun_NoCredentialsAsksADevServer(t *testing.T) {
	t.Setenv("HALO_LOADTEST_TOKEN", "")
	t.Setenv("HALO_LOADTEST_SECRET", "")
	dev := startServer(t, func(c *config.Config) { c.Dev = true })
	code, stdout, stderr := runCmd(t, context.Background(), "--url", dev.wsURL, "--room", "devroom", "--viewers", "2",
		"--duration", "1s", "--bitrate", "300000")
	if code != 0 {
		t.Fatalf("dev server: exit %d\n%s\n%s", code, stdout, stderr)
	}
	prod := startServer(t)
	code, _, stderr = runCmd(t, context.Background(), "--url", prod.wsURL, "--viewers", "1", "--duration", "1s")
	if code != 2 || !strings.Contains(stderr, "give --token or --secret") || !strings.Contains(stderr, "/dev/token") {
		t.Fatalf("server without dev mode: exit %d, want 2 with a hint:\n%s", code, stderr)
	}
}

// --duration overrides a scenario file's duration; other scenario flags
// still exclude --scenario.
func TestParseFlags_DurationOverridesTheScenarios(t *testing.T) {
	file := filepath.Join("..", "..", "loadtest", "scenarios", "one-room.yaml")
	o, err := parseFlags([]string{"--token", "a", "--scenario", file, "--duration", "7s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(o.scenario.Duration); got != 7*time.Second {
		t.Fatalf("duration %v, want the flag's 7s", got)
	}
	plain, err := parseFlags([]string{"--token", "a", "--scenario", file}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(plain.scenario.Duration) == 7*time.Second {
		t.Fatal("the scenario file itself says 7s: the test proves nothing")
	}
}
