package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// rollingNode is a node of a rolling restart: started, drained (as on
// SIGTERM) and started again under the same id on new ports.
type rollingNode struct {
	*testNode
	mu   sync.Mutex
	down bool
}

func startRollingNode(t *testing.T, r *testutil.Redis, id, region, secret string) *rollingNode {
	t.Helper()
	cfg := testutil.NodeConfig()
	clusterConfig(t, cfg, r, id, region, secret)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("HALO_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	rn := &rollingNode{testNode: newStartedNode(t, cfg, log)}
	t.Cleanup(func() { rn.stop(10 * time.Second) })
	return rn
}

// stop drains the node and stops it, once.
func (n *rollingNode) stop(timeout time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return
	}
	n.down = true
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = n.Shutdown(ctx)
}

// gapMeter samples what each viewer has received and keeps the longest time
// without a new video packet.
type gapMeter struct {
	mu      sync.Mutex
	longest map[string]time.Duration
	stop    chan struct{}
	done    chan struct{}
}

func meterGaps(viewers map[string]func() uint64) *gapMeter {
	g := &gapMeter{longest: map[string]time.Duration{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		last := map[string]uint64{}
		since := map[string]time.Time{}
		now := time.Now()
		for name := range viewers {
			since[name] = now
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-g.stop:
				return
			case now = <-tick.C:
			}
			for name, count := range viewers {
				n := count()
				if n != last[name] {
					last[name], since[name] = n, now
				}
				g.mu.Lock()
				g.longest[name] = max(g.longest[name], now.Sub(since[name]))
				g.mu.Unlock()
			}
		}
	}()
	return g
}

func (g *gapMeter) finish() map[string]time.Duration {
	close(g.stop)
	<-g.done
	return g.longest
}

// balancer is the load balancer in front of a region's nodes, as a
// deployment has one: it passes each request to a node whose /readyz says
// ready (a draining node's does not).
type balancer struct {
	mu    sync.Mutex
	nodes map[string]*rollingNode
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	var bases []string
	for _, n := range b.nodes {
		bases = append(bases, n.base)
	}
	b.mu.Unlock()
	slices.Sort(bases)
	for _, base := range bases {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		u, _ := url.Parse(base)
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
		return
	}
	http.Error(w, "no node ready", http.StatusServiceUnavailable)
}

