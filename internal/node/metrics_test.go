package node

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// The metrics listener reports what an operator needs to see of a broadcast.
func TestMetrics_ReportTheBroadcast(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.publisher(ctx, "m", loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := n.viewer(ctx, "m", "v")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	c := n.dial(t, ctx)
	_, _ = c.Request(ctx, "join", loadtest.JoinRequest{Token: "forged"}) // one unauthorized error
	_ = c.Close()
	testutil.Eventually(t, "packets forwarded", func() bool { return n.engine.Stats().PacketsForwarded > 100 })

	url := "http://" + n.metricsLn.Addr().String() + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Every series carries the node's constant labels; strip them so the
	// checks below read as the series an operator sums over nodes.
	nodeLabels := `node="` + n.cfg.Node.ID + `",region="` + n.cfg.Node.Region + `"`
	if !regexp.MustCompile(`(?m)^halo_rooms\{` + regexp.QuoteMeta(nodeLabels) + `\} 1$`).Match(body) {
		t.Errorf("halo_rooms lacks the node and region labels %s", nodeLabels)
	}
	for _, label := range []string{`node="` + n.cfg.Node.ID + `"`, `region="` + n.cfg.Node.Region + `"`} {
		body = regexp.MustCompile(`,?`+regexp.QuoteMeta(label)).ReplaceAll(body, nil)
	}
	body = regexp.MustCompile(`\{,`).ReplaceAll(body, []byte("{"))
	body = regexp.MustCompile(`\{\}`).ReplaceAll(body, nil)
	value := func(series string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+]+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("metric %s missing", series)
		}
		f, _ := strconv.ParseFloat(string(m[1]), 64)
		return f
	}
	checks := map[string]func(float64) bool{
		"halo_rooms":                                       func(f float64) bool { return f == 1 },
		`halo_participants{role="publisher"}`:              func(f float64) bool { return f == 1 },
		`halo_participants{role="viewer"}`:                 func(f float64) bool { return f == 1 },
		"halo_tracks":                                      func(f float64) bool { return f == 2 },
		"halo_down_tracks":                                 func(f float64) bool { return f == 2 },
		"halo_forwarded_packets_total":                     func(f float64) bool { return f > 100 },
		"halo_forwarded_bytes_total":                       func(f float64) bool { return f > 10000 },
		"halo_join_duration_seconds_count":                 func(f float64) bool { return f >= 2 },
		`halo_signaling_errors_total{code="unauthorized"}`: func(f float64) bool { return f == 1 },
		"halo_store_up":                                    func(f float64) bool { return f == 1 },
	}
	for series, ok := range checks {
		if v := value(series); !ok(v) {
			t.Errorf("%s = %v", series, v)
		}
	}
	for _, name := range []string{"halo_nacks_received_total", "halo_nacks_answered_total", "halo_plis_sent_total", "halo_keyframe_replays_total", "process_cpu_seconds_total",
		"halo_store_queue_dropped_total", "halo_store_write_errors_total", "halo_store_resyncs_total"} {
		value(name)
	}
}

// joined tells clients the node's STUN/TURN servers.
func TestJoined_CarriesICEServers(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.SFU.ICEServers = []string{"stun:stun.example.net:3478"} })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := n.dial(t, ctx)
	env, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("ice", "v", false, true)})
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		ICEServers []string `json:"ice_servers"`
	}
	if err := env.Decode(&d); err != nil || len(d.ICEServers) != 1 || d.ICEServers[0] != "stun:stun.example.net:3478" {
		t.Fatalf("ice_servers = %v (%v)", d.ICEServers, err)
	}
}

// Chat reaches everyone in the room, with the sender's id and name, and
// nobody in another room.
func TestChat_ReachesTheRoomOnly(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	join := func(room, name string) (*loadtest.Conn, string) {
		c := n.dial(t, ctx)
		f := false
		env, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token(room, name, false, true), Name: name, AutoSubscribe: &f})
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			ParticipantID string `json:"participant_id"`
		}
		_ = env.Decode(&j)
		return c, j.ParticipantID
	}
	alice, aliceID := join("chat", "Alice")
	bob, _ := join("chat", "Bob")
	other, _ := join("elsewhere", "Eve")
	if _, err := alice.Send("chat", map[string]string{"text": "  hello  "}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*loadtest.Conn{alice, bob} {
		for {
			env, err := c.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if env.Type != "chat" {
				continue
			}
			var m struct {
				ParticipantID string `json:"participant_id"`
				Name, Text    string
			}
			if err := env.Decode(&m); err != nil || m.ParticipantID != aliceID || m.Name != "Alice" || m.Text != "hello" {
				t.Fatalf("chat = %+v (%v)", m, err)
			}
			break
		}
	}
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer qcancel()
	for {
		env, err := other.Next(qctx)
		if err != nil {
			break
		}
		if env.Type == "chat" {
			t.Fatal("chat leaked into another room")
		}
	}
}
