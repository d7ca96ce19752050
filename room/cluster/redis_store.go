package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/halobuzz/live/room"
	"github.com/redis/go-redis/v9"
)

// RedisStore is the Store of a cluster: every node's handle on one Redis (a
// single server, a Sentinel-managed primary or a Redis Cluster, through
// go-redis's UniversalClient).
//
// Keys (prefix P, default "halo:"). Every key of one room carries the room's
// hash tag {room}, so a room lives in one Redis Cluster slot and its writes
// can be one MULTI/EXEC:
//
//	P{room}:nodes            SET of node ids with a part in the room
//	P{room}:n:<node>:p       HASH participant id -> ParticipantRecord JSON
//	P{room}:n:<node>:t       HASH track id -> TrackRecord JSON
//	P{room}:n:<node>:v       STRING viewer count; the node's lease on the room
//	P{room}:origin:<track>   STRING node id holding the track's origin claim
//	P{room}:events           pub/sub channel of the room
//	Prooms                   SET of room names (an index; pruned on read)
//	Pnode:<id>               STRING NodeInfo JSON (the registry entry)
//	Pnodes                   SET of node ids (an index; pruned on read)
//
// Everything a node writes has a TTL (the lease) that Renew and PutNode
// extend; a node that stops renewing vanishes when it ends.
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
	node   string
	ttl    time.Duration
	log    *slog.Logger

	indexed sync.Map // rooms this handle added to the rooms index

	mu     sync.Mutex
	ps     *redis.PubSub
	subs   map[string][]*redisSub // channel -> handlers
	done   chan struct{}
	shards map[string]*shardSub // Redis Cluster: one sharded subscription per channel
	closed bool
}

// RedisOptions configure a RedisStore.
type RedisOptions struct {
	NodeID string
	// TTL is the lease of everything the node writes. Must be positive.
	TTL time.Duration
	Log *slog.Logger
}

// NewRedisStore returns node opt.NodeID's handle on rdb, writing keys under
// prefix. Close does not close rdb.
func NewRedisStore(rdb redis.UniversalClient, prefix string, opt RedisOptions) (*RedisStore, error) {
	if opt.NodeID == "" {
		return nil, errors.New("room: redis store: empty node id")
	}
	if opt.TTL <= 0 {
		return nil, errors.New("room: redis store: the lease TTL must be positive")
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &RedisStore{rdb: rdb, prefix: prefix, node: opt.NodeID, ttl: opt.TTL, log: opt.Log,
		subs: map[string][]*redisSub{}, shards: map[string]*shardSub{}}, nil
}

func (s *RedisStore) roomKey(name, rest string) string { return s.prefix + "{" + name + "}:" + rest }
func (s *RedisStore) partKey(name, node, kind string) string {
	return s.roomKey(name, "n:"+node+":"+kind)
}
func (s *RedisStore) roomsKey() string         { return s.prefix + "rooms" }
func (s *RedisStore) nodesKey() string         { return s.prefix + "nodes" }
func (s *RedisStore) nodeKey(id string) string { return s.prefix + "node:" + id }
func (s *RedisStore) channel(name string) string {
	return s.roomKey(name, "events")
}

// NodeID implements Store.
func (s *RedisStore) NodeID() string { return s.node }

// touch queues the commands that (re)take this node's lease on room.
func (s *RedisStore) touch(ctx context.Context, p redis.Pipeliner, name string) {
	v := s.partKey(name, s.node, "v")
	p.SetNX(ctx, v, 0, s.ttl)
	p.PExpire(ctx, v, s.ttl)
	p.PExpire(ctx, s.partKey(name, s.node, "p"), s.ttl)
	p.PExpire(ctx, s.partKey(name, s.node, "t"), s.ttl)
	p.SAdd(ctx, s.roomKey(name, "nodes"), s.node)
	p.PExpire(ctx, s.roomKey(name, "nodes"), s.ttl)
}

// roomWrite applies f and the lease on room in one MULTI/EXEC (one slot),
// then indexes the room the first time (the index key lives in another
// slot; Renew indexes again on every heartbeat, so a lost index heals).
func (s *RedisStore) roomWrite(ctx context.Context, name string, f func(p redis.Pipeliner)) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		f(p)
		s.touch(ctx, p, name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis store: name %s: %w", name, err)
	}
	if _, done := s.indexed.Load(name); done {
		return nil
	}
	if err := s.rdb.SAdd(ctx, s.roomsKey(), name).Err(); err != nil {
		return fmt.Errorf("redis store: rooms index: %w", err)
	}
	s.indexed.Store(name, true)
	return nil
}

