package redisqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/halobuzz/live/signaling/webhook"
	"github.com/redis/go-redis/v9"
)

// Partitions is how many partitions the queue has: up to this many nodes
// deliver at once.
const Partitions = 16

// group is the consumer group of every partition's stream.
const group = "halo"

// onceTTL is how long a Once key is kept without webhook.Op.OnceFor.
const onceTTL = 2 * time.Hour

// pollIdle is how long Receive waits when no partition has anything.
const pollIdle = 100 * time.Millisecond

// Options configure a Queue.
type Options struct {
	// Prefix starts every key (redis.key_prefix).
	Prefix string
	// NodeID is this node: the consumer name and the lease holder.
	NodeID string
	// Lease is how long a partition stays with a node that stopped
	// renewing it (cluster.node_ttl); Renew how often it is renewed
	// (cluster.heartbeat_interval).
	Lease, Renew time.Duration
	Log          *slog.Logger
}

// Queue is the webhook.Queue of a cluster. Start its lease keeping with
// Start; Close stops it.
type Queue struct {
	rdb redis.UniversalClient
	opt Options

	mu    sync.Mutex
	parts [Partitions]*part

	leaseFailing bool // the last lease round failed (log once per outage); lease goroutine only

	cancel context.CancelFunc
	done   chan struct{}
}

// part is this node's view of one partition.
type part struct {
	owned   bool
	claim   bool               // just taken over: claim the pending entries first
	backlog []webhook.Delivery // claimed, to hand out before anything newer
	gen     uint64             // ownership generation (Owns)
}

// New returns the queue on rdb; Start begins taking partitions. It does
// not reach Redis (a node starts while Redis is away).
func New(rdb redis.UniversalClient, opt Options) (*Queue, error) {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Lease <= 0 || opt.Renew <= 0 || opt.Renew >= opt.Lease {
		return nil, fmt.Errorf("redisqueue: renew %s must be shorter than the lease %s", opt.Renew, opt.Lease)
	}
	q := &Queue{rdb: rdb, opt: opt}
	for i := range q.parts {
		q.parts[i] = &part{}
	}
	return q, nil
}

// key is a key of partition p; every key of a partition has its hash tag,
// so a partition lives in one slot of a Redis Cluster.
func (q *Queue) key(p int, name string) string {
	return q.opt.Prefix + "{wh" + strconv.Itoa(p) + "}:" + name
}

// partition is the partition of room.
func partition(room string) int {
	h := fnv.New32a()
	h.Write([]byte(room))
	return int(h.Sum32() % Partitions)
}

