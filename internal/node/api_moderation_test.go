package node

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// apiModerationBody is the answer of a moderation call.
type apiModerationBody struct {
	Affected int `json:"affected"`
	Nodes    []struct {
		Node     string `json:"node"`
		Affected int    `json:"affected"`
	} `json:"nodes"`
	Failed   []string `json:"failed"`
	Complete bool     `json:"complete"`
}

// moderate calls a moderation of the API on n and decodes its answer.
func moderate(t *testing.T, n *testNode, method, path, body string) apiModerationBody {
	t.Helper()
	status, b := apiCall(t, n, method, path, n.apiAdmin(), body)
	var out apiModerationBody
	if status != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("%s %s on %s: %d %s", method, path, n.cfg.Node.ID, status, b)
	}
	return out
}

// wsMember joins room on n as identity over WebSocket (no media).
func wsMember(t *testing.T, ctx context.Context, n *testNode, room, identity string, publish bool) (*loadtest.Conn, error) {
	t.Helper()
	c := n.dial(t, ctx)
	no := false
	_, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token(room, identity, publish, true), AutoSubscribe: &no})
	return c, err
}

// watchClosed reports when pc's connection closes or fails.
func watchClosed(pc *webrtc.PeerConnection) *atomic.Bool {
	var ended atomic.Bool
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed {
			ended.Store(true)
		}
	})
	return &ended
}

