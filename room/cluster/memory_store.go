package cluster

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/halobuzz/live/room"
)

// MemoryStore is a Store held in one process. Handles made with Node share
// its state, which lets tests (and simulations) run several nodes in one
// process with the same semantics as the Redis store: leases that expire
// unless renewed, origin claims, counters and pub/sub. (A node that serves
// alone has no store at all.)
type MemoryStore struct {
	b      *memBackend
	node   string
	timing storeTimings
	subsMu sync.Mutex
	subs   []*memSub
}

type memBackend struct {
	mu     sync.Mutex
	rooms  map[string]map[string]*memPart // room -> node -> that node's part
	origin map[OriginKey]memClaim
	nodes  map[string]memNode
	subs   map[string][]*memSub // room -> subscriptions
	now    func() time.Time
	// pubMu keeps one Publish's deliveries together, so every subscriber sees
	// the same order.
	pubMu sync.Mutex
}

type memPart struct {
	participants map[string]room.ParticipantRecord
	tracks       map[string]room.TrackRecord
	viewers      int
	expires      time.Time // zero: never
}

type memClaim struct {
	node    string
	expires time.Time
}

type memNode struct {
	info    room.NodeInfo
	expires time.Time
}

type memSub struct {
	room string
	h    func([]byte)
}

// NewMemoryStore returns an empty in-memory Store whose entries never
// expire. Its node id is "".
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{b: &memBackend{
		rooms:  map[string]map[string]*memPart{},
		origin: map[OriginKey]memClaim{},
		nodes:  map[string]memNode{},
		subs:   map[string][]*memSub{},
		now:    time.Now,
	}}
}

// Node returns a handle on the same state for node id, whose writes live
// under leases of ttl (0: never expire).
func (s *MemoryStore) Node(id string, ttl time.Duration) *MemoryStore {
	return &MemoryStore{b: s.b, node: id, timing: storeTimings{ttl: ttl}}
}

func alive(expires, now time.Time) bool { return expires.IsZero() || now.Before(expires) }

// part returns this node's part of room, creating it, with its lease renewed.
// Call with b.mu held.
func (s *MemoryStore) part(name string) *memPart {
	b := s.b
	nodes := b.rooms[name]
	if nodes == nil {
		nodes = map[string]*memPart{}
		b.rooms[name] = nodes
	}
	p := nodes[s.node]
	now := b.now()
	if p == nil || !alive(p.expires, now) {
		p = &memPart{participants: map[string]room.ParticipantRecord{}, tracks: map[string]room.TrackRecord{}}
		nodes[s.node] = p
	}
	p.expires = s.timing.deadline(now)
	return p
}

// liveParts returns the unexpired parts of room, dropping expired ones.
// Call with b.mu held.
func (b *memBackend) liveParts(name string) map[string]*memPart {
	nodes := b.rooms[name]
	now := b.now()
	for id, p := range nodes {
		if !alive(p.expires, now) {
			delete(nodes, id)
		}
	}
	if nodes != nil && len(nodes) == 0 {
		delete(b.rooms, name)
		return nil
	}
	return nodes
}

// NodeID implements Store.
func (s *MemoryStore) NodeID() string { return s.node }

func (s *MemoryStore) write(ctx context.Context, f func(b *memBackend)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	f(s.b)
	return nil
}

// PutParticipant implements Store.
func (s *MemoryStore) PutParticipant(ctx context.Context, name string, p room.ParticipantRecord) error {
	return s.write(ctx, func(*memBackend) { s.part(name).participants[p.ID] = p })
}

// DeleteParticipant implements Store.
func (s *MemoryStore) DeleteParticipant(ctx context.Context, name, id string) error {
	return s.write(ctx, func(b *memBackend) {
		if p := b.liveParts(name)[s.node]; p != nil {
			delete(p.participants, id)
		}
	})
}

// PutTrack implements Store.
func (s *MemoryStore) PutTrack(ctx context.Context, name string, t room.TrackRecord) error {
	return s.write(ctx, func(*memBackend) { s.part(name).tracks[t.ID] = t })
}

// DeleteTrack implements Store.
func (s *MemoryStore) DeleteTrack(ctx context.Context, name, id string) error {
	return s.write(ctx, func(b *memBackend) {
		if p := b.liveParts(name)[s.node]; p != nil {
			delete(p.tracks, id)
		}
	})
}

// SetViewers implements Store.
func (s *MemoryStore) SetViewers(ctx context.Context, name string, n int) error {
	return s.write(ctx, func(*memBackend) { s.part(name).viewers = n })
}

// SyncRoom implements Store.
func (s *MemoryStore) SyncRoom(ctx context.Context, name string, st NodeRoom) error {
	return s.write(ctx, func(*memBackend) {
		p := s.part(name)
		p.participants = make(map[string]room.ParticipantRecord, len(st.Participants))
		for _, r := range st.Participants {
			p.participants[r.ID] = r
		}
		p.tracks = make(map[string]room.TrackRecord, len(st.Tracks))
		for _, t := range st.Tracks {
			p.tracks[t.ID] = t
		}
		p.viewers = st.Viewers
	})
}

