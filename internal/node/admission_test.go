package node

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
)

// joinWS joins room on n over WebSocket without media, and returns the
// connection and the reply to the join.
func joinWS(t *testing.T, ctx context.Context, n *testNode, url, room, identity string) (*loadtest.Conn, loadtest.Envelope, error) {
	t.Helper()
	c, err := loadtest.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	no := false
	env, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token(room, identity, false, true), AutoSubscribe: &no})
	return c, env, err
}

// node.max_viewers on a node alone: past it a join is refused with
// node_full (retryable: not fatal to the socket, 503 with Retry-After for
// WHEP), and a place given back is taken again.
func TestAdmission_FullNodeAloneRefusesWithNodeFull(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Node.MaxViewers = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const room = "full"
	first, _, err := joinWS(t, ctx, n, n.wsURL, room, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := joinWS(t, ctx, n, n.wsURL, room, "v2"); err != nil {
		t.Fatal(err)
	}
	third, _, err := joinWS(t, ctx, n, n.wsURL, room, "v3")
	var pe *loadtest.ProtocolError
	if !errors.As(err, &pe) || pe.Code != "node_full" {
		t.Fatalf("third join on a node with node.max_viewers 2: %v, want node_full", err)
	}
	select {
	case <-third.Done():
		t.Fatal("node_full closed the socket: it is retryable")
	case <-time.After(300 * time.Millisecond):
	}
	resp := doHTTP(t, "POST", n.base+"/whep/"+room, n.token(room, "whep", false, true), "application/sdp", "v=0\r\n", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("WHEP POST to a full node: %d (Retry-After %q) %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// A place given back is taken again.
	_ = first.Close()
	testutil.Eventually(t, "a join succeeds once a participant left", func() bool {
		_, _, err := joinWS(t, ctx, n, n.wsURL, room, "v4")
		return err == nil
	})
}

// Two nodes: a full node announces it in the registry, sends a WebSocket
// join to the other node with a redirect answering the join, and a WHEP
// POST with 307 Temporary Redirect to the same path there (RFC 9725
// section 4.5).
func TestAdmission_FullNodeRedirectsToTheLeastLoadedNode(t *testing.T) {
	r := testutil.StartRedis(t)
	a := startNode(t, func(c *config.Config) {
		clusterConfig(t, c, r, "a", "eu", "admission-secret-0123456789abcdef")
		c.Node.MaxViewers = 1
	})
	b := startClusterNode(t, r, "b", "eu", "admission-secret-0123456789abcdef")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const room = "busy"
	if _, _, err := joinWS(t, ctx, a, a.wsURL, room, "v1"); err != nil {
		t.Fatal(err)
	}
	admin := b.adminToken(auth.Grants{Admin: true})
	testutil.Eventually(t, "b's registry says a is full", func() bool {
		_, nodes := getNodes(t, b, admin)
		for _, n := range nodes {
			if n.ID == "a" {
				return n.Full
			}
		}
		return false
	})

	c, env, err := joinWS(t, ctx, a, a.wsURL, room, "v2")
	if err != nil || env.Type != "redirect" {
		t.Fatalf("join on the full node: %s %v, want a redirect", env.Type, err)
	}
	var rd struct{ URL, Reason string }
	if err := env.Decode(&rd); err != nil || rd.Reason != "full" || rd.URL != b.wsURL {
		t.Fatalf("redirect %+v (%v), want reason full to %s", rd, err, b.wsURL)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the full node's socket stayed open after the redirect")
	}
	if _, _, err := joinWS(t, ctx, b, rd.URL, room, "v2"); err != nil {
		t.Fatalf("join where the redirect says: %v", err)
	}

	req, _ := http.NewRequest("POST", a.base+"/whep/"+room+"?layer=low", nil)
	req.Header.Set("Authorization", "Bearer "+a.token(room, "whep", false, true))
	req.Header.Set("Content-Type", "application/sdp")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := b.base + "/whep/" + room + "?layer=low"; resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("WHEP POST to the full node: %d Location %q, want 307 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// node.max_cpu: a node whose process used more than that share of the
// machine over the last second refuses new joins with node_full, and takes
// them again once it is quiet. (The node runs in the test's process, so
// the test's own busy loop is the node's CPU use.)
func TestAdmission_BusyNodeRefusesPastMaxCPU(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Node.MaxCPU = 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const room = "busy"
	if _, _, err := joinWS(t, ctx, n, n.wsURL, room, "v1"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a busy loop on every core, for the CPU meter's window
		defer close(done)
		var wg sync.WaitGroup
		for range runtime.NumCPU() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for x := 0; ; x++ {
					if x%1024 == 0 {
						select {
						case <-stop:
							return
						default:
						}
					}
				}
			}()
		}
		wg.Wait()
	}()
	time.Sleep(1500 * time.Millisecond)
	c, _, err := joinWS(t, ctx, n, n.wsURL, room, "v2")
	close(stop)
	<-done
	var pe *loadtest.ProtocolError
	if !errors.As(err, &pe) || pe.Code != "node_full" {
		t.Fatalf("join while the node used every core, node.max_cpu 20: %v, want node_full", err)
	}
	// Retryable: the same socket joins once the node is quiet.
	no := false
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token(room, "v2", false, true), AutoSubscribe: &no})
		if err == nil {
			break
		}
		if !errors.As(err, &pe) || pe.Code != "node_full" || time.Now().After(deadline) {
			t.Fatalf("join again on the same socket once quiet: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
