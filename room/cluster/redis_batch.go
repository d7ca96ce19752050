package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The Redis side of batched writes (batch.go).

var _ batchStore = (*RedisStore)(nil)

// applyOps implements batchStore (batch.go): the ops in one MULTI/EXEC,
// one round trip, on a single Redis or a Sentinel-managed primary. A Redis
// Cluster transaction cannot span slots, so there each room's ops (all its
// keys are in its slot) are one MULTI/EXEC, rooms in the order of their
// first op: a room's records and events keep their order, which is the
// order that matters (events are per room). Each room written to is leased
// as by roomWrite, and indexed the first time, after the transaction.
func (s *RedisStore) applyOps(ctx context.Context, ops []storeOp) error {
	_, cluster := s.rdb.(*redis.ClusterClient)
	groups := [][]storeOp{ops}
	if cluster {
		groups = groups[:0]
		at := map[string]int{}
		for _, op := range ops {
			i, ok := at[op.room]
			if !ok {
				i = len(groups)
				at[op.room] = i
				groups = append(groups, nil)
			}
			groups[i] = append(groups[i], op)
		}
	}
	var leased []string
	for _, g := range groups {
		var claims []claimCmd
		_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			leased, claims = s.queueOps(ctx, p, g, cluster, leased)
			return nil
		})
		if err != nil {
			return fmt.Errorf("redis store: %d writes: %w", len(g), err)
		}
		for _, c := range claims {
			if holder, err := c.cmd.Text(); err == nil && c.claimed != nil {
				c.claimed(holder)
			}
		}
	}
	var fresh []any
	for _, room := range leased {
		if _, done := s.indexed.Load(room); !done {
			fresh = append(fresh, room)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := s.rdb.SAdd(ctx, s.roomsKey(), fresh...).Err(); err != nil {
		return fmt.Errorf("redis store: rooms index: %w", err)
	}
	for _, room := range fresh {
		s.indexed.Store(room, true)
	}
	return nil
}

// claimCmd is an origin claim sent in a batch, and who wants its result.
type claimCmd struct {
	cmd     *redis.Cmd
	claimed func(holder string)
}

// queueOps queues ops on p, then the lease of every room they put
// something in (touch); it returns leased with those rooms added, and the
// batch's origin claims. The scripts go as EVAL: EVALSHA's fallback on a
// Redis that does not know the script yet cannot run inside a MULTI.
func (s *RedisStore) queueOps(ctx context.Context, p redis.Pipeliner, ops []storeOp, cluster bool, leased []string) ([]string, []claimCmd) {
	var claims []claimCmd
	first := len(leased)
	lease := func(room string) {
		for _, r := range leased[first:] {
			if r == room {
				return
			}
		}
		leased = append(leased, room)
	}
	for _, op := range ops {
		switch op.kind {
		case opPutParticipant:
			b, _ := json.Marshal(op.participant)
			p.HSet(ctx, s.partKey(op.room, s.node, "p"), op.participant.ID, b)
			lease(op.room)
		case opDeleteParticipant:
			p.HDel(ctx, s.partKey(op.room, s.node, "p"), op.id)
		case opPutTrack:
			b, _ := json.Marshal(op.track)
			p.HSet(ctx, s.partKey(op.room, s.node, "t"), op.track.ID, b)
			lease(op.room)
		case opDeleteTrack:
			p.HDel(ctx, s.partKey(op.room, s.node, "t"), op.id)
		case opSetViewers:
			p.Set(ctx, s.partKey(op.room, s.node, "v"), op.viewers, s.ttl)
			lease(op.room)
		case opPublish:
			if cluster {
				p.SPublish(ctx, s.channel(op.room), op.payload)
			} else {
				p.Publish(ctx, s.channel(op.room), op.payload)
			}
		case opClaimOrigin:
			cmd := claimScript.Eval(ctx, p, []string{s.roomKey(op.room, "origin:"+op.id)}, s.node, s.ttlMillis())
			claims = append(claims, claimCmd{cmd: cmd, claimed: op.claimed})
		case opReleaseOrigin:
			releaseScript.Eval(ctx, p, []string{s.roomKey(op.room, "origin:"+op.id)}, s.node)
		}
	}
	for _, room := range leased[first:] {
		s.touch(ctx, p, room)
	}
	return leased, claims
}
