package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
	"github.com/pion/webrtc/v4"
)

// nodeProc is a cluster node in a process of its own (this test binary
// re-executed as halo-sfu), so that a test can SIGKILL it.
type nodeProc struct {
	*testNode
	*testutil.Child
	id, authSecret string
	env            []string // to start it again (restartNodeProc)
}

// startNodeProc starts node id of region on r in a new process, with the
// auth secret of the in-process nodes of the test.
func startNodeProc(t *testing.T, r *testutil.Redis, id, region, authSecret string) *nodeProc {
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
		"HALO_NODE_REGION=" + region,
		"HALO_REDIS_ADDRS=" + r.Addr(),
		"HALO_CLUSTER_SECRET=" + testClusterSecret,
		"HALO_CLUSTER_RELAY_ADDRESS=127.0.0.1:" + strconv.Itoa(testutil.FreePort(t)),
		"HALO_CLUSTER_HEARTBEAT_INTERVAL=300ms",
		"HALO_CLUSTER_NODE_TTL=1500ms",
		"HALO_LOG_LEVEL=info",
	}
	return runNodeProc(t, id, authSecret, httpAddr, env)
}

// restartNodeProc starts node p again, killed before, in a new process
// with the same configuration (node id, addresses and ports).
func restartNodeProc(t *testing.T, p *nodeProc) *nodeProc {
	t.Helper()
	return runNodeProc(t, p.id, p.authSecret, strings.TrimPrefix(p.base, "http://"), p.env)
}

func runNodeProc(t *testing.T, id, authSecret, httpAddr string, env []string) *nodeProc {
	t.Helper()
	p := &nodeProc{Child: testutil.StartChild(t, id, env), id: id, authSecret: authSecret, env: env}
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

// observer joins room on n without media and records the events it gets.
type observer struct {
	mu     sync.Mutex
	events []loadtest.Envelope
}

func observe(t *testing.T, ctx context.Context, n *testNode, room string) *observer {
	t.Helper()
	c := n.dial(t, ctx)
	f := false
	if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token(room, "observer", false, true), AutoSubscribe: &f}); err != nil {
		t.Fatal(err)
	}
	o := &observer{}
	go func() {
		for {
			env, err := c.Next(context.Background())
			if err != nil {
				return
			}
			o.mu.Lock()
			o.events = append(o.events, env)
			o.mu.Unlock()
		}
	}()
	return o
}

// find returns the data of the first event of type typ.
func (o *observer) find(typ string) (json.RawMessage, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.events {
		if e.Type == typ {
			return e.Data, true
		}
	}
	return nil, false
}

