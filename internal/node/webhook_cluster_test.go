package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
	"github.com/halobuzz/live/signaling/webhook"
	"github.com/halobuzz/live/signaling/webhook/redisqueue"
	"github.com/redis/go-redis/v9"
)

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// clusterWebhooks makes c a node of the cluster on r delivering to recv,
// retrying fast (100 ms doubling up to 1 s).
func clusterWebhooks(t *testing.T, r *testutil.Redis, id, authSecret string, recv *receiver) func(*config.Config) {
	return func(c *config.Config) {
		clusterConfig(t, c, r, id, "local", authSecret)
		webhookConfig(recv)(c)
		c.Webhooks.RetryInitial, c.Webhooks.RetryMax = 100*time.Millisecond, time.Second
	}
}

// startWebhookNodeProc is startNodeProc's node (its own process, to be
// SIGKILLed) delivering webhooks to recv.
func startWebhookNodeProc(t *testing.T, r *testutil.Redis, id, authSecret string, recv *receiver) *nodeProc {
	t.Helper()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	env := []string{
		"HALO_AUTH_SECRET=" + authSecret,
		"HALO_HTTP_LISTEN=" + httpAddr,
		"HALO_METRICS_LISTEN=",
		"HALO_SFU_UDP_PORT=0",
		"HALO_SFU_UDP_ADDRESS=127.0.0.1",
		"HALO_SFU_INCLUDE_LOOPBACK=true",
		"HALO_NODE_ID=" + id,
		"HALO_NODE_REGION=local",
		"HALO_REDIS_ADDRS=" + r.Addr(),
		"HALO_CLUSTER_SECRET=" + testClusterSecret,
		"HALO_CLUSTER_RELAY_ADDRESS=127.0.0.1:" + strconv.Itoa(testutil.FreePort(t)),
		"HALO_CLUSTER_HEARTBEAT_INTERVAL=300ms",
		"HALO_CLUSTER_NODE_TTL=1500ms",
		"HALO_WEBHOOKS_URLS=" + recv.URL(),
		"HALO_WEBHOOKS_SECRET=" + testWebhookSecret,
		"HALO_WEBHOOKS_RETRY_INITIAL=100ms",
		"HALO_WEBHOOKS_RETRY_MAX=1s",
		"HALO_WEBHOOKS_VIEWER_COUNT_INTERVAL=200ms",
		"HALO_LOG_LEVEL=info",
	}
	p := &nodeProc{Child: testutil.StartChild(t, id, env)}
	signer, err := auth.NewSigner([]byte(authSecret))
	if err != nil {
		t.Fatal(err)
	}
	p.testNode = &testNode{t: t, signer: signer, wsURL: "ws://" + httpAddr + "/ws", base: "http://" + httpAddr}
	testutil.Eventually(t, id+" ready", func() bool {
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// pendingOf counts the webhook events node received from the Redis queue
// and has not acknowledged.
func pendingOf(t *testing.T, rdb redis.UniversalClient, node string) int64 {
	t.Helper()
	var n int64
	for p := range redisqueue.Partitions {
		s, err := rdb.XPending(context.Background(), "halo:{wh"+strconv.Itoa(p)+"}:stream", "halo").Result()
		if err != nil {
			continue // no group yet
		}
		n += s.Consumers[node]
	}
	return n
}

// TestWebhooks_NodeKilledWithDeliveriesPending_AnotherNodeDelivers: node a
// (its own process) serves a broadcast while the receiver is down, so its
// deliveries stay pending in Redis; a is SIGKILLed; the receiver comes
// back; node b takes a's part of the queue over and delivers everything a
// left, in order, then what a's death means: node_lost, the tracks
// unpublished, broadcast_ended, room_finished.
func TestWebhooks_NodeKilledWithDeliveriesPending_AnotherNodeDelivers(t *testing.T) {
	if testing.Short() {
		t.Skip("a node in a process of its own, killed")
	}
	r := testutil.StartRedis(t)
	recv := startReceiver(t)
	recv.down()
	secret := randomSecret()
	a := startWebhookNodeProc(t, r, "a", secret, recv)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rdb.Close()
	testutil.Eventually(t, "a holds the webhook queue's partitions", func() bool {
		owner, _ := rdb.Get(context.Background(), "halo:{wh0}:owner").Result()
		return owner == "a"
	})
	startNode(t, clusterWebhooks(t, r, "b", secret, recv))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub := loadtest.NewPublisher(loadtest.PublisherConfig{URL: a.wsURL, Room: "doomed", Token: a.token("doomed", "pub-doomed", true, false), VideoBitrate: testBitrate})
	if err := pub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	// room_started, participant_joined, broadcast_started, track_published x2
	testutil.EventuallyWithin(t, time.Minute, "a received its 5 events and could not deliver them", func() bool {
		return pendingOf(t, rdb, "a") >= 5
	})
	a.Kill()
	recv.up()
	testutil.EventuallyWithin(t, time.Minute, "b delivers a's events and room_finished", func() bool {
		return recv.has("doomed", webhook.RoomFinished)
	})
	evs := recv.ofRoom("doomed")
	want := []string{webhook.RoomStarted, webhook.ParticipantJoined, webhook.BroadcastStarted, webhook.TrackPublished, webhook.TrackPublished,
		webhook.TrackUnpublished, webhook.TrackUnpublished, webhook.BroadcastEnded, webhook.RoomFinished}
	if len(evs) != len(want) {
		t.Fatalf("room doomed: got %s; want %v", types(evs), want)
	}
	for i, e := range evs {
		if e.Type != want[i] || e.Seq != int64(i+1) {
			t.Fatalf("room doomed: got %s; want %v, seq 1..%d", types(evs), want, len(want))
		}
		if i < 5 && e.Node != "a" {
			t.Errorf("event %d (%s) from node %q, want a's own", i+1, e.Type, e.Node)
		}
		if i >= 5 && e.Reason != "node_lost" {
			t.Errorf("event %d (%s) has reason %q, want node_lost", i+1, e.Type, e.Reason)
		}
	}
	testutil.EventuallyWithin(t, 30*time.Second, "node_lost of a delivered", func() bool {
		n := 0
		for _, e := range recv.all() {
			if e.Type == webhook.NodeLost && e.LostNode == "a" {
				n++
			}
		}
		return n == 1
	})
	t.Logf("room doomed: %s", types(evs))
}

// TestWebhooks_HundredRoomsOnThreeNodes_EachEventOnce: 100 rooms each
// started at the same moment on 3 nodes (a publisher-granted participant
// joins each room on each node at once), then left: every room_started,
// participant_joined, participant_left and room_finished is delivered
// exactly once, numbered 1..8 per room in order.
func TestWebhooks_HundredRoomsOnThreeNodes_EachEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("300 sessions on 3 nodes")
	}
	const rooms = 100
	r := testutil.StartRedis(t)
	recv := startReceiver(t)
	secret := randomSecret()
	var nodes []*testNode
	for _, id := range []string{"a", "b", "c"} {
		nodes = append(nodes, startNode(t, func(c *config.Config) {
			clusterWebhooks(t, r, id, secret, recv)(c)
			// The test's 300 sessions come from one address.
			c.HTTP.MaxConnsPerIP, c.Limits.UnjoinedSocketsPerIP, c.Limits.JoinsPerIPPerMinute = 1000, 1000, 10000
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type session struct {
		c   *loadtest.Conn
		tok string
	}
	var sessions []session
	for i := range rooms {
		for j, n := range nodes {
			c, err := loadtest.Dial(ctx, n.wsURL)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sessions = append(sessions, session{c, n.token(fmt.Sprintf("room-%03d", i), fmt.Sprintf("host-%d", j), true, false)})
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(sessions))
	f := false
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.c.Request(ctx, "join", loadtest.JoinRequest{Token: s.tok, AutoSubscribe: &f}); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("join: %v", err)
	}
	testutil.EventuallyWithin(t, 2*time.Minute, "every participant_joined delivered", func() bool {
		n := 0
		for _, e := range recv.all() {
			if e.Type == webhook.ParticipantJoined {
				n++
			}
		}
		return n >= 3*rooms
	})
	for _, s := range sessions {
		_ = s.c.Close()
	}
	testutil.EventuallyWithin(t, 2*time.Minute, "every room_finished delivered", func() bool {
		n := 0
		for _, e := range recv.all() {
			if e.Type == webhook.RoomFinished {
				n++
			}
		}
		return n >= rooms
	})
	time.Sleep(time.Second) // a duplicate, if any, has time to arrive
	ids := map[string]bool{}
	for _, e := range recv.all() {
		if ids[e.ID] {
			t.Errorf("event %s (%s of %s) delivered twice", e.ID, e.Type, e.Room)
		}
		ids[e.ID] = true
	}
	for i := range rooms {
		room := fmt.Sprintf("room-%03d", i)
		evs := recv.ofRoom(room)
		count := map[string]int{}
		for k, e := range evs {
			count[e.Type]++
			if e.Seq != int64(k+1) {
				t.Errorf("room %s: out of order or missing: %s", room, types(evs))
				break
			}
		}
		if len(evs) != 8 || count[webhook.RoomStarted] != 1 || count[webhook.RoomFinished] != 1 ||
			count[webhook.ParticipantJoined] != 3 || count[webhook.ParticipantLeft] != 3 ||
			evs[0].Type != webhook.RoomStarted || evs[len(evs)-1].Type != webhook.RoomFinished {
			t.Errorf("room %s: got %s; want room_started, 3 participant_joined, 3 participant_left, room_finished, each once", room, types(evs))
		}
	}
}

// TestWebhooks_ViewerCountIsTheClustersOncePerInterval: a broadcast on node
// a watched from a and from b: the viewer_count delivered counts both
// viewers, and no two viewer_count events of the room fall in the same
// webhooks.viewer_count_interval window, though both nodes count the room.
func TestWebhooks_ViewerCountIsTheClustersOncePerInterval(t *testing.T) {
	if testing.Short() {
		t.Skip("a broadcast relayed between two nodes")
	}
	r := testutil.StartRedis(t)
	recv := startReceiver(t)
	secret := randomSecret()
	a := startNode(t, clusterWebhooks(t, r, "a", secret, recv))
	b := startNode(t, clusterWebhooks(t, r, "b", secret, recv))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub := a.publisher(ctx, "both", loadtest.PublisherConfig{VideoBitrate: testBitrate})
	va := a.viewer(ctx, "both", "viewer-a")
	vb := b.viewer(ctx, "both", "viewer-b")
	for _, v := range []*loadtest.Viewer{va, vb} {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	testutil.EventuallyWithin(t, time.Minute, "a viewer_count of 2 (both nodes' viewers) delivered", func() bool {
		for _, e := range recv.ofRoom("both") {
			if e.Type == webhook.ViewerCount && *e.Viewers == 2 {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Second) // five more intervals in which both nodes count the room
	_ = pub.Close()
	_ = va.Close()
	_ = vb.Close()
	testutil.EventuallyWithin(t, time.Minute, "room_finished delivered", func() bool { return recv.has("both", webhook.RoomFinished) })
	evs := recv.ofRoom("both")
	windows := map[int64]bool{}
	count := map[string]int{}
	for i, e := range evs {
		count[e.Type]++
		if e.Seq != int64(i+1) {
			t.Fatalf("out of order: %s", types(evs))
		}
		if e.Type == webhook.ViewerCount {
			w := e.Time.UnixNano() / int64(200*time.Millisecond)
			if windows[w] {
				t.Errorf("two viewer_count events in one interval window: %s", types(evs))
			}
			windows[w] = true
		}
	}
	if count[webhook.RoomStarted] != 1 || count[webhook.RoomFinished] != 1 || count[webhook.BroadcastStarted] != 1 || count[webhook.BroadcastEnded] != 1 {
		t.Errorf("room and broadcast edges not once each: %s", types(evs))
	}
	t.Logf("room both: %s", types(evs))
}
