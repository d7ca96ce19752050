package sfu

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// trunkRig is an origin engine publishing one video track per room, an edge
// engine, and one trunk between them.
type trunkRig struct {
	origin, edge *Engine
	in           *TrunkIn
	out          *TrunkOut

	mu      sync.Mutex
	sources map[string]*Track // by room
	arrived map[string]*Track // edge copies by track id
	ended   map[string]bool
	stop    chan struct{}
	fed     chan struct{}
}

func newTrunkRig(t *testing.T, rooms int) *trunkRig {
	t.Helper()
	g := &trunkRig{origin: newLoopbackEngine(t), edge: newLoopbackEngine(t), sources: map[string]*Track{},
		arrived: map[string]*Track{}, ended: map[string]bool{}, stop: make(chan struct{}), fed: make(chan struct{})}
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}
	var srcs []*Track
	for i := range rooms {
		room := fmt.Sprintf("room-%02d", i)
		src := newTrackFor(g.origin, TrackInfo{ID: "t_" + room, StreamID: "p_" + room, Kind: webrtc.RTPCodecTypeVideo, MimeType: codec.MimeType}, codec, uint32(1000+i), func(uint32) {})
		src.start()
		g.sources[room] = src
		srcs = append(srcs, src)
	}
	go func() { // 50 packets a second per room, a keyframe every 25
		defer close(g.fed)
		var h rtp.Header
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-g.stop:
				return
			case <-tick.C:
				for _, src := range srcs {
					src.ingest(vp8Packet(seq, uint32(seq)*1800, seq%25 == 1), &h)
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(g.stop)
		<-g.fed
		for _, src := range srcs {
			src.end()
		}
	})
	resolve := func(room string, ids []string) ([]*Track, error) {
		g.mu.Lock()
		defer g.mu.Unlock()
		src := g.sources[room]
		if src == nil || !slices.Equal(ids, []string{src.info.ID}) {
			return nil, fmt.Errorf("room %q does not publish %v here", room, ids)
		}
		var v *Subscriber // the room's part: closed when the edge lets it go
		v = g.out.View(room, SubscriberEvents{OnFailed: func() { _ = v.Close() }})
		return []*Track{src}, nil
	}
	var err error
	if g.out, err = g.origin.NewTrunkOut(resolve, SubscriberEvents{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.out.Close() })
	g.in, err = g.edge.NewTrunkIn(PublisherEvents{
		OnTrack: func(tr *Track) {
			g.mu.Lock()
			g.arrived[tr.Info().ID] = tr
			g.mu.Unlock()
		},
		OnTrackEnded: func(tr *Track) {
			g.mu.Lock()
			g.ended[tr.Info().ID] = true
			g.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.in.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offer, err := g.in.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := g.out.Answer(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.in.Accept(ctx, answer); err != nil {
		t.Fatal(err)
	}
	return g
}

// watch puts a recording viewer on the edge copy of room's track.
func (g *trunkRig) watch(t *testing.T, room string) *recordingWriter {
	t.Helper()
	id := "t_" + room
	deadline := time.Now().Add(20 * time.Second)
	for {
		g.mu.Lock()
		tr := g.arrived[id]
		g.mu.Unlock()
		if tr != nil {
			w := &recordingWriter{}
			d := newDownTrack(tr)
			d.bind.Store(&binding{ssrc: 77, pt: 96, writer: w})
			tr.addDown(d)
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's track never arrived on the edge", room)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitPackets(t *testing.T, what string, w *recordingWriter, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(w.packets()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d packets, want %d", what, len(w.packets()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Thirty rooms asked for at once, each by its own caller: one connection on
// each side, a few batched renegotiations rather than one per room, and
// every room's track reaches its edge viewer starting on a keyframe.
func TestTrunk_CarriesEveryRoomOverOneConnection(t *testing.T) {
	const rooms = 30
	g := newTrunkRig(t, rooms)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, rooms)
	for room, src := range g.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- g.in.Change(ctx, TrunkChange{Add: []TrunkAdd{{Room: room, Tracks: []string{src.info.ID}, Video: 1}}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	views := map[string]*recordingWriter{}
	for room := range g.sources {
		views[room] = g.watch(t, room)
	}
	for room, w := range views {
		waitPackets(t, room, w, 30)
		if p := w.packets(); p[0].head[0] != 0x10 || p[0].head[1]&0x01 != 0 {
			t.Errorf("%s: the edge viewer did not start on a keyframe", room)
		}
	}
	if n := g.in.Renegotiations(); n == 0 || n >= rooms/2 {
		t.Errorf("%d renegotiations for %d rooms asked for at once, want a few batches", n, rooms)
	}
	os, es := g.origin.Stats(), g.edge.Stats()
	if os.RelaysOut != rooms || es.RelaysIn != 1 {
		t.Errorf("relays: origin serves %d rooms, edge holds %d connections; want %d rooms over 1 connection", os.RelaysOut, es.RelaysIn, rooms)
	}
	if os.RelayTracksOut != rooms || es.RelayTracksIn != rooms {
		t.Errorf("relayed tracks: origin %d out, edge %d in, want %d", os.RelayTracksOut, es.RelayTracksIn, rooms)
	}
}

// A room removed from the trunk ends its track on the edge; the other
// rooms' tracks keep flowing on the same connection, and the room can be
// asked for again.
func TestTrunk_RemovingARoomLeavesTheOthers(t *testing.T) {
	g := newTrunkRig(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var add []TrunkAdd
	for room, src := range g.sources {
		add = append(add, TrunkAdd{Room: room, Tracks: []string{src.info.ID}, Video: 1})
	}
	if err := g.in.Change(ctx, TrunkChange{Add: add}); err != nil {
		t.Fatal(err)
	}
	views := map[string]*recordingWriter{}
	for room := range g.sources {
		views[room] = g.watch(t, room)
		waitPackets(t, room, views[room], 20)
	}
	if err := g.in.Change(ctx, TrunkChange{Remove: []string{"t_room-01"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		g.mu.Lock()
		ended := g.ended["t_room-01"]
		g.mu.Unlock()
		if ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the removed room's track did not end on the edge")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, room := range []string{"room-00", "room-02"} {
		n := len(views[room].packets())
		waitPackets(t, room+" after room-01 was removed", views[room], n+25)
	}
	// Nothing of the others was lost while the trunk renegotiated.
	for _, room := range []string{"room-00", "room-02"} {
		p := views[room].packets()
		for i := 1; i < len(p); i++ {
			if p[i].seq != p[i-1].seq+1 {
				t.Errorf("%s: its viewer's sequence jumps from %d to %d while room-01 left the trunk", room, p[i-1].seq, p[i].seq)
			}
		}
	}
	g.mu.Lock()
	gone := g.ended["t_room-00"] || g.ended["t_room-02"]
	g.mu.Unlock()
	if gone {
		t.Fatal("removing room-01 ended another room's track")
	}
	// The origin counts relays as rooms see them (one per room served),
	// and the removed room's view was let go.
	if s := g.origin.Stats(); s.RelayTracksOut != 2 || s.RelaysOut != 2 {
		t.Errorf("origin sends %d track copies for %d rooms, want 2 for 2", s.RelayTracksOut, s.RelaysOut)
	}
	// Asked for again: a new copy on the same trunk.
	g.mu.Lock()
	delete(g.arrived, "t_room-01")
	g.mu.Unlock()
	if err := g.in.Change(ctx, TrunkChange{Add: []TrunkAdd{{Room: "room-01", Tracks: []string{"t_room-01"}, Video: 1}}}); err != nil {
		t.Fatal(err)
	}
	waitPackets(t, "room-01 again", g.watch(t, "room-01"), 20)
	if s := g.edge.Stats(); s.RelaysIn != 1 {
		t.Errorf("edge holds %d relay connections, want 1", s.RelaysIn)
	}
}

// Tracks the origin does not publish are refused with an error that says
// so; the others of the same batch are carried.
func TestTrunk_UnknownTracksAreRefusedTheOthersCarried(t *testing.T) {
	g := newTrunkRig(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := g.in.Change(ctx, TrunkChange{Add: []TrunkAdd{
		{Room: "room-00", Tracks: []string{"t_room-00"}, Video: 1},
		{Room: "nowhere", Tracks: []string{"t_ghost"}, Video: 1},
	}})
	if !errors.Is(err, ErrTrunkRefused) {
		t.Fatalf("err %v, want ErrTrunkRefused", err)
	}
	waitPackets(t, "room-00", g.watch(t, "room-00"), 20)
	if _, ok := g.in.Carries("t_ghost"); ok {
		t.Error("the refused track is still counted as carried")
	}
}

// What a relayed room costs on each side of a trunk, in goroutines: logged
// for docs/benchmarks.md (measured, not asserted).
func TestTrunk_GoroutinesPerRoom(t *testing.T) {
	const rooms = 30
	g := newTrunkRig(t, rooms)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	time.Sleep(time.Second)
	before := runtime.NumGoroutine()
	var add []TrunkAdd
	for room, src := range g.sources {
		add = append(add, TrunkAdd{Room: room, Tracks: []string{src.info.ID}, Video: 1})
	}
	if err := g.in.Change(ctx, TrunkChange{Add: add}); err != nil {
		t.Fatal(err)
	}
	for room := range g.sources {
		waitPackets(t, room, g.watch(t, room), 10)
	}
	time.Sleep(time.Second)
	after := runtime.NumGoroutine()
	t.Logf("%d rooms over one trunk: %d goroutines more (%.1f per room, origin and edge together, in one process)", rooms, after-before, float64(after-before)/rooms)
}
