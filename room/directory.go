package room

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The directory: what the server API reads of the rooms of the whole
// cluster (signaling/api*.go). A node alone reads its own rooms; in a
// cluster the Cluster implements Directory over the shared state, whose
// index of rooms each node rewrites at every heartbeat (room/cluster).

// ErrRoomNotFound is returned for a room no node serves.
var ErrRoomNotFound = errors.New("room: no such room")

// ErrBadCursor is returned for a page cursor this server did not make, or
// a page size out of range.
var ErrBadCursor = errors.New("room: bad page cursor or limit")

// RoomEntry is one node's part of a room in the index of rooms: what a
// listing sorts and filters on without reading every room.
type RoomEntry struct {
	Name string
	// Node serves the room; Viewers, Participants and Tracks are its
	// counts there (Tracks: the tracks it publishes, not relayed copies).
	Node                          string
	Viewers, Participants, Tracks int
	// StartedAt is when the node created the room.
	StartedAt time.Time
}

// Directory is implemented by a Cluster that can read the rooms of every
// node: the index (every node's entries) and one room's whole state.
type Directory interface {
	RoomIndex(ctx context.Context) ([]RoomEntry, error)
	RoomState(ctx context.Context, name string) (RoomState, error)
	// RoomStates reads the rooms of a page at once (an empty state, no
	// Viewers, for a room no node serves any more).
	RoomStates(ctx context.Context, names []string) ([]RoomState, error)
	// RoomEntries reads one room's entries in the index of the given nodes.
	RoomEntries(ctx context.Context, name string, nodes []string) ([]RoomEntry, error)
}

// RoomSummary is a room as the server API describes it.
type RoomSummary struct {
	Name      string
	StartedAt time.Time
	// Publishers are the participants with a live track, with their tracks.
	Publishers []PublisherSummary
	// Viewers is the audience over all nodes; ViewersByRegion splits it.
	Viewers         int
	ViewersByRegion map[string]int
	// Nodes serve the room, sorted.
	Nodes []string
}

// PublisherSummary is a publisher of a room and its tracks.
type PublisherSummary struct {
	ParticipantID, Identity, Name, Node string
	Tracks                              []TrackRecord
}

// ParticipantDetail is a participant as the server API lists it.
type ParticipantDetail struct {
	ParticipantRecord
	// Role is "publisher" (its token may publish) or "viewer".
	Role   string
	Region string
}

// ListOptions select a page of the room list.
type ListOptions struct {
	// Live keeps only the rooms with a live track.
	Live bool
	// Limit is the page size (1..MaxPage).
	Limit int
	// Cursor continues after the last room of the previous page ("" for
	// the first page).
	Cursor string
}

// MaxPage is the largest page of rooms or participants.
const MaxPage = 500

// record is the participant as the shared state holds it.
func (p *Participant) record(node string) ParticipantRecord {
	return ParticipantRecord{ID: p.id, Identity: p.spec.Identity, Name: p.spec.Name, Publisher: p.spec.Publish, Node: node,
		JoinedAt: p.joinedAt.UnixMilli(), Transport: p.transport()}
}

// transport names how the participant is connected: a WHIP or WHEP
// session (a participant that leaves with its one media connection),
// else a WebSocket client.
func (p *Participant) transport() string {
	switch {
	case !p.spec.LeaveOnFailure:
		return "websocket"
	case p.spec.Subscribe:
		return "whep"
	}
	return "whip"
}

// localEntries are this node's entries of the index.
func (m *Manager) localEntries() []RoomEntry {
	rooms := m.Rooms()
	out := make([]RoomEntry, 0, len(rooms))
	for _, r := range rooms {
		if e, ok := r.entry(); ok {
			out = append(out, e)
		}
	}
	return out
}

// LocalEntries returns this node's part of the index of rooms: every room
// it serves with a participant, and its counts (the cluster writes them).
func (m *Manager) LocalEntries() []RoomEntry { return m.localEntries() }

// entry is the room's entry in the index; false for a room with nobody
// left in it (it lingers for empty_timeout).
func (r *Room) entry() (RoomEntry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := RoomEntry{Name: r.name, Node: r.m.opt.NodeID, Viewers: r.viewers, StartedAt: r.created}
	for _, p := range r.participants {
		if !p.spec.Relay {
			e.Participants++
		}
	}
	for _, t := range r.tracks {
		if t.relay == nil {
			e.Tracks++
		}
	}
	return e, e.Participants > 0
}

