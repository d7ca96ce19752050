package main

import (
	"context"
	"strings"
	"testing"
	"time"

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
