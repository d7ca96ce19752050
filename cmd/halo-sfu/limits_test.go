package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// wsOffer is a complete send-only VP8 offer of a fresh Pion client.
func wsOffer(t *testing.T) (*webrtc.PeerConnection, string) {
	t.Helper()
	pc := newTestPC(t)
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "cam", "ws")
	if _, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc, pc.LocalDescription().SDP
}

// dropLines removes the SDP lines that start with prefix.
func dropLines(sdp, prefix string) string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

// A rejected offer leaves the socket usable: the broadcaster fixes the offer
// and publishes on the same connection.
func TestPublish_ValidOfferAfterARejectedOneSucceeds(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, bad := range []struct{ name, drop, value string }{
		{"no fingerprint", "a=fingerprint:", ""},
		{"no ufrag", "a=ice-ufrag:", ""},
		{"no pwd", "a=ice-pwd:", ""},
		{"one-character ufrag", "a=ice-ufrag:", "a=ice-ufrag:a"},
		// Passes the server's own checks, refused by Pion half-way.
		{"no mid", "a=mid:", ""},
	} {
		t.Run(bad.name, func(t *testing.T) {
			c := n.dial(t, ctx)
			f := false
			if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("rej", "p-"+bad.name, true, false), AutoSubscribe: &f}); err != nil {
				t.Fatal(err)
			}
			_, good := wsOffer(t)
			broken := dropLines(good, bad.drop)
			if bad.value != "" {
				broken = strings.Replace(broken, "a=rtcp-mux", bad.value+"\r\na=rtcp-mux", 1)
			}
			_, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: broken})
			if got := loadtest.ErrorCode(err); got != "invalid_sdp" {
				t.Fatalf("broken offer: %v, want invalid_sdp", err)
			}
			// The client reads a fixed message, not Pion's text.
			if msg := err.Error(); strings.Contains(msg, "sfu:") || strings.Contains(msg, "remoteDescription") || strings.Contains(msg, "Error:") {
				t.Errorf("internal text reached the client: %q", msg)
			}
			pc, offer := wsOffer(t)
			env, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: offer})
			if err != nil {
				t.Fatalf("valid publish after a rejected one: %v", err)
			}
			var ans loadtest.SDPMessage
			if err := env.Decode(&ans); err != nil {
				t.Fatal(err)
			}
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
				t.Fatalf("answer: %v", err)
			}
		})
	}
}

// Candidates trickled before the remote description are kept up to a bound
// per connection; past it each one is answered too_many_candidates (not
// fatal: the socket goes on).
func TestTrickle_CandidateFloodBeforeAnswerIsBounded(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.MessagesPerSecond = 10000 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := n.dial(t, ctx)
	// Joining subscribes: the server opens a subscriber connection and the
	// client never answers, so every candidate waits.
	if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("flood", "v", false, true)}); err != nil {
		t.Fatal(err)
	}
	const sent = 300
	mid := "0"
	ids := map[int64]bool{}
	for i := range sent {
		id, err := c.Send("trickle", loadtest.Trickle{Target: "subscriber", Candidate: &webrtc.ICECandidateInit{
			Candidate: fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i, 10000+i), SDPMid: &mid}})
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	// Messages are handled in order: once this is answered, every trickle was.
	if _, err := c.Request(ctx, "unsubscribe", loadtest.TrackIDs{TrackIDs: []string{}}); err != nil {
		t.Fatalf("socket unusable after the flood: %v", err)
	}
	refused := 0
	for {
		wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		env, err := c.Next(wctx)
		wcancel()
		if err != nil {
			break
		}
		if env.Type != "error" {
			continue
		}
		var e loadtest.ProtocolError
		_ = env.Decode(&e)
		if e.Code != "too_many_candidates" || !ids[env.ID] {
			t.Fatalf("error %+v (id %d)", e, env.ID)
		}
		refused++
	}
	if want := sent - 64; refused != want {
		t.Fatalf("%d candidates refused, want %d (64 kept)", refused, want)
	}
}