// A rolling restart of a region's three nodes (each drained as on SIGTERM,
// then started again under its id) under a broadcast with WebSocket viewers
// and WHEP players on every node: the WebSocket viewers follow the drains'
// redirects and none of them goes more than 0.5 s without video; the WHEP
// players, whose sessions the drain ends with a close_notify, play again
// through the load balancer (or a drain's 307) and none goes more than 3 s
// without video; the broadcaster follows the redirects too, as the web
// page's client does.
func TestRollingRestart_NoViewerIsLost(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node rolling restart")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("r0", 20)
	ids := []string{"node-1", "node-2", "node-3"}
	nodes := map[string]*rollingNode{}
	for _, id := range ids {
		nodes[id] = startRollingNode(t, r, id, "eu", secret)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const room = "rolling"
	cfg := loadtest.PublisherConfig{VideoBitrate: 300_000}

	// The broadcaster: on a redirect it publishes on the node named, then
	// leaves the old one (what halo-client.js does).
	var pubMu sync.Mutex
	pub := nodes["node-1"].publisher(ctx, room, cfg)
	var follow func(p *loadtest.Publisher)
	follow = func(p *loadtest.Publisher) {
		go func() {
			for {
				env, err := p.Conn().Next(ctx)
				if err != nil {
					return
				}
				if env.Type != "redirect" {
					continue
				}
				var rd struct{ URL, Reason string }
				_ = json.Unmarshal(env.Data, &rd)
				next := cfg
				next.URL, next.Room, next.Token = rd.URL, room, nodes["node-1"].token(room, "pub-"+room, true, false)
				np := loadtest.NewPublisher(next)
				if err := np.Start(ctx); err != nil {
					t.Errorf("the broadcaster's move to %s: %v", rd.URL, err)
					return
				}
				t.Cleanup(func() { _ = np.Close() })
				follow(np)
				time.Sleep(300 * time.Millisecond) // its tracks reach the new origin
				pubMu.Lock()
				pub = np
				pubMu.Unlock()
				_ = p.Close()
				return
			}
		}()
	}
	follow(pub)

	viewers := map[string]*loadtest.Viewer{}
	for _, id := range ids {
		for i := range 2 {
			name := fmt.Sprintf("%s-ws-%d", id, i)
			v := loadtest.NewViewer(loadtest.ViewerConfig{URL: nodes[id].wsURL, Room: room, Token: nodes[id].token(room, name, false, true), FollowRedirects: true})
			if err := v.Start(ctx); err != nil {
				t.Fatalf("viewer %s: %v", name, err)
			}
			t.Cleanup(func() { _ = v.Close() })
			viewers[name] = v
		}
	}
	for name, v := range viewers {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %s: %v", name, err)
		}
	}
	lb := &balancer{nodes: nodes}
	front := httptest.NewServer(lb)
	defer front.Close()
	players := map[string]*whepPlayer{}
	for _, id := range ids {
		name := id + "-whep"
		p := newWHEPPlayer(t, nodes[id].base+"/whep/"+room, nodes[id].token(room, name, false, true))
		p.rejoin = front.URL + "/whep/" + room
		if err := p.connect(false); err != nil {
			t.Fatalf("WHEP player %s: %v", name, err)
		}
		players[name] = p
	}
	for name, p := range players {
		testutil.Eventually(t, name+" plays", func() bool { return p.video.Load() > 30 })
	}
	counters := map[string]func() uint64{}
	for name, v := range viewers {
		counters[name] = func() uint64 { return v.Stats().VideoPackets }
	}
	for name, p := range players {
		counters[name] = p.video.Load
	}
	gaps := meterGaps(counters)
	for _, id := range ids {
		old := nodes[id]
		began := time.Now()
		old.stop(10 * time.Second)
		t.Logf("%s drained in %v", id, time.Since(began).Round(time.Millisecond))
		restarted := startRollingNode(t, r, id, "eu", secret)
		lb.mu.Lock()
		nodes[id] = restarted
		lb.mu.Unlock()
		testutil.Eventually(t, id+" is registered again", func() bool {
			list, err := nodes[id].rooms.Nodes(ctx)
			if err != nil {
				return false
			}
			for _, n := range list {
				if n.ID == id && !n.Draining && n.PublicURL == nodes[id].base {
					return true
				}
			}
			return false
		})
		time.Sleep(time.Second) // the broadcast settles before the next one
	}
	time.Sleep(3 * time.Second) // the last drain's WHEP players play again
	longest := gaps.finish()
	for name, p := range players {
		served, _, _, _ := p.snapshot()
		t.Logf("%s: longest gap %v, last served by %s", name, longest[name].Round(10*time.Millisecond), served)
		if longest[name] > 3*time.Second {
			t.Errorf("WHEP player %s went %v without video, want at most 3 s", name, longest[name])
		}
	}
	for name, v := range viewers {
		s := v.Stats()
		t.Logf("%s: longest gap %v, redirects followed %d, rejoined %d", name, longest[name].Round(10*time.Millisecond), s.Redirects, s.Recoveries)
		if longest[name] > 500*time.Millisecond {
			t.Errorf("viewer %s went %v without video, want at most 0.5 s", name, longest[name])
		}
		if err := v.SignalError(); err != nil {
			t.Errorf("viewer %s: %v", name, err)
		}
	}
	// The test is over: the nodes shut down after this (the restarted
	// ones' cleanups run before the players'), and a player must not take
	// their end for a drain and play again.
	for _, p := range players {
		p.mu.Lock()
		p.stop = true
		p.mu.Unlock()
	}
}
