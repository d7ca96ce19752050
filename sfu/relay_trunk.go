package sfu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Relay trunks (issue 27): ONE long-lived connection per ordered pair of
// nodes, the edge pulling from the origin, carries every relayed track of
// every room between them, instead of one connection per room.
//
//   - The trunk is one Pion PeerConnection: one ICE agent, one DTLS
//     association, one SRTP context, one port on each side, set up once
//     (the authenticated HTTP request of relay.go carries the first offer
//     and answer, and with them the DTLS fingerprints and ICE credentials).
//   - A reliable, ordered data channel (trunkLabel) is the trunk's control
//     stream: the edge asks for tracks and gives them back with a
//     trunkRequest, the origin answers with a trunkReply.
//   - Tracks come and go by renegotiation over that channel, batched per
//     trunk: requests that arrive while one is in flight are merged into
//     the next, so 30 rooms wanting their tracks at once cost one or two
//     offer/answer exchanges on the open connection, with no HTTP request,
//     ICE or DTLS per room.
//
// Why renegotiation, not tracks added by a control message alone: Pion
// routes an incoming SRTP stream to a receiver only through a media section
// the remote description declared (its SSRCs, or its MID/RID header
// extensions), and a sender once used cannot be rebound to another media
// section without an offer/answer (RTPTransceiver reuse requires a section
// that never sent). Without renegotiation, the edge would have to read the
// SRTP session itself (pion/srtp AcceptStream) and run NACK, receiver
// reports and transport-cc outside Pion's interceptors: a media stack of its
// own. Renegotiation over the open connection keeps Pion's receivers and
// interceptors (NACK, PLI, receiver reports, transport-cc cross the trunk as
// on any connection), and costs one round trip between the nodes per batch.
//
// On the edge each relayed track is an ordinary Track (Publisher.onTrack,
// relay.go): one cache, late-joiner replay, NACKs answered from the edge's
// cache, keyframe requests merged. On the origin the trunk is one relay
// Subscriber whose down-tracks are the copies of every room's tracks for
// that edge.
//
// Known limit: a media section that carried a removed track is stopped
// (port 0) and stays in the session description; Pion does not recycle a
// section that has sent. A trunk's SDP therefore grows with every track it
// ever carried (about 600 bytes each), which bounds a trunk's useful life
// to some thousands of track changes before it should be replaced.

// trunkLabel is the label of a trunk's control data channel.
const trunkLabel = "halo-trunk"

// trunkReplyTimeout bounds the wait for the origin's answer to a change:
// past it the control channel is taken as stuck and the trunk is closed
// (its owner sets up another). It is long: the origin may wait for its
// store to admit a room's relay, and a trunk that is really lost is told
// by ICE much sooner.
const trunkReplyTimeout = 30 * time.Second

// TrunkAdd asks for tracks of one room over a trunk.
type TrunkAdd struct {
	// Room is the room the tracks are published in on the origin.
	Room string `json:"room"`
	// Tracks are the origin's track ids.
	Tracks []string `json:"tracks"`
	// Audio and Video count the media sections the tracks need (a
	// simulcast track one per layer).
	Audio int `json:"-"`
	Video int `json:"-"`
}

// TrunkChange is one change of a trunk's tracks.
type TrunkChange struct {
	Add    []TrunkAdd
	Remove []string // origin track ids
}

// TrunkIn is the edge side of a trunk: a receiving relay connection whose
// tracks are added and removed over its control channel.
type TrunkIn struct {
	p  *Publisher
	dc *webrtc.DataChannel

	replies chan trunkReply
	rx      trunkReassembler // the control channel's reader is Pion's, one at a time

	mu      sync.Mutex
	queue   []*trunkWaiter
	running bool
	closed  bool
	seq     uint64
	carried map[string]string // track id -> room, what the trunk was asked for
	wg      sync.WaitGroup
	done    chan struct{}

	// Renegotiations counts the offer/answer exchanges over the control
	// channel (batches), for tests and metrics.
	renegotiations uint64
}

type trunkWaiter struct {
	c    TrunkChange
	done chan error
}

// Errors of a trunk change.
var (
	// ErrTrunkClosed: the trunk was closed or lost.
	ErrTrunkClosed = errors.New("sfu: relay trunk closed")
	// ErrTrunkRefused: the origin does not publish (any more) some of the
	// tracks asked for; the others were added.
	ErrTrunkRefused = errors.New("sfu: relay trunk change refused")
)

