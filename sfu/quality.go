package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// What viewers live through, for the operator: the quality their receiver
// reports describe (handed to a QualityObserver), the connections whose ICE
// failed, and the freezes of viewers who were watching. None of it is on the
// packet path: reports arrive on each viewer's RTCP goroutine about once a
// second, ICE states on Pion's, and freezes are found by one ticker that
// looks at every watching viewer four times a second.

// ViewerReport is one receiver report block a viewer sent about its copy of
// a track (RFC 3550 section 6.4.1).
type ViewerReport struct {
	Kind   webrtc.RTPCodecType
	Loss   float64       // fraction of packets lost since the viewer's previous report, 0..1
	Jitter time.Duration // interarrival jitter
	RTT    time.Duration // round-trip time; 0 when this report gives none
}

// QualityObserver receives every viewer's reports (not a relay's: those
// come from another node). It runs on the viewer's RTCP goroutine and must
// not block.
type QualityObserver func(ViewerReport)

// ICE failure stages: a connection that never connected (blocked UDP, wrong
// sfu.nat_1to1_ips, a client that went away while connecting), or one that
// was up and went silent (a lost network, a crashed app).
const (
	ICEStageSetup = iota
	ICEStageEstablished
	iceStages
)

// Roles of a connection whose ICE failed.
const (
	ICERolePublisher = iota
	ICERoleViewer
	ICERoleRelay // either side of a node-to-node relay
	iceRoles
)

// Freeze causes. A freeze is a viewer who was being sent a track's video
// and got no packet of it for freezeAfter. Source: the track itself got
// nothing in that time (the broadcaster's network or app stalled, or its
// connection was lost and republish_grace is running). Delivery: the track
// was fed but this viewer was not sent it (writes failing, a stalled
// forwarder): the server's side.
const (
	FreezeSource = iota
	FreezeDelivery
	freezeCauses
)

// freezeAfter is how long without a packet a watching viewer freezes.
const freezeAfter = time.Second

// freezeTick is how often the freeze watcher looks.
const freezeTick = 250 * time.Millisecond

// QualityStats counts ICE failures and freezes.
type QualityStats struct {
	ICEFailures [iceRoles][iceStages]uint64 // by role and stage
	Freezes     [freezeCauses]uint64        // by cause
}

// quality is the engine's part of this file. Its zero value works (a test
// engine built as a literal); the freeze watcher runs between start and
// stop (NewEngine and Close).
type quality struct {
	observer atomic.Pointer[QualityObserver]
	ice      [iceRoles][iceStages]atomic.Uint64
	freezes  [freezeCauses]atomic.Uint64

	mu      sync.Mutex
	watched map[*DownTrack]*freezeState
	stopped chan struct{}
	done    chan struct{}
}

// freezeState is the watcher's memory of one viewer's copy of a track.
type freezeState struct {
	src       *Track
	written   uint64 // src.written when last seen changing
	writtenAt int64  // monoNow of that
	frozen    bool   // counted; not again until a packet is sent
}

// SetQualityObserver installs f to receive viewers' reports; nil removes it.
func (e *Engine) SetQualityObserver(f QualityObserver) {
	if f == nil {
		e.q.observer.Store(nil)
		return
	}
	e.q.observer.Store(&f)
}

// QualityStats returns the ICE failure and freeze counters.
func (e *Engine) QualityStats() QualityStats {
	var s QualityStats
	for r := range s.ICEFailures {
		for st := range s.ICEFailures[r] {
			s.ICEFailures[r][st] = e.q.ice[r][st].Load()
		}
	}
	for c := range s.Freezes {
		s.Freezes[c] = e.q.freezes[c].Load()
	}
	return s
}

