package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// Publishers of H.264 (for servers that take no VP8): over the WebSocket
// and over WHIP/WHEP, lean and Pion viewers receive frames, keyframes
// first, and measure their latency.
func TestRun_H264Publishers(t *testing.T) {
	srv := startServer(t)
	for _, tc := range []struct {
		name   string
		target []string
	}{
		{"websocket lean", []string{"--url", srv.wsURL}},
		{"whip-whep lean", []string{"--whip", srv.base + "/whip/{room}", "--whep", srv.base + "/whep/{room}"}},
		{"whip-whep pion", []string{"--whip", srv.base + "/whip/{room}", "--whep", srv.base + "/whep/{room}", "--viewer", "pion"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.json")
			args := append(tc.target, "--secret", srv.secret, "--room", "h264-"+strings.Fields(tc.name)[0]+strings.Fields(tc.name)[1],
				"--viewers", "2", "--duration", "2s", "--bitrate", "600000", "--codec", "h264", "--json", out)
			if code, stdout, stderr := runCmd(t, context.Background(), args...); code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
			}
			rep := readJSON(t, out)
			if rep.Viewers.Connected != 2 || rep.Received.Keyframes < 2 || rep.Received.Frames < 20 || rep.Measures.LatencyMS.N == 0 {
				t.Fatalf("report: viewers %+v, received %+v, latency %+v", rep.Viewers, rep.Received, rep.Measures.LatencyMS)
			}
			for _, v := range rep.PerViewer {
				if v.FirstKeyframeMS <= 0 || v.Lost > 0 {
					t.Fatalf("viewer %+v", v)
				}
			}
		})
	}
}

// A lean viewer on a lossy link (every 30th packet dropped as it arrives)
// gets what it missed again from the server: its NACKs are answered and
// the loss after repair stays far below the raw loss.
func TestLeanViewer_NACKRepairAgainstTheServer(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mint := loadtest.RoomTokenMinter(srv.secret, time.Hour)
	ptok, _ := mint("caster", "lossy", true)
	pub := loadtest.NewPublisher(loadtest.PublisherConfig{URL: srv.wsURL, Room: "lossy", Token: ptok, VideoBitrate: 800_000, NoAudio: true})
	if err := pub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	vtok, _ := mint("watcher", "lossy", false)
	v := loadtest.NewViewer(loadtest.ViewerConfig{URL: srv.wsURL, Room: "lossy", Token: vtok, Lean: true, DropEvery: 30})
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitTracks(ctx, 1); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyCtx(ctx, t, "gaps and their repair", func() bool { s := v.Stats(); return s.LostRaw >= 20 && s.Repaired >= s.LostRaw/2 })
	if s := v.Stats(); s.Lost*4 > s.LostRaw {
		t.Fatalf("stats %+v: most gaps stayed open", s)
	}
}

// A lean viewer whose connection drops (no word to the server) subscribes
// again on a new transport once the server reports media_failed, and media
// flows again.
func TestLeanViewer_RecoversFromADroppedConnection(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	mint := loadtest.RoomTokenMinter(srv.secret, time.Hour)
	ptok, _ := mint("caster", "drop", true)
	pub := loadtest.NewPublisher(loadtest.PublisherConfig{URL: srv.wsURL, Room: "drop", Token: ptok, VideoBitrate: 300_000})
	if err := pub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	vtok, _ := mint("watcher", "drop", false)
	v := loadtest.NewViewer(loadtest.ViewerConfig{URL: srv.wsURL, Room: "drop", Token: vtok, Lean: true})
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	v.DropConnection()
	testutil.EventuallyCtx(ctx, t, "a new connection after media_failed", func() bool { return v.Stats().Recoveries == 1 })
	before := v.Stats().VideoPackets
	testutil.EventuallyCtx(ctx, t, "media flowing again", func() bool { return v.Stats().VideoPackets > before+50 })
	if err := v.SignalError(); err != nil {
		t.Fatal(err)
	}
}
