package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
	"github.com/pion/webrtc/v4"
)

// The origin of a broadcast dies (SIGKILL) and the broadcaster publishes
// again on d, a node with no viewer of the room. b and c serve the room to
// WHEP players only (no WebSocket client asks for anything): each plays
// again within 3 s of the republish, without a rejoin.
//
// Soon after the kill, a's entry is still in the registry and its records
// in the store, so d takes the tracks over under their ids. Once they have
// expired, d knows nothing of them and publishes the broadcast under new
// ids: b and c move their players onto those.
func TestFailover_OriginKilled_WHEPOnlyEdgesResume(t *testing.T) {
	if testing.Short() {
		t.Skip("a four-node failover")
	}
	for _, tc := range []struct {
		name   string
		expire bool // republish once a's records are gone from the store
	}{
		{"republish while the origin is still registered", false},
		{"republish under new ids after the origin expired", true},
	} {
		t.Run(tc.name, func(t *testing.T) { whepEdgesFollowARepublish(t, tc.expire) })
	}
}

func whepEdgesFollowARepublish(t *testing.T, expire bool) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("e1", 20)
	a := startNodeProc(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	c := startClusterNode(t, r, "node-c", "np", secret)
	d := startClusterNode(t, r, "node-d", "in", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	room := "phoenix-whep"
	cfg := loadtest.PublisherConfig{VideoBitrate: 300_000}
	first := a.publisher(ctx, room, cfg)
	type player struct {
		name string
		rec  *seqRecorder
	}
	var players []player
	for _, n := range []*testNode{b, c} {
		// A client that asks for no media (so the edge still serves WHEP
		// only) waits until the edge knows the broadcast.
		observe(t, ctx, n, room)
		testutil.Eventually(t, n.cfg.Node.ID+" knows the broadcast", func() bool {
			r := n.rooms.Room(room)
			return r != nil && len(r.RemoteTracks()) == 2
		})
		for i := range 2 {
			_, rec := whepRecord(t, n, room)
			players = append(players, player{fmt.Sprintf("%s-%d", n.cfg.Node.ID, i), rec})
		}
	}
	for _, p := range players {
		testutil.Eventually(t, p.name+" plays", func() bool {
			return p.rec.count(webrtc.RTPCodecTypeVideo) > 30 && p.rec.count(webrtc.RTPCodecTypeAudio) > 10
		})
	}
	before := trackIDs(b, room)

	a.Kill()
	_ = first.Close()
	if expire {
		testutil.Eventually(t, "a's registry entry expires", func() bool {
			_, nodes := getNodes(t, d, d.adminToken(auth.Grants{Admin: true}))
			for _, n := range nodes {
				if n.ID == "node-a" {
					return false
				}
			}
			return true
		})
		time.Sleep(500 * time.Millisecond) // its room records expire with it
	}
	counts := make([][2]int, len(players))
	for i, p := range players {
		counts[i] = [2]int{p.rec.count(webrtc.RTPCodecTypeVideo), p.rec.count(webrtc.RTPCodecTypeAudio)}
	}

	republished := time.Now()
	d.publisher(ctx, room, cfg)
	resumed := map[string]time.Duration{}
	for len(resumed) < len(players) && time.Since(republished) < 15*time.Second {
		for i, p := range players {
			if _, ok := resumed[p.name]; !ok &&
				p.rec.count(webrtc.RTPCodecTypeVideo) > counts[i][0]+30 && p.rec.count(webrtc.RTPCodecTypeAudio) > counts[i][1]+10 {
				resumed[p.name] = time.Since(republished)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("WHEP players played again after the republish: %v", resumed)
	for _, p := range players {
		d, ok := resumed[p.name]
		switch {
		case !ok:
			t.Errorf("WHEP player %s never played again after the republish", p.name)
		case d > 3*time.Second:
			t.Errorf("WHEP player %s played again %v after the republish, want within 3 s", p.name, d)
		}
	}
	after := trackIDs(d, room)
	if sameSet(before, after) == expire {
		t.Errorf("d publishes %v, the broadcast was %v: want the same ids %v", after, before, !expire)
	}
}