// roomIndex reads the index: the cluster's, or this node's alone.
func (m *Manager) roomIndex(ctx context.Context) ([]RoomEntry, error) {
	if d, ok := m.cluster.(Directory); ok {
		return d.RoomIndex(ctx)
	}
	return m.localEntries(), nil
}

// roomState reads one room over all nodes.
func (m *Manager) roomState(ctx context.Context, name string) (RoomState, error) {
	if d, ok := m.cluster.(Directory); ok {
		st, err := d.RoomState(ctx, name)
		if err != nil {
			return RoomState{}, err
		}
		if len(st.Viewers) == 0 {
			return RoomState{}, fmt.Errorf("%w: %q", ErrRoomNotFound, name)
		}
		return st, nil
	}
	r := m.Room(name)
	if r == nil || r.empty() {
		return RoomState{}, fmt.Errorf("%w: %q", ErrRoomNotFound, name)
	}
	part := r.LocalPart()
	st := RoomState{Name: name, Participants: part.Participants, Tracks: part.Tracks, Viewers: map[string]int{m.opt.NodeID: part.Viewers}}
	sort.Slice(st.Participants, func(i, j int) bool { return st.Participants[i].ID < st.Participants[j].ID })
	sort.Slice(st.Tracks, func(i, j int) bool { return st.Tracks[i].ID < st.Tracks[j].ID })
	return st, nil
}

