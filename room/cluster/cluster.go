package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobuzz/live/internal/id"
	"github.com/halobuzz/live/room"
)

// Options are a Cluster's timings.
type Options struct {
	// NodeID is this node (the Store writes for it too).
	NodeID string
	// Heartbeat is the registry and lease renewal period
	// (cluster.heartbeat_interval).
	Heartbeat time.Duration
	// StoreTimeout bounds the store reads on the join path (redis.timeout).
	StoreTimeout time.Duration
	Log          *slog.Logger
}

// Cluster links a node's rooms to the other nodes through a shared Store: it
// implements room.Cluster. Its heartbeat registers the node and renews its
// leases, re-registering whatever the store lost; room events cross nodes on
// each room's channel (pubsub.go); its writes go through one ordered queue
// (batch.go).
type Cluster struct {
	store Store
	opt   Options
	log   *slog.Logger
	m     *room.Manager // set by Start

	cancel context.CancelFunc
	done   chan struct{}

	storeMu     sync.Mutex
	storeClosed bool
	writes      chan writeItem // FIFO: one writer keeps Put before Delete (batch.go)
	writerDone  chan struct{}
	writing     bool // the writer runs (Start)
	dropped     atomic.Uint64

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
	nodeList atomic.Pointer[[]room.NodeInfo]

	boot string // this process's incarnation, on every event it publishes
	seq  uint64 // last event sequence number; the store writer's alone

	mu      sync.Mutex
	links   map[*room.Room]*roomLink // pubsub.go
	missing map[string]int           // node -> heartbeats in a row it was not registered
	lost    map[string]time.Time     // node -> when it was declared lost (forgetNodes), to notice its return
	// reconcile counts the heartbeats that still re-read every room after
	// an outage, in case other nodes re-register later than this one.
	reconcile int
	remote    map[string]remoteCount // room -> participants on other nodes
	// viewersDirty are rooms whose viewer count changed since it was last
	// written.
	viewersDirty map[*room.Room]bool

	mod modState // moderation requests of other nodes (moderation.go)
}

var _ room.Cluster = (*Cluster)(nil)

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

// storeQueue is how many Store writes may wait; beyond it (a store that is
// down or slow) writes are dropped and logged, never waited for.
const storeQueue = 4096

// New returns the cluster of the node opt.NodeID on store. It does nothing
// until the room Manager starts it (room.Options.Cluster).
func New(store Store, opt Options) *Cluster {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	c := &Cluster{
		store: store, opt: opt, log: opt.Log,
		writes: make(chan writeItem, storeQueue), writerDone: make(chan struct{}),
		remote: map[string]remoteCount{}, links: map[*room.Room]*roomLink{}, missing: map[string]int{}, lost: map[string]time.Time{},
		viewersDirty: map[*room.Room]bool{}, boot: id.New("b_"),
	}
	return c
}

// Start begins the node's part in the cluster: the write queue and the
// heartbeat, whose first beat runs before Start returns, so the node knows
// whether it reaches the store before its first join.
func (c *Cluster) Start(m *room.Manager) {
	c.m = m
	c.startWriter()
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	cpu := &cpuMeter{}
	cpu.sample()
	c.beat(ctx, cpu)
	go c.heartbeat(ctx, cpu)
}

// Close stops the heartbeat, takes the node out of the registry (its room
// entries are left to expire, or were deleted as participants left), and
// waits for the writes queued before.
func (c *Cluster) Close() {
	if c.haltHeartbeat() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opt.StoreTimeout)
		if err := c.store.DeleteNode(ctx); err != nil {
			c.log.Warn("cluster: leaving the registry failed; the entry expires", "err", err)
		}
		cancel()
	}
	c.mod.stop() // moderation applied for other nodes: its acks go before the queue closes
	c.storeMu.Lock()
	started := c.writing
	if !c.storeClosed {
		c.storeClosed = true
		close(c.writes)
	}
	c.storeMu.Unlock()
	if started {
		<-c.writerDone
	}
}

// startWriter starts the goroutine that runs the write queue.
func (c *Cluster) startWriter() {
	c.storeMu.Lock()
	c.writing = true
	c.storeMu.Unlock()
	go c.writer()
}

// haltHeartbeat stops the heartbeat; it reports whether one was running.
func (c *Cluster) haltHeartbeat() bool {
	if c.cancel == nil {
		return false
	}
	c.cancel()
	<-c.done
	c.cancel = nil
	return true
}

// writeTimeout bounds one queued write: longer than a join-path read (a
// write may carry a whole room), short enough that a dead store does not
// hold the queue for long.
func (c *Cluster) writeTimeout() time.Duration { return 4 * c.opt.StoreTimeout }

