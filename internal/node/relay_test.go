package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// Three nodes on one Redis: a broadcaster on a, twenty viewers on each of b
// and c. b and c each pull every track from a once, whatever their
// audience, and every viewer receives the broadcast.
func TestRelay_ThreeNodesOneStreamPerNode(t *testing.T) {
	if testing.Short() {
		t.Skip("forty viewers for ten seconds")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("r7", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	c := startClusterNode(t, r, "node-c", "np", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var viewers []*loadtest.Viewer
	for _, n := range []*testNode{b, c} {
		for i := range relayViewers {
			viewers = append(viewers, n.viewer(ctx, "tri", fmt.Sprintf("%s-viewer-%d", n.cfg.Node.ID, i)))
		}
	}
	pub := a.publisher(ctx, "tri", loadtest.PublisherConfig{VideoBitrate: 300_000})
	for i, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v (stats %+v, signalling %v)", i, err, v.Stats(), v.SignalError())
		}
	}
	if s := a.engine.Stats(); s.RelayTracksOut != 4 || s.RelaysOut != 2 {
		t.Fatalf("a sends %d track copies over %d relays, want 4 (2 tracks x 2 nodes) over 2", s.RelayTracksOut, s.RelaysOut)
	}
	for _, n := range []*testNode{b, c} {
		if s := n.engine.Stats(); s.RelayTracksIn != 2 || s.RelaysIn != 1 {
			t.Fatalf("%s receives %d tracks over %d relays, want 2 over 1", n.cfg.Node.ID, s.RelayTracksIn, s.RelaysIn)
		}
		// The viewers were waiting when the broadcast began: the edge waited
		// for both of its tracks rather than relay the first alone and set
		// the relay up again for the second.
		fams := gather(t, n) // the cluster test nodes have no metrics listener
		connected, _ := sample(fams, "halo_relay_connections_total", "result", "connected")
		failed, ok := sample(fams, "halo_relay_connections_total", "result", "failed")
		if connected != 1 || failed != 0 || !ok {
			t.Errorf("%s: halo_relay_connections_total connected %v, failed %v (exported: %v), want one connected", n.cfg.Node.ID, connected, failed, ok)
		}
	}
	p0 := pub.Stats()
	v0 := make([]loadtest.ViewerStats, len(viewers))
	for i, v := range viewers {
		v0[i] = v.Stats()
	}
	time.Sleep(5 * time.Second)
	_ = pub.Close()
	p1 := pub.Stats()
	settle(viewers)
	sent := (p1.VideoPackets + p1.AudioPackets) - (p0.VideoPackets + p0.AudioPackets)
	for i, v := range viewers {
		s := v.Stats()
		got := (s.VideoPackets + s.AudioPackets) - (v0[i].VideoPackets + v0[i].AudioPackets)
		if float64(got) < 0.99*float64(sent) {
			t.Errorf("viewer %d received %d of %d packets (%.2f %%)", i, got, sent, 100*float64(got)/float64(sent))
		}
		if !s.FirstVideoIsKeyframe {
			t.Errorf("viewer %d: first video frame was not a keyframe", i)
		}
	}
	// Still one copy per node: the audience never multiplied the relays.
	if s := a.engine.Stats(); s.RelayPacketsOut == 0 || s.RelayPacketsOut > 2*(p1.VideoPackets+p1.AudioPackets)+200 {
		t.Errorf("a sent %d relayed packets for %d published: more than one copy per node", s.RelayPacketsOut, p1.VideoPackets+p1.AudioPackets)
	}
}

// relayViewers is how many viewers each edge node has in the three-node test.
const relayViewers = 20

// A WHIP broadcast on a is watched with WHEP on c, through a relay: on
// a's own relay listener (cluster.relay_address), or on its public
// listener when it has none.
func TestRelay_WHEPOnOneNodeWatchesWHIPOnAnother(t *testing.T) {
	for _, ownListener := range []bool{true, false} {
		t.Run(fmt.Sprintf("relay_address=%v", ownListener), func(t *testing.T) {
			testRelayWHEP(t, ownListener)
		})
	}
}

func testRelayWHEP(t *testing.T, ownListener bool) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("w8", 20)
	var a *testNode
	if ownListener {
		a = startClusterNode(t, r, "node-a", "eu", secret)
	} else {
		a = startNode(t, func(cfg *config.Config) {
			cfg.Auth.Secret = secret
			cfg.Node.ID, cfg.Node.Region = "node-a2", "eu"
			cfg.Redis.Addrs = []string{r.Addr()}
			cfg.Cluster.Secret = testClusterSecret
			cfg.Cluster.HeartbeatInterval = 300 * time.Millisecond
			cfg.Cluster.NodeTTL = 1500 * time.Millisecond
		})
	}
	c := startClusterNode(t, r, "node-c", "np", secret)
	pub := whipPublish(t, a, "cross")
	defer pub.close()
	testutil.Eventually(t, "a's tracks published", func() bool { return len(a.rooms.Room("cross").Tracks()) == 2 })
	_, rec := whepRecord(t, c, "cross")
	testutil.Eventually(t, "the WHEP viewer on c receives a's video and audio", func() bool {
		return rec.count(webrtc.RTPCodecTypeVideo) > 50 && rec.count(webrtc.RTPCodecTypeAudio) > 50
	})
	if s := a.engine.Stats(); s.RelayTracksOut != 2 {
		t.Fatalf("a sends %d track copies, want 2", s.RelayTracksOut)
	}
}

// The relay endpoint answers only a token signed with the cluster secret:
// no token, or a client's token, is refused.
func TestRelay_RequestWithoutTheClusterSecretIsRefused(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("s9", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	pub := whipPublish(t, a, "guarded")
	defer pub.close()
	testutil.Eventually(t, "tracks published", func() bool { return len(a.rooms.Room("guarded").Tracks()) == 2 })
	var ids []string
	for _, tr := range a.rooms.Room("guarded").Tracks() {
		ids = append(ids, tr.ID)
	}
	url := "http://" + a.cfg.Cluster.RelayAddress + "/relay/guarded?tracks=" + strings.Join(ids, ",")
	for name, token := range map[string]string{
		"no token":         "",
		"a client's token": a.token("guarded", "sneaky", true, true),
		"garbage":          "not-a-token",
	} {
		resp := doHTTP(t, "POST", url, token, "application/sdp", validOffer, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, resp.StatusCode, body)
		}
	}
	// Clients cannot reach it on the public listener either.
	if resp := doHTTP(t, "POST", a.base+"/relay/guarded?tracks="+ids[0], a.token("guarded", "sneaky", true, true), "application/sdp", validOffer, nil); resp.StatusCode == http.StatusCreated {
		t.Error("the relay endpoint answered on the client listener")
	}
	if s := a.engine.Stats(); s.RelaysOut != 0 {
		t.Errorf("%d relays opened by refused requests", s.RelaysOut)
	}
}
