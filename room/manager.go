package room

import (
	"context"
	"errors"
	"fmt"
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
// configuration, taken whole, and its part in a cluster.
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
	// Node is how the registry describes this node (its ID is NodeID).
	Node NodeInfo
	// MaxViewers and MaxCPU (percent of the machine) are node.max_viewers
	// and node.max_cpu: past either, new joins are refused (admission.go).
	// 0 is no limit.
	MaxViewers, MaxCPU int

	// Cluster links the node to the other nodes (package room/cluster);
	// nil for a node that serves alone.
	Cluster Cluster
	// RelayDial asks another node for tracks of a room (a cluster only;
	// see relay.go). Without it, other nodes' tracks are listed but not
	// relayed.
	RelayDial RelayDialer
	// RelayGrace is how long a relay stays after the room's last local
	// viewer left (cluster.relay_grace; 0: it closes at once).
	RelayGrace time.Duration
	// RelayTrunks is cluster.relay_trunks: relays from an origin that
	// serves trunks ride on one trunk per origin (relay_trunk.go); others
	// are a connection per room.
	RelayTrunks bool
}

// Manager holds the node's rooms. Rooms are created on first join and removed
// EmptyTimeout after the last participant leaves.
type Manager struct {
	engine  *sfu.Engine
	ownsEng bool    // the engine is the Manager's own (NewStandalone): Close closes it
	cluster Cluster // nil alone
	opt     Options
	log     *slog.Logger
	started time.Time

	observer observerSlot // who is told what happens here (observe.go)

	adm admission // node.max_viewers, node.max_cpu (admission.go)

	mu       sync.Mutex // guards rooms, draining, relaysDone and opt.Node
	rooms    map[string]*Room
	draining bool

	relayWG         sync.WaitGroup // relay set-ups under way (relay.go)
	relaysDone      bool           // Close waits for relayWG: no more goRelay (guarded by mu)
	relayFailures   atomic.Uint64
	relaysConnected atomic.Uint64
	relaysSilent    atomic.Uint64
	relaysMediaLost atomic.Uint64
	trunksOpened    atomic.Uint64
	// The loop that opens trunks ahead of need (relay_trunk_preopen.go).
	preopenStop, preopenDone chan struct{}
	// The loop that watches relays for media lost on the way (relay_watch.go).
	watchStop, watchDone chan struct{}
	relayGen             atomic.Uint64
	trunkOnce            sync.Once
	trunks               *trunks       // the relay trunks to and from other nodes (relay_trunk.go)
	originsLost          atomic.Uint64 // rooms' origin nodes lost (originlost.go)
	// handOverTimeouts counts drains whose hand-over did not finish (drain.go).
	handOverTimeouts atomic.Uint64
	// drainTo is the public URL a draining node sends new sessions to (drain.go).
	drainTo atomic.Pointer[string]
	// mod keeps the bans known here and counts moderation (moderation.go).
	mod moderation
}

// NewManager returns a Manager forwarding media with engine, linked to the
// other nodes by opt.Cluster when it is set.
func NewManager(engine *sfu.Engine, opt Options) *Manager {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	m := &Manager{engine: engine, cluster: opt.Cluster, opt: opt, log: opt.Log, rooms: map[string]*Room{}, started: time.Now()}
	if engine != nil {
		engine.OnResume(m.probeRelaysAfterStall)
	}
	if m.cluster != nil {
		m.cluster.Start(m)
		if engine != nil {
			m.startRelayWatch()
		}
		if opt.RelayTrunks && opt.RelayDial != nil {
			m.startTrunkPreopen()
		}
	}
	return m
}

// NewStandalone returns a Manager with a media engine of its own, built
// from cfg and closed by the Manager's Close: for a package that drives
// rooms without wiring the media plane (signalling's tests), so that it
// speaks room's vocabulary only. The node wires its engine itself.
func NewStandalone(cfg config.SFUConfig, opt Options) (*Manager, error) {
	e, err := sfu.NewEngine(cfg, opt.Log)
	if err != nil {
		return nil, err
	}
	m := NewManager(e, opt)
	m.ownsEng = true
	return m, nil
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
	if err := m.checkBan(name, spec); err != nil {
		return nil, err
	}
	if !spec.Relay {
		if full, why := m.full(true); full {
			m.log.Debug("join refused: the node is full", "room", name, "limit", why)
			return nil, ErrNodeFull
		}
	}
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
		if m.cluster != nil {
			m.cluster.RoomCreated(r)
		}
		m.observe(Happening{Kind: RoomServed, Room: name})
	}
	m.mu.Unlock()
	p, err := r.join(spec, sink, remote)
	if err == nil && !spec.Relay {
		r.countsChanged() // the participant count other nodes read
	}
	return p, err
}

// Room returns the room called name, or nil.
func (m *Manager) Room(name string) *Room {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rooms[name]
}

// remoteParticipants returns the participants of room on other nodes, for
// the join limit. Alone there are none to count. When the cluster cannot
// tell, a room this node does not serve yet (served) is refused with
// ErrClusterUnavailable: it may live on other nodes, which this node cannot
// see now.
func (m *Manager) remoteParticipants(room string, served bool) (int, error) {
	if m.cluster == nil {
		return 0, nil
	}
	if m.opt.Limits.ParticipantsPerRoom <= 0 {
		if !served && !m.cluster.Ready() {
			return 0, fmt.Errorf("%w: the last heartbeat did not reach the store", ErrClusterUnavailable)
		}
		return 0, nil
	}
	return m.cluster.Members(room, served)
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
	r.remove()
	if m.cluster != nil {
		m.cluster.RoomRemoved(r)
	}
	m.observe(Happening{Kind: RoomUnserved, Room: r.name})
	m.log.Info("room removed", "room", r.name)
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
	m.observe(Happening{Kind: NodeDrainingHere})
	if m.cluster != nil {
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

// Close stops the room timers and the cluster's work (which waits for its
// writes in flight). Call after Drain.
func (m *Manager) Close() {
	if m.engine != nil {
		m.engine.OnResume(nil)
	}
	m.stopTrunkPreopen()
	m.stopRelayWatch()
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
		r.remove()
	}
	m.closeTrunks()
	if m.cluster != nil {
		m.cluster.Close()
	}
	if m.ownsEng {
		m.engine.Close()
	}
}
