package node

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// The origin of a broadcast hangs (SIGSTOP: a VM pause, a stall) long
// enough for the other nodes to declare it lost, then resumes (SIGCONT).
// The cluster does not stay split: within a heartbeat of its return every
// edge serves the room again (a new WHEP player gets 201, never 404), and
// the viewers still connected to the edges get media again without
// rejoining: WebSocket viewers always, WHEP players when the pause ended
// within the republish grace (after it, their sessions were ended).
func TestFailover_OriginPaused_EdgesServeAgainOnItsReturn(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node pause")
	}
	// The test nodes' lease is 1.5 s and the republish grace 10 s: paused
	// 8 s, a is back within the grace it was given when declared lost; 20 s,
	// after it ended.
	for _, pause := range []time.Duration{8 * time.Second, 20 * time.Second} {
		t.Run(fmt.Sprintf("paused %v", pause), func(t *testing.T) { edgesServeAfterPause(t, pause) })
	}
}

func edgesServeAfterPause(t *testing.T, pause time.Duration) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("a5", 20)
	a := startNodeProc(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	c := startClusterNode(t, r, "node-c", "np", secret)
	grace := b.cfg.Room.RepublishGrace
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const room = "stalled"
	a.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 300_000})
	edges := []*testNode{b, c}
	var viewers []*loadtest.Viewer
	var players []*seqRecorder
	for _, n := range edges {
		v := n.viewer(ctx, room, "ws-"+n.cfg.Node.ID)
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer on %s: %v", n.cfg.Node.ID, err)
		}
		viewers = append(viewers, v)
		_, rec := whepRecord(t, n, room)
		players = append(players, rec)
	}
	for i, rec := range players {
		testutil.Eventually(t, fmt.Sprintf("WHEP player %d plays", i), func() bool { return rec.count(webrtc.RTPCodecTypeVideo) > 30 })
	}

	a.Stop()
	paused := time.Now()
	for _, n := range edges {
		testutil.EventuallyWithin(t, pause, n.cfg.Node.ID+" declares a lost", func() bool { return n.rooms.StoreStats().OriginsLost > 0 })
	}
	time.Sleep(time.Until(paused.Add(pause)))
	before := make([]loadtest.ViewerStats, len(viewers))
	for i, v := range viewers {
		before[i] = v.Stats()
	}
	counts := make([]int, len(players))
	for i, rec := range players {
		counts[i] = rec.count(webrtc.RTPCodecTypeVideo)
	}
	a.Continue()
	back := time.Now()

	// Every edge serves the room again: a new WHEP player is answered
	// 201 (a 404 "nothing published" is the split brain), and plays.
	for _, n := range edges {
		var status int
		deadline := back.Add(n.cfg.Cluster.HeartbeatInterval + 2*time.Second)
		for {
			status = whepStatus(t, n, room)
			if status == http.StatusCreated || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if status != http.StatusCreated {
			t.Errorf("%s answers WHEP %d %v after a's return, want 201", n.cfg.Node.ID, status, time.Since(back).Round(time.Millisecond))
		} else {
			t.Logf("%s answers WHEP 201 %v after a's return", n.cfg.Node.ID, time.Since(back).Round(time.Millisecond))
		}
	}
	for i, v := range viewers {
		testutil.EventuallyWithin(t, 5*time.Second, fmt.Sprintf("WebSocket viewer %d plays again", i), func() bool {
			s := v.Stats()
			return s.VideoPackets > before[i].VideoPackets+30
		})
		if s := v.Stats(); s.Recoveries != 0 {
			t.Errorf("WebSocket viewer %d rejoined %d times", i, s.Recoveries)
		}
	}
	t.Logf("WebSocket viewers play again %v after a's return", time.Since(back).Round(time.Millisecond))
	if pause+2*time.Second <= grace {
		for i, rec := range players {
			testutil.EventuallyWithin(t, 5*time.Second, fmt.Sprintf("WHEP player %d plays again", i), func() bool {
				return rec.count(webrtc.RTPCodecTypeVideo) > counts[i]+30
			})
		}
		t.Logf("WHEP players play again %v after a's return", time.Since(back).Round(time.Millisecond))
	}
}

// whepStatus opens a WHEP session on n for room and returns the answer's
// status; the session is closed with the test.
func whepStatus(t *testing.T, n *testNode, room string) int {
	t.Helper()
	pc := newTestPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	c := &whipClient{pc: pc}
	resp := c.post(t, n.base+"/whep/"+room, n.token(room, "late-whep", false, true))
	resp.Body.Close()
	return resp.StatusCode
}
