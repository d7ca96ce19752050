package sfu

import (
	"context"
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// ICEFragment is the ICE part of an SDP: credentials and candidates, as
// carried by a trickle-ice-sdpfrag (RFC 8840) in WHIP/WHEP PATCH requests.
type ICEFragment struct {
	Ufrag, Pwd string
	Candidates []string // "candidate:..." attribute values
}

// restartICE applies new remote ICE credentials to a connection on which the
// client was the offerer (WHIP publisher, WHEP viewer): the previous offer is
// re-applied with the new credentials, which makes Pion restart ICE, and the
// new local credentials and candidates are returned.
func restartICE(ctx context.Context, pc *webrtc.PeerConnection, ufrag, pwd string) (ICEFragment, error) {
	remote := pc.RemoteDescription()
	if remote == nil || remote.Type != webrtc.SDPTypeOffer {
		return ICEFragment{}, fmt.Errorf("%w: no offer to restart", ErrInvalidSDP)
	}
	lines := strings.Split(remote.SDP, "\r\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			lines[i] = "a=ice-ufrag:" + ufrag
		case strings.HasPrefix(l, "a=ice-pwd:"):
			lines[i] = "a=ice-pwd:" + pwd
		}
	}
	offer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: strings.Join(lines, "\r\n")}
	if err := pc.SetRemoteDescription(offer); err != nil {
		return ICEFragment{}, fmt.Errorf("%w: ice restart: %v", ErrInvalidSDP, err)
	}
	answer, err := localAnswer(ctx, pc, true)
	if err != nil {
		return ICEFragment{}, err
	}
	return iceFragmentOf(answer), nil
}

// iceFragmentOf extracts credentials and candidates from an SDP.
func iceFragmentOf(sdp string) ICEFragment {
	var f ICEFragment
	seen := map[string]bool{}
	for _, l := range strings.Split(sdp, "\r\n") {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:") && f.Ufrag == "":
			f.Ufrag = strings.TrimPrefix(l, "a=ice-ufrag:")
		case strings.HasPrefix(l, "a=ice-pwd:") && f.Pwd == "":
			f.Pwd = strings.TrimPrefix(l, "a=ice-pwd:")
		case strings.HasPrefix(l, "a=candidate:"):
			c := strings.TrimPrefix(l, "a=")
			if !seen[c] {
				seen[c] = true
				f.Candidates = append(f.Candidates, c)
			}
		}
	}
	return f
}

// RestartICE restarts ICE on a publisher with the client's new credentials.
func (p *Publisher) RestartICE(ctx context.Context, ufrag, pwd string) (ICEFragment, error) {
	return restartICE(ctx, p.pc, ufrag, pwd)
}

// RestartICE restarts ICE on a WHEP subscriber with the client's new credentials.
func (s *Subscriber) RestartICE(ctx context.Context, ufrag, pwd string) (ICEFragment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.answerer {
		return ICEFragment{}, fmt.Errorf("%w: the server offers on this connection", ErrInvalidSDP)
	}
	return restartICE(ctx, s.pc, ufrag, pwd)
}

// RemoteUfrag returns the client's current ICE username fragment.
func remoteUfrag(pc *webrtc.PeerConnection) string {
	if d := pc.RemoteDescription(); d != nil {
		return iceFragmentOf(d.SDP).Ufrag
	}
	return ""
}

// RemoteUfrag returns the client's current ICE username fragment.
func (p *Publisher) RemoteUfrag() string { return remoteUfrag(p.pc) }

// RemoteUfrag returns the client's current ICE username fragment.
func (s *Subscriber) RemoteUfrag() string { return remoteUfrag(s.pc) }