// NewTrunkIn creates the edge side of a trunk. ev.OnTrack announces each
// relayed track (named by the origin's track id), ev.OnTrackEnded its end,
// ev.OnFailed the loss of the whole trunk. Call Offer, send the offer to
// the origin, apply its answer with Accept, then Change.
func (e *Engine) NewTrunkIn(ev PublisherEvents) (*TrunkIn, error) {
	api, err := e.trunkAPI()
	if err != nil {
		return nil, err
	}
	keep := ev.TrackID
	ev.TrackID = func(info TrackInfo) string {
		if keep != nil {
			if id := keep(info); id != "" {
				return id
			}
		}
		return info.ClientID // the origin's track id (its msid)
	}
	p, err := e.newPublisher(api, "", ev)
	if err != nil {
		return nil, err
	}
	p.relay = true
	e.stats.relaysIn.Add(1)
	ordered := true
	dc, err := p.pc.CreateDataChannel(trunkLabel, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("sfu: trunk control channel: %w", err)
	}
	t := &TrunkIn{p: p, dc: dc, replies: make(chan trunkReply, 4), carried: map[string]string{}, done: make(chan struct{})}
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		msg, complete, err := t.rx.add(m.Data)
		if err != nil {
			e.log.Warn("relay trunk: bad control message from the origin", "err", err)
			return
		}
		if !complete {
			return
		}
		reply, err := decodeTrunkReply(msg)
		if err != nil {
			e.log.Warn("relay trunk: bad control message from the origin", "err", err)
			return
		}
		select {
		case t.replies <- reply:
		case <-t.done:
		}
	})
	return t, nil
}

// PacketsIn counts the RTP packets the trunk's tracks took in so far.
func (t *TrunkIn) PacketsIn() uint64 { return t.p.PacketsIn() }

// BytesIn counts the RTP bytes the trunk's tracks have taken in so far,
// those of tracks it no longer carries included.
func (t *TrunkIn) BytesIn() uint64 {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	var n uint64
	for _, tr := range t.p.tracks {
		n += tr.bytesIn.Load()
	}
	return n
}

// RelayProgress is Publisher.RelayProgress for every track of the trunk
// (relay_watch.go).
func (t *TrunkIn) RelayProgress() (reported, arrived uint64) { return t.p.RelayProgress() }

// Offer returns the trunk's first offer (the control channel only, every
// ICE candidate in it), for the authenticated request to the origin.
func (t *TrunkIn) Offer(ctx context.Context) (string, error) {
	return t.p.OfferRelay(ctx, 0, 0)
}

// Accept applies the origin's answer to Offer's offer and waits until the
// control channel is open.
func (t *TrunkIn) Accept(ctx context.Context, answer string) error {
	opened := make(chan struct{})
	var once sync.Once
	t.dc.OnOpen(func() { once.Do(func() { close(opened) }) })
	if err := t.p.AcceptRelayAnswer(answer); err != nil {
		return err
	}
	if t.dc.ReadyState() == webrtc.DataChannelStateOpen {
		return nil
	}
	select {
	case <-opened:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sfu: trunk control channel did not open: %w", ctx.Err())
	}
}

// Change adds and removes tracks. It returns when the origin has answered
// the renegotiation that carries the change (changes that come meanwhile
// are merged into one). Added tracks then arrive through OnTrack; removed
// ones end (OnTrackEnded). ctx bounds the wait only: a change queued is
// made.
func (t *TrunkIn) Change(ctx context.Context, c TrunkChange) error {
	w := &trunkWaiter{c: c, done: make(chan error, 1)}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrTrunkClosed
	}
	t.queue = append(t.queue, w)
	if !t.running {
		t.running = true
		t.wg.Add(1)
		go t.run()
	}
	t.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Carries reports the room of track id when the trunk was asked for it.
func (t *TrunkIn) Carries(id string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.carried[id]
	return r, ok
}

// Sections reports the media sections of the trunk's session description,
// those of removed tracks included (they are never reused: see the known
// limit above).
func (t *TrunkIn) Sections() int { return len(t.p.pc.GetTransceivers()) }

// Tracks reports how many tracks the trunk was asked for and carries.
func (t *TrunkIn) Tracks() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.carried)
}

