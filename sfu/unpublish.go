package sfu

import (
	"time"

	"github.com/pion/sdp/v3"
)

// A track ends either because its publisher stopped sending it on purpose (a
// renegotiation that stops the media section: a screen share turned off) or
// because the connection went away. The room treats the two differently (a
// lost track waits for a republish), but both look the same to the reader:
// the RTP read fails. So the publisher marks the tracks an offer stops
// before it applies the offer, and Track.Removed tells them apart.

// Removed reports whether the publisher stopped the track on purpose (its
// media section was stopped or turned away from sending by a renegotiation)
// rather than its connection ending.
func (t *Track) Removed() bool { return t.removed.Load() }

// stoppedMids returns the mids of the media sections offer stops sending:
// port 0, or a direction that does not send.
func stoppedMids(offer string) map[string]bool {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, m := range sd.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		if mid == "" {
			continue
		}
		if m.MediaName.Port.Value == 0 {
			out[mid] = true
			continue
		}
		for _, a := range m.Attributes {
			if a.Key == "recvonly" || a.Key == "inactive" {
				out[mid] = true
			}
		}
	}
	return out
}

// markStopped marks the tracks of p that offer stops.
func (p *Publisher) markStopped(offer string) {
	stopped := stoppedMids(offer)
	if len(stopped) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.tracks {
		if stopped[t.info.MID] {
			t.removed.Store(true)
		}
	}
}

// Settle waits until the publisher's tracks have taken in no packet for
// quiet, or until limit has passed, whichever is first. A client that says
// goodbye (a leave message, a WHIP DELETE) has sent its last packets just
// before: they may still wait in the socket or in the reader's queue,
// behind a busy node, and closing the connection at once would cut the end
// of the broadcast (the last words, a recording's tail) for every viewer.
// A publisher still sending (a removal that did not ask it) holds its
// caller for limit, never longer.
func (p *Publisher) Settle(quiet, limit time.Duration) {
	step := max(quiet/5, time.Millisecond)
	deadline := time.Now().Add(limit)
	last, lastAt := p.PacketsIn(), time.Now()
	for {
		now := time.Now()
		if now.Sub(lastAt) >= quiet || !now.Before(deadline) {
			return
		}
		time.Sleep(step)
		if n := p.PacketsIn(); n != last {
			last, lastAt = n, time.Now()
		}
	}
}
