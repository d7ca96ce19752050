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
)

// A rolling upgrade mixes nodes that serve relay trunks with nodes that do
// not (an older version, whose registry entry does not offer them, looks
// exactly like a node with cluster.relay_trunks off). Each edge relays
// per room toward an origin without trunks, and on one trunk toward an
// origin with them; the viewers cannot tell.
func TestRelayTrunk_MixedNodesRelayPerRoomTowardNodesWithoutTrunks(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes, four broadcasts")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("m1", 20)
	old := startNode(t, func(c *config.Config) {
		clusterConfig(t, c, r, "node-old", "eu", secret)
		c.Cluster.RelayTrunks = false
	})
	cur := startTrunkNode(t, r, "node-new", "eu", secret)
	edge := startTrunkNode(t, r, "node-edge", "in", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const rooms = 2
	var viewers []*loadtest.Viewer
	for _, origin := range []*testNode{old, cur} {
		for i := range rooms {
			room := fmt.Sprintf("%s-%d", origin.cfg.Node.ID, i)
			origin.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 150_000})
			viewers = append(viewers, edge.viewer(ctx, room, fmt.Sprintf("viewer-%s-%d", origin.cfg.Node.ID, i)))
		}
	}
	for i, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
		testutil.Eventually(t, fmt.Sprintf("viewer %d plays", i), func() bool { return v.Stats().VideoPackets > 30 })
	}
	// One trunk toward the new origin, one connection per room toward
	// the old one.
	if n := edge.rooms.TrunksIn(); n != 1 {
		t.Errorf("the edge holds %d trunks, want 1 (toward node-new only)", n)
	}
	if s := edge.engine.Stats(); s.RelaysIn != 1+rooms {
		t.Errorf("the edge holds %d relay connections, want %d (one trunk, and one per room of node-old)", s.RelaysIn, 1+rooms)
	}
	// And an edge without trunks pulls per room from a node that has them.
	if n := old.rooms.TrunksIn(); n != 0 {
		t.Errorf("node-old holds %d trunks, want 0", n)
	}
	v := old.viewer(ctx, "node-new-0", "old-viewer")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatalf("a viewer on node-old of node-new's room: %v", err)
	}
	testutil.Eventually(t, "a viewer on node-old of node-new's room plays", func() bool { return v.Stats().VideoPackets > 30 })
	if n := old.rooms.TrunksIn(); n != 0 {
		t.Errorf("node-old holds %d trunks after relaying node-new's room, want 0", n)
	}
}
