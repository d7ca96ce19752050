package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	dto "github.com/prometheus/client_model/go"
)

// startTrunkNode is startClusterNode with relay trunks on.
func startTrunkNode(t *testing.T, r *testutil.Redis, id, region, authSecret string) *testNode {
	return startNode(t, func(c *config.Config) {
		clusterConfig(t, c, r, id, region, authSecret)
		c.Cluster.RelayTrunks = true
	})
}

// trunkRooms is how many rooms the trunk test relays between two nodes.
const trunkRooms = 30

// Thirty rooms published on a and watched on b ride on ONE relay
// connection between the two nodes (a trunk): b counts one relay
// connection, a serves every room's tracks over it, and every viewer
// receives its broadcast. A room that ends on a leaves the trunk: its
// copies go, the other rooms' viewers keep receiving, and the connection
// stays the only one.
func TestRelayTrunk_ThirtyRoomsOneConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("thirty broadcasts for twenty seconds")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("k3", 20)
	a := startTrunkNode(t, r, "node-a", "eu", secret)
	b := startTrunkNode(t, r, "node-b", "in", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	pubs := make([]*loadtest.Publisher, trunkRooms)
	viewers := make([]*loadtest.Viewer, trunkRooms)
	for i := range trunkRooms {
		room := fmt.Sprintf("trunk-%02d", i)
		pubs[i] = a.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 150_000})
		viewers[i] = b.viewer(ctx, room, fmt.Sprintf("viewer-%02d", i))
	}
	for i, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer of room %d: %v (stats %+v, signalling %v)", i, err, v.Stats(), v.SignalError())
		}
	}
	connections := func() (connected, failed float64) {
		fams := gather(t, b)
		connected, _ = sample(fams, "halo_relay_connections_total", "result", "connected")
		failed, _ = sample(fams, "halo_relay_connections_total", "result", "failed")
		return connected, failed
	}
	if c, _ := connections(); c != 1 {
		t.Errorf("b: halo_relay_connections_total{result=connected} = %v for %d rooms, want 1 (one node pair)", c, trunkRooms)
	}
	if s := b.engine.Stats(); s.RelaysIn != 1 || s.RelayTracksIn != 2*trunkRooms {
		t.Errorf("b receives %d tracks over %d relay connections, want %d over 1", s.RelayTracksIn, s.RelaysIn, 2*trunkRooms)
	}
	if s := a.engine.Stats(); s.RelayTracksOut != 2*trunkRooms {
		t.Errorf("a sends %d relayed track copies, want %d", s.RelayTracksOut, 2*trunkRooms)
	}
	if n := b.rooms.TrunksIn(); n != 1 {
		t.Errorf("b holds %d trunks, want 1", n)
	}
	// What an operator's dashboard shows.
	fa, fb := gather(t, a), gather(t, b)
	for _, m := range []struct {
		node   string
		fams   map[string]*dto.MetricFamily
		name   string
		labels []string
		want   float64
	}{
		{"b", fb, "halo_relay_trunks", []string{"direction", "in"}, 1},
		{"a", fa, "halo_relay_trunks", []string{"direction", "out"}, 1},
		{"b", fb, "halo_relay_trunk_tracks", []string{"origin", "node-a"}, 2 * trunkRooms},
		{"b", fb, "halo_relay_trunks_opened_total", nil, 1},
	} {
		if v, ok := sample(m.fams, m.name, m.labels...); !ok || v != m.want {
			t.Errorf("%s: %s%v = %v (exported: %v), want %v", m.node, m.name, m.labels, v, ok, m.want)
		}
	}
	if v, ok := sample(fb, "halo_relay_trunk_sections", "origin", "node-a"); !ok || v < 2*trunkRooms {
		t.Errorf("b: halo_relay_trunk_sections = %v (exported: %v), want at least the %d tracks' sections", v, ok, 2*trunkRooms)
	}
	// The trunk's bytes: some, and no more than what b's relays took in
	// in all (b pulls nothing else, so nearly all of it).
	if v, ok := sample(fb, "halo_relay_trunk_received_bytes_total", "origin", "node-a"); !ok || v == 0 || v > float64(b.engine.Stats().RelayBytesIn) {
		t.Errorf("b: halo_relay_trunk_received_bytes_total = %v (exported: %v), want more than 0 and at most the %d relay bytes in", v, ok, b.engine.Stats().RelayBytesIn)
	}
	p0 := make([]loadtest.PublisherStats, trunkRooms)
	v0 := make([]loadtest.ViewerStats, trunkRooms)
	for i := range trunkRooms {
		p0[i], v0[i] = pubs[i].Stats(), viewers[i].Stats()
	}

	// Room 7's broadcast ends on a: its two copies leave the trunk.
	const ended = 7
	_ = pubs[ended].Close()
	testutil.Eventually(t, "the ended room's copies leave the trunk on both nodes", func() bool {
		return a.engine.Stats().RelayTracksOut == 2*(trunkRooms-1) && b.engine.Stats().RelayTracksIn == 2*(trunkRooms-1)
	})
	mid := make([]loadtest.ViewerStats, trunkRooms)
	for i, v := range viewers {
		mid[i] = v.Stats()
	}
	time.Sleep(3 * time.Second)
	for i, v := range viewers {
		if i == ended {
			continue
		}
		s := v.Stats()
		if s.VideoPackets <= mid[i].VideoPackets || s.AudioPackets <= mid[i].AudioPackets {
			t.Errorf("viewer of room %d stopped receiving when room %d ended (video %d -> %d, audio %d -> %d)", i, ended,
				mid[i].VideoPackets, s.VideoPackets, mid[i].AudioPackets, s.AudioPackets)
		}
	}
	if c, f := connections(); c != 1 || f != 0 {
		t.Errorf("b: relay connections connected %v, failed %v after a room ended, want 1 and 0", c, f)
	}
	if s := b.engine.Stats(); s.RelaysIn != 1 {
		t.Errorf("b holds %d relay connections after a room ended, want 1", s.RelaysIn)
	}

	// Every other broadcast arrives whole. What the publishers sent is
	// counted a second before they stop: the last packets of a broadcast
	// that ends may be dropped with its copies (the end travels by the
	// cluster's events, which can overtake a busy forwarder); loss inside
	// the stream shows as gaps in the sequence numbers.
	p1 := make([]loadtest.PublisherStats, trunkRooms)
	for i, p := range pubs {
		p1[i] = p.Stats()
	}
	time.Sleep(time.Second)
	for i, p := range pubs {
		if i != ended {
			_ = p.Close()
		}
	}
	settle(viewers)
	defer func() {
		if t.Failed() {
			as, bs := a.engine.Stats(), b.engine.Stats()
			t.Logf("over the trunk: a sent %d relayed packets, b received %d", as.RelayPacketsOut, bs.RelayPacketsIn)
		}
	}()
	for i, v := range viewers {
		if i == ended {
			continue
		}
		s := v.Stats()
		sent := (p1[i].VideoPackets + p1[i].AudioPackets) - (p0[i].VideoPackets + p0[i].AudioPackets)
		got := (s.VideoPackets + s.AudioPackets) - (v0[i].VideoPackets + v0[i].AudioPackets)
		if float64(got) < 0.99*float64(sent) {
			t.Errorf("viewer of room %d received %d of %d packets (%.2f %%; %d lost in gaps, %d repaired)", i, got, sent, 100*float64(got)/float64(sent), s.Lost, s.Repaired)
		}
		if s.Lost*100 > got {
			t.Errorf("viewer of room %d: %d packets missing in the sequence of %d received", i, s.Lost, got)
		}
		if !s.FirstVideoIsKeyframe {
			t.Errorf("viewer of room %d: the first video frame was not a keyframe", i)
		}
	}
}

// With trunks on, nodes open their trunks toward each other before any
// room needs one (a cold room then costs one change over an open trunk,
// not the set-up), and none toward a node that does not serve them.
func TestRelayTrunk_OpenedAheadOfTheFirstRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("p2", 20)
	a := startTrunkNode(t, r, "node-a", "eu", secret)
	b := startTrunkNode(t, r, "node-b", "in", secret)
	off := startClusterNode(t, r, "node-off", "np", secret)
	testutil.Eventually(t, "a and b hold a trunk to each other, with no room", func() bool {
		return a.rooms.TrunksIn() == 1 && b.rooms.TrunksIn() == 1
	})
	// Several rounds of the loop later: still one each, none with off.
	time.Sleep(5 * time.Second)
	if a.rooms.TrunksIn() != 1 || b.rooms.TrunksIn() != 1 || off.rooms.TrunksIn() != 0 {
		t.Errorf("trunks held: a %d, b %d, node-off %d; want 1, 1, 0", a.rooms.TrunksIn(), b.rooms.TrunksIn(), off.rooms.TrunksIn())
	}
	if v, _ := sample(gather(t, a), "halo_relay_trunks_opened_total"); v != 1 {
		t.Errorf("a opened %v trunks, want 1", v)
	}
}
