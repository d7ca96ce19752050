package node

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/room/cluster"
	"github.com/halobuzz/live/signaling/auth"
)

const testClusterSecret = "test-cluster-secret-0123456789abcdef"

// startClusterNode starts a node of a cluster on redis with the shared
// auth secret, short heartbeats and leases.
func startClusterNode(t *testing.T, r *testutil.Redis, id, region, authSecret string) *testNode {
	return startNode(t, func(c *config.Config) { clusterConfig(t, c, r, id, region, authSecret) })
}

// clusterConfig makes c node id of region in a cluster on r.
func clusterConfig(t *testing.T, c *config.Config, r *testutil.Redis, id, region, authSecret string) {
	c.Auth.Secret = authSecret
	c.Node.ID, c.Node.Region = id, region
	c.Redis.Addrs = []string{r.Addr()}
	c.Cluster.Secret = testClusterSecret
	c.Cluster.RelayAddress = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	c.Cluster.HeartbeatInterval = 300 * time.Millisecond
	c.Cluster.NodeTTL = 1500 * time.Millisecond
}

func (n *testNode) adminToken(grants auth.Grants) string {
	n.t.Helper()
	tok, err := n.signer.Sign(auth.Claims{Identity: "ops", Grants: grants, Room: "ops",
		ExpiresAt: time.Now().Add(time.Hour), IssuedAt: time.Now()})
	if err != nil {
		n.t.Fatal(err)
	}
	return tok
}

