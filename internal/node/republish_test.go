package node

import (
	"context"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// seqRecorder keeps the sequence numbers a test viewer received per kind.
type seqRecorder struct {
	mu   sync.Mutex
	seqs map[webrtc.RTPCodecType][]uint16
}

func (r *seqRecorder) count(k webrtc.RTPCodecType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seqs[k])
}

// gaps returns how many sequence numbers are missing between the first and
// the last received of kind k (16-bit wrap handled by unwrapping in order).
func (r *seqRecorder) gaps(k webrtc.RTPCodecType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seqs := r.seqs[k]
	if len(seqs) == 0 {
		return 0
	}
	ext := make([]int64, 0, len(seqs))
	var last int64 = int64(seqs[0])
	for _, s := range seqs {
		d := int64(int16(s - uint16(last)))
		last += d
		ext = append(ext, last)
	}
	sort.Slice(ext, func(i, j int) bool { return ext[i] < ext[j] })
	uniq := 1
	for i := 1; i < len(ext); i++ {
		if ext[i] != ext[i-1] {
			uniq++
		}
	}
	return int(ext[len(ext)-1]-ext[0]+1) - uniq
}

// whepRecord watches room over WHEP with a Pion client that records every
// sequence number.
func whepRecord(t *testing.T, n *testNode, room string) (*whipClient, *seqRecorder) {
	t.Helper()
	pc := newTestPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &seqRecorder{seqs: map[webrtc.RTPCodecType][]uint16{}}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			rec.mu.Lock()
			rec.seqs[tr.Kind()] = append(rec.seqs[tr.Kind()], p.SequenceNumber)
			rec.mu.Unlock()
		}
	})
	c := &whipClient{pc: pc}
	if resp := c.post(t, n.base+"/whep/"+room, n.token(room, "whep-viewer", false, true)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, b)
	}
	return c, rec
}

// A broadcaster whose connection drops and who publishes again within the
// grace period keeps its audience: the WHEP and WebSocket viewers go on
// receiving on the same tracks with continuous sequence numbers, and
// nobody renegotiates. When the broadcaster then leaves for good, the WHEP
// session is ended by the server.
func TestRepublish_ViewersKeepPlayingThroughABroadcasterReconnect(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := loadtest.PublisherConfig{VideoBitrate: testBitrate}
	first := n.publisher(ctx, "re", cfg)
	ws := n.viewer(ctx, "re", "ws-viewer")
	if err := ws.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	whep, rec := whepRecord(t, n, "re")
	testutil.Eventually(t, "WHEP viewer receives", func() bool {
		return rec.count(webrtc.RTPCodecTypeVideo) > 30 && rec.count(webrtc.RTPCodecTypeAudio) > 30
	})
	ids := trackIDs(n, "re")

	first.DropConnection()
	testutil.Eventually(t, "media stops", func() bool {
		v0 := rec.count(webrtc.RTPCodecTypeVideo)
		time.Sleep(300 * time.Millisecond)
		return rec.count(webrtc.RTPCodecTypeVideo) == v0
	})
	if got := trackIDs(n, "re"); len(got) != 2 {
		t.Fatalf("tracks during the grace period: %v, want the 2 kept", got)
	}
	beforeV, beforeA := rec.count(webrtc.RTPCodecTypeVideo), rec.count(webrtc.RTPCodecTypeAudio)
	wsBefore := ws.Stats()

	second := n.publisher(ctx, "re", cfg) // the same identity, a new connection
	testutil.Eventually(t, "WHEP viewer receives the republished broadcast", func() bool {
		return rec.count(webrtc.RTPCodecTypeVideo) > beforeV+60 && rec.count(webrtc.RTPCodecTypeAudio) > beforeA+30
	})
	testutil.Eventually(t, "WebSocket viewer receives the republished broadcast", func() bool {
		s := ws.Stats()
		return s.VideoPackets > wsBefore.VideoPackets+60 && s.AudioPackets > wsBefore.AudioPackets+30
	})
	time.Sleep(300 * time.Millisecond) // let retransmissions of the last losses land
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if g := rec.gaps(k); g != 0 {
			t.Errorf("WHEP viewer's %s has %d missing sequence numbers across the reconnect", k, g)
		}
	}
	if s := ws.Stats(); s.Lost != wsBefore.Lost {
		t.Errorf("WebSocket viewer lost %d packets across the reconnect", s.Lost-wsBefore.Lost)
	}
	if s := ws.Stats(); s.Recoveries != 0 {
		t.Errorf("WebSocket viewer had to reconnect %d times", s.Recoveries)
	}
	if got := trackIDs(n, "re"); !sameSet(got, ids) {
		t.Errorf("track ids after the reconnect %v, want the same %v", got, ids)
	}

	// The broadcaster leaves on purpose: the broadcast really ends, and the
	// server ends the WHEP session.
	_ = second.Close()
	testutil.Eventually(t, "WHEP session ended by the server", func() bool {
		return doHTTP(t, "DELETE", n.base+whep.location, "", "", "", nil).StatusCode == http.StatusNotFound
	})
	testutil.Eventually(t, "WHEP player sees its connection end", func() bool {
		s := whep.pc.ConnectionState()
		return s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateDisconnected
	})
}

// A track that is not republished within the grace period ends for good.
func TestRepublish_TrackEndsAfterTheGracePeriod(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Room.RepublishGrace = 500 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := n.publisher(ctx, "gone", loadtest.PublisherConfig{VideoBitrate: testBitrate})
	v := n.viewer(ctx, "gone", "viewer")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	pub.DropConnection()
	testutil.Eventually(t, "tracks removed after the grace period", func() bool { return len(trackIDs(n, "gone")) == 0 })
	testutil.Eventually(t, "viewer's down-tracks released", func() bool { return n.engine.Stats().DownTracks == 0 })
}

func trackIDs(n *testNode, room string) []string {
	r := n.rooms.Room(room)
	if r == nil {
		return nil
	}
	var ids []string
	for _, t := range r.Tracks() {
		ids = append(ids, t.ID)
	}
	sort.Strings(ids)
	return ids
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
