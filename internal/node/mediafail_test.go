package node

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// A viewer whose media connection dies while its WebSocket stays up (an app
// that dropped its peer connection, UDP blocked mid-session) stops costing
// anything: the server releases the connection, says media_failed, and a
// new subscribe brings the media back on a new connection.
func TestSubscriberFailure_IsReleasedAndRecoverable(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n.publisher(ctx, "fail", loadtest.PublisherConfig{VideoBitrate: 300_000})
	testutil.Eventually(t, "tracks published", func() bool { return len(n.rooms.Room("fail").Tracks()) == 2 })

	c := n.dial(t, ctx)
	if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("fail", "app", false, true)}); err != nil {
		t.Fatal(err)
	}
	// answerOffers plays the app's subscriber side on pc until it sees an
	// event for which stop returns true.
	answerOffers := func(pc *webrtc.PeerConnection, stop func(loadtest.Envelope) bool) {
		t.Helper()
		for {
			wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
			env, err := c.Next(wctx)
			wcancel()
			if err != nil && ctx.Err() != nil {
				t.Fatalf("signalling: %v", err)
			}
			if stop(env) {
				return
			}
			switch env.Type {
			case "offer":
				var d struct{ SDP string }
				_ = env.Decode(&d)
				if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}); err != nil {
					t.Fatal(err)
				}
				answer, _ := pc.CreateAnswer(nil)
				gathered := webrtc.GatheringCompletePromise(pc)
				_ = pc.SetLocalDescription(answer)
				<-gathered
				if _, err := c.Send("answer", map[string]string{"sdp": pc.LocalDescription().SDP}); err != nil {
					t.Fatal(err)
				}
			case "trickle":
				var d loadtest.Trickle
				if env.Decode(&d) == nil && d.Candidate != nil {
					_ = pc.AddICECandidate(*d.Candidate)
				}
			}
		}
	}
	connected := func(pc *webrtc.PeerConnection) func(loadtest.Envelope) bool {
		return func(loadtest.Envelope) bool { return pc.ConnectionState() == webrtc.PeerConnectionStateConnected }
	}
	first := newTestPC(t)
	answerOffers(first, connected(first))
	testutil.Eventually(t, "2 down-tracks bound", func() bool { return n.engine.Stats().DownTracks == 2 })

	// The app loses its peer connection; the socket stays.
	_ = first.Close()
	answerOffers(first, func(env loadtest.Envelope) bool {
		var d struct{ Code, Target string }
		return env.Type == "error" && env.Decode(&d) == nil && d.Code == "media_failed" && d.Target == "subscriber"
	})
	if s := n.engine.Stats(); s.DownTracks != 0 || s.Subscribers != 0 {
		t.Fatalf("failed viewer still costs: %+v", s)
	}
	if got := n.rooms.Room("fail").ViewerCount(); got != 0 {
		t.Fatalf("viewer count %d after the failure", got)
	}

	second := newTestPC(t)
	if _, err := c.Send("subscribe", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	answerOffers(second, connected(second))
	testutil.Eventually(t, "media back on a new connection", func() bool { return n.engine.Stats().DownTracks == 2 })
}

// The load tester's viewer recovers the same way: after its connection drops
// it subscribes again and media flows on the new connection.
func TestLoadtestViewer_RecoversFromADroppedConnection(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n.publisher(ctx, "drop", loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := n.viewer(ctx, "drop", "v")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	v.DropConnection()
	testutil.Eventually(t, "viewer reconnected", func() bool { return v.Stats().Recoveries == 1 })
	testutil.Eventually(t, "down-tracks bound again", func() bool { return n.engine.Stats().DownTracks == 2 })
	before := v.Stats().VideoPackets
	testutil.Eventually(t, "media flows again", func() bool { return v.Stats().VideoPackets > before+50 })
	if err := v.SignalError(); err != nil {
		t.Fatalf("viewer signalling error: %v", err)
	}
}
