package webhook

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// MemoryQueue is the Queue of a node alone: bounded, in memory. A crash or
// a restart loses what it holds (docs/webhooks.md).
type MemoryQueue struct {
	size int

	mu      sync.Mutex
	wake    chan struct{} // closed and replaced when an event is queued
	pending []Delivery    // queued, not yet received
	out     map[string]bool
	next    uint64
	seq     map[string]int64
	sets    map[string]map[string]lost // room+"\x00"+set -> member -> what its loss emits
	once    map[string]time.Time       // Once keys used, when
}

// onceMemory is how long a Once key is remembered without Op.OnceFor.
const onceMemory = 2 * time.Hour

type lost struct{ event, edge []byte }

// NewMemoryQueue returns a queue holding at most size events not yet
// acknowledged.
func NewMemoryQueue(size int) *MemoryQueue {
	return &MemoryQueue{
		size: size, wake: make(chan struct{}), out: map[string]bool{},
		seq: map[string]int64{}, sets: map[string]map[string]lost{}, once: map[string]time.Time{},
	}
}

// Append implements Queue. When the queue is full the events of ops are
// dropped with ErrQueueFull; the memberships still change, so that a
// room's end is told when its start was.
func (q *MemoryQueue) Append(_ context.Context, ops ...Op) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var evs []Delivery
	for _, op := range ops {
		evs = q.apply(op, evs)
	}
	if len(q.pending)+len(q.out)+len(evs) > q.size {
		return ErrQueueFull
	}
	if len(evs) > 0 {
		q.pending = append(q.pending, evs...)
		close(q.wake)
		q.wake = make(chan struct{})
	}
	return nil
}

// apply performs op and appends what it emits to evs; q.mu is held.
func (q *MemoryQueue) apply(op Op, evs []Delivery) []Delivery {
	emit := func(b []byte, at int64) {
		if b != nil {
			q.seq[op.Room]++
			q.next++
			evs = append(evs, Delivery{Ref: strconv.FormatUint(q.next, 10), Room: op.Room, Event: b, Seq: q.seq[op.Room], At: at})
		}
	}
	if op.Once != "" {
		now := time.Now()
		if until, ok := q.once[op.Once]; ok && now.Before(until) {
			return evs
		}
		if len(q.once) >= 4096 {
			for k, until := range q.once {
				if !now.Before(until) {
					delete(q.once, k)
				}
			}
		}
		keep := op.OnceFor
		if keep <= 0 {
			keep = onceMemory
		}
		q.once[op.Once] = now.Add(keep)
	}
	if op.Set == "" {
		emit(op.Event, 0)
		return evs
	}
	key := op.Room + "\x00" + op.Set
	set := q.sets[key]
	_, in := set[op.Member]
	switch {
	case op.Enter && !in:
		if set == nil {
			set = map[string]lost{}
			q.sets[key] = set
		}
		set[op.Member] = lost{op.LostEvent, op.LostEdge}
		if len(set) == 1 {
			emit(op.Edge, 0)
		}
		emit(op.Event, 0)
	case !op.Enter && in:
		delete(set, op.Member)
		emit(op.Event, 0)
		if len(set) == 0 {
			delete(q.sets, key)
			emit(op.Edge, 0)
			if op.Set == SetNodes {
				delete(q.seq, op.Room) // the room's next life numbers from 1
			}
		}
	}
	return evs
}

// Receive implements Queue.
func (q *MemoryQueue) Receive(ctx context.Context, max int) ([]Delivery, error) {
	q.mu.Lock()
	if len(q.pending) == 0 {
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
			return nil, nil
		}
		q.mu.Lock()
	}
	defer q.mu.Unlock()
	n := min(max, len(q.pending))
	out := append([]Delivery(nil), q.pending[:n]...)
	q.pending = append(q.pending[:0], q.pending[n:]...)
	for _, d := range out {
		q.out[d.Ref] = true
	}
	return out, nil
}

// Ack implements Queue.
func (q *MemoryQueue) Ack(_ context.Context, d Delivery) error {
	q.mu.Lock()
	delete(q.out, d.Ref)
	q.mu.Unlock()
	return nil
}

// ForgetNode implements Queue: what node held leaves, tracks first.
func (q *MemoryQueue) ForgetNode(_ context.Context, node string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now().UnixMilli()
	var evs []Delivery
	for _, set := range []string{SetTracks, SetNodes} {
		for key, members := range q.sets {
			room, s, _ := cutNul(key)
			if s != set {
				continue
			}
			for m, l := range members {
				if memberNode(m) != node {
					continue
				}
				delete(members, m)
				evs = q.emitLost(evs, room, l.event, now)
				if len(members) == 0 {
					delete(q.sets, key)
					evs = q.emitLost(evs, room, l.edge, now)
					if set == SetNodes {
						delete(q.seq, room)
					}
				}
			}
		}
	}
	q.pending = append(q.pending, evs...) // past the bound: these end what was told
	if len(evs) > 0 {
		close(q.wake)
		q.wake = make(chan struct{})
	}
	return nil
}

func (q *MemoryQueue) emitLost(evs []Delivery, room string, b []byte, at int64) []Delivery {
	if b == nil {
		return evs
	}
	q.seq[room]++
	q.next++
	return append(evs, Delivery{Ref: strconv.FormatUint(q.next, 10), Room: room, Event: b, Seq: q.seq[room], At: at})
}

func cutNul(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Depth implements Queue.
func (q *MemoryQueue) Depth(context.Context) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(len(q.pending) + len(q.out)), nil
}

// Owns implements Queue: a node alone delivers all it queued.
func (q *MemoryQueue) Owns(Delivery) bool { return true }
