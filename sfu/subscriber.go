package sfu

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// SubscriberEvents are the callbacks of a Subscriber. They run on Pion's or
// the caller's goroutines and must not block.
type SubscriberEvents struct {
	// OnOffer sends the SFU's offer to the client, who must answer it.
	OnOffer func(sdp string)
	// OnCandidate passes a local ICE candidate to the client (trickle).
	OnCandidate func(webrtc.ICECandidateInit)
	// OnFailed is called once when the connection fails or closes.
	OnFailed func()
	// OnConnected is called once, when the connection is first up (ICE
	// and DTLS done): from then on the viewer can receive media.
	OnConnected func()
}

// Subscriber is a viewer's receiving connection. The SFU is the offerer: it
// adds a down-track per subscribed track and renegotiates as tracks come and
// go, with at most one offer outstanding.
type Subscriber struct {
	e      *Engine
	pc     *webrtc.PeerConnection
	events SubscriberEvents

	connectedOnce sync.Once // events.OnConnected

	mu       sync.Mutex
	subs     map[string]*subscription
	awaiting bool           // an offer is out, waiting for its answer
	renego   bool           // something changed while awaiting
	pending  candidateQueue // candidates that came before the answer
	closed   bool
	answerer bool // WHEP: the client offered, the SFU answers once
	failed   sync.Once
	relay    bool // the origin side of a relay (relay.go)
	// Simulcast caps: per track id, and for tracks without one.
	caps       map[string]int
	defaultCap int
	bwe        *viewerBWE // the connection's bandwidth estimator (bwe.go), nil without
	link       *leanLink  // the lean write path (lean.go), nil on Pion's
	connected  bool       // DTLS is up and SRTP started: RTCP streams can be opened without waiting
	ssrcMu     sync.RWMutex
	ssrcs      map[uint32]*DownTrack // the down-tracks by the SSRC they send

	// Handing the connection over from Pion (handoff.go).
	handoverOK  atomic.Bool // a WHEP viewer on the lean path (set by AnswerOffer)
	handingOver atomic.Bool
	rtcpSeen    atomic.Bool               // Pion's SRTCP session decrypted the viewer's feedback
	connectedAt atomic.Int64              // monoNow when the connection came up
	restartedAt atomic.Int64              // monoNow of the last ICE restart in Pion
	handed      atomic.Pointer[handedOff] // set once Pion no longer runs the connection
	// Parking a WHEP connection until its first check (park.go).
	estimate   bool               // the connection is estimated (bwe.go)
	cert       webrtc.Certificate // the DTLS certificate it answers with
	park       *parkedPlan        // what the answer promised, while parked (guarded by mu)
	pcOff      *atomic.Bool       // set when pc is closed for parking: its callbacks are not the session's (one per pc)
	rtcpMu     sync.Mutex         // sender reports: which way they go, and how many went through Pion
	rtcpWrites uint64
	transport  connTransport // its place in halo_viewer_transport (transport.go)
}

type subscription struct {
	dt       *DownTrack
	sender   *webrtc.RTPSender
	rtcpOpen bool // its RTCP read stream is open (viewerrtcp.go)
}

// NewSubscriber creates a receiving connection (estimated with
// sfu.bandwidth_estimation: always).
func (e *Engine) NewSubscriber(ev SubscriberEvents) (*Subscriber, error) {
	return e.newSubscriber(ev, e.bweMode == "always")
}

// NewSimulcastSubscriber creates a receiving connection for a viewer of
// simulcast tracks: with sfu.bandwidth_estimation its link is estimated and
// its layers follow it (bwe.go). Estimation costs CPU on every packet, so
// it runs only where it can help (sfu.bandwidth_estimation: simulcast).
func (e *Engine) NewSimulcastSubscriber(ev SubscriberEvents) (*Subscriber, error) {
	return e.newSubscriber(ev, e.bweMode == "always" || e.bweMode == "simulcast")
}