// Ready reports whether the last heartbeat reached the store.
func (c *Cluster) Ready() bool { return c.up.Load() }

// Members returns the participants of room on other nodes, for the join
// limit. When the store cannot be read, a room this node serves already
// (served) uses the last count it read; a new one fails with
// room.ErrClusterUnavailable.
func (c *Cluster) Members(name string, served bool) (int, error) {
	if served {
		// The other nodes publish their counts on the room's channel (at
		// most a second apart, as the cache below ages): no round trip to
		// the store, which for a node far from Redis was most of a join.
		if r := c.m.Room(name); r != nil && c.link(r) != nil {
			if n, ok := r.RemoteMembers(); ok {
				return n, nil
			}
		}
	}
	c.mu.Lock()
	last, known := c.remote[name]
	c.mu.Unlock()
	if known && time.Since(last.at) < remoteFresh {
		return last.n, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opt.StoreTimeout)
	counts, err := c.store.Counts(ctx, name)
	cancel()
	if err != nil {
		if served {
			return last.n, nil
		}
		return 0, fmt.Errorf("%w: %w", room.ErrClusterUnavailable, err)
	}
	n := counts.ParticipantsExcept(c.store.NodeID())
	c.mu.Lock()
	c.remote[name] = remoteCount{n: n, at: time.Now()}
	c.mu.Unlock()
	return n, nil
}

// CountsChanged marks r's viewer and participant counts for the next flush
// (the store's viewer count, the counts event other nodes' join limit
// reads).
func (c *Cluster) CountsChanged(r *room.Room) {
	c.mu.Lock()
	c.viewersDirty[r] = true
	c.mu.Unlock()
}

// flushViewers writes the viewer counts that changed, through the ordered
// queue.
func (c *Cluster) flushViewers() {
	c.mu.Lock()
	dirty := c.viewersDirty
	c.viewersDirty = map[*room.Room]bool{}
	c.mu.Unlock()
	for r := range dirty {
		if c.publishViewers(r) {
			c.mu.Lock()
			c.viewersDirty[r] = true // not yet: the last count left under a second ago
			c.mu.Unlock()
		}
		c.storeOp(storeOp{kind: opSetViewers, room: r.Name(), prepare: func(op *storeOp) bool {
			if c.m.Room(r.Name()) != r {
				return false // removed: writing would bring its entry back
			}
			op.viewers, _ = r.LocalCounts()
			return true
		}})
	}
}

// ParticipantJoined queues the record of a participant of room here.
func (c *Cluster) ParticipantJoined(name string, p room.ParticipantRecord) {
	c.storeOp(storeOp{kind: opPutParticipant, room: name, participant: p})
}

// ParticipantLeft queues the deletion of a participant's record.
func (c *Cluster) ParticipantLeft(name, id string) {
	c.storeOp(storeOp{kind: opDeleteParticipant, room: name, id: id})
}

// TrackStarted queues the record of a track that started here, and its
// origin claim.
func (c *Cluster) TrackStarted(name string, t room.TrackRecord) {
	c.storeOp(storeOp{kind: opPutTrack, room: name, track: t})
	c.storeOp(storeOp{kind: opClaimOrigin, room: name, id: t.ID, claimed: func(holder string) {
		if holder != c.store.NodeID() {
			c.log.Warn("cluster: another node holds the origin of a local track", "room", name, "track", t.ID, "holder", holder)
		}
	}})
}

// TrackEnded queues the deletion of a track's record and the release of its
// origin claim.
func (c *Cluster) TrackEnded(name, id string) {
	c.storeOp(storeOp{kind: opDeleteTrack, room: name, id: id})
	c.storeOp(storeOp{kind: opReleaseOrigin, room: name, id: id})
}

// RoomRemoved ends r's subscription and forgets this node's part of it.
func (c *Cluster) RoomRemoved(r *room.Room) {
	c.unlinkRoom(r)
	c.storeWrite(func(ctx context.Context) error { return c.store.DeleteRoom(ctx, r.Name()) })
}

// syncRooms queues the rewrite of rooms in the store: this node's whole
// part of each, read when the write runs (so it is ordered with the writes
// around it), and the origin claims of its tracks.
func (c *Cluster) syncRooms(rooms []*room.Room) bool {
	if len(rooms) == 0 {
		return true
	}
	c.resyncs.Add(1)
	return c.storeWrite(func(ctx context.Context) error {
		for _, r := range rooms {
			if c.m.Room(r.Name()) != r {
				continue // removed meanwhile; its DeleteRoom is queued
			}
			part := r.LocalPart()
			st := NodeRoom{Participants: part.Participants, Tracks: part.Tracks, Viewers: part.Viewers}
			if err := c.store.SyncRoom(ctx, r.Name(), st); err != nil {
				return err
			}
			for _, t := range part.Tracks {
				holder, err := c.store.ClaimOrigin(ctx, r.Name(), t.ID)
				if err != nil {
					return err
				}
				if holder != c.store.NodeID() {
					c.log.Warn("cluster: another node holds the origin of a local track", "room", r.Name(), "track", t.ID, "holder", holder)
				}
			}
		}
		return nil
	})
}

