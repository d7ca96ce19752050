package node

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// The HLS viewers count a stall when their media runs out: the broadcaster
// loses its connection and publishes again 3 s later, so every viewer
// waits for parts longer than the PART-HOLD-BACK it holds, and says so. A
// viewer whose playlist fails meanwhile (here the muxer stopped: 500)
// starts again from index.m3u8, as players do, and is still counted as
// playing, its wait as a stall.
func TestHLSLoadtest_StallCountedWhenTheBroadcastPauses(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := loadtest.PublisherConfig{VideoBitrate: testBitrate, Codec: loadtest.CodecH264, KeyframeInterval: time.Second}
	first := n.publisher(ctx, "hlsstall", cfg)
	waitTracks(t, n, "hlsstall", 2)
	u, err := loadtest.HLSURL(n.wsURL, "hlsstall")
	if err != nil {
		t.Fatal(err)
	}
	const viewers = 5
	type result struct {
		rep *loadtest.HLSReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := loadtest.RunHLS(ctx, loadtest.HLSConfig{URL: u, Viewers: viewers, Ramp: 50, Hold: 20 * time.Second})
		done <- result{rep, err}
	}()
	time.Sleep(4 * time.Second) // the viewers play
	first.DropConnection()
	time.Sleep(3 * time.Second) // nothing is sent
	second := n.publisher(ctx, "hlsstall", cfg)
	defer second.Close()
	r := <-done
	if r.err != nil {
		t.Fatalf("RunHLS: %v", r.err)
	}
	rep := r.rep
	if rep.Playing != viewers {
		t.Fatalf("%d of %d played: %v %v", rep.Playing, viewers, rep.FailedByCode, rep.Errors)
	}
	if rep.ViewersStalled != viewers || rep.StallMS < float64(viewers)*1000 {
		t.Fatalf("a 3 s pause of the broadcast: %d viewers stalled, %d stalls, %.0f ms waiting in all", rep.ViewersStalled, rep.Stalls, rep.StallMS)
	}
	t.Logf("3 s pause: %d stalls, %.0f ms waiting in all (%.1f %% of the watch time), %d restarts, media %.0f %% of real time; errors %v",
		rep.Stalls, rep.StallMS, rep.StallPercent, rep.Restarts, rep.MediaPercent, rep.Errors)
}
