package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/id"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/sfu"
	"go.uber.org/goleak"
)

// clusterTTL is the lease of the test nodes: short, so that a dead node's
// disappearance is quick to observe, and long enough for a loaded machine.
const (
	clusterTTL       = 1500 * time.Millisecond
	clusterHeartbeat = 300 * time.Millisecond
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// After a failed dial go-redis probes the server once a second from
		// a goroutine of the pool; it returns at its next probe after the
		// pool closed, up to a second after the test's client did.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// recorder is a client of a room: it keeps the events it was sent.
type recorder struct {
	mu     sync.Mutex
	events []room.Event
}

func (r *recorder) Event(ev room.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) has(match func(room.Event) bool) bool {
	return r.index(match) >= 0
}

func (r *recorder) count(match func(room.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if match(ev) {
			n++
		}
	}
	return n
}

// newClusterNode starts a Manager that shares srv with the other nodes of
// the test, as a node configured with redis.addrs does.
func newClusterNode(t *testing.T, srv *testutil.Redis, prefix, id string, opt room.Options) (*testNode, Store) {
	t.Helper()
	store, err := NewRedisStore(redisClient(t, srv), prefix, RedisOptions{NodeID: id, TTL: clusterTTL})
	if err != nil {
		t.Fatal(err)
	}
	return newClusterNodeOn(t, store, id, opt), store
}

// newClusterNodeOn starts the Manager of node id, linked to the others by
// a Cluster on store, as internal/node wires it.
func newClusterNodeOn(t *testing.T, store Store, id string, opt room.Options) *testNode {
	t.Helper()
	return newClusterNodeWith(t, store, Options{NodeID: id, Heartbeat: clusterHeartbeat, StoreTimeout: config.Default().Redis.Timeout}, opt)
}

// newClusterNodeWith starts the Manager of node copt.NodeID with a Cluster
// of options copt on store.
func newClusterNodeWith(t *testing.T, store Store, copt Options, opt room.Options) *testNode {
	t.Helper()
	e, err := sfu.NewEngine(testutil.SFUConfig(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	id := copt.NodeID
	c := New(store, copt)
	opt.NodeID, opt.Cluster = id, c
	opt.Node = room.NodeInfo{Region: "region-" + id, PublicURL: "http://" + id + ".test", RelayAddress: id + ".test:7883"}
	m := room.NewManager(e, opt)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Drain(ctx) // every participant leaves, their connections close
		m.Close()
		_ = store.Close()
		e.Close()
	})
	return &testNode{Manager: m, cluster: c}
}

// testNode is a node of a test: its rooms, and its cluster.
type testNode struct {
	*room.Manager
	cluster *Cluster
}

// linkedMembers returns the participants of room on other nodes as the
// room knows them from their events.
func (n *testNode) linkedMembers(name string) (int, bool) {
	r := n.Room(name)
	if r == nil || n.cluster.link(r) == nil {
		return 0, false
	}
	return r.RemoteMembers()
}

func clusterPrefix() string { return "c" + id.New("")[:8] + ":" }

func TestCluster_NodesSeeEachOthersParticipantsViewersAndRegistry(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	a, storeA := newClusterNode(t, srv, prefix, "a", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	b, storeB := newClusterNode(t, srv, prefix, "b", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	var rec recorder
	if _, err := a.Join("show", room.ParticipantSpec{Identity: "host", Publish: true}, &rec); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"v1", "v2"} {
		p, err := b.Join("show", room.ParticipantSpec{Identity: id, Subscribe: true}, &rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Subscribe(nil); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, "node a sees b's viewers and both nodes' participants", func() bool {
		st, err := storeA.Room(context.Background(), "show")
		if err != nil || len(st.Participants) != 3 || st.Viewers["b"] != 2 || totalViewers(st) != 2 {
			return false
		}
		nodes := map[string]int{}
		for _, p := range st.Participants {
			nodes[p.Node]++
		}
		return nodes["a"] == 1 && nodes["b"] == 2
	})
	testutil.Eventually(t, "both nodes are registered with their region, URL, relay address and load", func() bool {
		list, err := b.Nodes(context.Background())
		if err != nil || len(list) != 2 {
			return false
		}
		na, nb := list[0], list[1]
		return na.ID == "a" && na.Region == "region-a" && na.PublicURL == "http://a.test" && na.RelayAddress == "a.test:7883" &&
			na.Participants == 1 && nb.ID == "b" && nb.Viewers == 2 && !nb.UpdatedAt.IsZero()
	})
	_ = storeB
}

func TestCluster_ParticipantLimitCountsEveryNode(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	a, storeA := newClusterNode(t, srv, prefix, "a", room.Options{Limits: config.LimitsConfig{ParticipantsPerRoom: 3}, Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	b, _ := newClusterNode(t, srv, prefix, "b", room.Options{Limits: config.LimitsConfig{ParticipantsPerRoom: 3}, Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	var rec recorder
	for _, id := range []string{"x", "y"} {
		if _, err := a.Join("full", room.ParticipantSpec{Identity: id}, &rec); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, "a's participants reach the store", func() bool {
		c, err := storeA.Counts(context.Background(), "full")
		return err == nil && c.Participants["a"] == 2
	})
	if _, err := b.Join("full", room.ParticipantSpec{Identity: "z"}, &rec); err != nil {
		t.Fatalf("third participant of a room of 3, on another node: %v", err)
	}
	testutil.Eventually(t, "b's participant reaches the store", func() bool {
		c, err := storeA.Counts(context.Background(), "full")
		return err == nil && c.Participants["b"] == 1
	})
	time.Sleep(remoteFresh) // let a's cached remote count age
	for name, m := range map[string]*testNode{"a": a, "b": b} {
		if _, err := m.Join("full", room.ParticipantSpec{Identity: "late"}, &rec); !errors.Is(err, room.ErrRoomFull) {
			t.Errorf("fourth participant on node %s: %v, want ErrRoomFull", name, err)
		}
	}
}

// countingStore counts the room count reads of a node's real Redis store.
type countingStore struct {
	*RedisStore
	counts atomic.Int32
}

func (s *countingStore) Counts(ctx context.Context, name string) (RoomCounts, error) {
	s.counts.Add(1)
	return s.RedisStore.Counts(ctx, name)
}

// A join in a room the node serves checks the participant limit against
// the counts the other nodes publish on the room's channel, without a
// round trip to Redis (for a node far from Redis, most of a join), and
// the limit holds as the other nodes' participants come and go.
func TestCluster_JoinLimitUsesTheCountsOtherNodesPublish(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	a, _ := newClusterNode(t, srv, prefix, "a", room.Options{Limits: config.LimitsConfig{ParticipantsPerRoom: 3}, Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	rs, err := NewRedisStore(redisClient(t, srv), prefix, RedisOptions{NodeID: "b", TTL: clusterTTL})
	if err != nil {
		t.Fatal(err)
	}
	sb := &countingStore{RedisStore: rs}
	b := newClusterNodeOn(t, sb, "b", room.Options{Limits: config.LimitsConfig{ParticipantsPerRoom: 3}, Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	var rec recorder
	var onA []*room.Participant
	for _, id := range []string{"x", "y"} {
		p, err := a.Join("full", room.ParticipantSpec{Identity: id}, &rec)
		if err != nil {
			t.Fatal(err)
		}
		onA = append(onA, p)
	}
	testutil.Eventually(t, "a's participants reach the store", func() bool {
		c, err := rs.Counts(context.Background(), "full")
		return err == nil && c.Participants["a"] == 2
	})
	if _, err := b.Join("full", room.ParticipantSpec{Identity: "z"}, &rec); err != nil {
		t.Fatalf("third participant of a room of 3, on another node: %v", err)
	}
	testutil.Eventually(t, "b knows a's count from a's events", func() bool {
		n, ok := b.linkedMembers("full")
		return ok && n == 2
	})
	before := sb.counts.Load()
	if _, err := b.Join("full", room.ParticipantSpec{Identity: "late"}, &rec); !errors.Is(err, room.ErrRoomFull) {
		t.Errorf("fourth participant on b: %v, want ErrRoomFull", err)
	}
	onA[0].Leave()
	testutil.Eventually(t, "b learns a's participant left", func() bool {
		n, ok := b.linkedMembers("full")
		return ok && n == 1
	})
	if _, err := b.Join("full", room.ParticipantSpec{Identity: "again"}, &rec); err != nil {
		t.Errorf("a place became free on a, b still refuses: %v", err)
	}
	if n := sb.counts.Load() - before; n != 0 {
		t.Errorf("b read the room's counts from Redis %d times for joins in a room it serves, want 0", n)
	}
}

func TestCluster_NodeThatStopsHeartbeatingDisappears(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	a, _ := newClusterNode(t, srv, prefix, "a", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	b, storeB := newClusterNode(t, srv, prefix, "b", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	var rec recorder
	if _, err := a.Join("r", room.ParticipantSpec{Identity: "host", Publish: true}, &rec); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "b sees a and its room", func() bool {
		list, err := b.Nodes(context.Background())
		_, rerr := storeB.Room(context.Background(), "r")
		return err == nil && len(list) == 2 && rerr == nil
	})
	a.cluster.haltHeartbeat() // a hangs or dies: no more heartbeats, nothing cleaned up
	testutil.Eventually(t, "a leaves b's view of the registry", func() bool {
		list, err := b.Nodes(context.Background())
		return err == nil && len(list) == 1 && list[0].ID == "b"
	})
	testutil.Eventually(t, "a's room entries expire", func() bool {
		_, err := storeB.Room(context.Background(), "r")
		return errors.Is(err, ErrNotFound)
	})
}

func TestCluster_RedisRestart_NodeReRegistersItsState(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	a, _ := newClusterNode(t, srv, prefix, "a", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	var rec recorder
	if _, err := a.Join("kept", room.ParticipantSpec{Identity: "host", Publish: true}, &rec); err != nil {
		t.Fatal(err)
	}
	observer, err := NewRedisStore(redisClient(t, srv), prefix, RedisOptions{NodeID: "observer", TTL: clusterTTL})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "a's room in the store", func() bool {
		_, err := observer.Room(context.Background(), "kept")
		return err == nil
	})

	srv.Stop()
	testutil.Eventually(t, "a notices the store is down", func() bool { return !a.StoreStats().Up && !a.ClusterReady() })
	// A room the node serves keeps taking joins; a new room needs the
	// cluster and is refused, retryably.
	if _, err := a.Join("kept", room.ParticipantSpec{Identity: "guest"}, &rec); err != nil {
		t.Fatalf("join of a served room with Redis down: %v", err)
	}
	if _, err := a.Join("new", room.ParticipantSpec{Identity: "host2", Publish: true}, &rec); !errors.Is(err, room.ErrClusterUnavailable) {
		t.Fatalf("join of a new room with Redis down: %v, want room.ErrClusterUnavailable", err)
	}
	if r := a.Room("new"); r != nil {
		t.Fatal("a refused join left a room behind")
	}

	srv.Start() // empty: everything was lost
	testutil.Eventually(t, "a re-registers itself and its room, with the join made while Redis was down", func() bool {
		st, err := observer.Room(context.Background(), "kept")
		nodes, nerr := observer.Nodes(context.Background())
		return err == nil && len(st.Participants) == 2 && nerr == nil && len(nodes) == 1 && nodes[0].ID == "a"
	})
	if s := a.StoreStats(); !s.Up || s.Resyncs == 0 {
		t.Fatalf("store stats after the outage: %+v", s)
	}
	if _, err := a.Join("new", room.ParticipantSpec{Identity: "host2", Publish: true}, &rec); err != nil {
		t.Fatalf("join of a new room once Redis is back: %v", err)
	}
}
