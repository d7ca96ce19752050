package loadtest

import (
	"context"
	"errors"
)

// startLeanWS joins over our WebSocket protocol with a lean transport:
// the server offers, we answer, and its candidates trickle in.
func (v *Viewer) startLeanWS(ctx context.Context, conn *Conn) error {
	lp, err := newLeanPeer(v, loopbackTarget(v.cfg.URL), false)
	if err != nil {
		return err
	}
	if !v.setLean(lp) {
		return errors.New("loadtest: viewer closed during start")
	}
	if !v.goOwned(func() { v.leanSignalLoop(conn) }) {
		return errors.New("loadtest: viewer closed during start")
	}
	autoSubscribe := true
	j, err := join(ctx, conn, v.cfg.Token, v.cfg.Room, v.cfg.Name, &autoSubscribe)
	if err != nil {
		return err
	}
	v.chat.joinedAs(j.ParticipantID)
	v.joined()
	return nil
}

// startLeanWHEP watches over plain WHEP with a lean transport: our offer,
// the server's answer, no trickle.
func (v *Viewer) startLeanWHEP(ctx context.Context) error {
	lp, err := newLeanPeer(v, loopbackTarget(v.cfg.WHEPURL), true)
	if err != nil {
		return err
	}
	if !v.setLean(lp) {
		return errors.New("loadtest: viewer closed during start")
	}
	answer, resource, err := whipPost(ctx, withQuery(v.cfg.WHEPURL, "region", v.cfg.Region), v.cfg.Token, lp.offer(!v.cfg.NoAudio))
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.whepResource = resource
	v.mu.Unlock()
	if err := lp.setAnswer(answer); err != nil {
		return err
	}
	v.joined()
	return nil
}

// setLean installs lp as the viewer's transport, replacing (and closing)
// the one before; false (lp closed) once the viewer is closed.
func (v *Viewer) setLean(lp *leanPeer) bool {
	lp.dropEvery.Store(int64(v.cfg.DropEvery))
	if v.cfg.LinkKbps > 0 {
		lp.link = newLinkBucket(v.cfg.LinkKbps)
	}
	if v.onLean != nil {
		v.onLean(lp)
	}
	v.mu.Lock()
	old, closed := v.lean, v.closed
	if !closed {
		v.lean = lp
	}
	v.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	if closed {
		_ = lp.Close()
		return false
	}
	return true
}

func (v *Viewer) leanPeerNow() *leanPeer {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lean
}

// leanSignalLoop answers the server's offers and takes its candidates, in
// arrival order; after media_failed it subscribes again on a new
// transport.
func (v *Viewer) leanSignalLoop(conn *Conn) {
	for {
		var env Envelope
		select {
		case env = <-v.signals:
		case <-v.stop:
			return
		}
		var err error
		lp := v.leanPeerNow()
		switch env.Type {
		case TypeError: // media_failed
			v.recoveries.Add(1)
			var next *leanPeer
			if next, err = newLeanPeer(v, loopbackTarget(v.cfg.URL), false); err == nil {
				if !v.setLean(next) {
					return
				}
				_, err = conn.Send(TypeSubscribe, TrackIDs{})
			}
		case TypeOffer:
			var offer SDPMessage
			if err = env.Decode(&offer); err == nil {
				var answer string
				if answer, err = lp.answer(offer.SDP); err == nil {
					_, err = conn.Send(TypeAnswer, SDPMessage{SDP: answer})
				}
			}
		case TypeTrickle:
			var t Trickle
			if err = env.Decode(&t); err == nil && t.Target == TargetSubscriber && t.Candidate != nil {
				lp.addCandidate(t.Candidate.Candidate)
			}
		}
		if err != nil {
			v.mu.Lock()
			if v.signalErr == nil {
				v.signalErr = err
			}
			v.mu.Unlock()
		}
	}
}
