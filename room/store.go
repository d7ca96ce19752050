package room

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by a Store for a room it does not hold.
var ErrNotFound = errors.New("room: not found")

// ErrClusterUnavailable is returned when work that needs the cluster's shared
// state (Redis) cannot reach it. It is retryable: the client should try again
// in a few seconds.
var ErrClusterUnavailable = errors.New("room: cluster state unavailable, retry shortly")

// ParticipantRecord is a participant as other nodes see it.
type ParticipantRecord struct {
	ID        string `json:"id"`
	Identity  string `json:"identity"`
	Name      string `json:"name"`
	Publisher bool   `json:"publisher"`
	Node      string `json:"node"`
}

// TrackRecord is a published track as other nodes see it.
type TrackRecord struct {
	ID            string `json:"id"`
	ParticipantID string `json:"participant_id"`
	Kind          string `json:"kind"`
	Source        string `json:"source"`
	Name          string `json:"name"`
	MID           string `json:"mid"`
	Codec         string `json:"codec"`
	Node          string `json:"node"` // where the publisher is connected (the origin)
	// Layers are the simulcast layers (RIDs) the track is sent in.
	Layers []string `json:"layers,omitempty"`
	// Siblings is how many tracks its publisher sends (TrackInfo.Siblings).
	Siblings int `json:"siblings,omitempty"`
}

// record is the store record of a track published on node.
func (i TrackInfo) record(node string) TrackRecord {
	return TrackRecord{ID: i.ID, ParticipantID: i.ParticipantID, Kind: i.Kind, Source: i.Source, Name: i.Name,
		MID: i.MID, Codec: i.Codec, Node: node, Layers: i.Layers, Siblings: i.Siblings}
}

// info is the track a store record describes.
func (t TrackRecord) info() TrackInfo {
	return TrackInfo{ID: t.ID, ParticipantID: t.ParticipantID, Kind: t.Kind, Source: t.Source, Name: t.Name,
		MID: t.MID, Codec: t.Codec, Layers: t.Layers, Siblings: t.Siblings}
}

// RoomState is everything a Store holds about one room, over all nodes.
type RoomState struct {
	Name         string
	Participants []ParticipantRecord // sorted by ID
	Tracks       []TrackRecord       // sorted by ID
	// Viewers is the viewer count of each node that serves the room.
	Viewers map[string]int
}

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
	Participants []ParticipantRecord
	Tracks       []TrackRecord
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

// NodeInfo is one node of the cluster as the registry lists it.
type NodeInfo struct {
	ID           string    `json:"id"`
	Region       string    `json:"region"`
	PublicURL    string    `json:"public_url"`
	RelayAddress string    `json:"relay_address"`
	Rooms        int       `json:"rooms"`
	Participants int       `json:"participants"`
	Viewers      int       `json:"viewers"`
	Tracks       int       `json:"tracks"`
	CPU          float64   `json:"cpu"` // share of the machine's CPUs the process used over the last heartbeat, 0..1
	StartedAt    time.Time `json:"started_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Draining: the node is shutting down; no client or relay is sent to it.
	Draining bool `json:"draining,omitempty"`
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

	PutParticipant(ctx context.Context, room string, p ParticipantRecord) error
	DeleteParticipant(ctx context.Context, room, participantID string) error
	PutTrack(ctx context.Context, room string, t TrackRecord) error
	DeleteTrack(ctx context.Context, room, trackID string) error
	// SetViewers records this node's viewer count of room.
	SetViewers(ctx context.Context, room string, n int) error
	// SyncRoom replaces this node's whole part of room with st, atomically.
	SyncRoom(ctx context.Context, room string, st NodeRoom) error
	// Room returns the state of room over all nodes, or ErrNotFound.
	Room(ctx context.Context, room string) (RoomState, error)
	// Counts returns the room's counters per node (cheaper than Room).
	Counts(ctx context.Context, room string) (RoomCounts, error)
	// DeleteRoom forgets this node's part of room.
	DeleteRoom(ctx context.Context, room string) error
	// Rooms lists the rooms that exist on any node.
	Rooms(ctx context.Context) ([]string, error)

	// ClaimOrigin claims, atomically, that this node is the origin of track
	// in room. It returns the node that holds the claim: this node when the
	// claim was free or already its own, another node otherwise.
	ClaimOrigin(ctx context.Context, room, track string) (string, error)
	// Origin returns the node holding the origin claim of track, or
	// ErrNotFound.
	Origin(ctx context.Context, room, track string) (string, error)
	// ReleaseOrigin gives up this node's claim (another node's is kept).
	ReleaseOrigin(ctx context.Context, room, track string) error

	// Renew extends the leases of this node's rooms and origin claims and
	// reports what was gone.
	Renew(ctx context.Context, l Leases) (Renewal, error)

	// PutNode registers (or refreshes) this node in the registry, under a lease.
	PutNode(ctx context.Context, n NodeInfo) error
	// DeleteNode removes this node from the registry (a clean exit).
	DeleteNode(ctx context.Context) error
	// Nodes lists the live nodes, sorted by ID.
	Nodes(ctx context.Context) ([]NodeInfo, error)

	// Publish sends payload to every subscriber of room, on every node
	// (this one included).
	Publish(ctx context.Context, room string, payload []byte) error
	// Subscribe calls h with each payload published to room until the
	// returned cancel is called. h is called from one goroutine per Store,
	// in publication order per publisher, and must not block.
	Subscribe(room string, h func(payload []byte)) (cancel func(), err error)

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
