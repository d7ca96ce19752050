package webhook

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/halobuzz/live/internal/id"
	"github.com/halobuzz/live/room"
)

// outboxSize bounds the ops waiting for the queue (Redis slow or away);
// past it new ones are dropped and counted.
const outboxSize = 65536

// dispatcher is the rooms' Observer: it turns what happens on this node
// into queue ops, in order, and appends them from one goroutine, so that
// Observe never waits for the queue.
type dispatcher struct {
	node, region string
	want         map[string]bool // the event filter; nil: every event
	viewers      bool            // participant events of viewers too
	q            Queue
	metrics      *Metrics
	log          *slog.Logger

	mu     sync.Mutex
	outbox []Op
	wake   chan struct{} // 1-buffered: ops are waiting
	// served and live are the rooms this node serves and the tracks it
	// originates, as observed: what a clean stop ends (closing).
	failing bool // the last append failed (log once per outage); run's goroutine only
	served  map[string]bool
	live    map[string]map[string]room.Happening // room -> track id -> its publication
}

// Observe implements room.Observer.
func (d *dispatcher) Observe(h room.Happening) {
	d.mu.Lock()
	switch h.Kind {
	case room.RoomServed:
		d.served[h.Room] = true
	case room.RoomUnserved:
		delete(d.served, h.Room)
		delete(d.live, h.Room)
	case room.TrackPublishedHere:
		if d.live[h.Room] == nil {
			d.live[h.Room] = map[string]room.Happening{}
		}
		d.live[h.Room][h.Track.ID] = h
	case room.TrackUnpublishedHere:
		delete(d.live[h.Room], h.Track.ID)
	}
	d.mu.Unlock()
	op, ok := d.op(h)
	if !ok {
		return
	}
	d.push(op)
}

// closing ends what this node still serves, as if its tracks were
// unpublished and its rooms let go: a clean stop tells broadcast_ended
// and room_finished (where this node was the last) at once.
func (d *dispatcher) closing(now time.Time) {
	d.mu.Lock()
	var hs []room.Happening
	for name := range d.served {
		for _, h := range d.live[name] {
			h.Kind, h.At = room.TrackUnpublishedHere, now
			hs = append(hs, h)
		}
		hs = append(hs, room.Happening{Kind: room.RoomUnserved, Room: name, At: now})
	}
	d.served, d.live = map[string]bool{}, map[string]map[string]room.Happening{}
	d.mu.Unlock()
	for _, h := range hs {
		if op, ok := d.op(h); ok {
			d.push(op)
		}
	}
}

// idle reports that the outbox is empty.
func (d *dispatcher) idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.outbox) == 0
}

func (d *dispatcher) push(ops ...Op) {
	d.mu.Lock()
	if len(d.outbox)+len(ops) > outboxSize {
		d.mu.Unlock()
		d.metrics.dropped.Add(float64(len(ops)))
		return
	}
	d.outbox = append(d.outbox, ops...)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// event returns a new event of type typ, or nil when the filter leaves
// typ out.
func (d *dispatcher) event(typ, rm string, at time.Time, fill func(e *Event)) []byte {
	if d.want != nil && !d.want[typ] {
		return nil
	}
	e := Event{ID: id.New("evt_"), Type: typ, Time: at.UTC(), Room: rm, Node: d.node, Region: d.region}
	if fill != nil {
		fill(&e)
	}
	return encode(e)
}

func participant(p room.ParticipantRecord) *Participant {
	role := "viewer"
	if p.Publisher {
		role = "publisher"
	}
	return &Participant{ID: p.ID, Identity: p.Identity, Name: p.Name, Role: role}
}

func track(t room.TrackInfo) *Track {
	return &Track{ID: t.ID, ParticipantID: t.ParticipantID, Kind: t.Kind, Source: t.Source, Codec: t.Codec}
}

// op is the queue op of h; false when h emits nothing.
func (d *dispatcher) op(h room.Happening) (Op, bool) {
	at, rm := h.At, h.Room
	lost := func(e *Event) { e.Reason = "node_lost" }
	withTrack := func(e *Event) { e.Track, e.Participant = track(h.Track), participant(h.Participant) }
	lostTrack := func(e *Event) { withTrack(e); lost(e) }
	switch h.Kind {
	case room.RoomServed:
		return Op{Room: rm, Set: SetNodes, Member: Member(d.node, ""), Enter: true,
			Edge: d.event(RoomStarted, rm, at, nil), LostEdge: d.event(RoomFinished, rm, at, lost)}, true
	case room.RoomUnserved:
		return Op{Room: rm, Set: SetNodes, Member: Member(d.node, ""), Edge: d.event(RoomFinished, rm, at, nil)}, true
	case room.TrackPublishedHere:
		m := Member(d.node, h.Track.ID)
		return Op{Room: rm, Set: SetTracks, Member: m, Enter: true,
			Edge: d.event(BroadcastStarted, rm, at, nil), Event: d.event(TrackPublished, rm, at, withTrack),
			LostEdge: d.event(BroadcastEnded, rm, at, lost), LostEvent: d.event(TrackUnpublished, rm, at, lostTrack)}, true
	case room.TrackUnpublishedHere:
		return Op{Room: rm, Set: SetTracks, Member: Member(d.node, h.Track.ID),
			Edge: d.event(BroadcastEnded, rm, at, nil), Event: d.event(TrackUnpublished, rm, at, withTrack)}, true
	case room.ParticipantJoinedHere, room.ParticipantLeftHere:
		if !h.Participant.Publisher && !d.viewers {
			return Op{}, false
		}
		typ := ParticipantJoined
		if h.Kind == room.ParticipantLeftHere {
			typ = ParticipantLeft
		}
		ev := d.event(typ, rm, at, func(e *Event) { e.Participant = participant(h.Participant) })
		return Op{Room: rm, Event: ev}, ev != nil
	case room.ParticipantRemovedHere:
		ev := d.event(ParticipantRemoved, rm, at, func(e *Event) { e.Participant, e.Reason = participant(h.Participant), h.Reason })
		return Op{Room: rm, Event: ev}, ev != nil
	case room.TrackMutedHere:
		muted := h.Muted
		ev := d.event(TrackMuted, rm, at, func(e *Event) { withTrack(e); e.Muted = &muted })
		return Op{Room: rm, Event: ev}, ev != nil
	case room.NodeDrainingHere:
		ev := d.event(NodeDraining, "", at, nil)
		return Op{Event: ev}, ev != nil
	}
	return Op{}, false
}

// run appends the outbox to the queue, in order, until ctx ends; then it
// tries once more, within flush, to append what is left.
func (d *dispatcher) run(ctx context.Context, flush time.Duration) {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-d.wake:
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), flush)
			d.drain(fctx)
			cancel()
			return
		}
		for !d.drain(ctx) {
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, 5*time.Second)
			case <-ctx.Done():
				fctx, cancel := context.WithTimeout(context.Background(), flush)
				d.drain(fctx)
				cancel()
				return
			}
		}
		backoff = 100 * time.Millisecond
	}
}

