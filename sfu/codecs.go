package sfu

import (
	"strings"

	"github.com/pion/webrtc/v4"
)

// Forwarded codecs. There is no RTX: publishers retransmit on the media SSRC,
// which keeps one sequence space per track for the shared cache.
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"},
}

var codecList = []webrtc.RTPCodecParameters{
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 96},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: videoFeedback}, PayloadType: 102},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: videoFeedback}, PayloadType: 104},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: videoFeedback}, PayloadType: 98},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 45},
}

func registerCodecs(me *webrtc.MediaEngine) error {
	for _, c := range codecList {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := me.RegisterCodec(c, kind); err != nil {
			return err
		}
	}
	return nil
}

// supportedMime reports whether the SFU forwards the codec named by an SDP
// rtpmap encoding name (e.g. "VP8", "opus").
func supportedMime(encoding string) bool {
	switch strings.ToLower(encoding) {
	case "opus", "vp8", "vp9", "h264", "av1":
		return true
	}
	return false
}
