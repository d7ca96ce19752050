package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// A healthy run against a real node passes every check and says so on
// its first line; the same run whose viewers are starved (each behind a
// link of less than half the stream's rate, a server that cannot keep up
// as its viewers see it) exits 1 with the sentence that says they missed
// frames.
func TestRun_VerdictPassesAHealthyRunAndFailsStarvedViewers(t *testing.T) {
	srv := startServer(t)
	dir := t.TempDir()
	args := func(room, out string, extra ...string) []string {
		return append([]string{"--url", srv.wsURL, "--secret", srv.secret, "--room", room,
			"--viewers", "3", "--ramp", "30", "--duration", "3s", "--bitrate", "400000", "--json", out}, extra...)
	}

	healthy := filepath.Join(dir, "healthy.json")
	code, stdout, stderr := runCmd(t, context.Background(), args("healthy", healthy)...)
	t.Logf("healthy run:\n%s%s", stdout, stderr)
	if code != 0 {
		t.Fatalf("healthy run: exit %d", code)
	}
	if !strings.HasPrefix(stdout, "PASS\n") {
		t.Errorf("the report does not open with the verdict PASS:\n%s", stdout)
	}
	rep := readJSON(t, healthy)
	if rep.Verdict != "PASS" || rep.Received.FramesSent == 0 || rep.Received.FramesPercent < 99 ||
		rep.Measures.FramesPercent.N != 3 || rep.Limits == nil || rep.Limits.MinFramesPercent != 99 {
		t.Fatalf("healthy run: verdict %q, received %+v, frames per viewer %+v, limits %+v",
			rep.Verdict, rep.Received, rep.Measures.FramesPercent, rep.Limits)
	}
	if !strings.Contains(stdout, "received of") || !strings.Contains(stdout, "sent") {
		t.Errorf("the table lacks frames received of sent:\n%s", stdout)
	}

	starved := filepath.Join(dir, "starved.json")
	code, stdout, stderr = runCmd(t, context.Background(), args("starved", starved, "--viewer-link-kbps", "150")...)
	t.Logf("starved run:\n%s%s", stdout, stderr)
	if code != 1 {
		t.Fatalf("starved viewers: exit %d, want 1", code)
	}
	const sentence = "frames sent"
	if !strings.HasPrefix(stdout, "FAIL: ") || !strings.Contains(strings.SplitN(stdout, "\n", 2)[0], sentence) {
		t.Errorf("the report does not open with a verdict naming the missed frames:\n%s", stdout)
	}
	if !strings.Contains(stderr, "halo-loadtest: FAIL: viewers received") || !strings.Contains(stderr, "(--min-frames)") {
		t.Errorf("stderr does not say the viewers missed frames:\n%s", stderr)
	}
	rep = readJSON(t, starved)
	if rep.Received.FramesPercent >= 99 || rep.Measures.FramesPercent.Min >= 99 || rep.Measures.BitrateKbps.Min > 200 {
		t.Errorf("starved run: frames %.1f%% (worst viewer %.1f%%), bitrate min %.0f kbit/s",
			rep.Received.FramesPercent, rep.Measures.FramesPercent.Min, rep.Measures.BitrateKbps.Min)
	}
}
