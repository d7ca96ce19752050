package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
	"github.com/pion/webrtc/v4"
)

// asNodeEnv makes the test binary run as a halo-sfu node (TestMain).
const asNodeEnv = "HALOTEST_RUN_NODE"

// nodeProc is a cluster node in a process of its own (this test binary
// re-executed as halo-sfu), so that a test can SIGKILL it.
type nodeProc struct {
	*testNode
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

// startNodeProc starts node id of region on r in a new process, with the
// auth secret of the in-process nodes of the test.
func startNodeProc(t *testing.T, r *testRedis, id, region, authSecret string) *nodeProc {
	t.Helper()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := append(serverEnv(nil), asNodeEnv+"=1",
		"HALO_AUTH_SECRET="+authSecret,
		"HALO_HTTP_LISTEN="+httpAddr,
		"HALO_METRICS_LISTEN=",
		"HALO_SFU_UDP_PORT=0",
		"HALO_SFU_UDP_ADDRESS=127.0.0.1",
		"HALO_SFU_INCLUDE_LOOPBACK=true",
		"HALO_NODE_ID="+id,
		"HALO_NODE_REGION="+region,
		"HALO_REDIS_ADDRS="+r.addr,
		"HALO_CLUSTER_SECRET="+testClusterSecret,
		"HALO_CLUSTER_RELAY_ADDRESS=127.0.0.1:"+strconv.Itoa(freePort(t)),
		"HALO_CLUSTER_HEARTBEAT_INTERVAL=300ms",
		"HALO_CLUSTER_NODE_TTL=1500ms",
		"HALO_LOG_LEVEL=info",
	)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = env
	p := &nodeProc{cmd: cmd, done: make(chan struct{}), log: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", id, p.log.String())
		}
	})
	signer, err := auth.NewSigner([]byte(authSecret))
	if err != nil {
		t.Fatal(err)
	}
	p.testNode = &testNode{t: t, signer: signer, wsURL: "ws://" + httpAddr + "/ws", base: "http://" + httpAddr}
	eventually(t, id+" ready", func() bool {
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// kill ends the node as a crash would: no drain, no goodbye to Redis.
func (p *nodeProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
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
	r := startRedis(t)
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
	eventually(t, "the WHEP viewer on c receives", func() bool {
		return rec.count(webrtc.RTPCodecTypeVideo) > 30 && rec.count(webrtc.RTPCodecTypeAudio) > 30
	})
	idsB, idsC := trackIDs(b, room), trackIDs(c, room)
	if len(idsC) != 2 || !sameSet(idsB, idsC) {
		t.Fatalf("relayed tracks: b %v, c %v, want the same 2", idsB, idsC)
	}
	obsB, obsC := observe(t, ctx, b, room), observe(t, ctx, c, room)

	a.kill()
	_ = first.Close()
	killed := time.Now()
	eventually(t, "a's registry entry expires", func() bool {
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
		eventually(t, "origin_lost on "+name, func() bool { _, ok := o.find("origin_lost"); return ok })
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
	eventually(t, "the WHEP viewer on c plays again", func() bool {
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
	if s := b.engine.Stats(); s.RelayTracksOut != 2 {
		t.Errorf("b, the new origin, sends %d relayed tracks, want 2 (to c)", s.RelayTracksOut)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
