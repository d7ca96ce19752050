package sfu

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func newLoopbackEngine(t testing.TB) *Engine {
	t.Helper()
	cfg := config.Default().SFU
	cfg.UDPPort = 0
	cfg.UDPAddress = "127.0.0.1"
	cfg.IncludeLoopback = true
	e, err := NewEngine(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// A relay carries a track from an origin engine to an edge engine once; on
// the edge it is an ordinary track that starts its viewers on a keyframe.
func TestRelay_CarriesATrackToAnotherEngine(t *testing.T) {
	origin, edge := newLoopbackEngine(t), newLoopbackEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}
	src := newTrackFor(origin, TrackInfo{ID: "t_cam", StreamID: "p_1", Kind: webrtc.RTPCodecTypeVideo, MimeType: codec.MimeType}, codec, 1, func(uint32) {})
	src.start()
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() { // 100 packets a second, a keyframe every 50
		defer close(fed)
		var h rtp.Header
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				src.ingest(vp8Packet(seq, uint32(seq)*900, seq%50 == 1), &h)
			}
		}
	}()
	defer func() {
		if stop != nil {
			close(stop)
			<-fed
		}
		src.end()
	}()

	arrived := make(chan *Track, 1)
	in, err := edge.NewRelayIn("p_1", PublisherEvents{OnTrack: func(t *Track) { arrived <- t }})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	offer, err := in.OfferRelay(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	out, err := origin.NewRelayOut(SubscriberEvents{})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	answer, err := out.AnswerOffer(ctx, offer, []*Track{src})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.AcceptRelayAnswer(answer); err != nil {
		t.Fatal(err)
	}
	var relayed *Track
	select {
	case relayed = <-arrived:
	case <-ctx.Done():
		t.Fatal("no relayed track on the edge")
	}
	if relayed.Info().ID != "t_cam" {
		t.Fatalf("relayed track id %q, want the origin's t_cam", relayed.Info().ID)
	}
	// Two viewers on the edge: still one copy from the origin.
	w1, w2 := &recordingWriter{}, &recordingWriter{}
	for i, w := range []*recordingWriter{w1, w2} {
		d := newDownTrack(relayed)
		d.bind.Store(&binding{ssrc: uint32(10 + i), pt: 96, writer: w})
		relayed.addDown(d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(w1.packets()) < 100 || len(w2.packets()) < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("edge viewers got %d and %d packets", len(w1.packets()), len(w2.packets()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range []*recordingWriter{w1, w2} {
		p := w.packets()
		if p[0].head[0] != 0x10 || p[0].head[1]&0x01 != 0 {
			t.Fatal("an edge viewer did not start on a keyframe")
		}
		for i := 1; i < len(p); i++ {
			if p[i].seq != p[i-1].seq+1 {
				t.Fatalf("edge viewer's sequence jumps from %d to %d", p[i-1].seq, p[i].seq)
			}
		}
	}
	os, es := origin.Stats(), edge.Stats()
	if os.RelayTracksOut != 1 || os.RelaysOut != 1 || es.RelayTracksIn != 1 || es.RelaysIn != 1 {
		t.Fatalf("relay gauges: origin out %d/%d, edge in %d/%d, want 1 each", os.RelaysOut, os.RelayTracksOut, es.RelaysIn, es.RelayTracksIn)
	}
	if os.RelayPacketsOut == 0 || es.RelayPacketsIn == 0 || es.RelayPacketsIn > os.RelayPacketsOut+5 {
		t.Fatalf("relayed packets: origin sent %d, edge received %d", os.RelayPacketsOut, es.RelayPacketsIn)
	}

	// The relay watch's measure (relay_watch.go): while media flows, what
	// the origin's sender reports say it sent arrives; once the
	// broadcaster is silent, the reports stop counting too, so a silent
	// broadcaster is never taken for media lost on the way. The reports
	// come once a second, so their count and the arrivals' span windows up
	// to a second apart: a healthy relay is judged far from the watch's
	// threshold (a quarter), at half or more.
	time.Sleep(1500 * time.Millisecond) // a first report has come
	in.RelayProgress()
	time.Sleep(2500 * time.Millisecond)
	reported, got := in.RelayProgress()
	if reported < 100 || got < reported/2 {
		t.Errorf("over 2.5 s of a healthy relay the origin reported %d packets sent and %d arrived", reported, got)
	}
	close(stop)
	<-fed
	stop = nil
	time.Sleep(1500 * time.Millisecond) // the last report about the packets sent
	in.RelayProgress()
	time.Sleep(2500 * time.Millisecond)
	if reported, got := in.RelayProgress(); reported != 0 || got != 0 {
		t.Errorf("with the broadcaster silent for 2.5 s the origin reported %d packets sent and %d arrived, want 0 and 0", reported, got)
	}
}