// PutParticipant implements Store.
func (s *RedisStore) PutParticipant(ctx context.Context, name string, rec room.ParticipantRecord) error {
	b, _ := json.Marshal(rec)
	return s.roomWrite(ctx, name, func(p redis.Pipeliner) { p.HSet(ctx, s.partKey(name, s.node, "p"), rec.ID, b) })
}

// DeleteParticipant implements Store.
func (s *RedisStore) DeleteParticipant(ctx context.Context, name, id string) error {
	return s.wrap(name, s.rdb.HDel(ctx, s.partKey(name, s.node, "p"), id).Err())
}

// PutTrack implements Store.
func (s *RedisStore) PutTrack(ctx context.Context, name string, t room.TrackRecord) error {
	b, _ := json.Marshal(t)
	return s.roomWrite(ctx, name, func(p redis.Pipeliner) { p.HSet(ctx, s.partKey(name, s.node, "t"), t.ID, b) })
}

// DeleteTrack implements Store.
func (s *RedisStore) DeleteTrack(ctx context.Context, name, id string) error {
	return s.wrap(name, s.rdb.HDel(ctx, s.partKey(name, s.node, "t"), id).Err())
}

// SetViewers implements Store.
func (s *RedisStore) SetViewers(ctx context.Context, name string, n int) error {
	return s.roomWrite(ctx, name, func(p redis.Pipeliner) { p.Set(ctx, s.partKey(name, s.node, "v"), n, s.ttl) })
}

// SyncRoom implements Store.
func (s *RedisStore) SyncRoom(ctx context.Context, name string, st NodeRoom) error {
	pk, tk := s.partKey(name, s.node, "p"), s.partKey(name, s.node, "t")
	return s.roomWrite(ctx, name, func(p redis.Pipeliner) {
		p.Del(ctx, pk, tk)
		for _, r := range st.Participants {
			b, _ := json.Marshal(r)
			p.HSet(ctx, pk, r.ID, b)
		}
		for _, t := range st.Tracks {
			b, _ := json.Marshal(t)
			p.HSet(ctx, tk, t.ID, b)
		}
		p.Set(ctx, s.partKey(name, s.node, "v"), st.Viewers, s.ttl)
	})
}

func (s *RedisStore) wrap(name string, err error) error {
	if err != nil {
		return fmt.Errorf("redis store: name %s: %w", name, err)
	}
	return nil
}

// roomScript reads a room in one round trip: for each node of the room
// (KEYS[1], its nodes set), its participants, its tracks and its viewer
// count ("" when the lease ended). Every key it reads carries the room's
// hash tag, so on a Redis Cluster they are all in KEYS[1]'s slot. Reading
// the set first and the nodes' parts after cost two round trips: 480 ms
// for a node 120 ms from Redis, on the path to a far region's first frame.
var roomScript = redis.NewScript(`
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local base = ARGV[1] .. n .. ':'
  local v = redis.call('GET', base .. 'v')
  if not v then v = '' end
  if ARGV[2] == 'counts' then
    out[#out+1] = {n, redis.call('HLEN', base .. 'p'), v}
  else
    out[#out+1] = {n, redis.call('HVALS', base .. 'p'), redis.call('HVALS', base .. 't'), v}
  end
end
return out`)

// roomParts runs roomScript for room (what: "counts" or "state") and
// returns one entry per node of the room.
func (s *RedisStore) roomParts(ctx context.Context, name, what string) ([][]any, error) {
	res, err := roomScript.Run(ctx, s.rdb, []string{s.roomKey(name, "nodes")}, s.roomKey(name, "n:"), what).Slice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis store: name %s: %w", name, err)
	}
	return partsOf(res), nil
}

