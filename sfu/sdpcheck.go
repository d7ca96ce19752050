package sfu

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// OfferInfo summarises an SDP offer from a client, as far as the room needs
// to know before accepting it.
type OfferInfo struct {
	Sections    int      // m-lines
	SendTracks  int      // audio/video sections the client sends on (sendrecv or sendonly)
	RecvTracks  int      // audio/video sections the client wants to receive on (recvonly or sendrecv)
	TrackIDs    []string // track ids of a=msid lines of sending sections
	VideoTracks int      // sending video sections
}

// Limits of an acceptable offer.
type OfferLimits struct {
	MaxBytes    int // the whole SDP
	MaxSections int // m-lines
}

// CheckOffer parses an SDP offer from outside and checks it against limits:
// it must parse, hold at most MaxSections m-lines, and offer at least one
// codec the SFU forwards in some audio or video section. It never panics and
// wraps ErrInvalidSDP or ErrUnsupportedCodec.
func CheckOffer(offer string, lim OfferLimits) (OfferInfo, error) {
	var info OfferInfo
	if lim.MaxBytes > 0 && len(offer) > lim.MaxBytes {
		return info, fmt.Errorf("%w: %d bytes is over the limit of %d", ErrInvalidSDP, len(offer), lim.MaxBytes)
	}
	if strings.TrimSpace(offer) == "" {
		return info, fmt.Errorf("%w: empty", ErrInvalidSDP)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return info, fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	info.Sections = len(sd.MediaDescriptions)
	if info.Sections == 0 {
		return info, fmt.Errorf("%w: no media sections", ErrInvalidSDP)
	}
	if lim.MaxSections > 0 && info.Sections > lim.MaxSections {
		return info, fmt.Errorf("%w: %d media sections is over the limit of %d", ErrInvalidSDP, info.Sections, lim.MaxSections)
	}
	supported := false
	for _, m := range sd.MediaDescriptions {
		kind := m.MediaName.Media
		if kind != "audio" && kind != "video" {
			continue
		}
		if m.MediaName.Port.Value == 0 {
			continue // rejected or stopped section
		}
		dir := direction(m)
		if dir == "sendrecv" || dir == "sendonly" {
			info.SendTracks++
			if kind == "video" {
				info.VideoTracks++
			}
			if v, ok := m.Attribute("msid"); ok {
				if f := strings.Fields(v); len(f) == 2 {
					info.TrackIDs = append(info.TrackIDs, f[1])
				}
			}
		}
		if dir == "sendrecv" || dir == "recvonly" {
			info.RecvTracks++
		}
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			// "96 VP8/90000"
			if _, enc, ok := strings.Cut(a.Value, " "); ok {
				name, _, _ := strings.Cut(enc, "/")
				if supportedMime(name) {
					supported = true
				}
			}
		}
	}
	if !supported {
		return info, fmt.Errorf("%w: offer VP8, VP9, H264, AV1 or Opus", ErrUnsupportedCodec)
	}
	return info, nil
}

func direction(m *sdp.MediaDescription) string {
	for _, a := range m.Attributes {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return "sendrecv"
}
