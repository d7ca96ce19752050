package sfu

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// sentPacket is what a down-track wrote: the viewer's header fields and the
// payload's first bytes.
type sentPacket struct {
	seq  uint16
	ts   uint32
	head []byte
}

// recordingWriter is a TrackLocalWriter that remembers what a down-track sent.
type recordingWriter struct {
	mu  sync.Mutex
	out []sentPacket
}

func (w *recordingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out = append(w.out, sentPacket{seq: h.SequenceNumber, ts: h.Timestamp, head: append([]byte(nil), payload[:min(len(payload), 4)]...)})
	return 12 + len(payload), nil
}

func (w *recordingWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *recordingWriter) packets() []sentPacket {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sentPacket(nil), w.out...)
}

type testRig struct {
	track   *Track
	writers map[*DownTrack]*recordingWriter
}

func newTestEngine() *Engine {
	return &Engine{log: slog.Default(), cacheSize: 256, keyframeGap: time.Second, nackBudget: 262144}
}

func newTestRig(t *testing.T) *testRig {
	return newTestRigCodec(t, webrtc.MimeTypeVP8)
}

func newTestRigCodec(t *testing.T, mime string) *testRig {
	e := newTestEngine()
	codec := webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}
	tr := newTrackFor(e, TrackInfo{ID: "t", Kind: webrtc.RTPCodecTypeVideo, MimeType: codec.MimeType}, codec, 1, func(uint32) {})
	return &testRig{track: tr, writers: map[*DownTrack]*recordingWriter{}}
}

func (r *testRig) addViewer() *DownTrack {
	w := &recordingWriter{}
	d := newDownTrack(r.track)
	d.bind.Store(&binding{ssrc: 7, pt: 96, writer: w})
	r.track.addDown(d)
	r.writers[d] = w
	return d
}

// sent returns the source sequence numbers the viewer received (mapped back
// with the down-track's current anchor).
func (r *testRig) sent(d *DownTrack) []uint16 {
	pkts := r.writers[d].packets()
	out := make([]uint16, len(pkts))
	for i, p := range pkts {
		out[i] = p.seq - d.anc.seqOffset
	}
	return out
}