// partsOf reads roomScript's reply: one entry per node of the room.
func partsOf(res []any) [][]any {
	parts := make([][]any, 0, len(res))
	for _, r := range res {
		if p, ok := r.([]any); ok && len(p) >= 3 {
			parts = append(parts, p)
		}
	}
	return parts
}

// strs returns the strings of a script's array reply.
func strs(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Room implements Store.
func (s *RedisStore) Room(ctx context.Context, name string) (room.RoomState, error) {
	parts, err := s.roomParts(ctx, name, "state")
	if err != nil {
		return room.RoomState{}, err
	}
	return s.roomOf(ctx, name, parts)
}

// roomOf is the state of room name read from roomScript's parts ("state");
// the nodes whose lease ended leave the room's set of nodes.
func (s *RedisStore) roomOf(ctx context.Context, name string, parts [][]any) (room.RoomState, error) {
	st := room.RoomState{Name: name, Viewers: map[string]int{}}
	var stale []any
	for _, pt := range parts {
		if len(pt) < 4 {
			continue
		}
		n, _ := pt[0].(string)
		ps, ts := strs(pt[1]), strs(pt[2])
		vs, _ := pt[3].(string)
		if vs == "" && len(ps) == 0 && len(ts) == 0 {
			stale = append(stale, n) // its lease ended
			continue
		}
		v, _ := strconv.Atoi(vs)
		st.Viewers[n] = v
		for _, raw := range ps {
			var r room.ParticipantRecord
			if json.Unmarshal([]byte(raw), &r) == nil {
				st.Participants = append(st.Participants, r)
			}
		}
		for _, raw := range ts {
			var t room.TrackRecord
			if json.Unmarshal([]byte(raw), &t) == nil {
				st.Tracks = append(st.Tracks, t)
			}
		}
	}
	if len(stale) > 0 {
		_ = s.rdb.SRem(ctx, s.roomKey(name, "nodes"), stale...).Err()
	}
	if len(st.Viewers) == 0 {
		return room.RoomState{}, ErrNotFound
	}
	sortState(&st)
	return st, nil
}

// Counts implements Store.
func (s *RedisStore) Counts(ctx context.Context, name string) (RoomCounts, error) {
	parts, err := s.roomParts(ctx, name, "counts")
	if err != nil {
		return RoomCounts{}, err
	}
	c := RoomCounts{Participants: map[string]int{}, Viewers: map[string]int{}}
	for _, pt := range parts {
		n, _ := pt[0].(string)
		np, _ := pt[1].(int64)
		vs, _ := pt[2].(string)
		if vs == "" && np == 0 {
			continue
		}
		v, _ := strconv.Atoi(vs)
		c.Participants[n] = int(np)
		c.Viewers[n] = v
	}
	return c, nil
}

// DeleteRoom implements Store.
func (s *RedisStore) DeleteRoom(ctx context.Context, name string) error {
	s.indexed.Delete(name)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.partKey(name, s.node, "p"), s.partKey(name, s.node, "t"), s.partKey(name, s.node, "v"))
		p.SRem(ctx, s.roomKey(name, "nodes"), s.node)
		return nil
	})
	return s.wrap(name, err)
}

