package room

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobuzz/live/internal/id"
)

// clusterState is the Manager's side of a shared Store: the heartbeat that
// keeps the node's leases, the repair of state the store lost, and the
// counters operators watch.
type clusterState struct {
	cancel context.CancelFunc
	done   chan struct{}

	// resync asks the next heartbeat to rewrite every room of the node: a
	// write was dropped or failed, or the store was unreachable.
	resync       atomic.Bool
	up           atomic.Bool // the last heartbeat reached the store
	writeErrors  atomic.Uint64
	resyncs      atomic.Uint64
	beats        atomic.Uint64
	beatFailures atomic.Uint64
	latency      latencyHist  // heartbeats that reached the store: PutNode + Renew
	nodes        atomic.Int64 // live nodes at the last heartbeat
	// nodeList is the registry as the last heartbeat read it (relays look
	// their origin up there before asking the store).
	nodeList atomic.Pointer[[]NodeInfo]

	boot string // this process's incarnation, on every event it publishes
	seq  uint64 // last event sequence number; the store writer's alone

	mu      sync.Mutex
	links   map[*Room]*roomLink // pubsub.go
	missing map[string]int      // node -> heartbeats in a row it was not registered
	// reconcile counts the heartbeats that still re-read every room after
	// an outage, in case other nodes re-register later than this one.
	reconcile int
	remote    map[string]remoteCount // room -> participants on other nodes
	// viewersDirty are rooms whose viewer count changed since it was last
	// written.
	viewersDirty map[*Room]bool
	started      time.Time
}

type remoteCount struct {
	n  int
	at time.Time
}

// remoteFresh is how long a room's remote participant count is reused by
// the join path before it is read again: a join storm reads the store once
// a second per room, not once per join. The limit may therefore be passed
// by the joins other nodes admit within that second.
const remoteFresh = time.Second

// viewerFlush is how often changed viewer counts are written.
const viewerFlush = 250 * time.Millisecond

func (m *Manager) storeTimeout() time.Duration { return m.opt.StoreTimeout }

// writeTimeout bounds one queued write: longer than a join-path read (a
// write may carry a whole room), short enough that a dead store does not
// hold the queue for long.
func (m *Manager) writeTimeout() time.Duration {
	if m.opt.Cluster {
		return 4 * m.storeTimeout()
	}
	return 5 * time.Second
}

func (m *Manager) heartbeatInterval() time.Duration { return m.opt.Heartbeat }

// remoteParticipants returns the participants of room on other nodes, for
// the join limit. Alone there are none to count. When the store cannot be
// read (or, without a limit, the last heartbeat failed): a room this node
// serves already (served) uses the last count it read, a new one fails with
// ErrClusterUnavailable: it may live on other nodes, which this node cannot
// see now.
func (m *Manager) remoteParticipants(room string, served bool) (int, error) {
	if !m.opt.Cluster {
		return 0, nil
	}
	if m.opt.Limits.ParticipantsPerRoom <= 0 {
		if !served && !m.cluster.up.Load() {
			return 0, fmt.Errorf("%w: the last heartbeat did not reach the store", ErrClusterUnavailable)
		}
		return 0, nil
	}
	if served {
		// The other nodes publish their counts on the room's channel (at
		// most a second apart, as the cache below ages): no round trip to
		// the store, which for a node far from Redis was most of a join.
		if n, ok := m.linkedMembers(room); ok {
			return n, nil
		}
	}
	c := &m.cluster
	c.mu.Lock()
	last, known := c.remote[room]
	c.mu.Unlock()
	if known && time.Since(last.at) < remoteFresh {
		return last.n, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.storeTimeout())
	counts, err := m.store.Counts(ctx, room)
	cancel()
	if err != nil {
		if served {
			return last.n, nil
		}
		return 0, fmt.Errorf("%w: %w", ErrClusterUnavailable, err)
	}
	n := counts.ParticipantsExcept(m.store.NodeID())
	c.mu.Lock()
	c.remote[room] = remoteCount{n: n, at: time.Now()}
	c.mu.Unlock()
	return n, nil
}

func (m *Manager) startCluster() {
	c := &m.cluster
	c.remote = map[string]remoteCount{}
	c.links = map[*Room]*roomLink{}
	c.missing = map[string]int{}
	c.boot = id.New("b_")
	c.viewersDirty = map[*Room]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	// The first beat runs before NewManager returns, so the node knows
	// whether it reaches the store before its first join.
	cpu := &cpuMeter{}
	cpu.sample()
	m.beat(ctx, cpu)
	go m.heartbeat(ctx, cpu)
}

// stopCluster stops the heartbeat and takes the node out of the registry.
// Its room entries are left to expire (or were deleted as participants
// left).
func (m *Manager) stopCluster() {
	if !m.haltHeartbeat() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.storeTimeout())
	defer cancel()
	if err := m.store.DeleteNode(ctx); err != nil {
		m.log.Warn("cluster: leaving the registry failed; the entry expires", "err", err)
	}
}

// haltHeartbeat stops the heartbeat; it reports whether one was running.
func (m *Manager) haltHeartbeat() bool {
	c := &m.cluster
	if c.cancel == nil {
		return false
	}
	c.cancel()
	<-c.done
	c.cancel = nil
	return true
}

// countsChangedCluster marks r's viewer and participant counts for the
// next flush (the store's viewer count, the counts event other nodes'
// join limit reads).
func (r *Room) countsChangedCluster() {
	c := &r.m.cluster
	if !r.m.opt.Cluster {
		return
	}
	c.mu.Lock()
	c.viewersDirty[r] = true
	c.mu.Unlock()
}

