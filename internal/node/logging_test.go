package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// logRecord is one JSON log line of the server.
type logRecord map[string]any

func (r logRecord) str(k string) string { s, _ := r[k].(string); return s }

// serverLog captures what the node logs, through the same logger main
// builds (NewLogger with log.format json), at debug so the test also sees
// what was demoted.
type serverLog struct{ testutil.SyncBuffer }

func (l *serverLog) records(t *testing.T) []logRecord {
	t.Helper()
	text := l.String()
	var out []logRecord
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r logRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line is not JSON (log.format json): %q", sc.Text())
		}
		out = append(out, r)
	}
	return out
}

// startLoggedNode starts a node whose log is captured; check runs after the
// node has shut down (cleanups run last-in first-out), so teardown noise is
// in the log it reads.
func startLoggedNode(t *testing.T, check func(t *testing.T, recs []logRecord)) *testNode {
	t.Helper()
	l := &serverLog{}
	t.Cleanup(func() {
		recs := l.records(t)
		if os.Getenv("HALO_TEST_LOG") != "" {
			for _, r := range recs {
				t.Log(r)
			}
		}
		check(t, recs)
	})
	return startNodeWithLog(t, nil, NewLogger(config.LogConfig{Level: "debug", Format: "json"}, l))
}

// assertCalmSession fails on any WARN or ERROR record, and checks that each
// of the session's participants was logged joining and leaving at info with
// room, participant and role, and that Pion's records came through the same
// handler (every line parsed as JSON), none of them at info.
func assertCalmSession(room string, roles map[string]int) func(t *testing.T, recs []logRecord) {
	return func(t *testing.T, recs []logRecord) {
		joined, left := map[string]string{}, map[string]string{}
		pion := 0
		for _, r := range recs {
			if r.str("pion") != "" {
				pion++ // Pion's own records, through the server's slog handler
				if lvl := r.str("level"); lvl == "INFO" {
					t.Errorf("Pion logged at info in a normal session (routine goes to debug): %v", r)
				}
			}
			switch lvl := r.str("level"); lvl {
			case "WARN", "ERROR":
				t.Errorf("a normal session logged %s: %v", lvl, r)
			}
			if r.str("room") != room || r.str("level") != "INFO" {
				continue
			}
			switch r.str("msg") {
			case "participant joined":
				joined[r.str("participant")] = r.str("role")
			case "participant left":
				left[r.str("participant")] = r.str("role")
			}
		}
		count := map[string]int{}
		for p, role := range joined {
			if !strings.HasPrefix(p, "p_") {
				t.Errorf("join logged with participant %q", p)
			}
			if left[p] != role {
				t.Errorf("participant %s (%s) joined but was not logged leaving (left: %v)", p, role, left)
			}
			count[role]++
		}
		if fmt.Sprint(count) != fmt.Sprint(roles) {
			t.Errorf("joins logged at info by role: %v, want %v", count, roles)
		}
		if pion == 0 {
			t.Error("no record of Pion's in the server's log (log.level debug, log.format json)")
		}
	}
}

// A broadcast over the WebSocket protocol as an app makes it: the
// broadcaster goes live, a viewer joins and receives media, the viewer
// leaves, then the broadcaster. Nothing in it is worth a warning.
func TestNormalSession_WebSocketLogsNoWarnings(t *testing.T) {
	n := startLoggedNode(t, assertCalmSession("calm", map[string]int{"publisher": 1, "viewer": 1}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := n.publisher(ctx, "calm", loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := n.viewer(ctx, "calm", "watcher")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "viewer receives video frames", func() bool { return v.Stats().VideoPackets > 50 })
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "viewer's down-tracks released", func() bool { return n.engine.Stats().DownTracks == 0 })
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "room empty", func() bool { return n.rooms.Stats().Participants == 0 && n.engine.Stats().Tracks == 0 })
}

// The same over WHIP and WHEP: a broadcaster publishes, a WHEP player
// watches, the broadcaster ends (DELETE), and with it the player's session.
func TestNormalSession_WHIPAndWHEPLogNoWarnings(t *testing.T) {
	n := startLoggedNode(t, assertCalmSession("calmwhip", map[string]int{"publisher": 1, "viewer": 1}))
	pub := whipPublish(t, n, "calmwhip")
	testutil.Eventually(t, "WHIP tracks published", func() bool { return len(n.rooms.Room("calmwhip").Tracks()) == 2 })
	viewer, tracks := whepWatch(t, n, "calmwhip", webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	for range 2 {
		select {
		case <-tracks:
		case <-time.After(20 * time.Second):
			t.Fatal("WHEP viewer got no media")
		}
	}
	testutil.Eventually(t, "media forwarded to the WHEP viewer", func() bool { return n.engine.Stats().PacketsForwarded > 50 })
	if resp := doHTTP(t, "DELETE", n.base+pub.location, "", "", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s: %d", pub.location, resp.StatusCode)
	}
	pub.close() // stops its sender, then its connection
	// The broadcast ended for good: the server ends the player's session
	// (a WHEP player cannot be offered anything else), and the player's own
	// DELETE then finds nothing.
	testutil.Eventually(t, "the WHEP session ended by the server", func() bool {
		return doHTTP(t, "DELETE", n.base+viewer.location, "", "", "", nil).StatusCode == http.StatusNotFound
	})
	_ = viewer.pc.Close()
	testutil.Eventually(t, "room empty", func() bool { return n.rooms.Stats().Participants == 0 && n.engine.Stats().Publishers == 0 })
}

// The same in Chromium with the web page: a broadcaster goes live, a viewer
// watches until frames decode, then the viewer's tab navigates away, then
// the broadcaster's.
func TestNormalSession_BrowserLogsNoWarnings(t *testing.T) {
	n := startLoggedNode(t, assertCalmSession("calmweb", map[string]int{"publisher": 1, "viewer": 1}))
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")
	capture := goLive(t, live, n, "calmweb", "")
	watch(t, viewer, n, "calmweb", "")
	waitDecoded(t, viewer, capture)
	for i, tab := range []context.Context{viewer, live} {
		ctx, cancel := context.WithTimeout(tab, browserDeadline)
		err := chromedp.Do(ctx, chromedp.Navigate("about:blank"))
		cancel()
		if err != nil {
			t.Fatalf("leave the page: %v", err)
		}
		testutil.Eventually(t, "the participant leaves", func() bool { return n.rooms.Stats().Participants == 1-i })
	}
	testutil.Eventually(t, "media released", func() bool { s := n.engine.Stats(); return s.Publishers == 0 && s.Subscribers == 0 })
	assertNoPageProblems(t, b)
}
