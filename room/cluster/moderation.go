package cluster

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/halobuzz/live/internal/id"
	"github.com/halobuzz/live/room"
	"github.com/redis/go-redis/v9"
)

// Moderation across nodes (room.Moderator). The node called publishes the
// action on the room's channel, where every node serving the room listens;
// each applies it to its own participants (room.Manager.ApplyModeration)
// and answers on the same channel with how many it affected. The caller
// listens on the channel for the answers (whether or not it serves the
// room itself) until every node that serves the room (its entries in the
// store) has answered, or its context ends: those are the nodes that
// failed. A request is sent again every modResend while answers are
// missing (a subscription is confirmed asynchronously); a node applies
// each request once and answers every copy.
//
// Bans live in the shared state as P{room}:bans, a hash identity -> end
// of the ban (Unix ms; the field "" is the room's ban on broadcasts),
// expiring with its longest ban.

// Cross-node moderation events.
const (
	evModerate    = "moderate"
	evModerateAck = "moderate_ack"
)

// modResend is how often a request is sent again while answers are
// missing.
const modResend = time.Second

// maxModRecent is how many requests a node remembers having applied.
const maxModRecent = 1024

// modWire is the moderation part of a cross-node event.
type modWire struct {
	Req       string `json:"req"`
	Kind      string `json:"kind,omitempty"`
	Identity  string `json:"identity,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Text      string `json:"text,omitempty"`
	BanUntil  int64  `json:"ban_until,omitempty"` // Unix ms
	Publish   bool   `json:"publish,omitempty"`
	Subscribe bool   `json:"subscribe,omitempty"`
	Track     string `json:"track,omitempty"`
	Affected  int    `json:"affected,omitempty"` // the answer
	Changed   int    `json:"changed,omitempty"`
}

// validMod checks the moderation part of an event read from a channel.
func validMod(typ string, m *modWire) bool {
	if m == nil || m.Req == "" || len(m.Req) > 64 || m.Affected < 0 || m.Changed < 0 || m.BanUntil < 0 {
		return false
	}
	for _, f := range []string{m.Req, m.Identity, m.Reason, m.Track} {
		if len(f) > maxWireField || !utf8.ValidString(f) {
			return false
		}
	}
	if len(m.Text) > maxWireText || !utf8.ValidString(m.Text) {
		return false
	}
	if typ == evModerateAck {
		return true
	}
	switch m.Kind {
	case room.ActRemove, room.ActGrants:
		return m.Identity != ""
	case room.ActEnd, room.ActMessage:
		return true
	case room.ActMute, room.ActUnmute, room.ActUnpublish:
		return m.Track != ""
	}
	return false
}

func (m *modWire) action() room.Action {
	a := room.Action{Kind: m.Kind, Identity: m.Identity, Reason: m.Reason, Text: m.Text, Publish: m.Publish, Subscribe: m.Subscribe, Track: m.Track}
	if m.BanUntil > 0 {
		a.BanUntil = time.UnixMilli(m.BanUntil)
	}
	return a
}

func wireOf(req string, a room.Action) *modWire {
	m := &modWire{Req: req, Kind: a.Kind, Identity: a.Identity, Reason: a.Reason, Text: a.Text, Publish: a.Publish, Subscribe: a.Subscribe, Track: a.Track}
	if !a.BanUntil.IsZero() {
		m.BanUntil = a.BanUntil.UnixMilli()
	}
	return m
}

// modState is the cluster's part in other nodes' requests: the ones it
// applied (their answers), and the goroutines applying them.
type modState struct {
	mu     sync.Mutex
	recent map[string]*room.NodeResult // req -> its answer (nil while being applied); nil until the first
	order  []string
	closed bool
	wg     sync.WaitGroup
}

// stop waits for the requests being applied; none starts after.
func (s *modState) stop() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

var _ room.Moderator = (*Cluster)(nil)

// moderated applies another node's request to r (once per request) and
// answers it. It runs on the store's delivery goroutine, which must not
// block: the work runs on a goroutine of its own, which Close waits for.
func (c *Cluster) moderated(r *room.Room, ev wireEvent) {
	s := &c.mod
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if res, done := s.recent[ev.Mod.Req]; done {
		s.mu.Unlock()
		if res != nil { // applied already: answer this copy too
			c.answer(r.Name(), ev.Mod.Req, *res)
		}
		return
	}
	if s.recent == nil {
		s.recent = map[string]*room.NodeResult{}
	}
	s.recent[ev.Mod.Req] = nil // being applied
	s.order = append(s.order, ev.Mod.Req)
	if len(s.order) > maxModRecent {
		delete(s.recent, s.order[0])
		s.order = s.order[1:]
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		var res room.NodeResult
		res.Affected, res.Changed = c.m.ApplyModeration(r.Name(), ev.Mod.action())
		s.mu.Lock()
		if _, kept := s.recent[ev.Mod.Req]; kept {
			s.recent[ev.Mod.Req] = &res
		}
		s.mu.Unlock()
		c.log.Info("cluster: applied a moderation request of another node", "room", r.Name(), "from", ev.Node,
			"action", ev.Mod.Kind, "affected", res.Affected)
		c.answer(r.Name(), ev.Mod.Req, res)
	}()
}

// answer publishes the answer to request req.
func (c *Cluster) answer(name, req string, res room.NodeResult) {
	c.storeOp(c.publishOp(name, wireEvent{V: 1, Node: c.opt.NodeID, Boot: c.boot, Type: evModerateAck,
		Mod: &modWire{Req: req, Affected: res.Affected, Changed: res.Changed}}))
}

// Moderate implements room.Moderator.
func (c *Cluster) Moderate(ctx context.Context, name string, a room.Action) ([]room.NodeResult, []string, error) {
	rctx, cancel := context.WithTimeout(ctx, c.opt.StoreTimeout)
	counts, err := c.store.Counts(rctx, name)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading the room's nodes: %w", room.ErrClusterUnavailable, err)
	}
	waiting := map[string]bool{}
	for node := range counts.Viewers {
		if node != c.opt.NodeID {
			waiting[node] = true
		}
	}
	if len(waiting) == 0 {
		return nil, nil, nil
	}
	req := id.New("m_")
	answers := make(chan wireEvent, 64)
	unsubscribe, err := c.store.Subscribe(name, func(b []byte) {
		ev, err := parseWireEvent(b)
		if err == nil && ev.Type == evModerateAck && ev.Mod.Req == req {
			select {
			case answers <- ev:
			default: // a node answering many copies: one is enough
			}
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: listening for the answers: %w", room.ErrClusterUnavailable, err)
	}
	defer unsubscribe()
	send := func() {
		c.storeOp(c.publishOp(name, wireEvent{V: 1, Node: c.opt.NodeID, Boot: c.boot, Type: evModerate, Mod: wireOf(req, a)}))
	}
	send()
	resend := time.NewTicker(modResend)
	defer resend.Stop()
	var out []room.NodeResult
	for len(waiting) > 0 {
		select {
		case ev := <-answers:
			if waiting[ev.Node] {
				delete(waiting, ev.Node)
				out = append(out, room.NodeResult{Node: ev.Node, Affected: ev.Mod.Affected, Changed: ev.Mod.Changed})
			}
		case <-resend.C:
			send()
		case <-ctx.Done():
			failed := make([]string, 0, len(waiting))
			for node := range waiting {
				failed = append(failed, node)
			}
			sort.Strings(failed)
			sortResults(out)
			return out, failed, nil
		}
	}
	sortResults(out)
	return out, nil, nil
}

func sortResults(r []room.NodeResult) {
	sort.Slice(r, func(i, j int) bool { return r[i].Node < r[j].Node })
}

// banStore is a Store that keeps bans.
type banStore interface {
	PutBan(ctx context.Context, name, identity string, until time.Time) error
	Bans(ctx context.Context, name string) (room.Bans, error)
}

// PutBan implements room.Moderator.
func (c *Cluster) PutBan(ctx context.Context, name, identity string, until time.Time) error {
	bs, ok := c.store.(banStore)
	if !ok {
		return nil // the memory store: each node keeps its own
	}
	ctx, cancel := context.WithTimeout(ctx, c.opt.StoreTimeout)
	defer cancel()
	return bs.PutBan(ctx, name, identity, until)
}

// Bans implements room.Moderator.
func (c *Cluster) Bans(ctx context.Context, name string) (room.Bans, error) {
	bs, ok := c.store.(banStore)
	if !ok {
		return room.Bans{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opt.StoreTimeout)
	defer cancel()
	return bs.Bans(ctx, name)
}

// banScript records a ban and keeps the hash until its longest ban ends.
var banScript = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1`)

func (s *RedisStore) bansKey(name string) string { return s.roomKey(name, "bans") }

// PutBan implements banStore.
func (s *RedisStore) PutBan(ctx context.Context, name, identity string, until time.Time) error {
	ttl := time.Until(until).Milliseconds()
	if ttl <= 0 {
		return nil
	}
	err := banScript.Run(ctx, s.rdb, []string{s.bansKey(name)}, identity, until.UnixMilli(), ttl).Err()
	if err != nil {
		return fmt.Errorf("redis store: ban in %s: %w", name, err)
	}
	return nil
}

// Bans implements banStore.
func (s *RedisStore) Bans(ctx context.Context, name string) (room.Bans, error) {
	all, err := s.rdb.HGetAll(ctx, s.bansKey(name)).Result()
	if err != nil {
		return room.Bans{}, fmt.Errorf("redis store: bans of %s: %w", name, err)
	}
	now := time.Now()
	b := room.Bans{Identities: map[string]time.Time{}}
	for who, v := range all {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			continue
		}
		until := time.UnixMilli(ms)
		if !now.Before(until) {
			continue
		}
		if who == "" {
			b.Broadcast = until
		} else {
			b.Identities[who] = until
		}
	}
	return b, nil
}
