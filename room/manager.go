package room

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/sfu"
)

// Errors returned to signalling, which maps each to a wire code.
var (
	ErrRoomFull       = errors.New("room: room is full")
	ErrDraining       = errors.New("room: node is shutting down")
	ErrForbidden      = errors.New("room: not allowed by the token's grants")
	ErrUnknownTrack   = errors.New("room: unknown track")
	ErrTooManyTracks  = errors.New("room: too many tracks")
	ErrLeft           = errors.New("room: participant has left")
	ErrNoSubscription = errors.New("room: no subscriber connection")
	// ErrRoomRateLimited: the room is over its rate of chat messages and
	// reactions (limits.room_messages_per_second); the message was not sent.
	ErrRoomRateLimited = errors.New("room: too many messages in the room")
)

// Options are the limits and timings of a Manager: its sections of the
// configuration, taken whole, and (below) the cluster's.
type Options struct {
	NodeID string
	// Room: empty_timeout (how long an empty room lingers before it is
	// removed; 0: at once) and republish_grace (how long a track whose
	// publisher's connection was lost waits for the publisher to return,
	// republish.go; 0: it ends at once).
	Room config.RoomConfig
	// Limits: participants_per_room, tracks_per_participant, max_sdp_bytes,
	// max_media_sections, and room_messages_per_second with
	// room_messages_burst (chat and reactions of one room, all its
	// participants together; 0: unlimited). 0 is no limit for each.
	Limits config.LimitsConfig
	Log    *slog.Logger

	// Cluster says the Store is shared with other nodes (Redis): joins count
	// the participants of every node, the node registers itself and renews
	// its leases every Heartbeat, and re-registers its state when the store
	// lost it. Without it the node serves alone, as on the memory store.
	Cluster bool
	// Node is how the registry describes this node (Cluster only).
	Node NodeInfo
	// Heartbeat is the registry and lease renewal period
	// (cluster.heartbeat_interval).
	Heartbeat time.Duration
	// StoreTimeout bounds the Store reads on the join path (redis.timeout).
	StoreTimeout time.Duration
	// RelayDial asks another node for tracks of a room (Cluster only; see
	// relay.go). Without it, other nodes' tracks are listed but not relayed.
	RelayDial RelayDialer
	// RelayGrace is how long a relay stays after the room's last local
	// viewer left (cluster.relay_grace; 0: it closes at once).
	RelayGrace time.Duration
}

// Manager holds the node's rooms. Rooms are created on first join and removed
// EmptyTimeout after the last participant leaves.
type Manager struct {
	engine *sfu.Engine
	store  Store
	opt    Options
	log    *slog.Logger

	mu       sync.Mutex
	rooms    map[string]*Room
	draining bool

	storeMu     sync.Mutex
	storeClosed bool
	writes      chan storeWriteItem // FIFO: one writer keeps Put before Delete (batch.go)
	writerDone  chan struct{}
	dropped     atomic.Uint64

	cluster clusterState // cluster.go

	relayWG         sync.WaitGroup // relay set-ups under way (relay.go)
	relaysDone      bool           // Close waits for relayWG: no more goRelay (guarded by mu)
	relayFailures   atomic.Uint64
	relaysConnected atomic.Uint64
	relayGen        atomic.Uint64
	originsLost     atomic.Uint64 // rooms' origin nodes lost (originlost.go)
	// handOverTimeouts counts drains whose hand-over did not finish (drain.go).
	handOverTimeouts atomic.Uint64
}

// storeQueue is how many Store writes may wait; beyond it (a store that is
// down or slow) writes are dropped and logged, never waited for.
const storeQueue = 4096

// NewManager returns a Manager forwarding media with engine and recording
// shared state in store.
func NewManager(engine *sfu.Engine, store Store, opt Options) *Manager {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	m := &Manager{
		engine: engine, store: store, opt: opt, log: opt.Log, rooms: map[string]*Room{},
		writes: make(chan storeWriteItem, storeQueue), writerDone: make(chan struct{}),
	}
	m.cluster.started = time.Now()
	go m.writer()
	if opt.Cluster {
		m.startCluster()
	}
	return m
}

func (m *Manager) isDraining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.draining
}