// drain appends the outbox; false when the queue failed (the ops stay, in
// order, except those a full queue refused).
func (d *dispatcher) drain(ctx context.Context) bool {
	for {
		d.mu.Lock()
		ops := d.outbox[:min(len(d.outbox), 256)]
		d.mu.Unlock()
		if len(ops) == 0 {
			return true
		}
		if i := forgetAt(ops); i == 0 {
			ops = ops[:1]
		} else if i > 0 {
			ops = ops[:i]
		}
		err := d.appendOps(ctx, ops)
		if err != nil && !errors.Is(err, ErrQueueFull) {
			if !d.failing {
				d.log.Warn("webhooks: cannot queue events; keeping them, in order, and retrying", "events", len(ops), "err", err)
			}
			d.failing = true
			return false
		}
		if d.failing {
			d.failing = false
			d.log.Info("webhooks: queueing again")
		}
		if err != nil {
			d.metrics.dropped.Add(float64(len(ops)))
			d.log.Warn("webhooks: queue full (webhooks.queue_size), events dropped", "events", len(ops))
		}
		d.mu.Lock()
		d.outbox = append(d.outbox[:0], d.outbox[len(ops):]...)
		d.mu.Unlock()
	}
}

// forgetAt is the index of the first op of ops that forgets a node, or -1.
func forgetAt(ops []Op) int {
	for i, op := range ops {
		if op.Forget != "" {
			return i
		}
	}
	return -1
}

// appendOps appends ops, or (one op with Forget) appends its event then
// forgets the node.
func (d *dispatcher) appendOps(ctx context.Context, ops []Op) error {
	if len(ops) != 1 || ops[0].Forget == "" {
		return d.q.Append(ctx, ops...)
	}
	op := ops[0]
	if op.Event != nil {
		ev := op
		ev.Forget = ""
		if err := d.q.Append(ctx, ev); err != nil {
			return err
		}
		op.Event, op.Once = nil, "" // appended: a retry only forgets
		d.mu.Lock()
		if len(d.outbox) > 0 && d.outbox[0].Forget == op.Forget {
			d.outbox[0] = op
		}
		d.mu.Unlock()
	}
	return d.q.ForgetNode(ctx, op.Forget)
}

// viewerCounts queues, for each room of this node whose audience
// (cluster-wide) changed, a viewer_count, at most one per room and
// interval for the whole cluster: its Once key names the interval.
func (d *dispatcher) viewerCounts(rooms []*room.Room, last map[string]int, interval time.Duration, now time.Time) {
	if d.want != nil && !d.want[ViewerCount] {
		return
	}
	seen := make(map[string]bool, len(rooms))
	var ops []Op
	bucket := strconv.FormatInt(now.UnixNano()/int64(interval), 10)
	for _, r := range rooms {
		name := r.Name()
		seen[name] = true
		n := r.ViewerCount()
		if prev, ok := last[name]; (ok && prev == n) || (!ok && n == 0) {
			continue
		}
		last[name] = n
		ev := d.event(ViewerCount, name, now, func(e *Event) { e.Viewers = &n })
		ops = append(ops, Op{Room: name, Event: ev, Once: "viewer_count|" + name + "|" + bucket, OnceFor: 2 * interval})
	}
	for name := range last {
		if !seen[name] {
			delete(last, name)
		}
	}
	if len(ops) > 0 {
		d.push(ops...)
	}
}
