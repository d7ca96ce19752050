package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// The load tester's HLS viewers play a room's LL-HLS as players do, against
// a real node and the load tester's own H.264 publisher: every viewer
// plays, parts and bytes arrive, the latency of each frame (from its
// embedded send time) and of each part (from PROGRAM-DATE-TIME) is
// measured, and the node runs one muxer for all of them. Stalls are
// reported, not asserted (the machine is shared).
func TestHLSLoadtest_ViewersPlayAndMeasure(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n.publisher(ctx, "hlsload", loadtest.PublisherConfig{VideoBitrate: testBitrate, Codec: loadtest.CodecH264, KeyframeInterval: time.Second})
	waitTracks(t, n, "hlsload", 2)

	u, err := loadtest.HLSURL(n.wsURL, "hlsload")
	if err != nil {
		t.Fatal(err)
	}
	const viewers = 20
	rep, err := loadtest.RunHLS(ctx, loadtest.HLSConfig{URL: u, Viewers: viewers, Ramp: 20, Hold: 4 * time.Second})
	if err != nil {
		t.Fatalf("RunHLS: %v", err)
	}
	if rep.Playing != viewers || rep.Failed != 0 {
		t.Fatalf("%d of %d HLS viewers played, %d failed %v: %v", rep.Playing, viewers, rep.Failed, rep.FailedByCode, rep.Errors)
	}
	if rep.Parts < viewers*5 || rep.Bytes == 0 || rep.KbpsPerViewer <= 0 {
		t.Fatalf("received %d parts, %d bytes, %.0f kbit/s per viewer", rep.Parts, rep.Bytes, rep.KbpsPerViewer)
	}
	if rep.LatencyMS.N == 0 || rep.LatencyMS.P50 <= 0 {
		t.Fatalf("no frame latency from the publisher's embedded send times: %+v", rep.LatencyMS)
	}
	if rep.PDTLatencyMS.N < int(rep.Parts)/2 {
		t.Fatalf("PROGRAM-DATE-TIME latency of %d parts of %d", rep.PDTLatencyMS.N, rep.Parts)
	}
	if rep.FirstPartMS.N != viewers {
		t.Fatalf("first part of %d viewers", rep.FirstPartMS.N)
	}
	if v, _ := sample(gather(t, n), "halo_hls_muxers_started_total"); v != 1 {
		t.Errorf("%v muxers started for one room's HLS viewers, want 1", v)
	}
	t.Logf("HLS viewers: %d parts, %.0f kbit/s each, media %.0f %% of real time, latency p50 %.0f ms p95 %.0f ms (PDT p50 %.0f ms), stalls %d (%.2f %%), %.2f goroutines and %.0f KiB per viewer in the tester",
		rep.Parts, rep.KbpsPerViewer, rep.MediaPercent, rep.LatencyMS.P50, rep.LatencyMS.P95, rep.PDTLatencyMS.P50, rep.Stalls, rep.StallPercent,
		rep.LoadTester.GoroutinesPerViewer, rep.LoadTester.KiBPerViewer)
}

// A room without a broadcast: the HLS run says the playlist never answered,
// with the node's code, instead of counting viewers that never played.
func TestHLSLoadtest_NoBroadcastIsAnError(t *testing.T) {
	n := startNode(t, nil)
	u, err := loadtest.HLSURL(n.wsURL, "empty")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := loadtest.RunHLS(ctx, loadtest.HLSConfig{URL: u, Viewers: 2, Hold: time.Second, WaitFor: 2 * time.Second})
	if err == nil || rep != nil {
		t.Fatalf("RunHLS of an empty room: %+v, %v", rep, err)
	}
	if want := "hls_no_broadcast"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not carry %s", err, want)
	}
}