// Join adds a participant to the room name, creating the room if needed. In
// a cluster the room's participants on other nodes count against
// ParticipantsPerRoom; when the cluster state cannot be read, a room this
// node does not serve yet is refused with ErrClusterUnavailable (retryable).
func (m *Manager) Join(name string, spec ParticipantSpec, sink EventSink) (*Participant, error) {
	m.mu.Lock()
	if m.draining {
		m.mu.Unlock()
		return nil, ErrDraining
	}
	served := m.rooms[name] != nil && !m.rooms[name].empty()
	m.mu.Unlock()
	remote, err := m.remoteParticipants(name, served)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.draining {
		m.mu.Unlock()
		return nil, ErrDraining
	}
	r := m.rooms[name]
	if r == nil {
		r = newRoom(m, name)
		m.rooms[name] = r
		m.log.Info("room created", "room", name)
		m.linkRoom(r)
	}
	m.mu.Unlock()
	p, err := r.join(spec, sink, remote)
	if err == nil && !spec.Relay {
		r.countsChangedCluster() // the participant count other nodes read (linkedMembers)
	}
	return p, err
}

// Room returns the room called name, or nil.
func (m *Manager) Room(name string) *Room {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rooms[name]
}

// removeIfEmpty drops r if it is still empty; called by its timer.
func (m *Manager) removeIfEmpty(r *Room) {
	m.mu.Lock()
	if m.rooms[r.name] != r || !r.empty() {
		m.mu.Unlock()
		return
	}
	delete(m.rooms, r.name)
	m.mu.Unlock()
	r.closeRelays()
	m.unlinkRoom(r)
	m.log.Info("room removed", "room", r.name)
	m.storeWrite(func(ctx context.Context) error { return m.store.DeleteRoom(ctx, r.name) })
}

// storeWrite queues a Store write off the caller's path: media and
// signalling must not wait on a networked store. Writes are applied in the
// order they were queued, by one goroutine, so a participant's record is
// never deleted before it was put. A failure or a full queue is logged and
// counted (StoreStats), not fatal: the node then rewrites its whole state
// on its next heartbeat (re-registration), so nothing stays lost. It
// reports whether f was queued.
func (m *Manager) storeWrite(f func(context.Context) error) bool {
	return m.enqueue(storeWriteItem{f: f})
}

func (m *Manager) enqueue(it storeWriteItem) bool {
	m.storeMu.Lock()
	defer m.storeMu.Unlock()
	if m.storeClosed {
		return false // the node is stopping; its records expire with it
	}
	select {
	case m.writes <- it:
		return true
	default:
		m.cluster.resync.Store(true)
		if m.dropped.Add(1)%100 == 1 {
			m.log.Warn("room store queue full, dropping writes; state is rewritten at the next heartbeat",
				"dropped", m.dropped.Load())
		}
		return false
	}
}

// Stats counts what the node serves now.
type Stats struct {
	Rooms, Publishers, Viewers, Participants, Tracks int
	// Relays are other nodes' relay connections pulling tracks from here
	// (not counted as participants).
	Relays int
}

// Stats returns the current counts.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	rooms := make([]*Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	s := Stats{Rooms: len(rooms)}
	for _, r := range rooms {
		r.mu.Lock()
		for _, t := range r.tracks {
			if t.relay == nil { // a relayed copy is counted on its origin
				s.Tracks++
			}
		}
		for _, p := range r.participants {
			if p.spec.Relay {
				s.Relays++
				continue
			}
			s.Participants++
			if p.publisher != nil {
				s.Publishers++
			}
		}
		s.Viewers += r.viewers
		r.mu.Unlock()
	}
	return s
}

// Drain refuses new joins from now on and removes every participant, each
// receiving a Closed event with ErrDraining. In a cluster it hands over
// first (drain.go). It returns when all have left or ctx ends.
func (m *Manager) Drain(ctx context.Context) error {
	m.mu.Lock()
	m.draining = true
	m.mu.Unlock()
	if m.opt.Cluster {
		m.handOver(ctx)
	}
	m.mu.Lock()
	rooms := make([]*Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, r := range rooms {
			for _, p := range r.list() {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p.sink.Event(Closed{Reason: ErrDraining})
					p.Leave()
				}()
			}
		}
		wg.Wait()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the room timers and waits for store writes in flight. Call
// after Drain.
func (m *Manager) Close() {
	m.mu.Lock()
	var closing []*Room
	for name, r := range m.rooms {
		r.stopTimers()
		delete(m.rooms, name)
		closing = append(closing, r)
	}
	m.draining = true // no relay is started any more
	m.relaysDone = true
	m.mu.Unlock()
	m.relayWG.Wait()
	for _, r := range closing {
		r.closeRelays()
	}
	m.stopCluster()
	m.storeMu.Lock()
	if !m.storeClosed {
		m.storeClosed = true
		close(m.writes)
	}
	m.storeMu.Unlock()
	<-m.writerDone
}
