package room

import (
	"context"
	"time"
)

// Cluster is room's port to the other nodes of a cluster. Package
// room/cluster implements it over a shared Store (Redis) and the node wires
// it (Options.Cluster); a node alone has none, and runs no cluster code.
//
// Outbound, the Manager and its rooms tell the cluster what happens here:
// records to share, events to publish, origins to claim and release, counts
// that changed. None of these calls waits for the network: the cluster
// queues them. Inbound, the cluster tells a room what happens on the other
// nodes through the Room's Remote* methods (remote.go), which keep the
// room's view of them and announce the changes to its clients.
type Cluster interface {
	// Start is called once, by NewManager, before it returns: the cluster
	// may read m (its rooms and counts) from then on, until Close.
	Start(m *Manager)
	// Close stops the cluster's work, takes the node out of the registry
	// and waits for the writes queued before it.
	Close()
	// Ready reports that the last contact with the shared state succeeded.
	Ready() bool
	// Stats returns the cluster's own counters.
	Stats() ClusterStats

	// RoomCreated: this node serves r from now on. The cluster reads what
	// other nodes hold of it (Room.RemoteState, then Room.RemoteRead) and
	// passes their events on.
	RoomCreated(r *Room)
	// RoomRemoved: r is gone from this node.
	RoomRemoved(r *Room)
	// Members returns the participants of room on other nodes, for the join
	// limit; served tells that this node serves the room already (a count
	// it read before may then do). It fails with ErrClusterUnavailable when
	// it cannot tell.
	Members(room string, served bool) (int, error)
	// CountsChanged: r's viewer or participant count on this node changed.
	CountsChanged(r *Room)

	// ParticipantJoined and ParticipantLeft record a participant of room on
	// this node (not another node's relay).
	ParticipantJoined(room string, p ParticipantRecord)
	ParticipantLeft(room, id string)
	// TrackStarted records a track this node publishes, and claims its
	// origin; TrackEnded forgets it and releases the claim.
	TrackStarted(room string, t TrackRecord)
	TrackEnded(room, id string)
	// Share publishes, for the other nodes' clients, events this node just
	// delivered to its own. It is called under the room's broadcast order,
	// so they leave in the room's order.
	Share(r *Room, evs ...Event)

	// Nodes lists the live nodes, and Node finds one (the registry entry a
	// relay dials).
	Nodes(ctx context.Context) ([]NodeInfo, error)
	Node(ctx context.Context, id string) (*NodeInfo, error)
	// Announce writes this node's registry entry now (Manager.NodeInfo),
	// rather than at the next heartbeat: its address is known, or it drains.
	Announce()
	// Gone tells the other nodes of every room here that this node leaves:
	// what it still publishes is lost to them now (the end of a drain).
	Gone()
}

// ClusterStats are the counters of the cluster's use of its shared state.
type ClusterStats struct {
	QueueDropped, WriteErrors, Resyncs, HeartbeatFailures uint64
	// Nodes is the number of live nodes at the last heartbeat.
	Nodes int
	// Up: the last heartbeat reached the store.
	Up               bool
	HeartbeatLatency LatencyHistogram
}

// StoreStats are the counters of the node's part in the cluster.
type StoreStats struct {
	// QueueDropped counts writes dropped because the queue was full.
	QueueDropped uint64
	// WriteErrors counts writes the store refused or did not answer.
	WriteErrors uint64
	// Resyncs counts rewrites of the node's state (re-registration).
	Resyncs uint64
	// HeartbeatFailures counts heartbeats that did not reach the store.
	HeartbeatFailures uint64
	// Nodes is the number of live nodes in the registry at the last
	// heartbeat that read it (1 for a node alone).
	Nodes int
	// Up reports that the last heartbeat reached the store (always true
	// for a node that serves alone).
	Up bool
	// OriginsLost counts the times a room here lost the node that
	// published its tracks (it died or drained).
	OriginsLost uint64
	// Draining reports that the node is shutting down.
	Draining bool
	// HandOverTimeouts counts drains that ended before their clients and
	// relays were handed over.
	HandOverTimeouts uint64
	// RelaysConnected counts the relay connections this node set up to
	// origin nodes (one per origin and room, and one more each time the
	// origin starts a track the relay does not carry); RelaysFailed those
	// that could not be (each is retried while it is needed).
	RelaysConnected, RelaysFailed uint64
	// RelaysSilent counts relays found silent after this process resumed
	// from a stall, dropped and asked for again (relay_stall.go).
	RelaysSilent uint64
	// RelaysMediaLost counts relays whose packets stopped arriving while
	// their origin reported sending them, dropped and asked for again
	// (relay_watch.go).
	RelaysMediaLost uint64
	// HeartbeatLatency is how long the heartbeats that reached the store
	// took (registry entry and lease renewal: two round trips to Redis).
	HeartbeatLatency LatencyHistogram
}

