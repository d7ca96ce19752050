package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/halobuzz/live/room"
)

// ErrNotFound is returned by a Store for a room it does not hold.
var ErrNotFound = errors.New("room: not found")

// RoomCounts are a room's counters per node: what the join path reads.
type RoomCounts struct {
	Participants map[string]int
	Viewers      map[string]int
}

// ParticipantsExcept returns the participants counted on nodes other than node.
func (c RoomCounts) ParticipantsExcept(node string) int {
	n := 0
	for id, v := range c.Participants {
		if id != node {
			n += v
		}
	}
	return n
}

// NodeRoom is one node's whole part of a room: what SyncRoom rewrites when
// the shared state lost it (Redis restarted, a write was dropped).
type NodeRoom struct {
	Participants []room.ParticipantRecord
	Tracks       []room.TrackRecord
	Viewers      int
}

// OriginKey names a track whose origin a node claimed.
type OriginKey struct{ Room, Track string }

// Leases are everything a node holds under a lease and renews on each
// heartbeat: its part of each room and its origin claims.
type Leases struct {
	Rooms   []string
	Origins []OriginKey
}

// Renewal is what a Renew found gone: rooms whose entries of this node had
// expired or were lost (the caller rewrites them with SyncRoom) and origin
// claims another node now holds or nobody does (the caller claims again).
type Renewal struct {
	Missing []string
	Lost    []OriginKey
}

// Store is the shared room state. A Store value is one node's handle on it:
// what it writes belongs to that node (NodeID) and, in a cluster, lives under
// a lease that the node renews (Renew) and that expires when the node dies.
//
// Every method may go over the network, so each takes a context and may
// fail; callers treat a failure as retryable and keep serving what they
// already have.
type Store interface {
	// NodeID is the node this handle writes for.
	NodeID() string

	PutParticipant(ctx context.Context, name string, p room.ParticipantRecord) error
	DeleteParticipant(ctx context.Context, name, participantID string) error
	PutTrack(ctx context.Context, name string, t room.TrackRecord) error
	DeleteTrack(ctx context.Context, name, trackID string) error
	// SetViewers records this node's viewer count of room.
	SetViewers(ctx context.Context, name string, n int) error
	// SyncRoom replaces this node's whole part of room with st, atomically.
	SyncRoom(ctx context.Context, name string, st NodeRoom) error
	// Room returns the state of room over all nodes, or ErrNotFound.
	Room(ctx context.Context, name string) (room.RoomState, error)
	// Counts returns the room's counters per node (cheaper than Room).
	Counts(ctx context.Context, name string) (RoomCounts, error)
	// DeleteRoom forgets this node's part of room.
	DeleteRoom(ctx context.Context, name string) error
	// Rooms lists the rooms that exist on any node.
	Rooms(ctx context.Context) ([]string, error)

	// ClaimOrigin claims, atomically, that this node is the origin of track
	// in room. It returns the node that holds the claim: this node when the
	// claim was free or already its own, another node otherwise.
	ClaimOrigin(ctx context.Context, name, track string) (string, error)
	// Origin returns the node holding the origin claim of track, or
	// ErrNotFound.
	Origin(ctx context.Context, name, track string) (string, error)
	// ReleaseOrigin gives up this node's claim (another node's is kept).
	ReleaseOrigin(ctx context.Context, name, track string) error

	// Renew extends the leases of this node's rooms and origin claims and
	// reports what was gone.
	Renew(ctx context.Context, l Leases) (Renewal, error)

	// PutNode registers (or refreshes) this node in the registry, under a lease.
	PutNode(ctx context.Context, n room.NodeInfo) error
	// DeleteNode removes this node from the registry (a clean exit).
	DeleteNode(ctx context.Context) error
	// Nodes lists the live nodes, sorted by ID.
	Nodes(ctx context.Context) ([]room.NodeInfo, error)

	// Publish sends payload to every subscriber of room, on every node
	// (this one included).
	Publish(ctx context.Context, name string, payload []byte) error
	// Subscribe calls h with each payload published to room until the
	// returned cancel is called. h is called from one goroutine per Store,
	// in publication order per publisher, and must not block.
	Subscribe(name string, h func(payload []byte)) (cancel func(), err error)

	// Close releases the handle. Leases are not removed: they expire.
	Close() error
}

// storeTimings are the lease and timeout settings both stores share.
type storeTimings struct {
	ttl time.Duration // lease of everything the node writes; 0: never expires
}

// deadline is when a lease taken now ends; zero when leases never end.
func (t storeTimings) deadline(now time.Time) time.Time {
	if t.ttl <= 0 {
		return time.Time{}
	}
	return now.Add(t.ttl)
}
