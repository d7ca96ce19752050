package room

import "github.com/halobuzz/live/sfu"

// SetGrants applies the grants of a refreshed token. A grant added allows
// the action from now on. A grant withdrawn ends what it allowed at once:
// without publish the publisher connection closes (its tracks end and
// viewers are told), without subscribe the subscriber connection closes
// (the viewer count drops). A hidden participant never publishes. The
// participant's announced role (ParticipantInfo.Publisher) is not changed.
func (p *Participant) SetGrants(publish, subscribe bool) {
	if p.spec.Hidden {
		publish = false
	}
	p.mayPublish.Store(publish)
	p.maySub.Store(subscribe)
	var pub *sfu.Publisher
	var sub *sfu.Subscriber
	p.mu.Lock()
	if !publish && p.publisher != nil {
		pub, p.publisher = p.publisher, nil
	}
	if !subscribe && p.subscriber != nil {
		sub = p.subscriber
		p.room.mu.Lock()
		p.subscriber = nil
		p.room.mu.Unlock()
		p.all.Store(false)
	}
	p.mu.Unlock()
	if pub != nil {
		p.offered.Store(0)
		p.room.tracksChanged()
		_ = pub.Close() // not current any more: no media_failed for it
	}
	if sub != nil {
		_ = sub.Close()
		p.room.viewersChanged()
	}
}

// Hidden reports whether the participant joined hidden.
func (p *Participant) Hidden() bool { return p.spec.Hidden }
