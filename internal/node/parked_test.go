package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// 2,000 WHEP sessions whose players never start ICE, as a botnet would
// open them (the per-address and per-room caps lifted, as many addresses
// would): the room's audience count does not move, each pending session
// holds a few KiB and no goroutine of its own (its connection is parked
// until a check names it, sfu/park.go), and they all end on their own.
func TestAudience_TwoThousandNeverConnectingSessionsCostFewKiBEach(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Limits.PendingSessionsPerIP = 0
		c.Limits.PendingSessionsPerRoom = 0
		c.Limits.JoinsPerIPPerMinute = 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const room = "botnet"
	n.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: testBitrate})
	real := n.viewer(ctx, room, "real-viewer")
	if err := real.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	r := n.rooms.Room(room)
	testutil.Eventually(t, "the real viewer counts", func() bool { return r.ViewerCount() == 1 })

	pc := newTestPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer := testutil.LocalOffer(t, pc)
	_ = pc.Close()
	time.Sleep(500 * time.Millisecond)
	goroutines, heap := runtime.NumGoroutine(), heapAlloc()

	const bots, workers = 2000, 4
	var next, failed atomic.Int64
	var maxGoroutines, postTime atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > bots {
					return
				}
				// Not doHTTP: its cleanups would keep 2,000 responses,
				// which would count as the server's.
				req, _ := http.NewRequest("POST", n.base+"/whep/"+room, strings.NewReader(offer))
				req.Header.Set("Authorization", "Bearer "+n.token(room, fmt.Sprintf("bot-%d", i), false, true))
				req.Header.Set("Content-Type", "application/sdp")
				at := time.Now()
				resp, err := http.DefaultClient.Do(req)
				postTime.Add(int64(time.Since(at)))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					failed.Add(1)
				}
				if g := int64(runtime.NumGoroutine()); g > maxGoroutines.Load() {
					maxGoroutines.Store(g)
				}
			}
		}()
	}
	posted := make(chan struct{})
	go func() { wg.Wait(); close(posted) }()
	for waiting := true; waiting; {
		select {
		case <-posted:
			waiting = false
		case <-time.After(100 * time.Millisecond):
		}
		if c := r.ViewerCount(); c != 1 {
			t.Fatalf("viewer count %d while never-connecting sessions are posted, want 1 (the real viewer)", c)
		}
	}
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d WHEP POSTs were not answered 201", f, bots)
	}
	parked := n.engine.Stats().Parked
	perSession := (float64(heapAlloc()) - float64(heap)) / float64(max(parked, 1))
	extra := runtime.NumGoroutine() - goroutines
	t.Logf("%d sessions posted (%.1f ms a POST, %d at a time); %d pending (parked) at the end: %.1f KiB of heap each, %+d goroutines (at most %+d while posting)",
		bots, float64(postTime.Load())/bots/1e6, workers, parked, perSession/1024, extra, maxGoroutines.Load()-int64(goroutines))
	if parked < 100 {
		t.Fatalf("only %d sessions pending after the posts: the test measured nothing", parked)
	}
	if perSession > 16<<10 {
		t.Errorf("a pending session holds %.1f KiB, want a few (at most 16 with its HTTP and room state)", perSession/1024)
	}
	if extra > 20 {
		t.Errorf("%+d goroutines with %d sessions pending, want none of their own", extra, parked)
	}
	testutil.EventuallyWithin(t, 20*time.Second, "the pending sessions end", func() bool { return n.engine.Stats().Parked == 0 })
	if c := r.ViewerCount(); c != 1 {
		t.Errorf("viewer count %d after the pending sessions ended, want 1", c)
	}
	if s := real.Stats(); s.Recoveries != 0 {
		t.Errorf("the real viewer rejoined %d times", s.Recoveries)
	}
}

// heapAlloc is the live heap after a collection.
func heapAlloc() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
