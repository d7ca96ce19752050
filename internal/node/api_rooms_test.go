package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// Three nodes on one Redis, in three regions: any node lists the rooms of
// the whole cluster, the most watched first, with each room's publishers
// and tracks, its audience in total and per region, and the nodes serving
// it; ?live=true keeps the rooms with a live track; pages follow the
// cursor. Every answer validates against docs/openapi.json.
func TestAPI_ListsTheRoomsOfTheWholeCluster(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("a1", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	c := startClusterNode(t, r, "node-c", "us", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	a.publisher(ctx, "big", loadtest.PublisherConfig{VideoBitrate: 150_000})
	b.publisher(ctx, "small", loadtest.PublisherConfig{VideoBitrate: 150_000})
	b.viewer(ctx, "big", "fan1")
	b.viewer(ctx, "big", "fan2")
	c.viewer(ctx, "big", "fan3")
	a.viewer(ctx, "small", "fan4")
	// A room with a viewer waiting and nothing published.
	c.viewer(ctx, "quiet", "fan5")

	admin := c.apiAdmin()
	var all apiRoomsBody
	testutil.Eventually(t, "node c lists big (3 viewers), quiet and small (1 each) with their counts", func() bool {
		all = apiRoomsBody{}
		if apiGet(t, c, "/api/v1/rooms", admin, &all) != 200 || roomNames(all.Rooms) != "big,quiet,small" {
			return false
		}
		big := all.Rooms[0]
		return big.Viewers == 3 && big.ViewersByRegion["in"] == 2 && big.ViewersByRegion["us"] == 1 &&
			strings.Join(big.Nodes, ",") == "node-a,node-b,node-c" && len(big.Publishers) == 1 &&
			len(big.Publishers[0].Tracks) == 2 && all.Rooms[1].Viewers == 1 && all.Rooms[2].Viewers == 1
	})
	big := all.Rooms[0]
	if p := big.Publishers[0]; p.Identity != "pub-big" || p.Node != "node-a" || big.StartedAt == nil {
		t.Errorf("big's publisher %+v started %v, want pub-big on node-a and a start time", p, big.StartedAt)
	}
	kinds := map[string]bool{}
	for _, tr := range big.Publishers[0].Tracks {
		kinds[tr.Kind] = tr.Codec != ""
	}
	if !kinds["audio"] || !kinds["video"] {
		t.Errorf("big's tracks %+v, want audio and video with codecs", big.Publishers[0].Tracks)
	}

	var live apiRoomsBody
	if apiGet(t, a, "/api/v1/rooms?live=true", a.apiAdmin(), &live) != 200 || roomNames(live.Rooms) != "big,small" {
		t.Errorf("live rooms on node a: %s, want big,small", roomNames(live.Rooms))
	}
	var seen []string
	cursor := ""
	for page := 0; page < 5; page++ {
		var p apiRoomsBody
		if apiGet(t, b, "/api/v1/rooms?limit=1&cursor="+cursor, b.apiAdmin(), &p) != 200 {
			t.Fatal("page refused")
		}
		seen = append(seen, roomNames(p.Rooms))
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(seen, ",") != "big,quiet,small" {
		t.Errorf("pages of one: %v, want big, quiet, small", seen)
	}

	var one apiRoomBody
	if apiGet(t, b, "/api/v1/rooms/big", b.apiAdmin(), &one) != 200 || one.Viewers != 3 || one.Name != "big" ||
		one.StartedAt == nil || !one.StartedAt.Equal(*big.StartedAt) {
		t.Errorf("GET rooms/big on node b: %+v", one)
	}
	var parts apiParticipantsBody
	if apiGet(t, a, "/api/v1/rooms/big/participants", a.apiAdmin(), &parts) != 200 {
		t.Fatal("participants refused")
	}
	if len(parts.Publishers) != 1 || parts.Publishers[0].Identity != "pub-big" || parts.Publishers[0].Region != "eu" ||
		parts.Publishers[0].Role != "publisher" || parts.Publishers[0].Transport != "websocket" {
		t.Errorf("publishers %+v, want pub-big in eu over websocket", parts.Publishers)
	}
	regions := map[string]string{}
	for _, p := range parts.Audience {
		regions[p.Identity] = fmt.Sprintf("%s/%s/%s", p.Role, p.Node, p.Region)
		if p.JoinedAt == nil {
			t.Errorf("viewer %s has no joined_at", p.Identity)
		}
	}
	if regions["fan1"] != "viewer/node-b/in" || regions["fan2"] != "viewer/node-b/in" || regions["fan3"] != "viewer/node-c/us" || len(regions) != 3 {
		t.Errorf("audience %v, want fan1, fan2 on node-b (in), fan3 on node-c (us)", regions)
	}
}