// roomStates reads the rooms of a page: at once in a cluster; a room gone
// has an empty state.
func (m *Manager) roomStates(ctx context.Context, page []*indexed) ([]RoomState, error) {
	if d, ok := m.cluster.(Directory); ok {
		names := make([]string, len(page))
		for i, x := range page {
			names[i] = x.name
		}
		return d.RoomStates(ctx, names)
	}
	out := make([]RoomState, len(page))
	for i, x := range page {
		st, err := m.roomState(ctx, x.name)
		if err != nil && !errors.Is(err, ErrRoomNotFound) {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// regions maps each live node to its region.
func (m *Manager) regions(ctx context.Context) map[string]string {
	out := map[string]string{m.opt.NodeID: m.Region()}
	if nodes, err := m.Nodes(ctx); err == nil {
		for _, n := range nodes {
			out[n.ID] = n.Region
		}
	}
	return out
}

// indexed is a room of the index, its nodes' entries added up.
type indexed struct {
	name           string
	viewers, track int
	started        time.Time
}

// ListRooms returns a page of the rooms of the whole cluster, the most
// watched first (then by name), and the cursor of the next page ("" after
// the last).
func (m *Manager) ListRooms(ctx context.Context, opt ListOptions) ([]RoomSummary, string, error) {
	if opt.Limit <= 0 || opt.Limit > MaxPage {
		return nil, "", fmt.Errorf("%w: limit must be 1..%d", ErrBadCursor, MaxPage)
	}
	afterViewers, afterName, err := decodeCursor(opt.Cursor)
	if err != nil {
		return nil, "", err
	}
	entries, err := m.roomIndex(ctx)
	if err != nil {
		return nil, "", err
	}
	byName := map[string]*indexed{}
	for _, e := range entries {
		x := byName[e.Name]
		if x == nil {
			x = &indexed{name: e.Name, started: e.StartedAt}
			byName[e.Name] = x
		}
		x.viewers += e.Viewers
		x.track += e.Tracks
		if !e.StartedAt.IsZero() && (x.started.IsZero() || e.StartedAt.Before(x.started)) {
			x.started = e.StartedAt
		}
	}
	list := make([]*indexed, 0, len(byName))
	for _, x := range byName {
		if opt.Live && x.track == 0 {
			continue
		}
		list = append(list, x)
	}
	sort.Slice(list, func(i, j int) bool { return before(list[i].viewers, list[i].name, list[j].viewers, list[j].name) })
	start := 0
	if opt.Cursor != "" {
		start = sort.Search(len(list), func(i int) bool { return before(afterViewers, afterName, list[i].viewers, list[i].name) })
	}
	end := min(start+opt.Limit, len(list))
	page := list[start:end]
	states, err := m.roomStates(ctx, page)
	if err != nil {
		return nil, "", err
	}
	regions := m.regions(ctx)
	out := make([]RoomSummary, 0, len(page))
	for i, x := range page {
		if len(states[i].Viewers) == 0 {
			continue // gone since the index was written
		}
		s := summarize(states[i], regions)
		s.StartedAt = x.started
		out = append(out, s)
	}
	next := ""
	if end < len(list) && end > 0 {
		last := list[end-1]
		next = encodeCursor(last.viewers, last.name)
	}
	return out, next, nil
}

// before orders rooms: more viewers first, then by name.
func before(v1 int, n1 string, v2 int, n2 string) bool {
	if v1 != v2 {
		return v1 > v2
	}
	return n1 < n2
}

// RoomInfo describes one room of the cluster, or fails with
// ErrRoomNotFound.
func (m *Manager) RoomInfo(ctx context.Context, name string) (RoomSummary, error) {
	st, err := m.roomState(ctx, name)
	if err != nil {
		return RoomSummary{}, err
	}
	s := summarize(st, m.regions(ctx))
	var entries []RoomEntry
	if d, ok := m.cluster.(Directory); ok {
		// The entries of the nodes serving the room only, not the whole
		// index.
		entries, _ = d.RoomEntries(ctx, name, s.Nodes)
	} else {
		entries = m.localEntries()
	}
	for _, e := range entries {
		if e.Name == name && !e.StartedAt.IsZero() && (s.StartedAt.IsZero() || e.StartedAt.Before(s.StartedAt)) {
			s.StartedAt = e.StartedAt
		}
	}
	if s.StartedAt.IsZero() {
		if r := m.Room(name); r != nil {
			s.StartedAt = r.created
		}
	}
	return s, nil
}

// summarize describes a room's state for the API.
func summarize(st RoomState, regions map[string]string) RoomSummary {
	s := RoomSummary{Name: st.Name, Publishers: []PublisherSummary{}, ViewersByRegion: map[string]int{}, Nodes: []string{}}
	for node, v := range st.Viewers {
		s.Viewers += v
		s.ViewersByRegion[regions[node]] += v
		s.Nodes = append(s.Nodes, node)
	}
	sort.Strings(s.Nodes)
	owners := map[string]int{}
	people := map[string]ParticipantRecord{}
	for _, p := range st.Participants {
		people[p.ID] = p
	}
	for _, t := range st.Tracks {
		i, ok := owners[t.ParticipantID]
		if !ok {
			p := people[t.ParticipantID]
			i = len(s.Publishers)
			owners[t.ParticipantID] = i
			s.Publishers = append(s.Publishers, PublisherSummary{ParticipantID: t.ParticipantID, Identity: p.Identity, Name: p.Name, Node: t.Node})
		}
		s.Publishers[i].Tracks = append(s.Publishers[i].Tracks, t)
	}
	return s
}

// RoomParticipants returns the room's publishers (participants whose token
// may publish) whole, and a page of its audience sorted by participant id
// after cursor, with the cursor of the next page.
func (m *Manager) RoomParticipants(ctx context.Context, name string, limit int, cursor string) (publishers, audience []ParticipantDetail, next string, err error) {
	if limit <= 0 || limit > MaxPage {
		return nil, nil, "", fmt.Errorf("%w: limit must be 1..%d", ErrBadCursor, MaxPage)
	}
	_, after, err := decodeCursor(cursor)
	if err != nil {
		return nil, nil, "", err
	}
	st, err := m.roomState(ctx, name)
	if err != nil {
		return nil, nil, "", err
	}
	regions := m.regions(ctx)
	publishers, audience = []ParticipantDetail{}, []ParticipantDetail{}
	for _, p := range st.Participants { // sorted by ID
		d := ParticipantDetail{ParticipantRecord: p, Role: "viewer", Region: regions[p.Node]}
		if p.Publisher {
			d.Role = "publisher"
			publishers = append(publishers, d)
			continue
		}
		if (cursor != "" && p.ID <= after) || next != "" {
			continue
		}
		if len(audience) == limit {
			next = encodeCursor(0, audience[len(audience)-1].ID)
			continue // the publishers after it are still listed
		}
		audience = append(audience, d)
	}
	return publishers, audience, next, nil
}

// encodeCursor makes the opaque cursor of a page that ended at (viewers,
// key).
func encodeCursor(viewers int, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(viewers) + ":" + key))
}

// maxCursor bounds a cursor: a number and a room name or participant id.
const maxCursor = 256

// decodeCursor reads a cursor made by encodeCursor; "" is the first page.
func decodeCursor(c string) (int, string, error) {
	if c == "" {
		return 0, "", nil
	}
	if len(c) > maxCursor {
		return 0, "", fmt.Errorf("%w: over %d bytes", ErrBadCursor, maxCursor)
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	v, key, ok := strings.Cut(string(b), ":")
	n, err := strconv.Atoi(v)
	if !ok || err != nil || n < 0 || key == "" {
		return 0, "", fmt.Errorf("%w: not a cursor of this server", ErrBadCursor)
	}
	return n, key, nil
}