// flushViewers writes the viewer counts that changed, through the ordered
// queue.
func (m *Manager) flushViewers() {
	c := &m.cluster
	c.mu.Lock()
	dirty := c.viewersDirty
	c.viewersDirty = map[*Room]bool{}
	c.mu.Unlock()
	for r := range dirty {
		if m.publishViewers(r) {
			c.mu.Lock()
			c.viewersDirty[r] = true // not yet: the last count left under a second ago
			c.mu.Unlock()
		}
		m.storeOp(storeOp{kind: opSetViewers, room: r.name, prepare: func(op *storeOp) bool {
			if m.Room(r.name) != r {
				return false // removed: writing would bring its entry back
			}
			op.viewers = r.ViewerCount()
			return true
		}})
	}
}

// localRooms returns the node's rooms.
func (m *Manager) localRooms() []*Room {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, r)
	}
	return out
}

// nodeRoom is this node's part of r as the store should hold it.
func (r *Room) nodeRoom() (NodeRoom, []string) {
	node := r.m.opt.NodeID
	r.mu.Lock()
	defer r.mu.Unlock()
	st := NodeRoom{Viewers: r.viewers}
	for _, p := range r.participants {
		if p.spec.Relay {
			continue // another node's relay, not a participant of the room
		}
		st.Participants = append(st.Participants, ParticipantRecord{
			ID: p.id, Identity: p.spec.Identity, Name: p.spec.Name, Publisher: p.spec.Publish, Node: node,
		})
	}
	var origins []string
	for _, t := range r.tracks {
		if t.relay != nil {
			continue // another node's track
		}
		i := t.info
		st.Tracks = append(st.Tracks, i.record(node))
		origins = append(origins, i.ID)
	}
	return st, origins
}

// syncRooms queues the rewrite of rooms in the store: this node's whole
// part of each, read when the write runs (so it is ordered with the writes
// around it), and the origin claims of its tracks.
func (m *Manager) syncRooms(rooms []*Room) bool {
	if len(rooms) == 0 {
		return true
	}
	m.cluster.resyncs.Add(1)
	return m.storeWrite(func(ctx context.Context) error {
		for _, r := range rooms {
			if m.Room(r.name) != r {
				continue // removed meanwhile; its DeleteRoom is queued
			}
			st, origins := r.nodeRoom()
			if err := m.store.SyncRoom(ctx, r.name, st); err != nil {
				return err
			}
			for _, id := range origins {
				holder, err := m.store.ClaimOrigin(ctx, r.name, id)
				if err != nil {
					return err
				}
				if holder != m.store.NodeID() {
					m.log.Warn("cluster: another node holds the origin of a local track", "room", r.name, "track", id, "holder", holder)
				}
			}
		}
		return nil
	})
}

// claimOrigin queues the origin claim of a track that started here.
func (r *Room) claimOrigin(trackID string) {
	if !r.m.opt.Cluster {
		return
	}
	m := r.m
	m.storeOp(storeOp{kind: opClaimOrigin, room: r.name, id: trackID, claimed: func(holder string) {
		if holder != m.store.NodeID() {
			m.log.Warn("cluster: another node holds the origin of a local track", "room", r.name, "track", trackID, "holder", holder)
		}
	}})
}

// releaseOrigin queues the release of a track's origin claim.
func (r *Room) releaseOrigin(trackID string) {
	if !r.m.opt.Cluster {
		return
	}
	r.m.storeOp(storeOp{kind: opReleaseOrigin, room: r.name, id: trackID})
}

// StoreStats are the counters of the node's use of the Store.
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

// latencyHist counts durations lock-free.
type latencyHist struct {
	count, sumNanos atomic.Uint64
	buckets         [11]atomic.Uint64
}

func (h *latencyHist) observe(d time.Duration) {
	h.count.Add(1)
	h.sumNanos.Add(uint64(d))
	for i, b := range LatencyBuckets {
		if d.Seconds() <= b {
			h.buckets[i].Add(1)
		}
	}
}

func (h *latencyHist) snapshot() LatencyHistogram {
	out := LatencyHistogram{Count: h.count.Load(), SumSeconds: time.Duration(h.sumNanos.Load()).Seconds(), Buckets: make([]uint64, len(LatencyBuckets))}
	for i := range out.Buckets {
		out.Buckets[i] = h.buckets[i].Load()
	}
	return out
}

// StoreStats returns the counters.
func (m *Manager) StoreStats() StoreStats {
	c := &m.cluster
	nodes := 1
	if m.opt.Cluster {
		nodes = int(c.nodes.Load())
	}
	return StoreStats{
		QueueDropped: m.dropped.Load(), WriteErrors: c.writeErrors.Load(), Resyncs: c.resyncs.Load(),
		HeartbeatFailures: c.beatFailures.Load(), Nodes: nodes,
		Up: !m.opt.Cluster || c.up.Load(), OriginsLost: m.originsLost.Load(),
		Draining: m.isDraining(), HandOverTimeouts: m.handOverTimeouts.Load(),
		HeartbeatLatency: c.latency.snapshot(),
		RelaysConnected:  m.relaysConnected.Load(), RelaysFailed: m.relayFailures.Load(),
	}
}

// ClusterReady reports whether the node can take cross-node work now: alone
// it always can; in a cluster the last heartbeat must have reached the store.
func (m *Manager) ClusterReady() bool { return !m.opt.Cluster || m.cluster.up.Load() }