// Renegotiations reports how many offer/answer exchanges the trunk made
// after its set-up.
func (t *TrunkIn) Renegotiations() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.renegotiations
}

// run renegotiates the queued changes, a batch at a time, until none is
// left. It is the trunk's only renegotiating goroutine; Close waits for it.
func (t *TrunkIn) run() {
	defer t.wg.Done()
	for {
		t.mu.Lock()
		batch := t.queue
		t.queue = nil
		if len(batch) == 0 || t.closed {
			t.running = false
			t.mu.Unlock()
			for _, w := range batch {
				w.done <- ErrTrunkClosed
			}
			return
		}
		t.mu.Unlock()
		var merged TrunkChange
		for _, w := range batch {
			merged.Add = append(merged.Add, w.c.Add...)
			merged.Remove = append(merged.Remove, w.c.Remove...)
		}
		err := t.renegotiate(merged)
		for _, w := range batch {
			w.done <- err
		}
	}
}

// renegotiate sends one offer carrying c and applies the origin's answer.
func (t *TrunkIn) renegotiate(c TrunkChange) error {
	pc := t.p.pc
	t.mu.Lock()
	// Removals first: a track removed and asked for again in one batch is
	// carried afresh.
	var remove []string
	for _, id := range c.Remove {
		if _, ok := t.carried[id]; ok {
			delete(t.carried, id)
			remove = append(remove, id)
		}
	}
	var add []TrunkAdd
	audio, video := 0, 0
	for _, a := range c.Add {
		var fresh []string
		for _, id := range a.Tracks {
			if _, ok := t.carried[id]; !ok && !slices.Contains(fresh, id) {
				fresh = append(fresh, id)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		for _, id := range fresh {
			t.carried[id] = a.Room
		}
		add = append(add, TrunkAdd{Room: a.Room, Tracks: fresh})
		audio += a.Audio
		video += a.Video
	}
	t.seq++
	seq := t.seq
	t.mu.Unlock()
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	// Removed tracks: their media sections are stopped (the origin stops
	// its side when it reads the offer); their readers end.
	for _, tr := range pc.GetTransceivers() {
		if r := tr.Receiver(); r != nil && r.Track() != nil {
			id := r.Track().ID()
			if base, _, _, ok := parseRelayLayerID(id); ok {
				id = base
			}
			if slices.Contains(remove, id) {
				_ = tr.Stop()
			}
		}
	}
	for kind, n := range map[webrtc.RTPCodecType]int{webrtc.RTPCodecTypeAudio: audio, webrtc.RTPCodecTypeVideo: video} {
		for range n {
			if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return fmt.Errorf("sfu: trunk transceiver: %w", err)
			}
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("sfu: trunk offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("sfu: trunk offer: %w", err)
	}
	reply, err := t.exchange(trunkRequest{Seq: seq, Add: add, Remove: remove, SDP: pc.LocalDescription().SDP})
	if err == nil {
		err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: reply.SDP})
		if err != nil {
			// The origin waits for an acknowledgement that cannot come:
			// the trunk is broken (OnFailed tells its owner).
			_ = pc.Close()
			err = fmt.Errorf("%w: trunk answer: %w", ErrInvalidSDP, err)
		} else if ack, e := encodeTrunkRequest(trunkRequest{Seq: seq, Applied: true}); e != nil {
			err = e
		} else if e := sendTrunk(t.dc, ack); e != nil {
			err = fmt.Errorf("%w: %w", ErrTrunkClosed, e)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		// Back to the last agreed description: the next change offers
		// again (the added sections stay, unanswered, and are offered
		// with it).
		_ = pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback})
		for _, a := range add {
			for _, id := range a.Tracks {
				delete(t.carried, id)
			}
		}
		return err
	}
	t.renegotiations++
	for _, a := range add {
		if slices.Contains(reply.Refused, a.Room) {
			for _, id := range a.Tracks {
				delete(t.carried, id)
			}
		}
	}
	if len(reply.Refused) > 0 {
		return fmt.Errorf("%w: the origin does not publish the tracks asked for in %q", ErrTrunkRefused, reply.Refused)
	}
	return nil
}