// Room implements Store.
func (s *MemoryStore) Room(ctx context.Context, name string) (room.RoomState, error) {
	if err := ctx.Err(); err != nil {
		return room.RoomState{}, err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	parts := s.b.liveParts(name)
	if parts == nil {
		return room.RoomState{}, ErrNotFound
	}
	st := room.RoomState{Name: name, Viewers: map[string]int{}}
	for node, p := range parts {
		for _, r := range p.participants {
			st.Participants = append(st.Participants, r)
		}
		for _, t := range p.tracks {
			st.Tracks = append(st.Tracks, t)
		}
		st.Viewers[node] = p.viewers
	}
	sortState(&st)
	return st, nil
}

func sortState(st *room.RoomState) {
	sort.Slice(st.Participants, func(i, j int) bool { return st.Participants[i].ID < st.Participants[j].ID })
	sort.Slice(st.Tracks, func(i, j int) bool { return st.Tracks[i].ID < st.Tracks[j].ID })
}

// Counts implements Store.
func (s *MemoryStore) Counts(ctx context.Context, name string) (RoomCounts, error) {
	if err := ctx.Err(); err != nil {
		return RoomCounts{}, err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	c := RoomCounts{Participants: map[string]int{}, Viewers: map[string]int{}}
	for node, p := range s.b.liveParts(name) {
		c.Participants[node] = len(p.participants)
		c.Viewers[node] = p.viewers
	}
	return c, nil
}

// DeleteRoom implements Store.
func (s *MemoryStore) DeleteRoom(ctx context.Context, name string) error {
	return s.write(ctx, func(b *memBackend) {
		if parts := b.rooms[name]; parts != nil {
			delete(parts, s.node)
			if len(parts) == 0 {
				delete(b.rooms, name)
			}
		}
	})
}

// Rooms implements Store.
func (s *MemoryStore) Rooms(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	out := make([]string, 0, len(s.b.rooms))
	for name := range s.b.rooms {
		if s.b.liveParts(name) != nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ClaimOrigin implements Store.
func (s *MemoryStore) ClaimOrigin(ctx context.Context, name, track string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	k := OriginKey{name, track}
	now := s.b.now()
	if c, ok := s.b.origin[k]; ok && alive(c.expires, now) && c.node != s.node {
		return c.node, nil
	}
	s.b.origin[k] = memClaim{node: s.node, expires: s.timing.deadline(now)}
	return s.node, nil
}

// Origin implements Store.
func (s *MemoryStore) Origin(ctx context.Context, name, track string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	k := OriginKey{name, track}
	c, ok := s.b.origin[k]
	if !ok || !alive(c.expires, s.b.now()) {
		delete(s.b.origin, k)
		return "", ErrNotFound
	}
	return c.node, nil
}

// ReleaseOrigin implements Store.
func (s *MemoryStore) ReleaseOrigin(ctx context.Context, name, track string) error {
	return s.write(ctx, func(b *memBackend) {
		k := OriginKey{name, track}
		if c, ok := b.origin[k]; ok && c.node == s.node {
			delete(b.origin, k)
		}
	})
}

// Renew implements Store.
func (s *MemoryStore) Renew(ctx context.Context, l Leases) (Renewal, error) {
	if err := ctx.Err(); err != nil {
		return Renewal{}, err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	var out Renewal
	now := s.b.now()
	for _, room := range l.Rooms {
		p := s.b.liveParts(room)[s.node]
		if p == nil {
			out.Missing = append(out.Missing, room)
			continue
		}
		p.expires = s.timing.deadline(now)
	}
	for _, k := range l.Origins {
		c, ok := s.b.origin[k]
		if !ok || !alive(c.expires, now) || c.node != s.node {
			out.Lost = append(out.Lost, k)
			continue
		}
		c.expires = s.timing.deadline(now)
		s.b.origin[k] = c
	}
	return out, nil
}

// PutNode implements Store.
func (s *MemoryStore) PutNode(ctx context.Context, n room.NodeInfo) error {
	return s.write(ctx, func(b *memBackend) {
		n.ID = s.node
		b.nodes[s.node] = memNode{info: n, expires: s.timing.deadline(b.now())}
	})
}

// DeleteNode implements Store.
func (s *MemoryStore) DeleteNode(ctx context.Context) error {
	return s.write(ctx, func(b *memBackend) { delete(b.nodes, s.node) })
}

// Nodes implements Store.
func (s *MemoryStore) Nodes(ctx context.Context) ([]room.NodeInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	now := s.b.now()
	out := []room.NodeInfo{}
	for id, n := range s.b.nodes {
		if !alive(n.expires, now) {
			delete(s.b.nodes, id)
			continue
		}
		out = append(out, n.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Publish implements Store. Subscribers are called before it returns.
func (s *MemoryStore) Publish(ctx context.Context, name string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.b.pubMu.Lock()
	defer s.b.pubMu.Unlock()
	s.b.mu.Lock()
	subs := append([]*memSub(nil), s.b.subs[name]...)
	s.b.mu.Unlock()
	for _, sub := range subs {
		sub.h(append([]byte(nil), payload...))
	}
	return nil
}

// Subscribe implements Store.
func (s *MemoryStore) Subscribe(name string, h func([]byte)) (func(), error) {
	sub := &memSub{room: name, h: h}
	s.b.mu.Lock()
	s.b.subs[name] = append(s.b.subs[name], sub)
	s.b.mu.Unlock()
	s.subsMu.Lock()
	s.subs = append(s.subs, sub)
	s.subsMu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { s.unsubscribe(sub) }) }, nil
}

func (s *MemoryStore) unsubscribe(sub *memSub) {
	s.b.mu.Lock()
	list := s.b.subs[sub.room]
	for i, x := range list {
		if x == sub {
			s.b.subs[sub.room] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(s.b.subs[sub.room]) == 0 {
		delete(s.b.subs, sub.room)
	}
	s.b.mu.Unlock()
}

// Close implements Store: this handle's subscriptions end.
func (s *MemoryStore) Close() error {
	s.subsMu.Lock()
	subs := s.subs
	s.subs = nil
	s.subsMu.Unlock()
	for _, sub := range subs {
		s.unsubscribe(sub)
	}
	return nil
}

func sortStrings(s []string) { sort.Strings(s) }

func sortNodes(n []room.NodeInfo) { sort.Slice(n, func(i, j int) bool { return n[i].ID < n[j].ID }) }
