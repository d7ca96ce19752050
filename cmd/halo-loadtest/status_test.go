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
	// Every line is within a factor of 1.5 of the rate, the last too: the
	// end of the run falls 3 ms after a tick (the ramp of 3 viewers at
	// 1000/s), where one burst of packets read as 8 times the rate.
	for _, r := range rates {
		if r < want/1.5 || r > want*1.5 {
			t.Errorf("status line says %.0f pkt/s, the viewers receive about %.0f", r, want)
		}
	}
	if avg < want/1.5 || avg > want*1.5 {
		t.Errorf("report's packets over watch time %.0f pkt/s, want about %.0f", avg, want)
	}
}
