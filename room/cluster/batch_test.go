package cluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/id"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
	"github.com/redis/go-redis/v9"
)

var execCalls = regexp.MustCompile(`cmdstat_exec:calls=(\d+)`)

// transactions returns how many MULTI/EXEC transactions the Redis servers
// behind c have run.
func transactions(t *testing.T, c redis.UniversalClient) int {
	t.Helper()
	ctx := context.Background()
	count := func(cl *redis.Client) int {
		info, err := cl.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		m := execCalls.FindStringSubmatch(info)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		total := 0
		err := cc.ForEachMaster(ctx, func(ctx context.Context, cl *redis.Client) error {
			n := count(cl)
			mu.Lock()
			total += n
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return total
	}
	return count(c.(*redis.Client))
}

// checkBatchedWrites queues, behind a write that stalls, the records and
// events of participants joining each of rooms (a batch's worth), then lets the queue
// run: they reach Redis in one transaction per room on a Redis Cluster
// (want), in one on a single Redis, every record is there, and another
// node receives every event once, in order, each after its record.
func checkBatchedWrites(t *testing.T, store *RedisStore, observer Store, c redis.UniversalClient, rooms []string, want int) {
	m := New(store, Options{NodeID: store.NodeID(), StoreTimeout: config.Default().Redis.Timeout})
	m.startWriter() // the queue alone, without a heartbeat
	defer m.Close()
	ctx := context.Background()

	type seen struct {
		seq        uint64
		id         string
		recordThen bool
	}
	var mu sync.Mutex
	got := map[string][]seen{}
	for _, name := range rooms {
		cancel, err := observer.Subscribe(name, func(b []byte) {
			ev, err := parseWireEvent(b)
			if err != nil || ev.Participant == nil {
				t.Errorf("event %q: %v", b, err)
				return
			}
			st, err := observer.Room(ctx, name)
			has := false
			for _, p := range st.Participants {
				has = has || p.ID == ev.Participant.ID
			}
			mu.Lock()
			got[name] = append(got[name], seen{ev.Seq, ev.Participant.ID, err == nil && has})
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
	}
	time.Sleep(200 * time.Millisecond) // the subscriptions are active

	gate := make(chan struct{})
	m.storeWrite(func(context.Context) error { <-gate; return nil }) // a write the store is slow to answer
	n := maxBatch / (2 * len(rooms))                                 // one batch's worth
	for i := range n {
		for _, name := range rooms {
			pid := fmt.Sprintf("p_%02d", i)
			m.storeOp(storeOp{kind: opPutParticipant, room: name, participant: room.ParticipantRecord{ID: pid, Identity: pid, Node: store.NodeID()}})
			m.storeOp(m.publishOp(name, wireEvent{V: 1, Node: store.NodeID(), Boot: "boot", Type: evJoined,
				Participant: &room.ParticipantRecord{ID: pid, Identity: pid}}))
		}
	}
	done := make(chan struct{})
	before := transactions(t, c)
	close(gate)
	m.storeWrite(func(context.Context) error { close(done); return nil })
	<-done
	if tx := transactions(t, c) - before; tx != want {
		t.Errorf("%d writes queued behind a slow one took %d transactions, want %d", 2*n*len(rooms), tx, want)
	}
	for _, name := range rooms {
		st, err := observer.Room(ctx, name)
		if err != nil || len(st.Participants) != n {
			t.Fatalf("name %s holds %d participants (%v), want %d", name, len(st.Participants), err, n)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, name := range rooms {
		for {
			mu.Lock()
			k := len(got[name])
			mu.Unlock()
			if k >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		evs := got[name]
		mu.Unlock()
		if len(evs) != n {
			t.Fatalf("name %s: %d events received, want %d", name, len(evs), n)
		}
		for i, ev := range evs {
			if want := fmt.Sprintf("p_%02d", i); ev.id != want || (i > 0 && ev.seq <= evs[i-1].seq) {
				t.Fatalf("name %s: event %d is %s seq %d after seq %d, want %s in sequence order", name, i, ev.id, ev.seq, evs[max(i-1, 0)].seq, want)
			}
			if !ev.recordThen {
				t.Errorf("name %s: the event of %s arrived before its record", name, ev.id)
			}
		}
	}
}

// Writes queued while the store is busy leave together: one round trip.
func TestStoreWrites_QueuedWritesLeaveInOneTransaction(t *testing.T) {
	srv := testutil.StartRedis(t)
	nodes := redisNodes(t, srv, 10*time.Second)
	checkBatchedWrites(t, nodes("a").(*RedisStore), nodes("observer"), redisClient(t, srv), []string{"batch"}, 1)
}

// On a Redis Cluster a transaction stays within one slot: one per room.
func TestStoreWrites_QueuedWritesLeaveInOneTransactionPerRoomOnACluster(t *testing.T) {
	addrs := startRedisCluster(t)
	prefix := "b" + id.New("")[:6] + ":"
	handle := func(node string) (*RedisStore, redis.UniversalClient) {
		c := NewRedisClient(config.RedisConfig{Addrs: addrs, Timeout: time.Second})
		t.Cleanup(func() { _ = c.Close() })
		s, err := NewRedisStore(c, prefix, RedisOptions{NodeID: node, TTL: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s, c
	}
	a, c := handle("a")
	observer, _ := handle("observer")
	checkBatchedWrites(t, a, observer, c, []string{"one", "two", "three"}, 3)
}

// A node's Redis handle gets ready ahead: the subscription connection (so
// a far node's first room does not wait for a dial and a HELLO), the pool's
// idle connections, and its scripts. Releasing it closes the connections.
func TestOpenStore_OpensItsConnectionsAhead(t *testing.T) {
	srv := testutil.StartRedis(t)
	cfg := config.Default()
	cfg.Redis.Addrs = []string{srv.Addr()}
	cfg.Node.ID = "ahead"
	store, release, err := OpenStore(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = store
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1}) // no idle connections of its own
	defer admin.Close()
	clients := func() (subscribed, idle int) {
		list, err := admin.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range regexp.MustCompile(`\n`).Split(list, -1) {
			switch {
			case line == "":
			case regexp.MustCompile(` sub=[1-9]`).MatchString(line):
				subscribed++
			case regexp.MustCompile(` cmd=(client|info)`).MatchString(line):
				// the test's own connection
			default:
				idle++
			}
		}
		return subscribed, idle
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		sub, idle := clients()
		if sub == 1 && idle >= redisMinIdleConns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("before any room: %d subscription connections (want 1) and %d others (want >= %d)", sub, idle, redisMinIdleConns)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The scripts too: a room's first read or claim is not refused for an
	// unknown script first.
	loaded, err := admin.ScriptExists(context.Background(), roomScript.Hash(), claimScript.Hash(), renewScript.Hash(), releaseScript.Hash()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range loaded {
		if !ok {
			t.Errorf("script %d not loaded before any room", i)
		}
	}
	release()
	deadline = time.Now().Add(5 * time.Second)
	for {
		sub, idle := clients()
		if sub == 0 && idle == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after release: %d subscription connections and %d others still open", sub, idle)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Origin claims and releases go in the batch too, and the claim's holder
// still comes back: this node's for a free track, the other node's for one
// it holds.
func TestStoreWrites_OriginClaimsInTheBatch(t *testing.T) {
	srv := testutil.StartRedis(t)
	nodes := redisNodes(t, srv, 10*time.Second)
	a, b := nodes("a").(*RedisStore), nodes("b")
	ctx := context.Background()
	if _, err := b.ClaimOrigin(ctx, "claims", "theirs"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ClaimOrigin(ctx, "claims", "ending"); err != nil {
		t.Fatal(err)
	}
	m := New(a, Options{NodeID: "a", StoreTimeout: config.Default().Redis.Timeout})
	m.startWriter() // the queue alone, without a heartbeat
	defer m.Close()

	gate := make(chan struct{})
	m.storeWrite(func(context.Context) error { <-gate; return nil })
	holders := map[string]string{}
	for _, track := range []string{"free", "theirs"} {
		m.storeOp(storeOp{kind: opClaimOrigin, room: "claims", id: track, claimed: func(h string) { holders[track] = h }})
	}
	m.storeOp(storeOp{kind: opReleaseOrigin, room: "claims", id: "ending"})
	done := make(chan struct{})
	before := transactions(t, redisClient(t, srv))
	close(gate)
	m.storeWrite(func(context.Context) error { close(done); return nil })
	<-done
	if tx := transactions(t, redisClient(t, srv)) - before; tx != 1 {
		t.Errorf("two claims and a release took %d transactions, want 1", tx)
	}
	if holders["free"] != "a" || holders["theirs"] != "b" {
		t.Errorf("claims answered %v, want free by a and theirs by b", holders)
	}
	for track, want := range map[string]string{"free": "a", "theirs": "b"} {
		if got, err := b.Origin(ctx, "claims", track); err != nil || got != want {
			t.Errorf("origin of %s: %q %v, want %s", track, got, err, want)
		}
	}
	if _, err := b.Origin(ctx, "claims", "ending"); !errors.Is(err, ErrNotFound) {
		t.Errorf("released origin still held: %v", err)
	}
}