// exchange sends req and waits for its reply.
func (t *TrunkIn) exchange(req trunkRequest) (trunkReply, error) {
	msg, err := encodeTrunkRequest(req)
	if err != nil {
		return trunkReply{}, err
	}
	if err := sendTrunk(t.dc, msg); err != nil {
		return trunkReply{}, fmt.Errorf("%w: %w", ErrTrunkClosed, err)
	}
	timeout := time.NewTimer(trunkReplyTimeout)
	defer timeout.Stop()
	for {
		select {
		case <-t.done:
			return trunkReply{}, ErrTrunkClosed
		case <-timeout.C:
			// The control channel is stuck: the trunk is broken. Its
			// owner hears of it (OnFailed) and sets up another.
			_ = t.p.pc.Close()
			return trunkReply{}, fmt.Errorf("%w: the origin did not answer within %s", ErrTrunkClosed, trunkReplyTimeout)
		case reply := <-t.replies:
			if reply.Seq != req.Seq {
				continue // an answer to a request given up on
			}
			if reply.Error != "" {
				return reply, fmt.Errorf("sfu: the origin refused the trunk change: %s: %s", reply.Code, reply.Error)
			}
			return reply, nil
		}
	}
}

// Close ends the trunk: every relayed track ends.
func (t *TrunkIn) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	t.mu.Unlock()
	err := t.p.Close()
	t.wg.Wait()
	return err
}

// TrunkResolver gives the origin's tracks of room named by ids, and makes
// sure the room has its View of the trunk (TrunkOut.View); an error refuses
// that room's tracks (the edge is told which rooms).
type TrunkResolver func(room string, ids []string) ([]*Track, error)

// roomTrack is a track asked for and the view of its room.
type roomTrack struct {
	t    *Track
	view *Subscriber
}

// viewCopy is a trunk copy to file in its room's view.
type viewCopy struct {
	v   *Subscriber
	id  string
	sub *subscription
}

// TrunkOut is the origin side of a trunk: one relay Subscriber carrying
// copies of the tracks of every room the edge asked for.
type TrunkOut struct {
	s       *Subscriber
	resolve TrunkResolver

	mu       sync.Mutex
	dc       *webrtc.DataChannel
	rx       trunkReassembler
	requests chan []byte
	done     chan struct{}
	closed   bool
	wg       sync.WaitGroup
	rooms    map[string]string      // track id -> room, what it carries
	views    map[string]*Subscriber // by room: each room's part (View)
}

// NewTrunkOut creates the origin side of a trunk; resolve names the
// tracks the edge asks for. Answer the edge's first offer with Answer.
func (e *Engine) NewTrunkOut(resolve TrunkResolver, ev SubscriberEvents) (*TrunkOut, error) {
	s, err := e.NewRelayOut(ev)
	if err != nil {
		return nil, err
	}
	o := &TrunkOut{s: s, resolve: resolve, requests: make(chan []byte, 8), done: make(chan struct{}), rooms: map[string]string{}, views: map[string]*Subscriber{}}
	// The gauges count relays as the rooms see them: a room's part of a
	// trunk (a view) counts as a relay out and a subscriber, the trunk's
	// own connection does not (Close gives them back before closing it).
	e.stats.relaysOut.Add(-1)
	e.stats.subscribers.Add(-1)
	s.mu.Lock()
	s.answerer = true
	pc := s.pc
	s.mu.Unlock()
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != trunkLabel {
			_ = dc.Close()
			return
		}
		o.mu.Lock()
		o.dc = dc
		o.mu.Unlock()
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			msg, complete, err := o.rx.add(m.Data)
			if err != nil {
				e.log.Warn("relay trunk: bad control message from the edge", "err", err)
				o.reply(trunkReply{Code: "bad_request", Error: err.Error()})
				return
			}
			if complete {
				select {
				case o.requests <- msg:
				case <-o.done:
				}
			}
		})
	})
	o.wg.Add(1)
	go o.serve()
	return o, nil
}

// Answer answers the edge's first offer (the control channel), waiting
// for every local candidate.
func (o *TrunkOut) Answer(ctx context.Context, offer string) (string, error) {
	return o.s.AnswerOffer(ctx, offer, nil)
}