// Three nodes on one Redis. A broadcaster publishes over WHIP on a; a WHEP
// viewer watches on c; WebSocket members are on b and c. A removal called
// on a ends the WHEP session on c and bans the identity on every node
// (code banned, whatever the token), a fourth node started after the ban
// too; a room ended on b ends the WHIP broadcast on a, a WHEP session on b
// and every socket everywhere, and refuses broadcasts while its ban lasts. Each call answers once every node serving the room
// applied it; the actions are counted in metrics.
func TestAPI_ModerationActsOnEveryNode(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("d4", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	c := startClusterNode(t, r, "node-c", "us", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "show"

	pub := whipPublish(t, a, room)
	pubEnded := watchClosed(pub.pc)
	troll, err := wsMember(t, ctx, b, room, "troll", false)
	if err != nil {
		t.Fatal(err)
	}
	fan, err := wsMember(t, ctx, c, room, "fan", false)
	if err != nil {
		t.Fatal(err)
	}
	var viewer *whipClient
	testutil.Eventually(t, "a WHEP viewer plays on c (c learns of a's tracks through Redis)", func() bool {
		pc := newTestPC(t)
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				t.Fatal(err)
			}
		}
		w := &whipClient{pc: pc}
		if resp := w.post(t, c.base+"/whep/"+room, c.token(room, "whep", false, true)); resp.StatusCode != 201 {
			_ = pc.Close()
			return false
		}
		viewer = w
		return true
	})
	viewerEnded := watchClosed(viewer.pc)
	testutil.Eventually(t, "the WHEP viewer's connection is up", func() bool {
		return viewer.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	testutil.Eventually(t, "the room is served by a, b and c", func() bool {
		var one apiRoomBody
		return apiGet(t, a, "/api/v1/rooms/"+room, a.apiAdmin(), &one) == 200 && strings.Join(one.Nodes, ",") == "node-a,node-b,node-c"
	})

	res := moderate(t, a, "DELETE", "/api/v1/rooms/"+room+"/participants/whep?ban=600&reason=abuse", "")
	if !res.Complete || res.Affected != 1 || len(res.Failed) != 0 {
		t.Errorf("remove the WHEP viewer via a: %+v, want complete, 1 affected", res)
	}
	answered := map[string]bool{}
	for _, n := range res.Nodes {
		answered[n.Node] = true
	}
	if !answered["node-b"] || !answered["node-c"] {
		t.Errorf("nodes that answered %v, want b and c", res.Nodes)
	}
	testutil.Eventually(t, "the WHEP session on c ends", viewerEnded.Load)
	// d joins the cluster after the ban: it never heard of it, and reads it
	// from Redis.
	d := startClusterNode(t, r, "node-d", "eu", secret)
	for _, n := range []*testNode{a, b, c, d} {
		if _, err := wsMember(t, ctx, n, room, "whep", true); loadtest.ErrorCode(err) != "banned" {
			t.Errorf("the banned identity joining on %s: %v, want banned", n.cfg.Node.ID, err)
		}
	}
	// Another WHEP viewer, on b, for the end of the room.
	var second *whipClient
	testutil.Eventually(t, "a second WHEP viewer plays on b", func() bool {
		pc := newTestPC(t)
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				t.Fatal(err)
			}
		}
		w := &whipClient{pc: pc}
		if resp := w.post(t, b.base+"/whep/"+room, b.token(room, "whep2", false, true)); resp.StatusCode != 201 {
			_ = pc.Close()
			return false
		}
		second = w
		return true
	})
	secondEnded := watchClosed(second.pc)
	testutil.Eventually(t, "the second WHEP viewer's connection is up", func() bool {
		return second.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})

	res = moderate(t, b, "DELETE", "/api/v1/rooms/"+room+"?ban=60&reason=ended", "")
	if !res.Complete || res.Affected < 4 {
		t.Errorf("end the room via b: %+v, want complete and the publisher, the WHEP viewer and both members", res)
	}
	for name, conn := range map[string]*loadtest.Conn{"troll on b": troll, "fan on c": fan} {
		var rm struct {
			Reason    string `json:"reason"`
			RoomEnded bool   `json:"room_ended"`
		}
		if err := json.Unmarshal(nextOfType(t, ctx, conn, "removed"), &rm); err != nil || !rm.RoomEnded || rm.Reason != "ended" {
			t.Errorf("%s: removed %+v, want room_ended, reason ended", name, rm)
		}
		select {
		case <-conn.Done():
		case <-ctx.Done():
			t.Errorf("%s: the socket stayed open", name)
		}
	}
	testutil.Eventually(t, "the WHIP broadcast on a ends", pubEnded.Load)
	testutil.Eventually(t, "the WHEP session on b ends", secondEnded.Load)
	host, err := wsMember(t, ctx, c, room, "host", true)
	if err != nil {
		t.Fatalf("joining the ended room: %v", err)
	}
	if _, err := host.Request(ctx, "publish", map[string]any{"sdp": "v=0"}); loadtest.ErrorCode(err) != "banned" {
		t.Errorf("a broadcast on c in the ended room: %v, want banned", err)
	}

	for n, want := range map[*testNode]map[string]float64{a: {"remove": 1, "ban": 1}, b: {"end": 1, "ban": 1}} {
		fams := gather(t, n)
		for action, v := range want {
			if got, _ := sample(fams, "halo_moderation_actions_total", "action", action); got != v {
				t.Errorf("%s: halo_moderation_actions_total{action=%q} = %v, want %v", n.cfg.Node.ID, action, got, v)
			}
		}
	}
}

// A node serving the room that does not answer (paused: SIGSTOP, a VM
// stall) does not hold the call: it answers after its wait, applied where
// it could be, with that node named in failed and complete false.
func TestAPI_ModerationNamesTheNodesThatDidNotAnswer(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("f6", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	p := startNodeProc(t, r, "node-p", "in", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const room = "split"
	here, err := wsMember(t, ctx, a, room, "here", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wsMember(t, ctx, p.testNode, room, "there", false); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the room is served by a and p", func() bool {
		var one apiRoomBody
		return apiGet(t, a, "/api/v1/rooms/"+room, a.apiAdmin(), &one) == 200 && strings.Join(one.Nodes, ",") == "node-a,node-p"
	})
	p.Stop()
	defer p.Continue()
	res := moderate(t, a, "DELETE", "/api/v1/rooms/"+room, "")
	if res.Complete || strings.Join(res.Failed, ",") != "node-p" || len(res.Nodes) != 1 || res.Nodes[0].Node != "node-a" || res.Nodes[0].Affected != 1 {
		t.Errorf("end with node-p paused: %+v, want node-a applied (1) and node-p failed", res)
	}
	nextOfType(t, ctx, here, "removed")
}
