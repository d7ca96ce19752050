package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// The status line's packet rate is the rate the viewers receive: a run of
// known bitrate and frame rate (400 kbit/s at 25 fps: 2000-byte frames of
// two packets each, 50 video and 50 audio packets a second per viewer)
// prints about 100 pkt/s per viewer on every line, as the report's packets
// received over the run say; not a multiple.
func TestRun_StatusLinePacketRateIsTheReceivedRate(t *testing.T) {
	srv := startServer(t)
	out := filepath.Join(t.TempDir(), "report.json")
	const viewers = 3
	code, stdout, stderr := runCmd(t, context.Background(), "--url", srv.wsURL, "--secret", srv.secret,
		"--room", "rate", "--viewers", strconv.Itoa(viewers), "--ramp", "1000", "--duration", "4s",
		"--bitrate", "400000", "--fps", "25", "--json", out)
	t.Logf("run:\n%s%s", stdout, stderr)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	rep := readJSON(t, out)
	line := regexp.MustCompile(`viewers (\d+)/\d+ connected.*?\s([0-9.]+) pkt/s`)
	var rates []float64
	for _, m := range line.FindAllStringSubmatch(stderr, -1) {
		if m[1] != strconv.Itoa(viewers) {
			continue
		}
		r, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		rates = append(rates, r)
	}
	if len(rates) < 2 {
		t.Fatalf("%d status lines with every viewer connected:\n%s", len(rates), stderr)
	}
	// Per viewer: video packets per frame x fps + 50 audio packets a
	// second, from what the publisher says it sent.
	perFrame := float64(rep.Sent.VideoPackets) / float64(rep.Sent.VideoFrames)
	want := viewers * (perFrame*25 + 50)
	// The report's own average: the packets received over the time the
	// viewers watched.
	var watchS float64
	for _, v := range rep.PerViewer {
		watchS += v.WatchMS / 1000
	}
	avg := float64(rep.Received.Packets) / (watchS / viewers)
	t.Logf("status pkt/s %v; expected %.0f (%.2f packets per frame); report's average %.0f", rates, want, perFrame, avg)
	// Every line is within a factor of 3 of the rate, the last too: the
	// end of the run falls 3 ms after a tick (the ramp of 3 viewers at
	// 1000/s), where one burst of packets read as 8 times the rate. (A
	// factor, not a tighter bound: a publisher short of CPU on a busy
	// machine sends fewer frames, and the line says so truly.)
	for _, r := range rates {
		if r < want/3 || r > want*3 {
			t.Errorf("status line says %.0f pkt/s, the viewers receive about %.0f", r, want)
		}
	}
	// The report's timeline (the HTML throughput plot) ends at the rate,
	// not at zero nor at a spike: its last sample is that last line.
	tl := rep.Timeline
	if len(tl) < 2 {
		t.Fatalf("timeline of %d samples", len(tl))
	}
	for i, s := range tl {
		if s.Connected == viewers && (s.PacketsPerSecond < want/3 || s.PacketsPerSecond > want*3) {
			t.Errorf("timeline sample %d at %.0f ms: %.0f pkt/s, %.0f kbit/s; the viewers receive about %.0f pkt/s", i, s.TMS, s.PacketsPerSecond, s.Kbps, want)
		}
	}
	if last := tl[len(tl)-1]; last.Connected != viewers || last.Kbps < float64(viewers)*400/3 {
		t.Errorf("the timeline ends at %.0f kbit/s with %d viewers, for %d viewers of 400 kbit/s", last.Kbps, last.Connected, viewers)
	}
	if avg < want/3 || avg > want*3 {
		t.Errorf("report's packets over watch time %.0f pkt/s, want about %.0f", avg, want)
	}
}
