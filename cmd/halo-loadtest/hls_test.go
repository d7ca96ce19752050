package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// --hls N: beside the WebRTC viewers, N LL-HLS viewers play the room of an
// H.264 publisher on a real node; the text report shows them in their own
// section and the JSON report carries their figures (parts, bytes,
// latency, stalls, the server's cost per viewer with --server-pid).
func TestRun_HLSViewersBesideWebRTCViewers(t *testing.T) {
	srv := startServer(t)
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runCmd(t, context.Background(), "--url", srv.wsURL, "--secret", srv.secret,
		"--room", "hlsrun", "--codec", "h264", "--keyframe-interval", "1s", "--viewers", "2", "--hls", "6",
		"--ramp", "20", "--duration", "3s", "--bitrate", "400000", "--server-pid", strconv.Itoa(os.Getpid()), "--json", out)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("report:\n%s%s", stdout, stderr)
	rep := readJSON(t, out)
	if rep.Viewers.Connected != 2 {
		t.Fatalf("WebRTC viewers %+v", rep.Viewers)
	}
	h := rep.HLS
	if h == nil {
		t.Fatal("no HLS section in the JSON report")
	}
	if h.Planned != 6 || h.Playing != 6 || h.Failed != 0 || !strings.HasSuffix(h.URL, "/hls/hlsrun/index.m3u8") {
		t.Fatalf("HLS viewers %+v", h)
	}
	if h.Parts == 0 || h.Bytes == 0 || h.LatencyMS.N == 0 || h.PDTLatencyMS.N == 0 || h.Server == nil || h.Server.CPUMillisPerViewerSecond <= 0 {
		t.Fatalf("HLS figures %+v, server %+v", h, h.Server)
	}
	for _, want := range []string{"HLS viewers", "6 playing", "latency PDT", "stalls"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text report lacks %q", want)
		}
	}
}

// The HLS flags are checked before anything runs.
func TestRun_HLSFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"--hls", "-1"},
		{"--hls-url", "http://127.0.0.1:1/hls/x/index.m3u8"},
		{"--whip", "http://127.0.0.1:1/whip/{room}", "--whep", "http://127.0.0.1:1/whep/{room}", "--hls", "3"},
	} {
		code, _, stderr := runCmd(t, context.Background(), args...)
		if code != 2 || !strings.Contains(stderr, "hls") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
}