func getNodes(t *testing.T, n *testNode, token string) (int, []room.NodeInfo) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.base+"/admin/nodes", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Node  string          `json:"node"`
		Nodes []room.NodeInfo `json:"nodes"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Node != n.cfg.Node.ID {
			t.Fatalf("admin/nodes body: %+v %v", body, err)
		}
	}
	return resp.StatusCode, body.Nodes
}

// Two nodes on one Redis: each sees the other's tracks (with their origin),
// publishers and viewers, and /admin/nodes lists both for an admin only.
func TestCluster_TwoNodesShareTheRoomAndTheRegistry(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("a1", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.publisher(ctx, "show", loadtest.PublisherConfig{VideoBitrate: 200_000})
	viewer := b.dial(t, ctx)
	if _, err := viewer.Request(ctx, "join", loadtest.JoinRequest{Token: b.token("show", "fan", false, true)}); err != nil {
		t.Fatal(err)
	}

	observer, err := cluster.NewRedisStore(cluster.NewRedisClient(config.RedisConfig{Addrs: []string{r.Addr()}, Timeout: time.Second}),
		"halo:", cluster.RedisOptions{NodeID: "observer", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	testutil.Eventually(t, "the room shows a's two tracks with origin a, a's publisher and b's viewer", func() bool {
		st, err := observer.Room(ctx, "show")
		if err != nil || len(st.Tracks) != 2 || st.Viewers["node-b"] != 1 {
			return false
		}
		for _, tr := range st.Tracks {
			if tr.Node != "node-a" {
				return false
			}
			if h, err := observer.Origin(ctx, "show", tr.ID); err != nil || h != "node-a" {
				return false
			}
		}
		pubs := 0
		for _, p := range st.Participants {
			if p.Publisher && p.Node == "node-a" {
				pubs++
			}
		}
		return pubs == 1
	})

	if code, _ := getNodes(t, b, ""); code != http.StatusUnauthorized {
		t.Errorf("admin/nodes without a token: %d, want 401", code)
	}
	if code, _ := getNodes(t, b, "not-a-token"); code != http.StatusUnauthorized {
		t.Errorf("admin/nodes with a forged token: %d, want 401", code)
	}
	if code, _ := getNodes(t, b, b.adminToken(auth.Grants{Publish: true, Subscribe: true})); code != http.StatusForbidden {
		t.Errorf("admin/nodes without the admin grant: %d, want 403", code)
	}
	admin := b.adminToken(auth.Grants{Admin: true})
	testutil.Eventually(t, "admin/nodes lists both nodes with their region, URL and load", func() bool {
		code, nodes := getNodes(t, b, admin)
		if code != http.StatusOK || len(nodes) != 2 {
			return false
		}
		na, nb := nodes[0], nodes[1]
		return na.ID == "node-a" && na.Region == "eu" && na.PublicURL == "http://"+a.HTTPAddr() && na.Tracks == 2 &&
			nb.ID == "node-b" && nb.Region == "in" && nb.Viewers == 1 && nb.RelayAddress != ""
	})
	testutil.Eventually(t, "each node counts two nodes in the cluster", func() bool {
		return a.rooms.StoreStats().Nodes == 2 && b.rooms.StoreStats().Nodes == 2
	})
}

// With Redis gone, a join that needs the cluster fails fast with a
// retryable code on the same socket; once Redis is back it succeeds.
func TestCluster_RedisDown_JoinGetsClusterUnavailable(t *testing.T) {
	r := testutil.StartRedis(t)
	n := startClusterNode(t, r, "node-a", "eu", strings.Repeat("b2", 20))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.Stop()
	testutil.Eventually(t, "the node sees Redis down", func() bool { return !n.rooms.ClusterReady() })
	if resp := doHTTP(t, "GET", n.base+"/readyz", "", "", "", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down: %d, want 503", resp.StatusCode)
	}
	c := n.dial(t, ctx)
	_, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("fresh", "v", false, true)})
	if code := loadtest.ErrorCode(err); code != "cluster_unavailable" {
		t.Fatalf("join with Redis down: %v, want cluster_unavailable", err)
	}
	req, _ := http.NewRequest("POST", n.base+"/whip/fresh-whip", strings.NewReader("v=0\r\n"))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+n.token("fresh-whip", "caster", true, false))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 64)
	k, _ := resp.Body.Read(body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.HasPrefix(string(body[:k]), "cluster_unavailable") {
		t.Fatalf("WHIP with Redis down: %d, Retry-After %q, %q", resp.StatusCode, resp.Header.Get("Retry-After"), body[:k])
	}
	r.Start()
	testutil.Eventually(t, "the node sees Redis back", func() bool { return n.rooms.ClusterReady() })
	if resp := doHTTP(t, "GET", n.base+"/readyz", "", "", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz with Redis back: %d, want 200", resp.StatusCode)
	}
	if _, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("fresh", "v", false, true)}); err != nil {
		t.Fatalf("join again on the same socket once Redis is back: %v", err)
	}
}

// Clients on two nodes of one room see the same room: a's broadcaster's
// tracks reach b's client as track_published, b's viewer counts on a, and
// chat crosses both ways.
func TestCluster_RoomEventsReachClientsOnTheOtherNode(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("d4", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "in", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := false
	join := func(n *testNode, identity string, publish bool) (*loadtest.Conn, string) {
		c := n.dial(t, ctx)
		env, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("mix", identity, publish, true), Name: identity, AutoSubscribe: &f})
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			ParticipantID string `json:"participant_id"`
		}
		_ = env.Decode(&j)
		return c, j.ParticipantID
	}
	onB, _ := join(b, "fan", false)
	if _, err := onB.Request(ctx, "subscribe", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	onA, hostID := join(a, "host", true)
	a.publisher(ctx, "mix", loadtest.PublisherConfig{VideoBitrate: 200_000})

	// b's client: a's broadcaster announced, then its two tracks.
	tracks := map[string]bool{}
	announced := false
	for len(tracks) < 2 {
		env, err := onB.Next(ctx)
		if err != nil {
			t.Fatalf("b's client waiting for a's tracks: %v", err)
		}
		if env.Type == "participant_joined" {
			announced = true
		}
		if env.Type == "track_published" {
			if !announced {
				t.Fatal("b's client got a track_published before the broadcaster's participant_joined")
			}
			var d struct {
				Track struct {
					ID   string `json:"id"`
					Kind string `json:"kind"`
				} `json:"track"`
			}
			_ = env.Decode(&d)
			tracks[d.Track.Kind] = true
		}
	}
	if !tracks["audio"] || !tracks["video"] {
		t.Fatalf("b's client saw tracks %v, want audio and video", tracks)
	}
	// a's client: the room's viewer count includes b's viewer.
	for {
		env, err := onA.Next(ctx)
		if err != nil {
			t.Fatalf("a's client waiting for the cluster viewer count: %v", err)
		}
		var d struct{ Count int }
		if env.Type == "viewer_count" && env.Decode(&d) == nil && d.Count == 1 {
			break
		}
	}
	if _, err := onA.Send("chat", map[string]string{"text": "namaste"}); err != nil {
		t.Fatal(err)
	}
	for {
		env, err := onB.Next(ctx)
		if err != nil {
			t.Fatalf("b's client waiting for a's chat: %v", err)
		}
		var m struct {
			ParticipantID string `json:"participant_id"`
			Name, Text    string
		}
		if env.Type == "chat" && env.Decode(&m) == nil {
			if m.ParticipantID != hostID || m.Name != "host" || m.Text != "namaste" {
				t.Fatalf("chat on b: %+v", m)
			}
			break
		}
	}
}

// A node without Redis lists itself.
func TestAdminNodes_NodeAloneListsItself(t *testing.T) {
	n := startNode(t, nil)
	if code, _ := getNodes(t, n, n.adminToken(auth.Grants{Subscribe: true})); code != http.StatusForbidden {
		t.Errorf("without the admin grant: %d, want 403", code)
	}
	code, nodes := getNodes(t, n, n.adminToken(auth.Grants{Admin: true}))
	if code != http.StatusOK || len(nodes) != 1 || nodes[0].ID != n.cfg.Node.ID || nodes[0].PublicURL != "http://"+n.HTTPAddr() ||
		nodes[0].StartedAt.IsZero() {
		t.Fatalf("admin/nodes of a node alone: %d %+v", code, nodes)
	}
}
