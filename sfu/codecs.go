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
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f", RTCPFeedback: videoFeedback}, PayloadType: 106},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", RTCPFeedback: videoFeedback}, PayloadType: 108},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: videoFeedback}, PayloadType: 98},
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 45},
	// H.265 last: browsers offer it only with hardware support, and
	// forwarding it needs the viewer to accept it too.
	{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 116},
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
	case "opus", "vp8", "vp9", "h264", "h265", "av1":
		return true
	}
	return false
}

// fmtpParam returns the value of key in an SDP fmtp line, lower-cased.
func fmtpParam(fmtp, key string) string {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && strings.EqualFold(k, key) {
			return strings.ToLower(strings.TrimSpace(v))
		}
	}
	return ""
}

// pickCodec chooses, among the codecs a viewer accepted, the one to send a
// track of codec c as: same MIME type, and for H.264 the same profile and
// packetization mode (a viewer may accept several H.264 profiles under
// different payload types; sending High under a Baseline payload type
// breaks decoders). It returns false when none fits.
func pickCodec(c webrtc.RTPCodecCapability, offered []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var fallback *webrtc.RTPCodecParameters
	for i := range offered {
		o := &offered[i]
		if !strings.EqualFold(o.MimeType, c.MimeType) {
			continue
		}
		if !strings.EqualFold(c.MimeType, webrtc.MimeTypeH264) {
			return *o, true
		}
		if fmtpParam(o.SDPFmtpLine, "packetization-mode") != fmtpParam(c.SDPFmtpLine, "packetization-mode") {
			continue
		}
		want, got := fmtpParam(c.SDPFmtpLine, "profile-level-id"), fmtpParam(o.SDPFmtpLine, "profile-level-id")
		if len(want) >= 2 && len(got) >= 2 && want[:2] == got[:2] {
			return *o, true // same profile_idc; the level may differ
		}
		if fallback == nil {
			fallback = o
		}
	}
	if fallback != nil && !strings.EqualFold(c.MimeType, webrtc.MimeTypeH264) {
		return *fallback, true
	}
	return webrtc.RTPCodecParameters{}, false
}
