package room

import (
	"context"
	"errors"
	"sort"
	"sync"
)

// ErrNotFound is returned by a Store for a room it does not hold.
var ErrNotFound = errors.New("room: not found")

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
}

// RoomState is everything a Store holds about one room.
type RoomState struct {
	Name         string
	Participants []ParticipantRecord
	Tracks       []TrackRecord
}

// Store is the shared room state. Every method may go over the network, so
// each takes a context and may fail; callers treat a failure as retryable and
// keep serving what they already have.
type Store interface {
	PutParticipant(ctx context.Context, room string, p ParticipantRecord) error
	DeleteParticipant(ctx context.Context, room, participantID string) error
	PutTrack(ctx context.Context, room string, t TrackRecord) error
	DeleteTrack(ctx context.Context, room, trackID string) error
	// Room returns the state of room, or ErrNotFound.
	Room(ctx context.Context, room string) (RoomState, error)
	// DeleteRoom forgets a room and everything in it.
	DeleteRoom(ctx context.Context, room string) error
	// Rooms lists the rooms that exist.
	Rooms(ctx context.Context) ([]string, error)
}

// MemoryStore is the Store of a node that serves alone.
type MemoryStore struct {
	mu    sync.Mutex
	rooms map[string]*memRoom
}

type memRoom struct {
	participants map[string]ParticipantRecord
	tracks       map[string]TrackRecord
}

// NewMemoryStore returns an empty in-memory Store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{rooms: map[string]*memRoom{}} }

func (s *MemoryStore) room(name string) *memRoom {
	r := s.rooms[name]
	if r == nil {
		r = &memRoom{participants: map[string]ParticipantRecord{}, tracks: map[string]TrackRecord{}}
		s.rooms[name] = r
	}
	return r
}

// PutParticipant implements Store.
func (s *MemoryStore) PutParticipant(ctx context.Context, room string, p ParticipantRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.room(room).participants[p.ID] = p
	return nil
}

// DeleteParticipant implements Store.
func (s *MemoryStore) DeleteParticipant(ctx context.Context, room, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[room]; r != nil {
		delete(r.participants, id)
	}
	return nil
}

// PutTrack implements Store.
func (s *MemoryStore) PutTrack(ctx context.Context, room string, t TrackRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.room(room).tracks[t.ID] = t
	return nil
}

// DeleteTrack implements Store.
func (s *MemoryStore) DeleteTrack(ctx context.Context, room, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[room]; r != nil {
		delete(r.tracks, id)
	}
	return nil
}

// Room implements Store.
func (s *MemoryStore) Room(ctx context.Context, room string) (RoomState, error) {
	if err := ctx.Err(); err != nil {
		return RoomState{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[room]
	if r == nil {
		return RoomState{}, ErrNotFound
	}
	st := RoomState{Name: room}
	for _, p := range r.participants {
		st.Participants = append(st.Participants, p)
	}
	for _, t := range r.tracks {
		st.Tracks = append(st.Tracks, t)
	}
	sort.Slice(st.Participants, func(i, j int) bool { return st.Participants[i].ID < st.Participants[j].ID })
	sort.Slice(st.Tracks, func(i, j int) bool { return st.Tracks[i].ID < st.Tracks[j].ID })
	return st, nil
}

// DeleteRoom implements Store.
func (s *MemoryStore) DeleteRoom(ctx context.Context, room string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rooms, room)
	return nil
}

// Rooms implements Store.
func (s *MemoryStore) Rooms(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.rooms))
	for name := range s.rooms {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}
