package room

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Moderation: what the server API does to a room (signaling/api_moderation.go).
// A call on any node applies its action here, and in a cluster on every other
// node serving the room (the Cluster's Moderator), and answers once each has
// applied it. Bans are kept in the shared state (Redis, under a TTL) and in
// each node's memory, so they hold on every node whatever token is presented.

// Errors of moderation.
var (
	// ErrBanned refuses a banned identity's join, or a broadcast in a room
	// ended with a ban.
	ErrBanned = errors.New("room: banned from this room")
	// ErrRemoved is what a Removal wraps: the session ended because a
	// moderator removed the participant or ended the room.
	ErrRemoved = errors.New("room: removed by a moderator")
	// ErrNoParticipant: nobody in the room has the identity.
	ErrNoParticipant = errors.New("room: no such participant in the room")
	// ErrBadAction: an action the room cannot apply (unknown kind, a
	// missing identity).
	ErrBadAction = errors.New("room: bad moderation action")
	// ErrNoChange: a grants change found the participant with those grants
	// already, on every node.
	ErrNoChange = errors.New("room: the participant has these grants already")
)

// Removal is the reason of the Closed event of a participant a moderator
// removed: the client is told why, and until when it is banned.
type Removal struct {
	Reason string
	// Until is the end of the ban (zero: not banned).
	Until time.Time
	// RoomEnded: the whole room was ended.
	RoomEnded bool
}

// Error describes the removal.
func (r *Removal) Error() string {
	if r.RoomEnded {
		return "room: the room was ended by a moderator: " + r.Reason
	}
	return "room: removed by a moderator: " + r.Reason
}

// Unwrap makes a Removal an ErrRemoved.
func (r *Removal) Unwrap() error { return ErrRemoved }

// Kinds of moderation action.
const (
	// ActRemove removes every participant with Action.Identity (and bans
	// it until Action.BanUntil).
	ActRemove = "remove"
	// ActEnd removes everyone (and refuses broadcasts until BanUntil).
	ActEnd = "end"
	// ActMessage sends Action.Text to everyone, or to Action.Identity.
	ActMessage = "message"
	// ActGrants changes Action.Identity's grants live (Action.Publish,
	// Action.Subscribe).
	ActGrants = "grants"
	// ActMute and ActUnmute stop and resume forwarding Action.Track to
	// everyone; ActUnpublish ends it (the node it is published on applies
	// them).
	ActMute      = "mute"
	ActUnmute    = "unmute"
	ActUnpublish = "unpublish"
)

// Action is one moderation action on a room.
type Action struct {
	Kind     string
	Identity string
	Reason   string
	Text     string
	BanUntil time.Time
	// Publish and Subscribe are the grants an ActGrants sets.
	Publish, Subscribe bool
	// Track is the track id an ActMute, ActUnmute or ActUnpublish acts on.
	Track string
}

// Events of moderation.
type (
	// SystemMessage: a message from the app or a moderator, not from a
	// participant.
	SystemMessage struct{ Text string }
	// PermissionsChanged: the participant's grants changed live; a
	// promoted participant may publish on its connection now.
	PermissionsChanged struct{ Publish, Subscribe bool }
	// TrackMuted: a moderator muted (Muted) or unmuted a track: nothing of
	// it reaches anyone meanwhile. Everyone in the room is told, its
	// publisher too.
	TrackMuted struct {
		TrackID, ParticipantID string
		Muted                  bool
	}
)

func (SystemMessage) event()      {}
func (PermissionsChanged) event() {}
func (TrackMuted) event()         {}

// NodeResult is what one node did of an action: how many of its
// participants it affected.
type NodeResult struct {
	Node     string
	Affected int
	// Changed counts, for a grants change, the participants whose grants
	// it changed (the others had them already).
	Changed int
}

// ModerationResult is an action's outcome over the cluster.
type ModerationResult struct {
	// Applied lists the nodes that applied it (this one first).
	Applied []NodeResult
	// Failed lists the nodes serving the room that did not answer in time.
	Failed []string
	// Affected and Changed add up Applied.
	Affected, Changed int
}

// Moderator is implemented by a Cluster that carries moderation to the
// other nodes and keeps bans in the shared state.
type Moderator interface {
	// Moderate applies a on every other node serving room (each calls
	// Manager.ApplyModeration) and returns their results, and the nodes
	// that did not answer before ctx ended.
	Moderate(ctx context.Context, room string, a Action) ([]NodeResult, []string, error)
	// PutBan bans identity from room until then ("" bans broadcasts).
	PutBan(ctx context.Context, room, identity string, until time.Time) error
	// Bans reads the bans of room in force.
	Bans(ctx context.Context, room string) (Bans, error)
}

// Bans are a room's bans in force.
type Bans struct {
	// Identities: identity -> end of its ban.
	Identities map[string]time.Time
	// Broadcast is the end of the room's ban on broadcasts (zero: none).
	Broadcast time.Time
}