// Rooms implements Store.
func (s *RedisStore) Rooms(ctx context.Context) ([]string, error) {
	names, err := s.rdb.SMembers(ctx, s.roomsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: rooms: %w", err)
	}
	alive := make([]*redis.IntCmd, len(names))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			alive[i] = p.SCard(ctx, s.roomKey(n, "nodes"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis store: rooms: %w", err)
	}
	out := []string{}
	var gone []any
	for i, n := range names {
		if alive[i].Val() > 0 {
			out = append(out, n)
		} else {
			gone = append(gone, n)
		}
	}
	if len(gone) > 0 {
		_ = s.rdb.SRem(ctx, s.roomsKey(), gone...).Err()
	}
	sortStrings(out)
	return out, nil
}

// Origin claims are compare-and-set scripts: a claim is taken only when free,
// extended only by its holder, released only by its holder.
var (
	claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return cur`)
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`)
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

func (s *RedisStore) ttlMillis() string { return strconv.FormatInt(s.ttl.Milliseconds(), 10) }

// ClaimOrigin implements Store.
func (s *RedisStore) ClaimOrigin(ctx context.Context, name, track string) (string, error) {
	holder, err := claimScript.Run(ctx, s.rdb, []string{s.roomKey(name, "origin:"+track)}, s.node, s.ttlMillis()).Text()
	if err != nil {
		return "", fmt.Errorf("redis store: claim origin %s/%s: %w", name, track, err)
	}
	return holder, nil
}

// Origin implements Store.
func (s *RedisStore) Origin(ctx context.Context, name, track string) (string, error) {
	holder, err := s.rdb.Get(ctx, s.roomKey(name, "origin:"+track)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("redis store: origin %s/%s: %w", name, track, err)
	}
	return holder, nil
}

// ReleaseOrigin implements Store.
func (s *RedisStore) ReleaseOrigin(ctx context.Context, name, track string) error {
	err := releaseScript.Run(ctx, s.rdb, []string{s.roomKey(name, "origin:"+track)}, s.node).Err()
	return s.wrap(name, err)
}

// Renew implements Store: one pipeline for every room lease and origin
// claim of the node.
func (s *RedisStore) Renew(ctx context.Context, l Leases) (Renewal, error) {
	leases := make([]*redis.BoolCmd, len(l.Rooms))
	origins := make([]*redis.Cmd, len(l.Origins))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, room := range l.Rooms {
			leases[i] = p.PExpire(ctx, s.partKey(room, s.node, "v"), s.ttl)
			p.PExpire(ctx, s.partKey(room, s.node, "p"), s.ttl)
			p.PExpire(ctx, s.partKey(room, s.node, "t"), s.ttl)
			p.SAdd(ctx, s.roomKey(room, "nodes"), s.node)
			p.PExpire(ctx, s.roomKey(room, "nodes"), s.ttl)
			p.SAdd(ctx, s.roomsKey(), room)
		}
		for i, k := range l.Origins {
			origins[i] = renewScript.Eval(ctx, p, []string{s.roomKey(k.Room, "origin:"+k.Track)}, s.node, s.ttlMillis())
		}
		return nil
	})
	if err != nil {
		return Renewal{}, fmt.Errorf("redis store: renew: %w", err)
	}
	var out Renewal
	for i, c := range leases {
		if !c.Val() {
			out.Missing = append(out.Missing, l.Rooms[i])
		}
	}
	for i, c := range origins {
		if n, _ := c.Int(); n != 1 {
			out.Lost = append(out.Lost, l.Origins[i])
		}
	}
	return out, nil
}

// PutNode implements Store.
func (s *RedisStore) PutNode(ctx context.Context, n room.NodeInfo) error {
	n.ID = s.node
	b, _ := json.Marshal(n)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.nodeKey(s.node), b, s.ttl)
		p.SAdd(ctx, s.nodesKey(), s.node)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis store: register node %s: %w", s.node, err)
	}
	return nil
}

// DeleteNode implements Store.
func (s *RedisStore) DeleteNode(ctx context.Context) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.nodeKey(s.node))
		p.SRem(ctx, s.nodesKey(), s.node)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis store: deregister node %s: %w", s.node, err)
	}
	return nil
}

// Nodes implements Store.
func (s *RedisStore) Nodes(ctx context.Context) ([]room.NodeInfo, error) {
	ids, err := s.rdb.SMembers(ctx, s.nodesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis store: nodes: %w", err)
	}
	gets := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = p.Get(ctx, s.nodeKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis store: nodes: %w", err)
	}
	out := []room.NodeInfo{}
	var gone []any
	for i, g := range gets {
		var n room.NodeInfo
		if b, err := g.Bytes(); err != nil || json.Unmarshal(b, &n) != nil {
			gone = append(gone, ids[i])
			continue
		}
		out = append(out, n)
	}
	if len(gone) > 0 {
		_ = s.rdb.SRem(ctx, s.nodesKey(), gone...).Err()
	}
	sortNodes(out)
	return out, nil
}
