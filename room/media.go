package room

import "github.com/halobuzz/live/sfu"

// This file is room's vocabulary for what it asks of the media plane, so
// that the layer above (signaling) speaks to rooms in room's words alone
// and never imports sfu.

// Errors of the media plane, under room's names. Each is sfu's own value:
// errors.Is matches it whichever layer wrapped it, and signalling maps it
// to a wire code without knowing where it came from.
var (
	// ErrInvalidSDP: an offer or answer was refused (it must parse, stay
	// within the size and m-line limits, and send something).
	ErrInvalidSDP = sfu.ErrInvalidSDP
	// ErrUnsupportedCodec: nothing offered is a codec the node forwards.
	ErrUnsupportedCodec = sfu.ErrUnsupportedCodec
	// ErrInvalidCandidate: an ICE candidate that does not parse.
	ErrInvalidCandidate = sfu.ErrInvalidCandidate
	// ErrTooManyCandidates: more than MaxPendingCandidates candidates
	// arrived before the description they belong to.
	ErrTooManyCandidates = sfu.ErrTooManyCandidates
	// ErrNoOffer: an answer came with no offer waiting for it.
	ErrNoOffer = sfu.ErrNoOffer
	// ErrMediaClosed: the participant's media connection is closed.
	ErrMediaClosed = sfu.ErrClosed
)

// MaxPendingCandidates is how many ICE candidates a connection keeps
// before the description they belong to.
const MaxPendingCandidates = sfu.MaxPendingCandidates

// TrackMeta is what a publisher says of a track it is about to send: its
// source (camera, screen, microphone) and a name.
type TrackMeta struct {
	Source string
	Name   string
}

func mediaMeta(meta map[string]TrackMeta) map[string]sfu.TrackMeta {
	out := make(map[string]sfu.TrackMeta, len(meta))
	for id, m := range meta {
		out[id] = sfu.TrackMeta{Source: m.Source, Name: m.Name}
	}
	return out
}

// ICEFragment is an ICE restart or trickle of WHIP/WHEP (RFC 8840): the
// credentials, and candidates as "candidate:..." attribute values.
type ICEFragment struct {
	Ufrag, Pwd string
	Candidates []string
}

func iceFragmentOf(f sfu.ICEFragment) ICEFragment {
	return ICEFragment{Ufrag: f.Ufrag, Pwd: f.Pwd, Candidates: f.Candidates}
}

// CheckICECredentials checks ICE credentials a client sent (RFC 8839
// section 5.4: lengths and characters).
func CheckICECredentials(ufrag, pwd string) error { return sfu.CheckICECredentials(ufrag, pwd) }

// ParseLayer reads a simulcast layer cap by name: "low", "medium" or
// "high".
func ParseLayer(name string) (int, bool) { return sfu.ParseLayer(name) }

// ViewerStats are a viewer's bandwidth estimate and the simulcast layer it
// receives of each track.
type ViewerStats struct {
	// BandwidthEstimate is the estimate of the viewer's downlink in bits
	// per second (0 without sfu.bandwidth_estimation).
	BandwidthEstimate int
	// Layers gives, per subscribed simulcast track, the RID of the layer
	// the viewer receives now.
	Layers map[string]string
}
