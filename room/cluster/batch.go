package cluster

import (
	"context"
	"encoding/json"

	"github.com/halobuzz/live/room"
)

// Batched store writes. The node's writes go through one ordered queue
// (Cluster.writer), so that a record is in the store before the event that
// announces it, and a Put before its Delete. Run one by one, each costs a
// round trip to Redis: a broadcaster going live queues its participant, its
// tracks, their events and origin claims, and a node 40 ms from Redis sent
// the second track's event ~10 round trips (800 ms) after the track began,
// which every other region waited for before it could relay the broadcast
// (docs/benchmarks.md, section 9).
//
// The writes of the hot path are therefore values (storeOp), not closures:
// the writer takes every op queued behind the first (up to maxBatch, up to
// the next closure) and a store that can (batchStore: Redis) sends them in
// one round trip, in queue order. Other stores apply them one by one.

// maxBatch is the most ops one round trip carries.
const maxBatch = 128

type opKind uint8

const (
	opPutParticipant opKind = iota + 1
	opDeleteParticipant
	opPutTrack
	opDeleteTrack
	opSetViewers
	opPublish
	opClaimOrigin
	opReleaseOrigin
)

// storeOp is one queued write of a room.
type storeOp struct {
	kind        opKind
	room        string
	participant room.ParticipantRecord // opPutParticipant
	track       room.TrackRecord       // opPutTrack
	id          string                 // opDeleteParticipant, opDeleteTrack, the track of opClaimOrigin and opReleaseOrigin
	viewers     int                    // opSetViewers
	payload     []byte                 // opPublish
	// claimed, for opClaimOrigin, is given the node that holds the claim
	// once it is known (on the writer goroutine).
	claimed func(holder string)
	// prepare, when set, runs on the writer goroutine just before the op is
	// sent: it fills what must be read then (an event's sequence number, a
	// count) and reports false to drop the op.
	prepare func(op *storeOp) bool
}

// apply runs the op alone on s.
func (op *storeOp) apply(ctx context.Context, s Store) error {
	switch op.kind {
	case opPutParticipant:
		return s.PutParticipant(ctx, op.room, op.participant)
	case opDeleteParticipant:
		return s.DeleteParticipant(ctx, op.room, op.id)
	case opPutTrack:
		return s.PutTrack(ctx, op.room, op.track)
	case opDeleteTrack:
		return s.DeleteTrack(ctx, op.room, op.id)
	case opSetViewers:
		return s.SetViewers(ctx, op.room, op.viewers)
	case opPublish:
		return s.Publish(ctx, op.room, op.payload)
	case opClaimOrigin:
		holder, err := s.ClaimOrigin(ctx, op.room, op.id)
		if err == nil && op.claimed != nil {
			op.claimed(holder)
		}
		return err
	case opReleaseOrigin:
		return s.ReleaseOrigin(ctx, op.room, op.id)
	}
	return nil
}

// batchStore is a Store that sends several ops in one round trip.
type batchStore interface {
	// applyOps applies ops in order, each as its own method would. An error
	// may leave some of them applied (as a run of single writes would).
	applyOps(ctx context.Context, ops []storeOp) error
}

// writeItem is one entry of the write queue: an op, or a closure for
// what is not one (reads, claims, registrations, subscriptions).
type writeItem struct {
	op *storeOp
	f  func(context.Context) error
}

// storeOp queues op; like storeWrite, it reports false when the queue is
// full (the write is dropped and the state rewritten at the next
// heartbeat) or closed.
func (c *Cluster) storeOp(op storeOp) bool {
	return c.enqueue(writeItem{op: &op})
}

// publishOp is the op that publishes ev on the room's channel, its
// sequence number taken when it is sent, so sequence order is
// publication order.
func (c *Cluster) publishOp(name string, ev wireEvent) storeOp {
	return storeOp{kind: opPublish, room: name, prepare: func(op *storeOp) bool {
		c.seq++ // only the writer goroutine touches seq
		ev.Seq = c.seq
		b, err := json.Marshal(ev)
		if err != nil {
			return false
		}
		op.payload = b
		return true
	}}
}

// writer runs the queue: closures one by one, runs of ops as batches.
func (c *Cluster) writer() {
	defer close(c.writerDone)
	bs, _ := c.store.(batchStore)
	var next *writeItem // taken from the queue by a batch, not yet run
	var ops []storeOp
	for {
		var it writeItem
		if next != nil {
			it, next = *next, nil
		} else {
			var ok bool
			if it, ok = <-c.writes; !ok {
				return
			}
		}
		if it.f != nil {
			c.runWrite(it.f)
			continue
		}
		ops = append(ops[:0], *it.op)
	more:
		for len(ops) < maxBatch {
			select {
			case nx, ok := <-c.writes:
				if !ok {
					break more
				}
				if nx.f != nil {
					next = &nx
					break more
				}
				ops = append(ops, *nx.op)
			default:
				break more
			}
		}
		kept := ops[:0]
		for i := range ops {
			if ops[i].prepare == nil || ops[i].prepare(&ops[i]) {
				kept = append(kept, ops[i])
			}
		}
		if len(kept) == 0 {
			continue
		}
		if bs != nil {
			c.runWrite(func(ctx context.Context) error { return bs.applyOps(ctx, kept) })
			continue
		}
		for i := range kept {
			c.runWrite(func(ctx context.Context) error { return kept[i].apply(ctx, c.store) })
		}
	}
}

// runWrite runs one write (a closure, a batch, or an op) under the write
// timeout; a failure is counted and makes the next heartbeat rewrite the
// node's state.
func (c *Cluster) runWrite(f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.writeTimeout())
	defer cancel()
	if err := f(ctx); err != nil {
		c.writeErrors.Add(1)
		c.resync.Store(true)
		if c.writeErrors.Load()%100 == 1 {
			c.log.Warn("room store write failed; state is rewritten at the next heartbeat", "err", err,
				"failed", c.writeErrors.Load())
		}
	}
}