func (e *Engine) newSubscriber(ev SubscriberEvents, estimate bool) (*Subscriber, error) {
	s := &Subscriber{e: e, events: ev, subs: map[string]*subscription{}, caps: map[string]int{}, defaultCap: LayerHigh, estimate: estimate}
	cert, err := e.viewerCert()
	if err != nil {
		return nil, err
	}
	s.cert = cert
	if estimate {
		if s.bwe, err = e.newViewerBWE(); err != nil {
			return nil, fmt.Errorf("sfu: new subscriber connection: %w", err)
		}
	}
	s.link = e.newLeanLink(func() {
		e.log.Warn("a viewer's ICE pair left the shared UDP port: closing its connection")
		_ = s.Close()
	})
	s.mu.Lock()
	pc, err := s.openPC("", "", cert)
	if err != nil {
		s.mu.Unlock()
		s.dropBWE()
		return nil, err
	}
	s.pc = pc
	s.mu.Unlock()
	e.stats.subscribers.Add(1)
	e.addReported(s)
	return s, nil
}

// openPC makes the viewer's Pion connection: with our ICE credentials
// ufrag and pwd when given (a parked connection coming back, park.go),
// else new ones. s.mu is held.
func (s *Subscriber) openPC(ufrag, pwd string, cert webrtc.Certificate) (*webrtc.PeerConnection, error) {
	e, ev := s.e, s.events
	// Each viewer connection has its own API, whose read buffers handle
	// RTCP as it arrives (viewerrtcp.go); packets take the lean write path
	// (lean.go).
	api, err := e.viewerAPI(s, s.estimate, ufrag, pwd)
	if err != nil {
		return nil, fmt.Errorf("sfu: new subscriber connection: %w", err)
	}
	// No header extension encryption (RFC 9335): the lean path's SRTP
	// contexts encrypt as without it (the only extension a viewer's packet
	// may carry is a transport-wide sequence number).
	off := new(atomic.Bool)
	pc, err := api.NewPeerConnection(webrtc.Configuration{
		RTPHeaderEncryptionPolicy: webrtc.RTPHeaderEncryptionPolicyDisable,
		Certificates:              []webrtc.Certificate{cert},
	})
	if err != nil {
		return nil, fmt.Errorf("sfu: new subscriber connection: %w", err)
	}
	s.pcOff = off
	e.watchPair(pc, s.link, func(p *webrtc.ICECandidatePair) {
		if !s.relay {
			s.transport.move(e, &e.transports.viewers, p)
		}
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil && ev.OnCandidate != nil && !off.Load() {
			ev.OnCandidate(c.ToJSON())
		}
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if s.handed.Load() != nil || off.Load() {
			return // Pion's connection was closed after the hand-over, or parked (park.go)
		}
		if st == webrtc.PeerConnectionStateConnected {
			s.onConnected()
			if !s.relay {
				s.transport.count(e, &e.transports.viewers, pc)
			}
			if ev.OnConnected != nil {
				s.connectedOnce.Do(ev.OnConnected)
			}
		}
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			s.failed.Do(func() {
				if ev.OnFailed != nil {
					ev.OnFailed()
				}
			})
		}
	})
	e.watchICE(pc, func() int {
		if s.relay {
			return ICERoleRelay
		}
		return ICERoleViewer
	})
	return pc, nil
}

// dropBWE lets the connection's estimator go.
func (s *Subscriber) dropBWE() {
	if s.bwe == nil {
		return
	}
	s.e.bweMu.Lock()
	delete(s.e.bwes, s.bwe)
	_ = s.bwe.est.Close()
	s.e.bweMu.Unlock()
}

// newDownTrack makes the viewer's copy of t. A relay's copies are not held
// to the per-viewer retransmission budget: one relay carries a whole node's
// audience.
func (s *Subscriber) newDownTrack(t *Track) *DownTrack {
	cap, ok := s.caps[t.info.ID]
	if !ok {
		cap = s.defaultCap
	}
	src := t
	if t.group != nil {
		if l := t.group.pick(cap); l != nil {
			src = l
		}
		if s.bwe != nil {
			// Start on what the initial estimate carries; adapt from there.
			src = t.group.fitting(src, bweInitial-audioReserve)
		}
	}
	dt := newDownTrack(src)
	dt.link = s.link
	dt.sub = s
	dt.layerCap.Store(int32(cap))
	if s.bwe != nil && t.isVideo() && !s.relay {
		dt.bw = s.bwe
		if t.group != nil {
			dt.bwLayer.Store(src)
		}
	}
	if s.relay {
		dt.relay = true
		dt.nack.init(0)
	}
	return dt
}

