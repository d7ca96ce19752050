package sfu

import (
	"errors"
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
// it must parse, hold at most MaxSections m-lines, give every active audio or
// video section valid ICE credentials (RFC 8839) and a DTLS fingerprint, and
// offer at least one codec the SFU forwards in some audio or video section.
// Checking here, before the offer reaches a peer connection, keeps an offer
// Pion would reject half-way from leaving the connection in a state where no
// later offer applies. It never panics and wraps ErrInvalidSDP or
// ErrUnsupportedCodec.
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
		return info, fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	info.Sections = len(sd.MediaDescriptions)
	if info.Sections == 0 {
		return info, fmt.Errorf("%w: no media sections", ErrInvalidSDP)
	}
	if lim.MaxSections > 0 && info.Sections > lim.MaxSections {
		return info, fmt.Errorf("%w: %d media sections is over the limit of %d", ErrInvalidSDP, info.Sections, lim.MaxSections)
	}
	supported := false
	for i, m := range sd.MediaDescriptions {
		kind := m.MediaName.Media
		if kind != "audio" && kind != "video" {
			continue
		}
		if m.MediaName.Port.Value == 0 {
			continue // rejected or stopped section
		}
		if err := checkTransport(&sd, m); err != nil {
			return info, fmt.Errorf("%w: media section %d (%s): %w", ErrInvalidSDP, i, kind, err)
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

// MaxPendingCandidates bounds the client ICE candidates a connection keeps
// while it has no remote description yet. A real client gathers a handful;
// beyond this AddCandidate returns ErrTooManyCandidates, so a client cannot
// grow the server's memory by trickling before it offers or answers.
const MaxPendingCandidates = 64

// ErrTooManyCandidates is returned by AddCandidate when MaxPendingCandidates
// are already waiting for the remote description.
var ErrTooManyCandidates = errors.New("sfu: too many ICE candidates before the remote description")

// errPendingFull is ErrTooManyCandidates with the limit.
var errPendingFull = fmt.Errorf("%w: at most %d are kept", ErrTooManyCandidates, MaxPendingCandidates)

// ICE credential lengths of RFC 8839 section 5.4.
const (
	minUfrag, maxUfrag = 4, 256
	minPwd, maxPwd     = 22, 256
)

// CheckICECredentials checks an ICE username fragment and password against
// RFC 8839 section 5.4: ufrag 4 to 256 and pwd 22 to 256 ice-chars (ALPHA,
// DIGIT, "+", "/"). It wraps ErrInvalidSDP.
func CheckICECredentials(ufrag, pwd string) error {
	if err := checkICEChars("ice-ufrag", ufrag, minUfrag, maxUfrag); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	if err := checkICEChars("ice-pwd", pwd, minPwd, maxPwd); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	return nil
}

func checkICEChars(name, v string, lo, hi int) error {
	if len(v) < lo || len(v) > hi {
		return fmt.Errorf("%s must be %d to %d characters, not %d", name, lo, hi, len(v))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return fmt.Errorf("%s may hold only letters, digits, '+' and '/'", name)
		}
	}
	return nil
}

// checkTransport checks what a section needs before it can be applied: ICE
// credentials and a DTLS fingerprint, in the section or at session level.
func checkTransport(sd *sdp.SessionDescription, m *sdp.MediaDescription) error {
	attr := func(key string) (string, bool) {
		if v, ok := m.Attribute(key); ok {
			return v, true
		}
		return sd.Attribute(key)
	}
	ufrag, ok := attr("ice-ufrag")
	if !ok {
		return errors.New("a=ice-ufrag is missing")
	}
	pwd, ok := attr("ice-pwd")
	if !ok {
		return errors.New("a=ice-pwd is missing")
	}
	if err := checkICEChars("ice-ufrag", ufrag, minUfrag, maxUfrag); err != nil {
		return err
	}
	if err := checkICEChars("ice-pwd", pwd, minPwd, maxPwd); err != nil {
		return err
	}
	if fp, ok := attr("fingerprint"); !ok || len(strings.Fields(fp)) != 2 {
		return errors.New("a=fingerprint (hash function and value) is missing")
	}
	return nil
}