// View returns room's part of the trunk, created with ev at the first call
// (or after the previous one was closed): a relay Subscriber without a
// connection of its own, holding the trunk's copies of that room's tracks.
// The room treats it as the connection of its relay participant: Reanchor
// moves its copies to a republished track, RemoveTrack stops one, Close
// stops them all (the room ended), and none of these touches the trunk or
// the other rooms. When the edge removes the view's last track, or the
// trunk fails, ev.OnFailed is called once.
func (o *TrunkOut) View(room string, ev SubscriberEvents) *Subscriber {
	o.mu.Lock()
	defer o.mu.Unlock()
	if v := o.views[room]; v != nil && !v.isClosed() {
		return v
	}
	e := o.s.e
	v := &Subscriber{e: e, events: ev, subs: map[string]*subscription{}, caps: map[string]int{}, defaultCap: LayerHigh, relay: true, answerer: true}
	e.stats.subscribers.Add(1) // given back by Close
	e.stats.relaysOut.Add(1)
	o.views[room] = v
	return v
}

func (s *Subscriber) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// failView tells v's owner it is done (its last track removed, or the
// trunk lost).
func failView(v *Subscriber) {
	v.failed.Do(func() {
		if v.events.OnFailed != nil {
			v.events.OnFailed()
		}
	})
}

// Room reports the room the trunk carries track id for.
func (o *TrunkOut) Room(id string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.rooms[id]
	return r, ok
}

// serve answers the edge's requests in order. It is the trunk's one
// goroutine on the origin; Close stops it.
func (o *TrunkOut) serve() {
	defer o.wg.Done()
	for {
		select {
		case <-o.done:
			return
		case msg := <-o.requests:
			req, err := decodeTrunkRequest(msg)
			if err == nil && req.Applied {
				err = fmt.Errorf("%w: an acknowledgement of no answer", errTrunkMessage)
			}
			if err != nil {
				o.reply(trunkReply{Seq: req.Seq, Code: "bad_request", Error: err.Error()})
				continue
			}
			answer := o.apply(req)
			o.reply(answer.trunkReply)
			if answer.commit != nil && !o.applied(req.Seq) {
				// No acknowledgement: the edge could not apply the
				// answer, or is gone. The trunk is broken.
				_ = o.s.Close()
				return
			}
			if answer.commit != nil {
				answer.commit()
			}
		}
	}
}

// applied waits for the edge's acknowledgement of the answer to seq.
func (o *TrunkOut) applied(seq uint64) bool {
	timeout := time.NewTimer(trunkReplyTimeout)
	defer timeout.Stop()
	select {
	case <-o.done:
		return false
	case <-timeout.C:
		o.s.e.log.Info("relay trunk: the edge did not acknowledge an answer", "within", trunkReplyTimeout)
		return false
	case msg := <-o.requests:
		req, err := decodeTrunkRequest(msg)
		return err == nil && req.Applied && req.Seq == seq
	}
}

// trunkAnswer is apply's reply, and what makes it the connection's once the
// edge has applied it (nil when it is a refusal).
type trunkAnswer struct {
	trunkReply
	commit func()
}