// AddTrack subscribes the viewer to t and renegotiates. Adding a track twice
// is a no-op.
func (s *Subscriber) AddTrack(t *Track) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.subs[t.info.ID]; ok {
		return nil
	}
	if err := s.addLocked(t); err != nil {
		return err
	}
	s.negotiateLocked()
	return nil
}

func (s *Subscriber) addLocked(t *Track) error {
	if s.pc == nil {
		return ErrClosed // handed over from Pion (handoff.go): a WHEP session takes no new tracks
	}
	dt := s.newDownTrack(t)
	// AddTrack reuses the media section of a removed track of the same kind,
	// so a viewer who stays through many broadcasts keeps a short SDP.
	sender, err := s.pc.AddTrack(dt)
	if err != nil {
		return fmt.Errorf("sfu: add track %s: %w", t.info.ID, err)
	}
	s.subs[t.info.ID] = &subscription{dt: dt, sender: sender}
	return nil
}

// ssrcsOf returns the SSRCs d sends under.
func (s *Subscriber) ssrcsOf(d *DownTrack) []uint32 {
	s.ssrcMu.RLock()
	defer s.ssrcMu.RUnlock()
	var out []uint32
	for ssrc, x := range s.ssrcs {
		if x == d {
			out = append(out, ssrc)
		}
	}
	return out
}

// RemoveTrack stops sending t's copy to the viewer and renegotiates. A
// handed-over viewer, which cannot renegotiate, is sent an RTCP BYE for
// the stream instead, as Pion's sender would announce its end.
func (s *Subscriber) RemoveTrack(trackID string) error {
	s.mu.Lock()
	keys := s.keysOfLocked(trackID)
	if len(keys) == 0 || s.closed {
		s.mu.Unlock()
		return nil
	}
	var err error
	h := s.handed.Load()
	var bye rtcp.Goodbye
	for _, k := range keys {
		sub := s.subs[k]
		delete(s.subs, k)
		switch {
		case h != nil:
			bye.Sources = append(bye.Sources, s.ssrcsOf(sub.dt)...)
			sub.dt.unbindSub()
		case s.pc == nil || sub.sender == nil:
			// Parked (park.go): the connection that comes back gives the
			// track's media section up at once.
		default:
			if e := s.pc.RemoveTrack(sub.sender); e != nil && err == nil {
				err = e
			}
		}
		// Unbind may not run when the track was never bound; removing twice is harmless.
		sub.dt.Track().removeDown(sub.dt)
	}
	if !s.answerer {
		s.negotiateLocked()
	}
	s.mu.Unlock()
	if h != nil && len(bye.Sources) > 0 {
		if e := h.writeRTCP([]rtcp.Packet{&bye}); e != nil {
			s.e.log.Debug("RTCP BYE to a handed-over viewer", "err", e)
		}
	}
	return err
}

