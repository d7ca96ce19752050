package webhook

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Queue holds events until they are delivered. It is where an event of
// this node becomes the cluster's: Append keeps the memberships that make
// room_started and broadcast_started once for the whole cluster, drops an
// event whose Once key was used, and numbers each room's events. The
// memory queue serves a node alone (memqueue.go); package redisqueue a
// cluster.
type Queue interface {
	// Append queues the events of ops, in order.
	Append(ctx context.Context, ops ...Op) error
	// Receive returns up to max events for this node to deliver, in the
	// queue's order (each room's in sequence), waiting a short while when
	// there are none. An event is received once; in a cluster another node
	// receives it again when this node is lost before its Ack.
	Receive(ctx context.Context, max int) ([]Delivery, error)
	// Ack takes a delivered (or expired) event out of the queue.
	Ack(ctx context.Context, d Delivery) error
	// ForgetNode ends what node held in the memberships, as if each of its
	// members had left (emitting what each stored for that at its Enter):
	// node is lost. It does nothing for a node that held nothing.
	ForgetNode(ctx context.Context, node string) error
	// Depth is the number of events queued and not yet acknowledged.
	Depth(ctx context.Context) (int64, error)
	// Owns reports whether this node still is the one to deliver d: in a
	// cluster another node may have taken its part of the queue over (it
	// thought this one dead); the worker then lets d go unacknowledged.
	Owns(d Delivery) bool
}

// ErrQueueFull is Append's error when a bounded queue has no room: the
// events of that call are dropped.
var ErrQueueFull = errors.New("webhook: queue full")

// The memberships an Op may change.
const (
	// SetNodes: the nodes serving a room; member "node|".
	SetNodes = "nodes"
	// SetTracks: a room's live tracks; member "node|track".
	SetTracks = "tracks"
)

// Member is the member of a set for node and (SetTracks) a track id.
func Member(node, track string) string { return node + "|" + track }

// memberNode is the node of a member.
func memberNode(m string) string { n, _, _ := strings.Cut(m, "|"); return n }

// Op is one change of the queue: events to emit, maybe depending on a
// membership.
type Op struct {
	// Room is the room the events are of ("" for node events): their
	// sequence.
	Room string
	// Set, when not "", is the membership of Room that Member enters
	// (Enter) or leaves. The op emits its events only when it changes the
	// set.
	Set    string
	Member string
	Enter  bool
	// Edge is emitted when the set goes from empty to not (on Enter,
	// before Event) or back (after Event).
	Edge []byte
	// Event is emitted (when the set changed, or always without a Set).
	Event []byte
	// Once, when not "", is a key that lets the op emit only once: a
	// second op with the key emits nothing.
	Once string
	// OnceFor is how long the Once key is kept (0: two hours): a key that
	// names an interval needs to outlive it only.
	OnceFor time.Duration
	// Forget, when not "", names a node whose memberships end here, after
	// Event: the op is Queue.ForgetNode(Forget) (the node is lost).
	Forget string
	// LostEvent and LostEdge are kept with an entering member: what its
	// leaving emits when its node is lost (ForgetNode) instead of Event and
	// Edge.
	LostEvent, LostEdge []byte
}

// Delivery is one queued event to deliver.
type Delivery struct {
	// Ref is the queue's handle on it (Ack).
	Ref string
	// Room is its room: deliveries of a room go in order.
	Room string
	// Event is the event as queued: without its sequence number, which
	// the queue assigned (Seq).
	Event []byte
	Seq   int64
	// At, when not 0, is the event's time (Unix ms), for an event the
	// queue emitted itself (ForgetNode).
	At int64
}
