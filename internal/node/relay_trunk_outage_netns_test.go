package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// trunkOutageEnv marks the run of the trunk outage test inside its network
// namespace.
const trunkOutageEnv = "HALOTEST_TRUNK_OUTAGE_NETNS"

// dropNodeUDP drops every datagram between the origin's and the edge's
// media addresses, both ways: the trunk between them carries nothing.
var dropNodeUDP = []string{
	"add rule inet halo out meta l4proto udp ip saddr " + watchOrigin + " ip daddr " + watchEdge + " counter drop",
	"add rule inet halo out meta l4proto udp ip saddr " + watchEdge + " ip daddr " + watchOrigin + " counter drop",
}

// A relay trunk whose UDP is dropped for 3 s mid-broadcast (a path
// outage between two regions) carries its rooms again once the path is
// back: every room's viewer on the edge plays again within 2 s, without
// rejoining, and the edge still pulls everything over one trunk.
func TestRelayTrunk_ThreeSecondOutageViewersResumeWithinTwoSeconds(t *testing.T) {
	trunkOutage(t, "TestRelayTrunk_ThreeSecondOutageViewersResumeWithinTwoSeconds", 3*time.Second, true)
}

// A relay trunk whose UDP is dropped for 20 s, longer than its ICE waits
// (the trunk is lost on both sides), is opened again once the path is
// back, once for every room, and every room's viewer on the edge plays
// again within 2 s of the new trunk being up... measured from the path's
// return it is the trunk's retry and set-up on top.
func TestRelayTrunk_TwentySecondOutageTrunkReopenedForEveryRoom(t *testing.T) {
	trunkOutage(t, "TestRelayTrunk_TwentySecondOutageTrunkReopenedForEveryRoom", 20*time.Second, true)
}

// The same 20 s outage with a relay connection per room (trunks off):
// each room's relay is lost and made again, and every viewer plays again
// within 2 s of the path's return.
func TestRelay_TwentySecondOutageEveryRoomsRelayMadeAgain(t *testing.T) {
	trunkOutage(t, "TestRelay_TwentySecondOutageEveryRoomsRelayMadeAgain", 20*time.Second, false)
}

// trunkOutage runs the outage test named name with an outage of d, the
// rooms' relays on a trunk or one connection each.
func trunkOutage(t *testing.T, name string, outage time.Duration, trunks bool) {
	a, b := nodePair(t, name, trunkOutageEnv, trunks)
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const rooms = 3
	var viewers []*loadtest.Viewer
	for i := range rooms {
		room := fmt.Sprintf("show-%d", i)
		a.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 300_000, KeyframeInterval: 10 * time.Second})
		viewers = append(viewers, b.viewer(ctx, room, fmt.Sprintf("fan-%d", i)))
	}
	for i, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d on the edge: %v (stats %+v)", i, err, v.Stats())
		}
	}
	opened := func() float64 {
		x, _ := sample(gather(t, b), "halo_relay_trunks_opened_total")
		return x
	}
	time.Sleep(2 * time.Second)
	openedBefore := opened()
	frames := func() []uint64 {
		out := make([]uint64, len(viewers))
		for i, v := range viewers {
			out[i] = v.Stats().Frames
		}
		return out
	}

	for _, rule := range dropNodeUDP {
		nft(t, rule)
	}
	start := frames()
	time.Sleep(outage)
	during := frames()
	for i := range viewers {
		if during[i] > start[i]+3 {
			t.Fatalf("viewer of show-%d got %d whole frames while the trunk's UDP was dropped: the fault did not hold", i, during[i]-start[i])
		}
	}
	nft(t, "flush chain inet halo out")
	back := time.Now()

	// Each viewer plays again: whole frames arrive (a keyframe, since the
	// outage lost its references; the natural ones are 10 s apart).
	resumed := make([]time.Duration, len(viewers))
	for left := len(viewers); left > 0; {
		if time.Since(back) > 10*time.Second {
			break
		}
		now := frames()
		for i := range viewers {
			if resumed[i] == 0 && now[i] >= during[i]+10 {
				resumed[i] = time.Since(back)
				left--
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, d := range resumed {
		switch {
		case d == 0:
			t.Errorf("viewer of show-%d: no whole frame within 10 s of the path's return (stats %+v)", i, viewers[i].Stats())
		case d > 2*time.Second:
			t.Errorf("viewer of show-%d played again %v after the path's return, want within 2 s", i, d.Round(10*time.Millisecond))
		default:
			t.Logf("viewer of show-%d played again %v after the path's return", i, d.Round(10*time.Millisecond))
		}
	}
	// A 3 s outage is shorter than the trunk's ICE gives up after: the
	// trunk rides it out and is not opened again (a longer one would be,
	// once, for every room).
	if !trunks {
		if s := b.engine.Stats(); s.RelaysIn != rooms {
			t.Errorf("the edge pulls over %d connections after the outage, want one per room (%d)", s.RelaysIn, rooms)
		}
		return
	}
	if n := opened() - openedBefore; n > 1 {
		t.Errorf("the trunk was opened %v more times for one outage, want at most once (one re-establishment for every room)", n)
	} else {
		t.Logf("trunk re-establishments: %v", n)
	}
	if s := b.engine.Stats(); s.RelaysIn > 1 {
		t.Errorf("the edge pulls over %d connections after the outage, want the one trunk", s.RelaysIn)
	}
}