// keysOfLocked returns the subscriptions of track id: its own, or a relay's
// copies of its layers. s.mu is held.
func (s *Subscriber) keysOfLocked(id string) []string {
	if _, ok := s.subs[id]; ok {
		return []string{id}
	}
	var keys []string
	if s.relay {
		for k := range s.subs {
			if base, _, _, ok := parseRelayLayerID(k); ok && base == id {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// Reanchor moves the viewer's copy of track id to another source track
// (the broadcaster republished): the viewer keeps its track, whose sequence
// numbers and timestamps continue, and the new source starts on a keyframe.
// It returns false when the viewer has no such track.
func (s *Subscriber) Reanchor(id string, to *Track) (bool, error) {
	s.mu.Lock()
	var dts []*DownTrack
	for _, k := range s.keysOfLocked(id) {
		dts = append(dts, s.subs[k].dt)
	}
	s.mu.Unlock()
	if len(dts) == 0 {
		return false, nil
	}
	var err error
	for _, dt := range dts {
		if e := dt.Switch(to); e != nil && err == nil {
			err = e
		}
	}
	return true, err
}

// Rekey moves the viewer's copy of track id to another source track that
// has another id, and files it under that id from then on: the broadcast
// was published anew under new ids (its broadcaster came back on another
// node that did not know the old ones), and the viewer cannot renegotiate
// (WHEP). As with Reanchor, the viewer keeps its track, with continuous
// sequence numbers and timestamps. It returns false when the viewer has no
// track id, or already has one of to's id.
func (s *Subscriber) Rekey(id string, to *Track) (bool, error) {
	s.mu.Lock()
	sub, ok := s.subs[id]
	_, taken := s.subs[to.info.ID]
	if !ok || taken || s.relay {
		s.mu.Unlock()
		return false, nil
	}
	delete(s.subs, id)
	s.subs[to.info.ID] = sub
	s.mu.Unlock()
	return true, sub.dt.Switch(to)
}

// TrackIDs returns the ids of the tracks the viewer is subscribed to (a
// relay's copies of the layers of one track count as that track).
func (s *Subscriber) TrackIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.subs))
	for id := range s.subs {
		if base, _, _, ok := parseRelayLayerID(id); ok && s.relay {
			id = base
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// negotiateLocked sends a new offer, or remembers to once the outstanding
// one is answered.
func (s *Subscriber) negotiateLocked() {
	if s.closed || s.pc == nil {
		return
	}
	if s.awaiting {
		s.renego = true
		return
	}
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		s.e.log.Warn("subscriber offer failed", "err", err)
		return
	}
	if err := s.pc.SetLocalDescription(offer); err != nil {
		s.e.log.Warn("subscriber set local description failed", "err", err)
		return
	}
	s.awaiting = true
	if s.events.OnOffer != nil {
		s.events.OnOffer(s.pc.LocalDescription().SDP)
	}
}

// SetupTimedOut records that the connection did not come up in the time
// its owner gave it (shorter than ICE's failure timeout), as an ICE failure
// at setup: what ICE would have counted had it been waited for. The owner
// then closes it.
func (s *Subscriber) SetupTimedOut() {
	s.mu.Lock()
	connected := s.connected
	s.mu.Unlock()
	if connected {
		return
	}
	role := ICERoleViewer
	if s.relay {
		role = ICERoleRelay
	}
	s.e.q.ice[role][ICEStageSetup].Add(1)
}

// Offered reports whether media was offered on the connection (an offer
// sent, or an answer given to the viewer's offer): from then on it has
// something to connect for.
func (s *Subscriber) Offered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.park != nil || (s.pc != nil && s.pc.LocalDescription() != nil)
}

// HandleAnswer applies the viewer's answer to the outstanding offer.
func (s *Subscriber) HandleAnswer(sdp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.awaiting {
		return ErrNoOffer
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	s.awaiting = false
	s.pending.take().addTo(s.pc)
	s.openRTCPLocked()
	if s.renego {
		s.renego = false
		s.negotiateLocked()
	}
	return nil
}

// AnswerOffer is the WHEP flow: the viewer offers receive-only media, the SFU
// attaches down-tracks of tracks and answers. It can be used once, instead of
// AddTrack/HandleAnswer.
func (s *Subscriber) AnswerOffer(ctx context.Context, offer string, tracks []*Track) (string, error) {
	s.mu.Lock()
	if s.closed || s.pc == nil {
		s.mu.Unlock()
		return "", ErrClosed
	}
	s.answerer = true
	s.handoverOK.Store(!s.relay && s.link != nil && s.e.handoff)
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		s.mu.Unlock()
		return "", fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	for _, t := range tracks {
		for _, dt := range s.relayCopies(t) {
			sender, err := s.pc.AddTrack(dt)
			if err != nil {
				s.mu.Unlock()
				return "", fmt.Errorf("sfu: add track %s: %w", t.info.ID, err)
			}
			s.subs[dt.id] = &subscription{dt: dt, sender: sender}
		}
	}
	pc := s.pc
	s.mu.Unlock()
	answer, err := localAnswer(ctx, pc, true)
	if err != nil {
		return "", err
	}
	s.parkAfterAnswer()
	return answer, nil
}

// AddCandidate adds a viewer's ICE candidate, keeping it until a remote
// description exists.
func (s *Subscriber) AddCandidate(c webrtc.ICECandidateInit) error {
	if s.handed.Load() != nil {
		return nil // the pair is settled; a restart brings its own
	}
	s.mu.Lock()
	pc := s.pc
	if s.park != nil {
		// Parked (park.go): kept for the connection that comes back.
		err := s.pending.hold(c)
		s.mu.Unlock()
		return err
	}
	if pc == nil {
		s.mu.Unlock()
		return nil
	}
	if pc.RemoteDescription() == nil {
		err := s.pending.hold(c)
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	return addCandidate(pc, c)
}

// Close ends the connection; its down-tracks are unbound from their tracks.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := s.subs
	s.subs = map[string]*subscription{}
	pc := s.pc
	if plan := s.park; plan != nil {
		s.e.handedOff.parked.remove(plan.ufrag, s)
	}
	s.mu.Unlock()
	if h := s.handed.Load(); h != nil {
		h.release()
	}
	var err error
	if pc != nil {
		err = pc.Close()
	}
	for _, sub := range subs {
		sub.dt.Track().removeDown(sub.dt)
	}
	s.dropBWE()
	s.transport.release(&s.e.transports.viewers)
	s.e.removeReported(s)
	s.e.stats.subscribers.Add(-1)
	if s.relay {
		s.e.stats.relaysOut.Add(-1)
	}
	return err
}

// SetLayer caps the simulcast layer the viewer gets of track id (LayerLow,
// LayerMedium, LayerHigh), now if it is subscribed, else when it is. It
// reports whether the track is subscribed and sent in layers.
func (s *Subscriber) SetLayer(id string, cap int) bool {
	s.mu.Lock()
	s.caps[id] = cap
	sub := s.subs[id]
	s.mu.Unlock()
	if sub == nil {
		return false
	}
	sub.dt.SetLayer(cap)
	t := sub.dt.Track()
	return t != nil && t.group != nil
}

// SetDefaultLayer caps the simulcast layer of every track without a cap of
// its own (a WHEP player's ?layer=). Call before tracks are added.
func (s *Subscriber) SetDefaultLayer(cap int) {
	s.mu.Lock()
	s.defaultCap = cap
	s.mu.Unlock()
}

// ViewerStats is what a viewer's connection knows of its link and layers.
type ViewerStats struct {
	// BandwidthEstimate is the estimate of the viewer's downlink in bits
	// per second (0 without sfu.bandwidth_estimation).
	BandwidthEstimate int
	// Layers gives, per subscribed simulcast track, the RID of the layer
	// the viewer receives now.
	Layers map[string]string
}

// Stats returns the viewer's estimate and simulcast layers.
func (s *Subscriber) Stats() ViewerStats {
	st := ViewerStats{Layers: map[string]string{}}
	if s.bwe != nil {
		st.BandwidthEstimate = s.bwe.est.GetTargetBitrate()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sub := range s.subs {
		if t := sub.dt.Track(); t != nil && t.info.RID != "" {
			st.Layers[id] = t.info.RID
		}
	}
	return st
}

// relayCopies returns the down-tracks that carry t: one, or for a relay
// to another node one per simulcast layer, each pinned to its layer and
// named so that the edge can gather them again (relayLayerID).
func (s *Subscriber) relayCopies(t *Track) []*DownTrack {
	if !s.relay || t.group == nil {
		return []*DownTrack{s.newDownTrack(t)}
	}
	rids := t.group.rids
	var out []*DownTrack
	for _, l := range *t.group.ranked.Load() {
		dt := s.newDownTrack(l)
		dt.src.Store(l)
		dt.pinRID = l.info.RID
		dt.id = relayLayerID(t.info.ID, l.info.RID, rids)
		out = append(out, dt)
	}
	if len(out) == 0 {
		out = append(out, s.newDownTrack(t))
	}
	return out
}
