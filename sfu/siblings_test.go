package sfu

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// A publisher's offer says how many tracks it sends: its audio and video
// sections that send, not those that only receive, nor a rejected one
// (port 0), nor data channels.
func TestSendingTracks_CountsTheSectionsThatSend(t *testing.T) {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, tr := range []struct {
		kind webrtc.RTPCodecType
		dir  webrtc.RTPTransceiverDirection
	}{
		{webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverDirectionSendonly},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverDirectionSendonly},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverDirectionSendrecv},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverDirectionRecvonly},
	} {
		if _, err := pc.AddTransceiverFromKind(tr.kind, webrtc.RTPTransceiverInit{Direction: tr.dir}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pc.CreateDataChannel("chat", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := sendingTracks(&offer); n != 3 {
		t.Errorf("offer with sendonly audio, sendonly and sendrecv video, recvonly video and a data channel: %d sending tracks, want 3", n)
	}
	// The first video section rejected (port 0, as a stopped transceiver is).
	i := strings.Index(offer.SDP, "m=video 9 ")
	if i < 0 {
		t.Fatalf("no video section in %q", offer.SDP)
	}
	rejected := webrtc.SessionDescription{Type: offer.Type, SDP: offer.SDP[:i] + "m=video 0 " + offer.SDP[i+len("m=video 9 "):]}
	if n := sendingTracks(&rejected); n != 2 {
		t.Errorf("with one sending video section rejected: %d sending tracks, want 2", n)
	}
	if n := sendingTracks(nil); n != 0 {
		t.Errorf("no offer: %d", n)
	}
	if n := sendingTracks(&webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: "garbage"}); n != 0 {
		t.Errorf("an offer that does not parse: %d", n)
	}
}