// Start keeps the leases: it takes free partitions and renews the owned
// ones every Renew, until Close.
func (q *Queue) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel, q.done = cancel, make(chan struct{})
	go func() {
		defer close(q.done)
		t := time.NewTicker(q.opt.Renew)
		defer t.Stop()
		for {
			q.lease(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the lease keeping and lets the partitions go, so that
// another node takes them at once.
func (q *Queue) Close() {
	if q.cancel == nil {
		return
	}
	q.cancel()
	<-q.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for i, p := range q.parts {
		q.mu.Lock()
		owned := p.owned
		p.owned = false
		q.mu.Unlock()
		if owned {
			_ = q.rdb.Eval(ctx, `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
				[]string{q.key(i, "owner")}, q.opt.NodeID).Err()
		}
	}
}

// lease renews the partitions this node owns and takes free ones.
func (q *Queue) lease(ctx context.Context) {
	ms := strconv.FormatInt(q.opt.Lease.Milliseconds(), 10)
	var failed error
	defer func() {
		switch {
		case failed != nil && !q.leaseFailing && ctx.Err() == nil:
			q.opt.Log.Warn("webhooks: cannot reach Redis to keep the queue's partitions; retrying", "err", failed)
		case failed == nil && q.leaseFailing:
			q.opt.Log.Info("webhooks: Redis reached again for the queue's partitions")
		}
		q.leaseFailing = failed != nil
	}()
	for i, p := range q.parts {
		q.mu.Lock()
		owned := p.owned
		q.mu.Unlock()
		var ok bool
		var err error
		if owned {
			var n int64
			n, err = renewScript.Run(ctx, q.rdb, []string{q.key(i, "owner")}, q.opt.NodeID, ms).Int64()
			ok = n == 1
		} else {
			ok, err = q.rdb.SetNX(ctx, q.key(i, "owner"), q.opt.NodeID, q.opt.Lease).Result()
		}
		if err != nil {
			failed = err
			continue // an owned one stays owned until its renewal says otherwise
		}
		q.mu.Lock()
		switch {
		case ok && !owned:
			p.owned, p.claim, p.gen = true, true, p.gen+1
			q.opt.Log.Info("webhooks: delivering a queue partition", "partition", i)
		case !ok && owned:
			p.owned, p.backlog = false, nil
			p.gen++
			q.opt.Log.Warn("webhooks: a queue partition was taken over by another node", "partition", i)
		}
		q.mu.Unlock()
	}
}

// Append implements webhook.Queue.
func (q *Queue) Append(ctx context.Context, ops ...webhook.Op) error {
	for _, op := range ops {
		p := partition(op.Room)
		dummy := q.key(p, "none")
		keys := []string{q.key(p, "stream"), q.key(p, "seq"), dummy, dummy, dummy}
		if op.Set != "" {
			node, _, _ := strings.Cut(op.Member, "|")
			keys[2] = q.key(p, "set:"+op.Set+":"+op.Room)
			keys[4] = q.key(p, "rooms:"+node)
		}
		if op.Once != "" {
			keys[3] = q.key(p, "once:"+op.Once)
		}
		keep := onceTTL
		if op.OnceFor > 0 {
			keep = op.OnceFor
		}
		lost, _ := json.Marshal(map[string]string{"e": string(op.LostEvent), "g": string(op.LostEdge)})
		err := appendScript.Run(ctx, q.rdb, keys, op.Room, flag(op.Set != ""), flag(op.Enter), op.Member,
			string(op.Edge), string(op.Event), string(lost), keep.Milliseconds(), flag(op.Once != ""), op.Set).Err()
		if err != nil {
			return fmt.Errorf("redisqueue: append: %w", err)
		}
	}
	return nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ForgetNode implements webhook.Queue.
func (q *Queue) ForgetNode(ctx context.Context, node string) error {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	for p := range Partitions {
		idx := q.key(p, "rooms:"+node)
		rooms, err := q.rdb.SMembers(ctx, idx).Result()
		if err != nil {
			return fmt.Errorf("redisqueue: forget %s: %w", node, err)
		}
		for _, room := range rooms {
			keys := []string{q.key(p, "stream"), q.key(p, "seq"), q.key(p, "set:"+webhook.SetTracks+":"+room),
				q.key(p, "set:"+webhook.SetNodes+":"+room), idx}
			if err := forgetScript.Run(ctx, q.rdb, keys, room, node, now).Err(); err != nil {
				return fmt.Errorf("redisqueue: forget %s: %w", node, err)
			}
		}
	}
	return nil
}

// Receive implements webhook.Queue: the backlog a takeover claimed first,
// then what is new, of the partitions this node owns.
func (q *Queue) Receive(ctx context.Context, max int) ([]webhook.Delivery, error) {
	var out []webhook.Delivery
	var firstErr error
	for i, p := range q.parts {
		if len(out) >= max {
			break
		}
		q.mu.Lock()
		owned, claim, gen := p.owned, p.claim, p.gen
		q.mu.Unlock()
		if !owned {
			continue
		}
		if claim {
			claimed, err := q.claimAll(ctx, i, gen)
			if err != nil {
				firstErr = cmp(firstErr, err)
				continue
			}
			q.mu.Lock()
			if p.gen == gen {
				p.claim, p.backlog = false, claimed
			}
			q.mu.Unlock()
		}
		q.mu.Lock()
		n := min(len(p.backlog), max-len(out))
		out = append(out, p.backlog[:n]...)
		p.backlog = p.backlog[n:]
		left := len(p.backlog)
		q.mu.Unlock()
		if left > 0 || len(out) >= max {
			continue
		}
		res, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: q.opt.NodeID, Streams: []string{q.key(i, "stream"), ">"},
			Count: int64(max - len(out)), Block: -1,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			firstErr = cmp(firstErr, err)
			continue
		}
		for _, s := range res {
			for _, m := range s.Messages {
				out = append(out, delivery(i, gen, m))
			}
		}
	}
	if len(out) == 0 {
		select {
		case <-time.After(pollIdle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if firstErr != nil {
			return nil, fmt.Errorf("redisqueue: receive: %w", firstErr)
		}
	}
	return out, nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// claimAll takes over every entry of partition i that was received and
// not acknowledged (by the node that owned it before, or by this node in
// an earlier life), in the stream's order.
func (q *Queue) claimAll(ctx context.Context, i int, gen uint64) ([]webhook.Delivery, error) {
	var out []webhook.Delivery
	// The group reads the stream from its first entry, also those added
	// before any node took the partition.
	err := q.rdb.XGroupCreateMkStream(ctx, q.key(i, "stream"), group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return nil, err
	}
	start := "0-0"
	for {
		msgs, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: q.key(i, "stream"), Group: group, Consumer: q.opt.NodeID, MinIdle: 0, Start: start, Count: 256,
		}).Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			out = append(out, delivery(i, gen, m))
		}
		if next == "0-0" || next == "" {
			break
		}
		start = next
	}
	if len(out) > 0 {
		q.opt.Log.Info("webhooks: delivering what another node left pending", "partition", i, "events", len(out))
	}
	return out, nil
}

// delivery is a stream entry of partition p; its Ref is "p/gen/id".
func delivery(p int, gen uint64, m redis.XMessage) webhook.Delivery {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	seq, _ := strconv.ParseInt(str("seq"), 10, 64)
	at, _ := strconv.ParseInt(str("at"), 10, 64)
	return webhook.Delivery{
		Ref:  strconv.Itoa(p) + "/" + strconv.FormatUint(gen, 10) + "/" + m.ID,
		Room: str("room"), Event: []byte(str("ev")), Seq: seq, At: at,
	}
}

func parseRef(ref string) (p int, gen uint64, id string, ok bool) {
	a, rest, ok1 := strings.Cut(ref, "/")
	g, id, ok2 := strings.Cut(rest, "/")
	pi, err1 := strconv.Atoi(a)
	gi, err2 := strconv.ParseUint(g, 10, 64)
	return pi, gi, id, ok1 && ok2 && err1 == nil && err2 == nil && pi >= 0 && pi < Partitions
}

// Ack implements webhook.Queue: the entry leaves the group's pending list
// and the stream.
func (q *Queue) Ack(ctx context.Context, d webhook.Delivery) error {
	p, _, id, ok := parseRef(d.Ref)
	if !ok {
		return fmt.Errorf("redisqueue: ack: bad ref %q", d.Ref)
	}
	key := q.key(p, "stream")
	_, err := q.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.XAck(ctx, key, group, id)
		pipe.XDel(ctx, key, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisqueue: ack: %w", err)
	}
	return nil
}

// Owns implements webhook.Queue: d's partition is still this node's, in
// the ownership d was received under.
func (q *Queue) Owns(d webhook.Delivery) bool {
	p, gen, _, ok := parseRef(d.Ref)
	if !ok {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.parts[p].owned && q.parts[p].gen == gen
}

// Depth implements webhook.Queue: the events in every partition's stream
// (queued or received, not yet acknowledged), cluster-wide.
func (q *Queue) Depth(ctx context.Context) (int64, error) {
	cmds := make([]*redis.IntCmd, Partitions)
	_, err := q.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = pipe.XLen(ctx, q.key(i, "stream"))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redisqueue: depth: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}