// moderation is the Manager's part of moderation: the bans it knows and
// its counters. The zero value is ready.
type moderation struct {
	mu sync.Mutex
	// bans by room; loaded marks a room whose bans were read from the
	// shared state (or that has none there).
	bans map[string]*Bans
	// actions counts the actions applied, by kind.
	actions sync.Map // kind -> *atomic.Uint64
}

// ban records a ban here.
func (md *moderation) ban(room, identity string, until time.Time) {
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.bans == nil {
		md.bans = map[string]*Bans{}
	}
	b := md.bans[room]
	if b == nil {
		b = &Bans{Identities: map[string]time.Time{}}
		md.bans[room] = b
	}
	if identity == "" {
		if until.After(b.Broadcast) {
			b.Broadcast = until
		}
		return
	}
	if until.After(b.Identities[identity]) {
		b.Identities[identity] = until
	}
}

// known returns the bans known here for room, and whether any were
// recorded for it; expired ones are dropped.
func (md *moderation) known(room string, now time.Time) (Bans, bool) {
	md.mu.Lock()
	defer md.mu.Unlock()
	b := md.bans[room]
	if b == nil {
		return Bans{}, false
	}
	for id, until := range b.Identities {
		if !now.Before(until) {
			delete(b.Identities, id)
		}
	}
	if !now.Before(b.Broadcast) {
		b.Broadcast = time.Time{}
	}
	out := Bans{Identities: make(map[string]time.Time, len(b.Identities)), Broadcast: b.Broadcast}
	for id, until := range b.Identities {
		out.Identities[id] = until
	}
	if len(b.Identities) == 0 && b.Broadcast.IsZero() {
		delete(md.bans, room)
	}
	return out, true
}

// merge records bans read from the shared state.
func (md *moderation) merge(room string, b Bans) {
	for id, until := range b.Identities {
		md.ban(room, id, until)
	}
	if !b.Broadcast.IsZero() {
		md.ban(room, "", b.Broadcast)
	}
}

