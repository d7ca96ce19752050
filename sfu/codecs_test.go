package sfu

import (
	"testing"

	"github.com/pion/webrtc/v4"
)

func TestPickCodec_MatchesH264ProfileAndPacketization(t *testing.T) {
	h264 := func(pt int, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/H264", ClockRate: 90000, SDPFmtpLine: fmtp}, PayloadType: webrtc.PayloadType(pt)}
	}
	offered := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/VP8", ClockRate: 90000}, PayloadType: 96},
		h264(102, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
		h264(103, "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=640032"),
		h264(104, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032"),
	}
	cases := []struct {
		name string
		c    webrtc.RTPCodecCapability
		pt   int
		ok   bool
	}{
		{"vp8", webrtc.RTPCodecCapability{MimeType: "video/vp8"}, 96, true},
		{"h264 high, mode 1", webrtc.RTPCodecCapability{MimeType: "video/H264", SDPFmtpLine: "packetization-mode=1;profile-level-id=640028"}, 104, true},
		{"h264 baseline", webrtc.RTPCodecCapability{MimeType: "video/H264", SDPFmtpLine: "profile-level-id=42e01f;packetization-mode=1"}, 102, true},
		{"h264 main: not accepted", webrtc.RTPCodecCapability{MimeType: "video/H264", SDPFmtpLine: "packetization-mode=1;profile-level-id=4d001f"}, 0, false},
		{"opus: not accepted", webrtc.RTPCodecCapability{MimeType: "audio/opus"}, 0, false},
	}
	for _, c := range cases {
		got, ok := pickCodec(c.c, offered)
		if ok != c.ok || (ok && int(got.PayloadType) != c.pt) {
			t.Errorf("%s: got pt %d ok %v, want pt %d ok %v", c.name, got.PayloadType, ok, c.pt, c.ok)
		}
	}
}