// LatencyBuckets are the upper bounds, in seconds, of LatencyHistogram.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// LatencyHistogram is a cumulative histogram over LatencyBuckets.
type LatencyHistogram struct {
	Count      uint64
	SumSeconds float64
	Buckets    []uint64 // observations at or below each bound
}

// StoreStats returns the counters.
func (m *Manager) StoreStats() StoreStats {
	s := StoreStats{
		Nodes: 1, Up: true, HeartbeatLatency: LatencyHistogram{Buckets: make([]uint64, len(LatencyBuckets))},
		OriginsLost: m.originsLost.Load(), Draining: m.isDraining(), HandOverTimeouts: m.handOverTimeouts.Load(),
		RelaysConnected: m.relaysConnected.Load(), RelaysFailed: m.relayFailures.Load(),
		RelaysSilent: m.relaysSilent.Load(), RelaysMediaLost: m.relaysMediaLost.Load(),
	}
	if m.cluster != nil {
		c := m.cluster.Stats()
		s.QueueDropped, s.WriteErrors, s.Resyncs, s.HeartbeatFailures = c.QueueDropped, c.WriteErrors, c.Resyncs, c.HeartbeatFailures
		s.Nodes, s.Up, s.HeartbeatLatency = c.Nodes, c.Up, c.HeartbeatLatency
	}
	return s
}

// ClusterReady reports whether the node can take cross-node work now: alone
// it always can; in a cluster the last heartbeat must have reached the store.
func (m *Manager) ClusterReady() bool { return m.cluster == nil || m.cluster.Ready() }

// NodeInfo is this node's registry entry now, without its CPU share (the
// cluster measures it).
func (m *Manager) NodeInfo() NodeInfo {
	s := m.Stats()
	m.mu.Lock()
	n := m.opt.Node
	m.mu.Unlock()
	n.ID = m.opt.NodeID
	n.Rooms, n.Participants, n.Viewers, n.Tracks = s.Rooms, s.Participants, s.Viewers, s.Tracks
	n.StartedAt = m.started.UTC().Truncate(time.Second)
	n.UpdatedAt = time.Now().UTC()
	n.Draining = m.isDraining()
	n.Full = m.Full()
	n.Trunks = m.opt.RelayTrunks
	return n
}

// Nodes lists the live nodes of the cluster (this one alone when it serves
// alone).
func (m *Manager) Nodes(ctx context.Context) ([]NodeInfo, error) {
	if m.cluster == nil {
		return []NodeInfo{m.NodeInfo()}, nil
	}
	return m.cluster.Nodes(ctx)
}

// Region returns the region of this node.
func (m *Manager) Region() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opt.Node.Region
}

// SetPublicURL sets the URL the registry announces for this node, once its
// listener is bound (a configured http.public_url needs no call).
func (m *Manager) SetPublicURL(u string) {
	m.mu.Lock()
	m.opt.Node.PublicURL = u
	m.mu.Unlock()
	if m.cluster != nil {
		// Announce it now rather than at the next heartbeat: until then
		// other nodes cannot reach this one (relays, redirects).
		m.cluster.Announce()
	}
}

// NodeID returns the id of this node.
func (m *Manager) NodeID() string { return m.opt.NodeID }

// Rooms returns the node's rooms.
func (m *Manager) Rooms() []*Room {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, r)
	}
	return out
}
