package sfu

import (
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// candidateQueue holds a peer's ICE candidates that arrive before the
// description they belong to (trickle ICE allows it), at most
// MaxPendingCandidates of them. Its owner's mutex guards it.
type candidateQueue []webrtc.ICECandidateInit

// hold keeps c, or refuses it when the queue is full.
func (q *candidateQueue) hold(c webrtc.ICECandidateInit) error {
	if len(*q) >= MaxPendingCandidates {
		return errPendingFull
	}
	*q = append(*q, c)
	return nil
}

// take empties the queue and returns what it held.
func (q *candidateQueue) take() candidateQueue {
	out := *q
	*q = nil
	return out
}

// addTo adds the candidates to pc, now that it has its remote description;
// one that does not apply is dropped, as it would have been on arrival.
func (q candidateQueue) addTo(pc *webrtc.PeerConnection) {
	for _, c := range q {
		_ = addCandidate(pc, c)
	}
}

// addCandidate adds a client's candidate to pc; an empty one (the end of
// candidates) is not an error.
func addCandidate(pc *webrtc.PeerConnection, c webrtc.ICECandidateInit) error {
	if strings.TrimSpace(c.Candidate) == "" {
		return nil // end of candidates
	}
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCandidate, err)
	}
	return nil
}