func (md *moderation) count(kind string) {
	v, _ := md.actions.LoadOrStore(kind, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// bansOf returns the bans of room: those known here, and in a cluster,
// for a room this node does not serve yet, those of the shared state (a
// node serving the room hears of new bans with the action itself).
func (m *Manager) bansOf(room string) (Bans, error) {
	now := time.Now()
	mod, clustered := m.cluster.(Moderator)
	r := m.Room(room)
	if clustered && (r == nil || r.empty()) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		b, err := mod.Bans(ctx, room)
		cancel()
		if err != nil {
			return Bans{}, fmt.Errorf("%w: reading the room's bans: %w", ErrClusterUnavailable, err)
		}
		m.mod.merge(room, b)
	}
	b, _ := m.mod.known(room, now)
	return b, nil
}

// checkBan refuses a banned identity's join.
func (m *Manager) checkBan(room string, spec ParticipantSpec) error {
	if spec.Relay {
		return nil
	}
	b, err := m.bansOf(room)
	if err != nil {
		return err
	}
	if until, ok := b.Identities[spec.Identity]; ok {
		return fmt.Errorf("%w: until %s", ErrBanned, until.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkBroadcastBan refuses a broadcast in a room ended with a ban.
func (m *Manager) checkBroadcastBan(room string) error {
	b, _ := m.mod.known(room, time.Now())
	if !b.Broadcast.IsZero() {
		return fmt.Errorf("%w: the room refuses broadcasts until %s", ErrBanned, b.Broadcast.UTC().Format(time.RFC3339))
	}
	return nil
}

// Moderate applies a to room on every node serving it: the ban first (in
// the shared state, so a join anywhere is refused from now on), then the
// action here and on the other nodes. It fails with ErrNoParticipant when
// a remove, a grants change or a message to one identity found nobody (and
// banned nobody).
func (m *Manager) Moderate(ctx context.Context, room string, a Action) (ModerationResult, error) {
	switch a.Kind {
	case ActRemove, ActGrants:
		if a.Identity == "" {
			return ModerationResult{}, fmt.Errorf("%w: %s needs an identity", ErrBadAction, a.Kind)
		}
	case ActEnd, ActMessage:
	case ActMute, ActUnmute, ActUnpublish:
		if a.Track == "" {
			return ModerationResult{}, fmt.Errorf("%w: %s needs a track", ErrBadAction, a.Kind)
		}
	default:
		return ModerationResult{}, fmt.Errorf("%w: kind %q", ErrBadAction, a.Kind)
	}
	mod, clustered := m.cluster.(Moderator)
	banned := !a.BanUntil.IsZero() && (a.Kind == ActRemove || a.Kind == ActEnd)
	if banned {
		who := a.Identity
		if a.Kind == ActEnd {
			who = ""
		}
		if clustered {
			if err := mod.PutBan(ctx, room, who, a.BanUntil); err != nil {
				return ModerationResult{}, fmt.Errorf("%w: recording the ban: %w", ErrClusterUnavailable, err)
			}
		}
		m.mod.ban(room, who, a.BanUntil)
		m.mod.count("ban")
	}
	res := ModerationResult{}
	if n, changed, served := m.applyHere(room, a); served {
		res.Applied = append(res.Applied, NodeResult{Node: m.opt.NodeID, Affected: n, Changed: changed})
	}
	if clustered {
		others, failed, err := mod.Moderate(ctx, room, a)
		if err != nil {
			return ModerationResult{}, err
		}
		res.Applied = append(res.Applied, others...)
		res.Failed = failed
	}
	for _, r := range res.Applied {
		res.Affected += r.Affected
		res.Changed += r.Changed
	}
	m.mod.count(a.Kind)
	m.log.Info("moderation", "room", room, "action", a.Kind, "identity", a.Identity, "affected", res.Affected,
		"nodes", len(res.Applied), "failed", len(res.Failed), "ban_until", a.BanUntil)
	if onTrack(a.Kind) && res.Affected == 0 && len(res.Failed) == 0 {
		return res, fmt.Errorf("%w: %q", ErrUnknownTrack, a.Track)
	}
	toOne := a.Kind == ActRemove || a.Kind == ActGrants || (a.Kind == ActMessage && a.Identity != "")
	if res.Affected == 0 && !banned && len(res.Failed) == 0 && toOne {
		return res, fmt.Errorf("%w: %q", ErrNoParticipant, a.Identity)
	}
	if a.Kind == ActGrants && res.Affected > 0 && res.Changed == 0 && len(res.Failed) == 0 {
		return res, fmt.Errorf("%w: %q", ErrNoChange, a.Identity)
	}
	if len(res.Applied) == 0 && len(res.Failed) == 0 && !banned && (a.Kind == ActEnd || a.Kind == ActMessage) {
		return res, fmt.Errorf("%w: %q", ErrRoomNotFound, room)
	}
	return res, nil
}

// ApplyModeration applies an action of another node's call here, and
// returns how many participants it affected and, for a grants change, how
// many it changed (the cluster calls it).
func (m *Manager) ApplyModeration(room string, a Action) (affected, changed int) {
	if !a.BanUntil.IsZero() {
		switch a.Kind {
		case ActRemove:
			m.mod.ban(room, a.Identity, a.BanUntil)
		case ActEnd:
			m.mod.ban(room, "", a.BanUntil)
		}
	}
	n, changed, _ := m.applyHere(room, a)
	return n, changed
}

// applyHere applies a to this node's part of room; served reports that
// this node serves the room.
func (m *Manager) applyHere(room string, a Action) (n, changed int, served bool) {
	r := m.Room(room)
	if r == nil {
		return 0, 0, false
	}
	if onTrack(a.Kind) {
		n := r.moderateTrack(a) // moderation_track.go
		return n, 0, true
	}
	var hit []*Participant
	for _, p := range r.list() {
		if p.spec.Relay || p.left.Load() {
			continue
		}
		if a.Kind == ActEnd || (a.Kind == ActMessage && a.Identity == "") || p.spec.Identity == a.Identity {
			hit = append(hit, p)
		}
	}
	switch a.Kind {
	case ActRemove, ActEnd:
		why := &Removal{Reason: a.Reason, Until: a.BanUntil, RoomEnded: a.Kind == ActEnd}
		for _, p := range hit {
			// The client is told why before its connections close; the
			// app's backend by a participant_removed webhook (observe.go).
			r.observeParticipant(ParticipantRemovedHere, p, a.Reason)
			p.sink.Event(Closed{Reason: why})
			p.End()
		}
	case ActMessage:
		for _, p := range hit {
			p.sink.Event(SystemMessage{Text: a.Text})
		}
	case ActGrants:
		for _, p := range hit {
			if !a.Publish {
				// Demoted on purpose: its tracks end now, not after the
				// republish grace kept for a lost connection.
				p.deliberate.Store(true)
			}
			if p.mayPublish.Load() != (a.Publish && !p.spec.Hidden) || p.maySub.Load() != a.Subscribe {
				changed++
			}
			p.SetGrants(a.Publish, a.Subscribe)
			p.sink.Event(PermissionsChanged{Publish: a.Publish && !p.spec.Hidden, Subscribe: a.Subscribe})
		}
	}
	return len(hit), changed, true
}

// registerModerationMetrics adds halo_moderation_actions_total.
func (m *Manager) registerModerationMetrics(reg prometheus.Registerer) {
	reg.MustRegister(&moderationCollector{m: m, desc: prometheus.NewDesc("halo_moderation_actions_total",
		"Moderation actions called on this node (server API), by action (ban: a remove or end that banned).", []string{"action"}, nil)})
}

type moderationCollector struct {
	m    *Manager
	desc *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *moderationCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector: every action kind, 0 until used.
func (c *moderationCollector) Collect(ch chan<- prometheus.Metric) {
	for _, kind := range []string{ActRemove, ActEnd, ActMessage, ActGrants, ActMute, ActUnmute, ActUnpublish, "ban"} {
		n := uint64(0)
		if v, ok := c.m.mod.actions.Load(kind); ok {
			n = v.(*atomic.Uint64).Load()
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), kind)
	}
}