// The origin of a broadcast dies (SIGKILL). Its keys expire, the viewers
// on the other nodes are told origin_lost, and when the broadcaster
// publishes again on b, the viewers on b and c play again on the same
// tracks: nobody rejoins, the WHEP viewer's sequence numbers have no gap.
func TestFailover_OriginKilled_ViewersResumeOnTheNewOrigin(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node failover")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("f0", 20)
	a := startNodeProc(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	c := startClusterNode(t, r, "node-c", "np", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "phoenix"
	cfg := loadtest.PublisherConfig{VideoBitrate: 300_000}
	first := a.publisher(ctx, room, cfg)
	var viewers []*loadtest.Viewer
	for _, n := range []*testNode{b, c} {
		for i := range 3 {
			viewers = append(viewers, n.viewer(ctx, room, fmt.Sprintf("%s-viewer-%d", n.cfg.Node.ID, i)))
		}
	}
	for i, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
	}
	_, rec := whepRecord(t, c, room)
	testutil.Eventually(t, "the WHEP viewer on c receives", func() bool {
		return rec.count(webrtc.RTPCodecTypeVideo) > 30 && rec.count(webrtc.RTPCodecTypeAudio) > 30
	})
	idsB, idsC := trackIDs(b, room), trackIDs(c, room)
	if len(idsC) != 2 || !sameSet(idsB, idsC) {
		t.Fatalf("relayed tracks: b %v, c %v, want the same 2", idsB, idsC)
	}
	obsB, obsC := observe(t, ctx, b, room), observe(t, ctx, c, room)

	a.Kill()
	_ = first.Close()
	killed := time.Now()
	testutil.Eventually(t, "a's registry entry expires", func() bool {
		_, nodes := getNodes(t, b, b.adminToken(auth.Grants{Admin: true}))
		for _, n := range nodes {
			if n.ID == "node-a" {
				return false
			}
		}
		return true
	})
	t.Logf("a left the registry %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	for name, o := range map[string]*observer{"b": obsB, "c": obsC} {
		testutil.Eventually(t, "origin_lost on "+name, func() bool { _, ok := o.find("origin_lost"); return ok })
		data, _ := o.find("origin_lost")
		var lost struct {
			Node     string   `json:"node"`
			TrackIDs []string `json:"track_ids"`
		}
		_ = json.Unmarshal(data, &lost)
		if lost.Node != "node-a" || !sameSet(sorted(lost.TrackIDs), idsC) {
			t.Errorf("origin_lost on %s: %s, want node-a and tracks %v", name, data, idsC)
		}
		if _, ok := o.find("track_unpublished"); ok {
			t.Errorf("%s's client was told track_unpublished: the tracks should wait for the broadcaster", name)
		}
	}
	before := make([]loadtest.ViewerStats, len(viewers))
	for i, v := range viewers {
		before[i] = v.Stats()
	}
	recV, recA := rec.count(webrtc.RTPCodecTypeVideo), rec.count(webrtc.RTPCodecTypeAudio)

	// The broadcaster comes back on b (same identity).
	republished := time.Now()
	b.publisher(ctx, room, cfg)
	resumed := map[int]time.Duration{}
	for len(resumed) < len(viewers) {
		for i, v := range viewers {
			if _, ok := resumed[i]; ok {
				continue
			}
			s := v.Stats()
			if s.VideoPackets > before[i].VideoPackets+30 && s.AudioPackets > before[i].AudioPackets+10 {
				resumed[i] = time.Since(republished)
			}
		}
		if time.Since(republished) > 15*time.Second {
			t.Fatalf("viewers resumed: %v of %d", resumed, len(viewers))
		}
		time.Sleep(20 * time.Millisecond)
	}
	testutil.Eventually(t, "the WHEP viewer on c plays again", func() bool {
		return rec.count(webrtc.RTPCodecTypeVideo) > recV+30 && rec.count(webrtc.RTPCodecTypeAudio) > recA+10
	})
	for i, d := range resumed {
		// The figure: viewers play again within 3 s of the
		// broadcaster's return.
		if d > 3*time.Second {
			t.Errorf("viewer %d played again %v after the republish, want within 3 s", i, d)
		}
	}
	t.Logf("viewers played again %v after the republish", resumed)
	for i, v := range viewers {
		if s := v.Stats(); s.Recoveries != 0 {
			t.Errorf("viewer %d rejoined %d times", i, s.Recoveries)
		}
	}
	time.Sleep(300 * time.Millisecond) // retransmissions of the last losses
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if g := rec.gaps(k); g != 0 {
			t.Errorf("the WHEP viewer's %s has %d missing sequence numbers across the failover", k, g)
		}
	}
	if got := trackIDs(c, room); !sameSet(got, idsC) {
		t.Errorf("c's track ids after the failover %v, want %v", got, idsC)
	}
	if got := trackIDs(b, room); !sameSet(got, idsB) {
		t.Errorf("b's track ids after the failover %v, want %v", got, idsB)
	}
	// Once a relay that was being replaced has closed, b sends each
	// track once to c.
	testutil.Eventually(t, "b, the new origin, sends its 2 tracks once to c", func() bool { return b.engine.Stats().RelayTracksOut == 2 })
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// nextOfType reads c until an event of type typ, and returns its data.
func nextOfType(t *testing.T, ctx context.Context, c *loadtest.Conn, typ string) json.RawMessage {
	t.Helper()
	for {
		env, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if env.Type == typ {
			return env.Data
		}
	}
}

// A node that drains (SIGTERM) hands over: its WebSocket clients are sent
// to another node of its region, the broadcaster publishes there, the
// relays it served move to the new origin, and only then does it exit.
// The viewers elsewhere never stop playing.
func TestDrain_ClientsAndRelaysAreHandedOver(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node drain")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("d7", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "eu", secret)
	c := startClusterNode(t, r, "node-c", "np", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "relay-race"
	cfg := loadtest.PublisherConfig{VideoBitrate: 300_000}
	first := a.publisher(ctx, room, cfg)
	onA := a.viewer(ctx, room, "viewer-on-a")
	var viewers []*loadtest.Viewer
	for i := range 3 {
		viewers = append(viewers, c.viewer(ctx, room, fmt.Sprintf("viewer-on-c-%d", i)))
	}
	for i, v := range append([]*loadtest.Viewer{onA}, viewers...) {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
	}
	_, rec := whepRecord(t, c, room)
	testutil.Eventually(t, "the WHEP viewer on c receives", func() bool {
		return rec.count(webrtc.RTPCodecTypeVideo) > 30 && rec.count(webrtc.RTPCodecTypeAudio) > 30
	})
	ids := trackIDs(c, room)

	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	drained := make(chan error, 1)
	go func() { drained <- a.server.Drain(dctx) }()

	// The broadcaster is told where to go, publishes there, then leaves a.
	var redirect struct {
		URL    string `json:"url"`
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(nextOfType(t, ctx, first.Conn(), "redirect"), &redirect)
	if redirect.URL != b.wsURL || redirect.Reason != "draining" {
		t.Fatalf("broadcaster redirected to %+v, want %s (b: same region) for draining", redirect, b.wsURL)
	}
	pcfg := cfg
	pcfg.URL, pcfg.Room, pcfg.Token = redirect.URL, room, a.token(room, "pub-"+room, true, false)
	second := loadtest.NewPublisher(pcfg)
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	testutil.Eventually(t, "b publishes the broadcast as its own", func() bool { return b.engine.Stats().Publishers == 1 })
	_ = first.Close()
	// a's viewer follows too.
	nextOfType(t, ctx, onA.Conn(), "redirect")
	_ = onA.Close()
	onB := b.viewer(ctx, room, "viewer-on-a")
	if err := onB.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("the viewer redirected to b: %v", err)
	}

	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if s := a.rooms.StoreStats(); s.HandOverTimeouts != 0 {
		t.Fatalf("a's hand-over did not finish: %+v", s)
	}
	if s := a.engine.Stats(); s.RelayTracksOut != 0 {
		t.Errorf("a still relays %d tracks after its drain", s.RelayTracksOut)
	}
	before := make([]loadtest.ViewerStats, len(viewers))
	for i, v := range viewers {
		before[i] = v.Stats()
	}
	recV := rec.count(webrtc.RTPCodecTypeVideo)
	testutil.Eventually(t, "c's viewers play from b", func() bool {
		for i, v := range viewers {
			if s := v.Stats(); s.VideoPackets < before[i].VideoPackets+30 {
				return false
			}
		}
		return rec.count(webrtc.RTPCodecTypeVideo) > recV+30
	})
	// Once a relay that was being replaced has closed, b sends each
	// track once to c.
	testutil.Eventually(t, "b, the new origin, sends its 2 tracks once to c", func() bool { return b.engine.Stats().RelayTracksOut == 2 })
	for i, v := range viewers {
		if s := v.Stats(); s.Recoveries != 0 {
			t.Errorf("viewer %d on c rejoined %d times", i, s.Recoveries)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if g := rec.gaps(k); g != 0 {
			t.Errorf("the WHEP viewer's %s has %d missing sequence numbers across the hand-over", k, g)
		}
	}
	if got := trackIDs(c, room); !sameSet(got, ids) {
		t.Errorf("c's track ids after the hand-over %v, want %v", got, ids)
	}
}

// The web page's broadcaster follows a drain: the node it publishes to
// sends it to another node, the page publishes there and leaves, and the
// viewers on a third node go on playing the same tracks.
func TestBrowser_GoLivePageFollowsADrain(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("e5", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "eu", secret)
	c := startClusterNode(t, r, "node-c", "np", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	br := newBrowser(t)
	const room = "moving-page"
	goLive(t, br.ctx, a, room, "")
	v := c.viewer(ctx, room, "viewer-on-c")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, rec := whepRecord(t, c, room)
	testutil.Eventually(t, "the WHEP viewer on c receives", func() bool {
		return rec.count(webrtc.RTPCodecTypeVideo) > 30 && rec.count(webrtc.RTPCodecTypeAudio) > 30
	})
	ids := trackIDs(c, room)

	dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
	defer dcancel()
	if err := a.server.Drain(dctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if s := a.rooms.StoreStats(); s.HandOverTimeouts != 0 {
		t.Fatalf("the page was not handed over before the drain ended: %+v", s)
	}
	if s := b.engine.Stats(); s.Publishers != 1 {
		t.Fatalf("b has %d publishers after a's drain, want the page", s.Publishers)
	}
	before, recV := v.Stats(), rec.count(webrtc.RTPCodecTypeVideo)
	testutil.Eventually(t, "c's viewers play the page's broadcast from b", func() bool {
		return v.Stats().VideoPackets > before.VideoPackets+30 && rec.count(webrtc.RTPCodecTypeVideo) > recV+30
	})
	var state string
	if err := evalJSON(br.ctx, `window.haloState || ''`, &state); err != nil || state != "live" {
		t.Errorf("the live page's state after the move: %q (%v), want live", state, err)
	}
	if s := v.Stats(); s.Recoveries != 0 {
		t.Errorf("the viewer on c rejoined %d times", s.Recoveries)
	}
	time.Sleep(300 * time.Millisecond)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if g := rec.gaps(k); g != 0 {
			t.Errorf("the WHEP viewer's %s has %d missing sequence numbers across the move", k, g)
		}
	}
	if got := trackIDs(c, room); !sameSet(got, ids) {
		t.Errorf("c's track ids after the move %v, want %v", got, ids)
	}
	assertNoPageProblems(t, br)
}

// Redis dies in the middle of a relayed broadcast: the established viewers
// lose nothing, and when a new, empty Redis answers again the nodes
// re-register everything, so a viewer arriving on a third node afterwards
// finds the broadcast.
func TestFailover_RedisKilledMidBroadcast(t *testing.T) {
	if testing.Short() {
		t.Skip("a Redis outage")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("k3", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "no-redis"
	pub := a.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 300_000})
	var viewers []*loadtest.Viewer
	for i := range 5 {
		viewers = append(viewers, b.viewer(ctx, room, fmt.Sprintf("viewer-%d", i)))
	}
	for i, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
	}
	p0 := pub.Stats()
	v0 := make([]loadtest.ViewerStats, len(viewers))
	for i, v := range viewers {
		v0[i] = v.Stats()
	}
	r.Stop()
	testutil.Eventually(t, "both nodes see Redis down", func() bool { return !a.rooms.ClusterReady() && !b.rooms.ClusterReady() })
	time.Sleep(3 * time.Second) // a broadcast without Redis
	r.Start()                   // empty: everything must be written again
	restarted := time.Now()

	// Re-registration: both nodes in the registry again, and the room's
	// state in Redis for a node new to it.
	testutil.Eventually(t, "both nodes registered again", func() bool {
		_, nodes := getNodes(t, a, a.adminToken(auth.Grants{Admin: true}))
		return len(nodes) == 2
	})
	t.Logf("nodes registered again %v after Redis restarted", time.Since(restarted).Round(10*time.Millisecond))
	c := startClusterNode(t, r, "node-c", "np", secret)
	late := c.viewer(ctx, room, "late-viewer")
	if err := late.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("a viewer on a third node after the outage: %v", err)
	}
	testutil.Eventually(t, "the late viewer receives the broadcast", func() bool { return late.Stats().VideoPackets > 30 })

	_ = pub.Close()
	p1 := pub.Stats()
	settle(viewers)
	sent := (p1.VideoPackets + p1.AudioPackets) - (p0.VideoPackets + p0.AudioPackets)
	for i, v := range viewers {
		s := v.Stats()
		got := (s.VideoPackets + s.AudioPackets) - (v0[i].VideoPackets + v0[i].AudioPackets)
		if float64(got) < 0.99*float64(sent) {
			t.Errorf("viewer %d received %d of the %d packets sent across the outage", i, got, sent)
		}
		if s.Recoveries != 0 {
			t.Errorf("viewer %d rejoined %d times", i, s.Recoveries)
		}
	}
}

// The origin of a broadcast crashes and is started again at once, under
// the same node id, before its registry entry expires: nobody declares it
// lost. Its earlier tracks are gone all the same; the edge must not keep
// asking for them (tried as a new user with the README's three nodes: the
// edge's relay was refused "unknown_track" again and again and its viewers
// never played again). When the broadcaster publishes again on the new
// process, the edge's viewers play again without rejoining.
func TestFailover_OriginRestartedUnderItsIDWithinTTL_ViewersResume(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-node failover")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("f1", 20)
	a := startNodeProc(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "eu", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "phoenix-again"
	cfg := loadtest.PublisherConfig{VideoBitrate: 300_000}
	first := a.publisher(ctx, room, cfg)
	v := b.viewer(ctx, room, "viewer-on-b")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, rec := whepRecord(t, b, room)
	testutil.Eventually(t, "the WHEP viewer on b receives", func() bool { return rec.count(webrtc.RTPCodecTypeVideo) > 30 })

	a.Kill()
	_ = first.Close()
	// Started again at once on the same addresses: well within the
	// registry's TTL (1.5 s here).
	a2 := restartNodeProc(t, a)
	before, recV := v.Stats(), rec.count(webrtc.RTPCodecTypeVideo)
	republished := time.Now()
	a2.publisher(ctx, room, cfg)
	testutil.EventuallyWithin(t, 15*time.Second, "the viewers on b play again", func() bool {
		return v.Stats().VideoPackets > before.VideoPackets+30 && rec.count(webrtc.RTPCodecTypeVideo) > recV+30
	})
	t.Logf("the viewers on b played again %v after the broadcaster published on the restarted node", time.Since(republished).Round(10*time.Millisecond))
	if s := v.Stats(); s.Recoveries != 0 {
		t.Errorf("the WebSocket viewer rejoined %d times", s.Recoveries)
	}
}