// apply renegotiates one request of the edge. The answer is created, sent,
// and set as the local description only once the edge acknowledged it:
// only then do the new tracks' packets leave.
func (o *TrunkOut) apply(req trunkRequest) trunkAnswer {
	s := o.s
	var emptied []*Subscriber
	for _, id := range req.Remove {
		o.mu.Lock()
		v := o.views[o.rooms[id]]
		delete(o.rooms, id)
		o.mu.Unlock()
		if v != nil {
			_ = v.RemoveTrack(id)
			if len(v.TrackIDs()) == 0 && !slices.Contains(emptied, v) {
				emptied = append(emptied, v)
			}
		}
		_ = s.RemoveTrack(id)
	}
	// The rooms are resolved at once: each may wait for the store (a relay
	// joins its room), and one slow room must not hold up the batch.
	resolved := make([]struct {
		ts  []*Track
		err error
	}, len(req.Add))
	var wg sync.WaitGroup
	for i, a := range req.Add {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resolved[i].ts, resolved[i].err = o.resolve(a.Room, a.Tracks)
		}()
	}
	wg.Wait()
	var tracks []roomTrack
	var refused []string
	for i, a := range req.Add {
		ts, err := resolved[i].ts, resolved[i].err
		o.mu.Lock()
		v := o.views[a.Room]
		o.mu.Unlock()
		if err == nil && v == nil {
			err = fmt.Errorf("sfu: the resolver made no view of room %q", a.Room)
		}
		if err != nil {
			// The others are answered: the edge's offer holds sections
			// for them, and one room's ended broadcast must not hold up
			// the rest. The refused room's sections stay inactive.
			o.s.e.log.Debug("relay trunk: tracks refused", "room", a.Room, "err", err)
			refused = append(refused, a.Room)
			continue
		}
		for _, t := range ts {
			tracks = append(tracks, roomTrack{t: t, view: v})
		}
		o.mu.Lock()
		for _, id := range a.Tracks {
			o.rooms[id] = a.Room
		}
		o.mu.Unlock()
	}
	s.mu.Lock()
	if s.closed || s.pc == nil {
		s.mu.Unlock()
		return trunkAnswer{trunkReply: trunkReply{Seq: req.Seq, Code: "closed", Error: ErrClosed.Error()}}
	}
	pc := s.pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: req.SDP}); err != nil {
		s.mu.Unlock()
		return trunkAnswer{trunkReply: trunkReply{Seq: req.Seq, Code: "invalid_sdp", Error: err.Error()}}
	}
	var added []viewCopy
	for _, rt := range tracks {
		t := rt.t
		if len(s.keysOfLocked(t.info.ID)) > 0 {
			continue
		}
		for _, dt := range s.relayCopies(t) {
			sender, err := pc.AddTrack(dt)
			if err != nil {
				// The edge rolls its offer back; so does this side.
				_ = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback})
				s.mu.Unlock()
				return trunkAnswer{trunkReply: trunkReply{Seq: req.Seq, Code: "invalid_sdp", Error: fmt.Sprintf("add track %s: %v", t.info.ID, err)}}
			}
			sub := &subscription{dt: dt, sender: sender}
			s.subs[dt.id] = sub
			added = append(added, viewCopy{v: rt.view, id: dt.id, sub: sub})
		}
	}
	s.mu.Unlock()
	for _, c := range added {
		c.v.mu.Lock()
		c.v.subs[c.id] = c.sub
		c.v.mu.Unlock()
	}
	for _, v := range emptied {
		if len(v.TrackIDs()) == 0 {
			failView(v)
		}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		_ = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback})
		return trunkAnswer{trunkReply: trunkReply{Seq: req.Seq, Code: "invalid_sdp", Error: err.Error()}}
	}
	commit := func() {
		if err := pc.SetLocalDescription(answer); err != nil {
			o.s.e.log.Warn("relay trunk: the answer could not be applied", "err", err)
			_ = o.s.Close()
			return
		}
		s.mu.Lock()
		s.openRTCPLocked()
		s.mu.Unlock()
	}
	return trunkAnswer{trunkReply: trunkReply{Seq: req.Seq, SDP: answer.SDP, Refused: refused}, commit: commit}
}

func (o *TrunkOut) reply(r trunkReply) {
	o.mu.Lock()
	dc := o.dc
	o.mu.Unlock()
	if dc == nil {
		return
	}
	msg, err := encodeTrunkReply(r)
	if err == nil {
		err = sendTrunk(dc, msg)
	}
	if err != nil {
		o.s.e.log.Debug("relay trunk: reply not sent", "err", err)
	}
}

// Close ends the trunk on the origin.
func (o *TrunkOut) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	close(o.done)
	views := make([]*Subscriber, 0, len(o.views))
	for _, v := range o.views {
		views = append(views, v)
	}
	o.mu.Unlock()
	o.s.e.stats.relaysOut.Add(1)
	o.s.e.stats.subscribers.Add(1)
	err := o.s.Close()
	o.wg.Wait()
	for _, v := range views {
		failView(v)
	}
	return err
}

// Post queues c without waiting for it; done, when set, is told the
// result: nil, ErrTrunkRefused, or ErrTrunkClosed (the trunk was closed,
// or the origin did not answer the batch within trunkReplyTimeout, which
// closes it).
func (t *TrunkIn) Post(c TrunkChange, done func(error)) {
	w := &trunkWaiter{c: c, done: make(chan error, 1)}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		if done != nil {
			done(ErrTrunkClosed)
		}
		return
	}
	t.queue = append(t.queue, w)
	if !t.running {
		t.running = true
		t.wg.Add(1)
		go t.run()
	}
	if done == nil {
		t.mu.Unlock()
		return
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() { // owned by the trunk: Close waits for it
		defer t.wg.Done()
		select {
		case err := <-w.done:
			done(err)
		case <-t.done:
			done(ErrTrunkClosed)
		}
	}()
}
