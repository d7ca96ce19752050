package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/halobuzz/live/room"
	"github.com/redis/go-redis/v9"
)

// The index of rooms in Redis: one HASH per node, P index:<node>, field
// room name, value "viewers participants tracks started_ms", rewritten
// whole at every heartbeat (DEL and HSET in one MULTI/EXEC) under the
// node's lease. A listing reads one HGETALL per live node, pipelined.

func (s *RedisStore) indexKey(node string) string { return s.prefix + "index:" + node }

// PutIndex implements indexStore.
func (s *RedisStore) PutIndex(ctx context.Context, entries []room.RoomEntry) error {
	key := s.indexKey(s.node)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		if len(entries) == 0 {
			return nil
		}
		fields := make([]any, 0, 2*len(entries))
		for _, e := range entries {
			started := int64(0)
			if !e.StartedAt.IsZero() {
				started = e.StartedAt.UnixMilli()
			}
			fields = append(fields, e.Name, fmt.Sprintf("%d %d %d %d", e.Viewers, e.Participants, e.Tracks, started))
		}
		p.HSet(ctx, key, fields...)
		p.PExpire(ctx, key, s.ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis store: index: %w", err)
	}
	return nil
}

// Index implements indexStore.
func (s *RedisStore) Index(ctx context.Context, nodes []string) ([]room.RoomEntry, error) {
	cmds := make([]*redis.MapStringStringCmd, len(nodes))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range nodes {
			cmds[i] = p.HGetAll(ctx, s.indexKey(n))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis store: index: %w", err)
	}
	var out []room.RoomEntry
	for i, c := range cmds {
		for name, v := range c.Val() {
			if e, ok := parseIndexEntry(name, nodes[i], v); ok {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// parseIndexEntry reads one field of a node's index; anything malformed
// (another version, a hand edit) is skipped.
func parseIndexEntry(name, node, v string) (room.RoomEntry, bool) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return room.RoomEntry{}, false
	}
	var n [4]int64
	for i, x := range f {
		k, err := strconv.ParseInt(x, 10, 64)
		if err != nil || k < 0 {
			return room.RoomEntry{}, false
		}
		n[i] = k
	}
	e := room.RoomEntry{Name: name, Node: node, Viewers: int(n[0]), Participants: int(n[1]), Tracks: int(n[2])}
	if n[3] > 0 {
		e.StartedAt = time.UnixMilli(n[3]).UTC()
	}
	return e, true
}

// RoomStates implements indexStore: the rooms of a page read in one
// pipeline (one round trip, not one per room); a room no node holds any
// more is an empty state.
func (s *RedisStore) RoomStates(ctx context.Context, names []string) ([]room.RoomState, error) {
	cmds := make([]*redis.Cmd, len(names))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range names {
			cmds[i] = roomScript.Eval(ctx, p, []string{s.roomKey(name, "nodes")}, s.roomKey(name, "n:"), "state")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis store: rooms: %w", err)
	}
	out := make([]room.RoomState, len(names))
	for i, c := range cmds {
		res, err := c.Slice()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("redis store: room %s: %w", names[i], err)
		}
		st, err := s.roomOf(ctx, names[i], partsOf(res))
		if errors.Is(err, ErrNotFound) {
			st = room.RoomState{Name: names[i]}
		} else if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// RoomEntries implements indexStore: one HGET per node, pipelined.
func (s *RedisStore) RoomEntries(ctx context.Context, name string, nodes []string) ([]room.RoomEntry, error) {
	cmds := make([]*redis.StringCmd, len(nodes))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range nodes {
			cmds[i] = p.HGet(ctx, s.indexKey(n), name)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis store: index of %s: %w", name, err)
	}
	var out []room.RoomEntry
	for i, c := range cmds {
		if v, err := c.Result(); err == nil {
			if e, ok := parseIndexEntry(name, nodes[i], v); ok {
				out = append(out, e)
			}
		}
	}
	return out, nil
}
