package sfu

import (
	"context"
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// ICEFragment is the ICE part of an SDP: credentials and candidates, as
// carried by a trickle-ice-sdpfrag (RFC 8840) in WHIP/WHEP PATCH requests.
type ICEFragment struct {
	Ufrag, Pwd string
	Candidates []string // "candidate:..." attribute values
}

// SDP attribute names of the ICE credentials (RFC 8839 section 5.4);
// pion/sdp names only the JSEP attributes.
const (
	attrICEUfrag = "ice-ufrag"
	attrICEPwd   = "ice-pwd"
)

// restartICE applies new remote ICE credentials to a connection on which the
// client was the offerer (WHIP publisher, WHEP viewer): the previous offer is
// re-applied with the new credentials, which makes Pion restart ICE, and the
// new local credentials and candidates are returned.
func restartICE(ctx context.Context, pc *webrtc.PeerConnection, ufrag, pwd string) (ICEFragment, error) {
	remote := pc.RemoteDescription()
	if remote == nil || remote.Type != webrtc.SDPTypeOffer {
		return ICEFragment{}, fmt.Errorf("%w: no offer to restart", ErrInvalidSDP)
	}
	edited, err := withICECredentials(remote.SDP, ufrag, pwd)
	if err != nil {
		return ICEFragment{}, err
	}
	offer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: edited}
	if err := pc.SetRemoteDescription(offer); err != nil {
		return ICEFragment{}, fmt.Errorf("%w: ice restart: %v", ErrInvalidSDP, err)
	}
	answer, err := localAnswer(ctx, pc, true)
	if err != nil {
		return ICEFragment{}, err
	}
	return iceFragmentOf(answer)
}

// withICECredentials returns description with every a=ice-ufrag and
// a=ice-pwd (session level and in each media section) set to ufrag and pwd.
// The SDP is parsed and written back with pion/sdp, the parser Pion itself
// uses, so the edit cannot touch anything but those attributes (a line-based
// edit also rewrote look-alike lines and depended on CRLF line ends).
func withICECredentials(description, ufrag, pwd string) (string, error) {
	if err := checkICECredentials(ufrag, pwd); err != nil {
		return "", err
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(description); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	n := setICECredentials(sd.Attributes, ufrag, pwd)
	for _, m := range sd.MediaDescriptions {
		n += setICECredentials(m.Attributes, ufrag, pwd)
	}
	if n == 0 {
		return "", fmt.Errorf("%w: the offer has no ICE credentials to restart", ErrInvalidSDP)
	}
	out, err := sd.Marshal()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	return string(out), nil
}

// setICECredentials sets the ice-ufrag and ice-pwd attributes in attrs and
// returns how many it set.
func setICECredentials(attrs []sdp.Attribute, ufrag, pwd string) int {
	n := 0
	for i := range attrs {
		switch attrs[i].Key {
		case attrICEUfrag:
			attrs[i].Value = ufrag
			n++
		case attrICEPwd:
			attrs[i].Value = pwd
			n++
		}
	}
	return n
}

// iceFragmentOf extracts credentials and candidates from an SDP: the first
// ice-ufrag and ice-pwd (session level before media level, RFC 8839 section
// 5.4), and every distinct candidate of every media section.
func iceFragmentOf(description string) (ICEFragment, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(description); err != nil {
		return ICEFragment{}, fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	var f ICEFragment
	seen := map[string]bool{}
	take := func(attrs []sdp.Attribute) {
		for _, a := range attrs {
			switch {
			case a.Key == attrICEUfrag && f.Ufrag == "":
				f.Ufrag = a.Value
			case a.Key == attrICEPwd && f.Pwd == "":
				f.Pwd = a.Value
			case a.IsICECandidate():
				c := a.Key + ":" + a.Value
				if !seen[c] {
					seen[c] = true
					f.Candidates = append(f.Candidates, c)
				}
			}
		}
	}
	take(sd.Attributes)
	for _, m := range sd.MediaDescriptions {
		take(m.Attributes)
	}
	return f, nil
}

// checkICECredentials refuses what cannot be an ICE ufrag or password: a
// value is one attribute value, so no line break may smuggle in another
// SDP line, and an empty value is no credential. A ufrag has no colon (it
// is half of a check's USERNAME, "ours:theirs").
func checkICECredentials(ufrag, pwd string) error {
	if ufrag == "" || pwd == "" || strings.ContainsAny(ufrag+pwd, "\r\n") || strings.Contains(ufrag, ":") {
		return fmt.Errorf("%w: ICE credentials must be non-empty and on one line", ErrInvalidSDP)
	}
	return nil
}

// RestartICE restarts ICE on a publisher with the client's new credentials.
func (p *Publisher) RestartICE(ctx context.Context, ufrag, pwd string) (ICEFragment, error) {
	return restartICE(ctx, p.pc, ufrag, pwd)
}

// RestartICE restarts ICE on a WHEP subscriber with the client's new credentials.
func (s *Subscriber) RestartICE(ctx context.Context, ufrag, pwd string) (ICEFragment, error) {
	// A parked connection (park.go) that never checked comes back first.
	if err := s.unparkNow(ctx); err != nil {
		return ICEFragment{}, fmt.Errorf("sfu: ICE restart: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.answerer {
		return ICEFragment{}, fmt.Errorf("%w: the server offers on this connection", ErrInvalidSDP)
	}
	if h := s.handed.Load(); h != nil {
		return h.restart(ufrag, pwd)
	}
	if s.pc == nil {
		return ICEFragment{}, ErrClosed // closed while parked
	}
	s.restartedAt.Store(monoNow())
	return restartICE(ctx, s.pc, ufrag, pwd)
}

// RemoteUfrag returns the client's current ICE username fragment.
func remoteUfrag(pc *webrtc.PeerConnection) string {
	if d := pc.RemoteDescription(); d != nil {
		if f, err := iceFragmentOf(d.SDP); err == nil {
			return f.Ufrag
		}
	}
	return ""
}

// RemoteUfrag returns the client's current ICE username fragment.
func (p *Publisher) RemoteUfrag() string { return remoteUfrag(p.pc) }

// RemoteUfrag returns the client's current ICE username fragment.
func (s *Subscriber) RemoteUfrag() string {
	s.mu.Lock()
	pc := s.pc
	if plan := s.park; plan != nil {
		s.mu.Unlock()
		if f, err := iceFragmentOf(plan.offer); err == nil {
			return f.Ufrag
		}
		return ""
	}
	s.mu.Unlock()
	// Read after pc: the hand-over is recorded before pc is let go.
	if h := s.handed.Load(); h != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.remoteUfrag
	}
	return remoteUfrag(pc)
}
