package node

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// relayWatchEnv marks the run of the relay watch test inside its network
// namespace.
const relayWatchEnv = "HALOTEST_RELAY_WATCH_NETNS"

// The origin's and the edge's media addresses in that namespace.
const (
	watchOrigin = "127.0.0.2"
	watchEdge   = "127.0.0.3"
)

// dropRelayRTP drops the RTP the origin sends the edge, and nothing else:
// ICE checks, DTLS and RTCP (packet types 200-204) still pass, so the
// relay stays connected while its media is lost on the way.
var dropRelayRTP = "add rule inet halo out meta l4proto udp ip saddr " + watchOrigin + " ip daddr " + watchEdge +
	" @th,64,2 2 @th,72,8 != 200-204 counter drop"

// A relay that stays connected while its media no longer arrives (a
// middlebox dropping the flow's RTP; ICE consent and RTCP still pass) is
// noticed by the edge, from its origin's sender reports, dropped and made
// again: the edge's viewers play again, without rejoining. Without the
// watch nothing ever fails and they stay frozen.
func TestRelayWatch_MediaLostOnTheWayIsNoticedAndTheRelayMadeAgain(t *testing.T) {
	relayWatch(t, "TestRelayWatch_MediaLostOnTheWayIsNoticedAndTheRelayMadeAgain", false)
}

// The same with relay trunks on: the trunk is watched whole, and opened
// again.
func TestRelayWatch_TrunkMediaLostOnTheWayIsNoticedAndTheTrunkOpenedAgain(t *testing.T) {
	relayWatch(t, "TestRelayWatch_TrunkMediaLostOnTheWayIsNoticedAndTheTrunkOpenedAgain", true)
}

// relayWatch runs the relay watch test named name, over a trunk or not.
func relayWatch(t *testing.T, name string, trunks bool) {
	a, b := nodePair(t, name, relayWatchEnv, trunks)
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pub := a.publisher(ctx, "watched", loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := b.viewer(ctx, "watched", "far-fan")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("viewer on the edge: %v (stats %+v)", err, v.Stats())
	}
	metric := func(name string, labels ...string) float64 {
		x, _ := sample(gather(t, b), name, labels...)
		return x
	}
	time.Sleep(3 * time.Second) // the watch has judged the healthy relay at least once
	if lost := metric("halo_relay_media_lost_total"); lost != 0 {
		t.Fatalf("halo_relay_media_lost_total = %v on a healthy relay, want 0", lost)
	}
	before := v.Stats().VideoPackets + v.Stats().AudioPackets

	nft(t, dropRelayRTP)
	faulted := time.Now()
	deadline := faulted.Add(20 * time.Second)
	for metric("halo_relay_media_lost_total") == 0 {
		if time.Now().After(deadline) {
			s := v.Stats()
			t.Fatalf("the relay's RTP has been dropped for 20 s and the edge has not noticed (viewer got %d packets since the drop, publisher sent %d frames)",
				s.VideoPackets+s.AudioPackets-before, pub.Stats().VideoFrames)
		}
		time.Sleep(100 * time.Millisecond)
	}
	noticed := time.Since(faulted)
	// The fault was that one flow's: the relay made again is a new flow,
	// as a middlebox's lost state would be. The rule goes now, so that the
	// old relay, were it kept, would resume too: what the test asks is
	// that the edge noticed, and made the relay again.
	nft(t, "flush chain inet halo out")
	frozen := v.Stats().VideoPackets + v.Stats().AudioPackets
	if got := frozen - before; got > 200 {
		t.Errorf("the viewer got %d packets while the relay's RTP was dropped: the fault did not hold", got)
	}
	testutil.EventuallyWithin(t, 15*time.Second, "the edge's viewer to play again after the relay was made again", func() bool {
		s := v.Stats()
		return s.VideoPackets+s.AudioPackets > frozen+200
	})
	if c := metric("halo_relay_connections_total", "result", "connected"); c < 2 {
		t.Errorf("halo_relay_connections_total{result=connected} = %v, want the relay made again (2)", c)
	}
	if trunks {
		if n := metric("halo_relay_trunks_opened_total"); n < 2 {
			t.Errorf("halo_relay_trunks_opened_total = %v, want the trunk opened again (2)", n)
		}
	}
	t.Logf("media lost on the way noticed %v after the drop began", noticed.Round(100*time.Millisecond))
}

// nft runs one nftables command in the test's namespace.
func nft(t *testing.T, rule string) {
	t.Helper()
	if out, err := exec.Command("nft", rule).CombinedOutput(); err != nil {
		t.Fatalf("nft %s: %v\n%s", rule, err, out)
	}
}

// A relay that never delivers a packet (its RTP dropped from the start,
// the connection up) is made again after 10 s: the edge's viewer plays
// once the path carries media, without rejoining. Its origin's reports
// cannot tell here (the edge knows a track from its first packet).
func TestRelayWatch_RelayThatNeverDeliversIsMadeAgain(t *testing.T) {
	a, b := nodePair(t, "TestRelayWatch_RelayThatNeverDeliversIsMadeAgain", relayWatchEnv, false, dropRelayRTP)
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a.publisher(ctx, "never", loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := b.viewer(ctx, "never", "waiting-fan")
	asked := time.Now()
	testutil.EventuallyWithin(t, 30*time.Second, "the edge to make again the relay that never delivered", func() bool {
		x, _ := sample(gather(t, b), "halo_relay_media_lost_total")
		return x > 0
	})
	t.Logf("the relay that never delivered was made again %v after the viewer asked", time.Since(asked).Round(100*time.Millisecond))
	if s := v.Stats(); s.VideoPackets+s.AudioPackets != 0 {
		t.Fatalf("the viewer got %d packets while the relay's RTP was dropped: the fault did not hold", s.VideoPackets+s.AudioPackets)
	}
	nft(t, "flush chain inet halo out")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("the edge's viewer after the relay was made again: %v (stats %+v)", err, v.Stats())
	}
}

// nodePair starts an origin and an edge on their own media addresses
// (watchOrigin, watchEdge), in a cluster on a new Redis, with relay trunks
// on or off, inside a network namespace with an nftables output chain
// (inet halo out) holding rules. Outside the namespace it runs the test
// name again inside one (env marks that run) and returns nils: the caller
// returns.
func nodePair(t *testing.T, name, env string, trunks bool, rules ...string) (origin, edge *testNode) {
	t.Helper()
	if testing.Short() {
		t.Skip("seconds of media across two nodes")
	}
	if os.Getenv(env) != "1" {
		runInNamespace(t, name, env, []string{watchOrigin, watchEdge}, append([]string{
			"add table inet halo",
			"add chain inet halo out { type filter hook output priority 0; }",
		}, rules...))
		return nil, nil
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("w8", 20)
	node := func(id, region, ip string) *testNode {
		return startNode(t, func(c *config.Config) {
			clusterConfig(t, c, r, id, region, secret)
			c.Cluster.RelayTrunks = trunks
			c.SFU.UDPAddress = ip
		})
	}
	return node("node-a", "eu", watchOrigin), node("node-b", "in", watchEdge)
}
