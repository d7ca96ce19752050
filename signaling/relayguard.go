package signaling

import (
	"container/heap"
	"sync"
	"time"

	"github.com/halobuzz/live/room"
)

// What keeps one node's relay endpoint from being turned against it (issue
// 23 item 6): a relay token is good for one request (replayGuard), and a
// requesting node holds a bounded number of relays (relaySlots).

// maxRelaysPerNode caps the relays one requesting node holds at once on
// this origin. An edge holds about one relay per room it pulls from here
// (two for a moment while it moves to a new one), so the cap is far above a
// healthy edge's need and far below what exhausts an origin (each relay is
// a Pion connection with its goroutines). A request over it is answered 429
// too_many_relays with Retry-After. Recommended as configuration:
// cluster.max_relays_per_node.
const maxRelaysPerNode = 256

// maxRelayTokenIDs bounds how many relay token ids the origin remembers at
// once. Ids are kept only until their token expires (relayTokenTTL plus the
// clock skew Verify allows), so a full set means more than ~1,800 relay
// requests a second; the origin then refuses relay requests (429
// too_many_relays) rather than forget an id that could still be replayed.
const maxRelayTokenIDs = 65536

// relayClockSkew is how long after its exp a token still verifies
// (auth.Signer.Verify allows 5 seconds of clock skew): its id is kept that
// much longer.
const relayClockSkew = 5 * time.Second

// retryAfterRelay is the Retry-After, in seconds, of a too_many_relays
// answer.
const retryAfterRelay = "2"

// replayGuard remembers the ids (jti) of the relay tokens the origin has
// accepted, each until its token has expired, and refuses an id seen
// before. Memory is bounded: at most max ids, forgotten in the order they
// expire (a min-heap on expiry beside the set).
type replayGuard struct {
	max   int
	mu    sync.Mutex
	ids   map[string]struct{}
	byExp expiryHeap
}

func newReplayGuard(max int) *replayGuard {
	return &replayGuard{max: max, ids: map[string]struct{}{}}
}

// guardVerdict is what replayGuard.use says of an id.
type guardVerdict int

const (
	idFresh    guardVerdict = iota // first use: remembered from now on
	idReplayed                     // used before, and its token has not expired
	idFull                         // max unexpired ids are remembered: refuse for now
)

// use records id, whose token expires at exp, at time now.
func (g *replayGuard) use(id string, exp, now time.Time) guardVerdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.byExp) > 0 && !g.byExp[0].until.After(now) {
		delete(g.ids, heap.Pop(&g.byExp).(expiring).id)
	}
	if _, seen := g.ids[id]; seen {
		return idReplayed
	}
	if len(g.ids) >= g.max {
		return idFull
	}
	g.ids[id] = struct{}{}
	heap.Push(&g.byExp, expiring{id: id, until: exp.Add(relayClockSkew)})
	return idFresh
}

// size reports how many ids are remembered.
func (g *replayGuard) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ids)
}

// expiring is a remembered id and when it may be forgotten.
type expiring struct {
	id    string
	until time.Time
}

// expiryHeap is a min-heap of ids by expiry (container/heap).
type expiryHeap []expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiring)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// relayRef names a relay the origin serves: its room and its id (the
// Location of the answer).
type relayRef struct{ room, id string }

// relaySlots counts the relays each requesting node holds on this origin
// against max. A slot is taken before the relay is set up (so a burst of
// requests cannot pass the cap together) and given back when the relay
// ends: the edge's DELETE, or its room ended (the room the relay was served
// in is no longer the node's room of that name).
type relaySlots struct {
	max    int
	rooms  *room.Manager
	mu     sync.Mutex
	byNode map[string]*nodeRelays
}

// nodeRelays are one requesting node's relays: being set up, and served.
type nodeRelays struct {
	pending int
	live    map[relayRef]*room.Room
}

func newRelaySlots(max int, rooms *room.Manager) *relaySlots {
	return &relaySlots{max: max, rooms: rooms, byNode: map[string]*nodeRelays{}}
}

// reserve takes a slot for a relay from node, or reports false when node
// holds max relays already. The caller then calls exactly one of the
// reservation's serve (the relay is up) or cancel.
func (s *relaySlots) reserve(node string) (reservation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.byNode[node]
	if n == nil {
		n = &nodeRelays{live: map[relayRef]*room.Room{}}
		s.byNode[node] = n
	}
	for ref, r := range n.live {
		if s.rooms.Room(ref.room) != r || !r.RelayActive(ref.id) {
			delete(n.live, ref) // its room ended, or its connection did (LeaveOnFailure)
		}
	}
	if s.max > 0 && n.pending+len(n.live) >= s.max {
		s.forgetLocked(node, n)
		return reservation{}, false
	}
	n.pending++
	return reservation{s: s, node: node}, true
}

// end gives back the slot of relay ref of node (the edge ended it).
func (s *relaySlots) end(node string, ref relayRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.byNode[node]; n != nil {
		delete(n.live, ref)
		s.forgetLocked(node, n)
	}
}

// held reports how many slots node holds.
func (s *relaySlots) held(node string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.byNode[node]; n != nil {
		return n.pending + len(n.live)
	}
	return 0
}

// forgetLocked drops node's entry once it holds nothing; s.mu is held.
func (s *relaySlots) forgetLocked(node string, n *nodeRelays) {
	if n.pending == 0 && len(n.live) == 0 {
		delete(s.byNode, node)
	}
}

// reservation is a slot taken by relaySlots.reserve.
type reservation struct {
	s    *relaySlots
	node string
}

// serve turns the reservation into the relay ref, served in the room's
// current incarnation.
func (r reservation) serve(ref relayRef) {
	cur := r.s.rooms.Room(ref.room)
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	n := r.s.byNode[r.node]
	n.pending--
	if cur != nil {
		n.live[ref] = cur
	}
	r.s.forgetLocked(r.node, n)
}

// cancel gives the slot back: the relay was not set up.
func (r reservation) cancel() {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	n := r.s.byNode[r.node]
	n.pending--
	r.s.forgetLocked(r.node, n)
}
