package loadtest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
)

// The tests in this file run the real clients, with real Pion peers over
// loopback, against fakeRoom (a stand-in for the server). They prove the
// clients' own behaviour: the server's is proven by its integration tests.

func startPublisher(t *testing.T, ctx context.Context, cfg PublisherConfig) *Publisher {
	t.Helper()
	p := NewPublisher(cfg)
	if err := p.Start(ctx); err != nil {
		t.Fatal("publisher start:", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestPublisher_PublishesTracksWithMetadataAndAnswersPLI(t *testing.T) {
	room := newFakeRoom(t)
	ctx := testCtx(t)
	p := startPublisher(t, ctx, PublisherConfig{
		URL: room.url(), Room: "demo", Token: "tok",
		VideoTracks: 2, Sources: []string{"camera", "screen"},
		VideoBitrate: 300_000, KeyframeInterval: time.Hour,
	})
	if p.ParticipantID() != "p_1" {
		t.Fatalf("participant id %q", p.ParticipantID())
	}

	room.mu.Lock()
	meta := room.publishs[0].Tracks
	room.mu.Unlock()
	want := []TrackInfo{
		{TrackID: "video0", Source: "camera", Name: "camera 0"},
		{TrackID: "video1", Source: "screen", Name: "screen 1"},
		{TrackID: "audio0", Source: "microphone", Name: "microphone"},
	}
	if len(meta) != len(want) {
		t.Fatalf("publish metadata %+v", meta)
	}
	for i := range want {
		if meta[i] != want[i] {
			t.Fatalf("publish metadata %+v, want %+v", meta, want)
		}
	}

	testutil.EventuallyCtx(ctx, t, "server receives frames of both tracks", func() bool { return room.serverKeyframes.Load() >= 2 })
	first := room.firstFrame.Load()
	if !first.Keyframe || first.Width != VP8Width || first.Height != VP8Height || first.SentAt == 0 {
		t.Fatalf("first frame at the server: %+v", first)
	}
	if s := p.Stats(); s.Keyframes != 2 || s.PLIs != 0 {
		t.Fatalf("before any PLI: %+v", s)
	}

	room.requestKeyframe()
	testutil.EventuallyCtx(ctx, t, "PLI turns into keyframes", func() bool {
		s := p.Stats()
		return s.PLIs >= 2 && s.Keyframes >= 4 && room.serverKeyframes.Load() >= 4
	})
	s := p.Stats()
	if s.VideoPackets == 0 || s.AudioPackets == 0 || s.VideoFrames == 0 {
		t.Fatalf("stats %+v", s)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestViewer_ReceivesMediaAndAnswersRenegotiation(t *testing.T) {
	forEachViewer(t, func(t *testing.T, lean bool) {
		room := newFakeRoom(t)
		ctx := testCtx(t)
		startPublisher(t, ctx, PublisherConfig{URL: room.url(), Token: "tok", VideoBitrate: 300_000})

		v := NewViewer(ViewerConfig{URL: room.url(), Room: "demo", Token: "tok", Lean: lean})
		if err := v.Start(ctx); err != nil {
			t.Fatal("viewer start:", err)
		}
		defer v.Close()
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatal(err)
		}
		testutil.EventuallyCtx(ctx, t, "viewer sees frames", func() bool { s := v.Stats(); return s.Frames >= 3 && s.AudioPackets > 0 })
		s := v.Stats()
		if s.Tracks != 2 || !s.FirstVideoIsKeyframe || s.KeyframeFirstTracks != 1 || s.Keyframes == 0 {
			t.Fatalf("stats %+v", s)
		}
		if s.LatencyMax <= 0 || s.LatencyP50 > s.LatencyP95 || s.LatencyP95 > s.LatencyMax {
			t.Fatalf("latency p50 %s p95 %s max %s", s.LatencyP50, s.LatencyP95, s.LatencyMax)
		}
		if s.Bytes <= s.VideoPackets+s.AudioPackets {
			t.Fatalf("bytes %d for %d packets", s.Bytes, s.VideoPackets+s.AudioPackets)
		}

		// A second broadcaster: the server renegotiates and the viewer answers.
		startPublisher(t, ctx, PublisherConfig{URL: room.url(), Token: "tok", VideoBitrate: 300_000, NoAudio: true})
		if err := v.WaitTracks(ctx, 3); err != nil {
			t.Fatal("after renegotiation:", err)
		}
		testutil.EventuallyCtx(ctx, t, "second video track's first frame", func() bool { return v.Stats().KeyframeFirstTracks == 2 })
		if err := v.SignalError(); err != nil {
			t.Fatal(err)
		}

		// The events stay visible to a test through Conn.
		var sawOffer bool
		for !sawOffer {
			ev, err := v.Conn().Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sawOffer = ev.Type == TypeOffer
		}
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		if err := v.WaitTracks(ctx, 4); err == nil {
			t.Fatal("WaitTracks on a closed viewer succeeded")
		}
	})
}

func TestClients_StartReturnsTheProtocolErrorAndReleasesEverything(t *testing.T) {
	srv := newScriptServer(t, func(env Envelope, _ []byte, send func(any)) {
		send(map[string]any{"v": 1, "type": "error", "id": env.ID,
			"data": map[string]string{"code": "unauthorized", "message": "bad token"}})
	})
	ctx := testCtx(t)
	p := NewPublisher(PublisherConfig{URL: srv.wsURL(), Token: "bad"})
	if err := p.Start(ctx); ErrorCode(err) != "unauthorized" {
		t.Fatalf("publisher Start err = %v", err)
	}
	v := NewViewer(ViewerConfig{URL: srv.wsURL(), Token: "bad"})
	if err := v.Start(ctx); ErrorCode(err) != "unauthorized" {
		t.Fatalf("viewer Start err = %v", err)
	}
	// Close after a failed Start is a no-op; goleak checks nothing is left.
	if p.Close() != nil || v.Close() != nil {
		t.Fatal("Close after failed Start")
	}
}

func TestClients_StartHonoursContext(t *testing.T) {
	// A server that never replies: Start must end with the context.
	srv := newScriptServer(t, func(Envelope, []byte, func(any)) {})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := NewViewer(ViewerConfig{URL: srv.wsURL()}).Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("viewer Start err = %v", err)
	}
	if err := NewPublisher(PublisherConfig{URL: srv.wsURL()}).Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publisher Start err = %v", err)
	}
}

func TestClients_CloseWithoutStart(t *testing.T) {
	if err := NewPublisher(PublisherConfig{}).Close(); err != nil {
		t.Fatal(err)
	}
	v := NewViewer(ViewerConfig{})
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Start(testCtx(t)); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

func TestRun_ReportsEveryViewer(t *testing.T) {
	room := newFakeRoom(t)
	var ticks int
	rep, err := Run(testCtx(t), RunConfig{
		Target:           Target{URL: room.url()},
		Room:             "demo",
		TokenFunc:        RoomTokenMinter("secret", time.Minute),
		Viewers:          3,
		Duration:         time.Second,
		RampRate:         20,
		Publisher:        PublisherConfig{VideoBitrate: 300_000},
		Progress:         func(Progress) { ticks++ },
		ProgressInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Viewers.Planned != 3 || rep.Viewers.Connected != 3 || rep.Viewers.Failed != 0 || rep.Publishers.Started != 1 {
		t.Fatalf("viewers: %+v publishers %+v", rep.Viewers, rep.Publishers)
	}
	if rep.Received.Packets == 0 || rep.Received.Frames == 0 || rep.Measures.LatencyMS.Max == 0 || rep.Measures.FirstKeyframeMS.N != 3 {
		t.Fatalf("media: %+v %+v", rep.Received, rep.Measures)
	}
	if rep.Sent.VideoPackets == 0 || rep.Sent.AudioPackets == 0 {
		t.Fatalf("publisher: %+v", rep.Sent)
	}
	if err := rep.Check(DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if ticks == 0 || len(rep.Timeline) == 0 {
		t.Fatal("no progress reported")
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 connected", "0 failed", "latency", "first keyframe", "loss so far"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRun_APublisherThatCannotStartIsCountedByCode(t *testing.T) {
	srv := newScriptServer(t, func(env Envelope, _ []byte, send func(any)) {
		send(map[string]any{"v": 1, "type": "error", "id": env.ID,
			"data": map[string]string{"code": "forbidden", "message": "no publish grant"}})
	})
	rep, err := Run(testCtx(t), RunConfig{Target: Target{URL: srv.wsURL()}, Viewers: 1, Token: "t",
		Duration: 200 * time.Millisecond, MediaTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Publishers.Failed != 1 || rep.FailedJoins["forbidden"] != 2 || rep.Viewers.Failed != 1 {
		t.Fatalf("publishers %+v viewers %+v failed joins %v", rep.Publishers, rep.Viewers, rep.FailedJoins)
	}
	if rep.Check(Limits{MaxLossPercent: 1}) == nil {
		t.Fatal("Check passed a run whose publisher failed")
	}
}

func TestReport_CheckNamesTheFailures(t *testing.T) {
	ok := &Report{Viewers: ViewerCounts{Planned: 2, Connected: 2}, Received: ReceivedTotals{LossPercent: 0.5}}
	if err := ok.Check(Limits{MaxLossPercent: 1}); err != nil {
		t.Fatal(err)
	}
	bad := &Report{Viewers: ViewerCounts{Planned: 2, Connected: 1, Failed: 1}, Received: ReceivedTotals{LossPercent: 1}}
	err := bad.Check(Limits{MaxLossPercent: 1})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 viewers") || !strings.Contains(err.Error(), "loss") {
		t.Fatalf("err = %v", err)
	}
}

func TestRun_CancelReturnsThePartialReport(t *testing.T) {
	room := newFakeRoom(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	rep, err := Run(ctx, RunConfig{
		Target:           Target{URL: room.url()},
		Token:            "v",
		Viewers:          1000,
		RampRate:         10,
		Publisher:        PublisherConfig{VideoBitrate: 100_000, NoAudio: true},
		Progress:         func(Progress) { cancel() },
		ProgressInterval: 50 * time.Millisecond,
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if rep.Viewers.Planned != 1000 || rep.Viewers.NotStarted < 990 || rep.ElapsedMS == 0 || rep.Sent.VideoFrames == 0 || !rep.Interrupted {
		t.Fatalf("partial report %+v", rep.Viewers)
	}
}

func TestViewer_FloodNACKsNamesTheNewestPacketsItReceived(t *testing.T) {
	forEachViewer(t, func(t *testing.T, lean bool) {
		room := newFakeRoom(t)
		ctx := testCtx(t)
		startPublisher(t, ctx, PublisherConfig{URL: room.url(), Token: "tok", VideoBitrate: 300_000, NoAudio: true})
		v := NewViewer(ViewerConfig{URL: room.url(), Room: "demo", Token: "tok", Lean: lean})
		if err := v.Start(ctx); err != nil {
			t.Fatal("viewer start:", err)
		}
		defer v.Close()
		if err := v.WaitTracks(ctx, 1); err != nil {
			t.Fatal(err)
		}
		fctx, stop := context.WithCancel(ctx)
		sent := make(chan uint64, 1)
		go func() { sent <- v.FloodNACKs(fctx, NACKFlood{Rate: 20, Span: 170}) }()
		testutil.EventuallyCtx(ctx, t, "NACKs at the server", func() bool { return len(room.receivedNACKs()) >= 3 })
		stop()
		n := <-sent
		got := room.receivedNACKs()
		if n < uint64(len(got)) {
			t.Fatalf("FloodNACKs reports %d sent, the server received %d", n, len(got))
		}
		newest := uint16(v.videoSeq.Load())
		for _, r := range got {
			pairs := r.nack.Nacks
			if r.nack.MediaSSRC != r.ssrc || len(pairs) != 10 {
				t.Fatalf("NACK for ssrc %d with %d pairs, want ssrc %d and 10 pairs", r.nack.MediaSSRC, len(pairs), r.ssrc)
			}
			for i, p := range pairs {
				if p.LostPackets != 0xffff || (i > 0 && p.PacketID != pairs[i-1].PacketID+17) {
					t.Fatalf("pair %d: %+v after %+v: want 17 consecutive sequence numbers each", i, p, pairs[max(i-1, 0)])
				}
			}
			if last := pairs[9].PacketID + 16; int16(newest-last) < 0 {
				t.Fatalf("NACK names %d, beyond the newest packet received (%d)", last, newest)
			}
		}
		// After the flood the viewer still watches.
		before := v.Stats().VideoPackets
		testutil.EventuallyCtx(ctx, t, "video after the flood", func() bool { return v.Stats().VideoPackets > before })
	})
}

// A viewer's receiver reports echo the server's sender reports (LSR/DLSR),
// as a browser's do, so the server can measure its round-trip time to the
// viewer; that needs the viewer to read its receivers' RTCP.
func TestViewer_ReceiverReportsEchoSenderReports(t *testing.T) {
	forEachViewer(t, func(t *testing.T, lean bool) {
		room := newFakeRoom(t)
		ctx := testCtx(t)
		startPublisher(t, ctx, PublisherConfig{URL: room.url(), Token: "tok", VideoBitrate: 200_000})
		v := NewViewer(ViewerConfig{URL: room.url(), Room: "demo", Token: "tok", Lean: lean})
		if err := v.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatal(err)
		}
		// Pion sends sender reports and receiver reports about once a second.
		testutil.EventuallyCtx(ctx, t, "a receiver report echoing a sender report", func() bool { return room.rrWithLSR.Load() > 0 })
	})
}

// forEachViewer runs f for a lean viewer and for a Pion one: both must
// behave the same to the server and to the test.
func forEachViewer(t *testing.T, f func(t *testing.T, lean bool)) {
	for _, lean := range []bool{true, false} {
		name := "pion"
		if lean {
			name = "lean"
		}
		t.Run(name, func(t *testing.T) { f(t, lean) })
	}
}