// observeReport hands a report block about this down-track to the observer.
// A receiver report lists blocks for several of the viewer's tracks and
// reaches each of their senders, so only the block for d's own SSRC counts.
func (d *DownTrack) observeReport(r rtcp.ReceptionReport, rtt time.Duration) {
	if d.relay {
		return
	}
	b, t := d.bind.Load(), d.src.Load()
	if b == nil || t == nil || r.SSRC != b.ssrc {
		return
	}
	f := t.engine.q.observer.Load()
	if f == nil {
		return
	}
	var jitter time.Duration
	if rate := d.codec.ClockRate; rate > 0 {
		jitter = time.Duration(uint64(r.Jitter) * uint64(time.Second) / uint64(rate))
	}
	(*f)(ViewerReport{Kind: d.kind, Loss: float64(r.FractionLost) / 256, Jitter: jitter, RTT: rtt})
}

// watchICE counts pc's ICE failure, once, by role (asked when it happens: a
// relay is marked after construction) and by whether it had connected.
func (e *Engine) watchICE(pc *webrtc.PeerConnection, role func() int) {
	var connected atomic.Bool
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		switch s {
		case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
			connected.Store(true)
		case webrtc.ICEConnectionStateFailed:
			stage := ICEStageSetup
			if connected.Load() {
				stage = ICEStageEstablished
			}
			e.q.ice[role()][stage].Add(1)
		}
	})
}

// watchDown starts looking at d for freezes: viewers' video only (audio
// may pause by design, Opus DTX; relays are counted by their edge's
// viewers).
func (e *Engine) watchDown(d *DownTrack) {
	if d.relay || d.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	e.q.mu.Lock()
	defer e.q.mu.Unlock()
	if e.q.watched == nil {
		e.q.watched = map[*DownTrack]*freezeState{}
	}
	if _, ok := e.q.watched[d]; !ok {
		e.q.watched[d] = &freezeState{}
	}
}

// unwatchDown stops looking at d.
func (e *Engine) unwatchDown(d *DownTrack) {
	e.q.mu.Lock()
	defer e.q.mu.Unlock()
	delete(e.q.watched, d)
}

// startQuality runs the freeze watcher until stopQuality.
func (e *Engine) startQuality() {
	e.q.stopped, e.q.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(e.q.done)
		tick := time.NewTicker(freezeTick)
		defer tick.Stop()
		for {
			select {
			case <-e.q.stopped:
				return
			case <-tick.C:
				e.checkFreezes(monoNow())
			}
		}
	}()
}

// stopQuality stops the freeze watcher, if it runs.
func (e *Engine) stopQuality() {
	if e.q.stopped != nil {
		close(e.q.stopped)
		<-e.q.done
		e.q.stopped = nil
	}
}

// checkFreezes counts the viewers that were watching and have been sent
// nothing for freezeAfter at now (monoNow), once per freeze. Each viewer's
// lock is taken briefly, one at a time, outside the watcher's own.
func (e *Engine) checkFreezes(now int64) {
	e.q.mu.Lock()
	downs := make([]*DownTrack, 0, len(e.q.watched))
	states := make([]*freezeState, 0, len(e.q.watched))
	for d, st := range e.q.watched {
		downs = append(downs, d)
		states = append(states, st)
	}
	e.q.mu.Unlock()
	for i, d := range downs {
		st := states[i]
		d.mu.Lock()
		live, last, src := d.state == dtLive && d.sent, d.lastAt, d.src.Load()
		d.mu.Unlock()
		if src != st.src {
			// A new source (republished, relayed): its feed is judged from now.
			st.src, st.written, st.writtenAt, st.frozen = src, src.written.Load(), now, false
		}
		if w := src.written.Load(); w != st.written {
			st.written, st.writtenAt = w, now
		}
		if !live || now-last < int64(freezeAfter) {
			st.frozen = false
			continue
		}
		if st.frozen {
			continue
		}
		st.frozen = true
		cause := FreezeDelivery
		select {
		case <-src.done:
			cause = FreezeSource
		default:
			if now-st.writtenAt >= int64(freezeAfter-freezeTick) {
				cause = FreezeSource
			}
		}
		e.q.freezes[cause].Add(1)
	}
}