// Nodes lists the live nodes of the cluster, read from the store.
func (c *Cluster) Nodes(ctx context.Context) ([]room.NodeInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.StoreTimeout)
	defer cancel()
	return c.store.Nodes(ctx)
}

// Node returns the registry entry of node id: as the last heartbeat read it
// (at most a heartbeat old), else from the store.
func (c *Cluster) Node(ctx context.Context, id string) (*room.NodeInfo, error) {
	find := func(nodes []room.NodeInfo) *room.NodeInfo {
		for i := range nodes {
			if nodes[i].ID == id {
				return &nodes[i]
			}
		}
		return nil
	}
	if known := c.nodeList.Load(); known != nil {
		// An entry without an address was read before the node announced
		// its listener (SetPublicURL): ask the store.
		if n := find(*known); n != nil && (n.PublicURL != "" || n.RelayAddress != "") {
			return n, nil
		}
	}
	nodes, err := c.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	if n := find(nodes); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("node %q is not registered", id)
}

// Announce queues this node's registry entry now.
func (c *Cluster) Announce() {
	c.storeWrite(func(ctx context.Context) error { return c.store.PutNode(ctx, c.nodeInfo(0)) })
}

// nodeInfo is the node's registry entry now.
func (c *Cluster) nodeInfo(cpu float64) room.NodeInfo {
	n := c.m.NodeInfo()
	n.CPU = cpu
	return n
}

// Gone tells the other nodes of every room here that this node leaves.
func (c *Cluster) Gone() {
	for r := range c.linkedRooms() {
		c.publish(r, wireEvent{Type: evNodeGone})
	}
}

// Stats returns the cluster's counters.
func (c *Cluster) Stats() room.ClusterStats {
	return room.ClusterStats{
		QueueDropped: c.dropped.Load(), WriteErrors: c.writeErrors.Load(), Resyncs: c.resyncs.Load(),
		HeartbeatFailures: c.beatFailures.Load(), Nodes: int(c.nodes.Load()), Up: c.up.Load(),
		HeartbeatLatency: c.latency.snapshot(),
	}
}

// latencyHist counts durations lock-free.
type latencyHist struct {
	count, sumNanos atomic.Uint64
	buckets         [11]atomic.Uint64
}

func (h *latencyHist) observe(d time.Duration) {
	h.count.Add(1)
	h.sumNanos.Add(uint64(d))
	for i, b := range room.LatencyBuckets {
		if d.Seconds() <= b {
			h.buckets[i].Add(1)
		}
	}
}

func (h *latencyHist) snapshot() room.LatencyHistogram {
	out := room.LatencyHistogram{Count: h.count.Load(), SumSeconds: time.Duration(h.sumNanos.Load()).Seconds(), Buckets: make([]uint64, len(room.LatencyBuckets))}
	for i := range out.Buckets {
		out.Buckets[i] = h.buckets[i].Load()
	}
	return out
}

// storeWrite queues a Store write off the caller's path: media and
// signalling must not wait on a networked store. Writes are applied in the
// order they were queued, by one goroutine, so a participant's record is
// never deleted before it was put. A failure or a full queue is logged and
// counted (Stats), not fatal: the node then rewrites its whole state on its
// next heartbeat (re-registration), so nothing stays lost. It reports
// whether f was queued.
func (c *Cluster) storeWrite(f func(context.Context) error) bool {
	return c.enqueue(writeItem{f: f})
}

func (c *Cluster) enqueue(it writeItem) bool {
	c.storeMu.Lock()
	defer c.storeMu.Unlock()
	if c.storeClosed {
		return false // the node is stopping; its records expire with it
	}
	select {
	case c.writes <- it:
		return true
	default:
		c.resync.Store(true)
		if c.dropped.Add(1)%100 == 1 {
			c.log.Warn("room store queue full, dropping writes; state is rewritten at the next heartbeat",
				"dropped", c.dropped.Load())
		}
		return false
	}
}

// readRoom reads the room name from the store; a room the store does not
// hold is an empty one.
func (c *Cluster) readRoom(ctx context.Context, name string) (room.RoomState, error) {
	st, err := c.store.Room(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return room.RoomState{Name: name}, nil
	}
	return st, err
}
