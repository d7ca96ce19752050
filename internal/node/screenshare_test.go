package node

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// A broadcaster adds a screen share mid-broadcast (publish again with a new
// offer) and later stops it: viewers get the new track by renegotiation and are
// told when it ends, while the camera keeps flowing.
func TestPublisherRenegotiation_ScreenShareComesAndGoes(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := n.dial(t, ctx)
	f := false
	if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("share", "host", true, false), AutoSubscribe: &f}); err != nil {
		t.Fatal(err)
	}
	pc := newTestPC(t)
	defer pc.Close()
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}
	cam, _ := webrtc.NewTrackLocalStaticSample(vp8, "cam", "host")
	screen, _ := webrtc.NewTrackLocalStaticSample(vp8, "screen", "host")
	if _, err := pc.AddTrack(cam); err != nil {
		t.Fatal(err)
	}
	publish := func(meta []loadtest.TrackInfo) {
		t.Helper()
		offer, _ := pc.CreateOffer(nil)
		gathered := webrtc.GatheringCompletePromise(pc)
		_ = pc.SetLocalDescription(offer)
		<-gathered
		env, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: pc.LocalDescription().SDP, Tracks: meta})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		var d struct{ SDP string }
		_ = env.Decode(&d)
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // keyframes on both tracks, 25 fps
		defer close(done)
		frame := append([]byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, make([]byte, 1500)...)
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = cam.WriteSample(media.Sample{Data: frame, Duration: 40 * time.Millisecond})
				_ = screen.WriteSample(media.Sample{Data: frame, Duration: 40 * time.Millisecond})
			}
		}
	}()
	defer func() { close(stop); <-done }()
	publish([]loadtest.TrackInfo{{TrackID: "cam", Source: "camera", Name: "Front"}})

	v := n.viewer(ctx, "share", "v")
	if err := v.WaitTracks(ctx, 1); err != nil {
		t.Fatal(err)
	}

	screenSender, err := pc.AddTrack(screen)
	if err != nil {
		t.Fatal(err)
	}
	publish([]loadtest.TrackInfo{{TrackID: "screen", Source: "screen", Name: "Slides"}})
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("viewer did not get the screen share: %v", err)
	}
	sources := map[string]bool{}
	for _, tr := range n.rooms.Room("share").Tracks() {
		sources[tr.Source+"/"+tr.Name] = true
	}
	if len(sources) != 2 || !sources["camera/Front"] || !sources["screen/Slides"] {
		t.Fatalf("room tracks %v, want camera/Front and screen/Slides", sources)
	}

	if err := pc.RemoveTrack(screenSender); err != nil {
		t.Fatal(err)
	}
	publish(nil)
	testutil.Eventually(t, "screen share unpublished", func() bool { return len(n.rooms.Room("share").Tracks()) == 1 })
	testutil.Eventually(t, "viewer keeps only the camera", func() bool { return n.engine.Stats().DownTracks == 1 })
	before := v.Stats().VideoPackets
	testutil.Eventually(t, "camera still flows", func() bool { return v.Stats().VideoPackets > before+20 })
}
