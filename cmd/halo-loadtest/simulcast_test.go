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

// A simulcast publisher over the WebSocket sends three layers the server
// takes as one track in layers: a lean viewer gets one of them, climbs to
// the top one as its transport-cc feedback raises the server's estimate,
// and a cap moves it to the low layer.
func TestSimulcast_WebSocketPublisherLayersReachALeanViewer(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mint := loadtest.RoomTokenMinter(srv.secret, time.Hour)
	ptok, _ := mint("caster", "sim", true)
	pub := loadtest.NewPublisher(loadtest.PublisherConfig{URL: srv.wsURL, Room: "sim", Token: ptok, Simulcast: 3,
		VideoBitrate: 1_600_000, NoAudio: true})
	if err := pub.Start(ctx); err != nil {
		t.Fatal("simulcast publisher:", err)
	}
	defer pub.Close()
	// The server estimates the bandwidth of viewers whose connection is
	// made once the room has a simulcast track: wait for it, as a page
	// that joins later would find it.
	watch, err := loadtest.Dial(ctx, srv.wsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	wtok, _ := mint("lurker", "sim", false)
	off := false
	reply, err := watch.Request(ctx, loadtest.TypeJoin, loadtest.JoinRequest{Token: wtok, Room: "sim", AutoSubscribe: &off})
	if err != nil {
		t.Fatal(err)
	}
	for ev := reply; !strings.Contains(string(ev.Data), `"layers":[`); {
		if ev, err = watch.Next(ctx); err != nil {
			t.Fatal("waiting for the simulcast track:", err)
		}
	}
	vtok, _ := mint("watcher", "sim", false)
	v := loadtest.NewViewer(loadtest.ViewerConfig{URL: srv.wsURL, Room: "sim", Token: vtok, Lean: true})
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.WaitTracks(ctx, 1); err != nil {
		t.Fatal(err)
	}
	type stats struct {
		BandwidthEstimateBPS float64           `json:"bandwidth_estimate_bps"`
		Layers               map[string]string `json:"layers"`
	}
	read := func() stats {
		reply, err := v.Conn().Request(ctx, "stats", struct{}{})
		if err != nil {
			t.Fatal("stats:", err)
		}
		var s stats
		if err := reply.Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// On an open link the server's estimate, fed by the viewer's
	// transport-cc feedback only, climbs until it sends the top layer.
	var trackID string
	testutil.EventuallyCtx(ctx, t, "the top layer, by the estimate from the viewer's feedback", func() bool {
		s := read()
		for id, rid := range s.Layers {
			if rid == "f" {
				trackID = id
			}
		}
		return s.BandwidthEstimateBPS > 500_000 && trackID != ""
	})
	if _, err := v.Conn().Request(ctx, "set_layer", map[string]string{"track_id": trackID, "max": "low"}); err != nil {
		t.Fatal("set_layer:", err)
	}
	testutil.EventuallyCtx(ctx, t, "the low layer after the cap", func() bool { return read().Layers[trackID] == "q" })
	before := v.Stats().VideoPackets
	testutil.EventuallyCtx(ctx, t, "video on the low layer", func() bool { return v.Stats().VideoPackets > before+20 })
	if s := v.Stats(); s.Lost > 0 || s.Keyframes == 0 {
		t.Fatalf("viewer stats %+v", s)
	}
}

// The same scenario over WHIP and WHEP: a publisher in three layers, every
// viewer gets video, and the run passes.
func TestRun_SimulcastOverWHIPAndWHEP(t *testing.T) {
	srv := startServer(t)
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runCmd(t, context.Background(), "--whip", srv.base+"/whip/{room}", "--whep", srv.base+"/whep/{room}",
		"--secret", srv.secret, "--room", "simwhip", "--viewers", "3", "--duration", "3s", "--bitrate", "800000",
		"--simulcast", "3", "--json", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	rep := readJSON(t, out)
	if rep.Viewers.Connected != 3 || rep.Received.VideoPackets == 0 || rep.Sent.Keyframes == 0 {
		t.Fatalf("report: viewers %+v, received %+v, sent %+v", rep.Viewers, rep.Received, rep.Sent)
	}
	// The publisher sent three layers; a viewer gets one: fewer video
	// packets per viewer than were sent.
	if per := rep.Received.VideoPackets / 3; per >= rep.Sent.VideoPackets {
		t.Fatalf("each viewer got %d video packets of the %d sent in three layers: not one layer", per, rep.Sent.VideoPackets)
	}
}
