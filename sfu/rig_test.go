package sfu

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// recordingWriter is a TrackLocalWriter that remembers the source sequence
// numbers of what a down-track sent (it maps them back with the offset).
type recordingWriter struct {
	mu   sync.Mutex
	seqs []uint16
}

func (w *recordingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seqs = append(w.seqs, h.SequenceNumber)
	return 12 + len(payload), nil
}

func (w *recordingWriter) Write(b []byte) (int, error) { return len(b), nil }

type testRig struct {
	track   *Track
	writers map[*DownTrack]*recordingWriter
}

func newTestRig(t *testing.T) *testRig {
	e := &Engine{log: slog.Default(), cacheSize: 256, keyframeGap: time.Second}
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
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

// sent returns the source sequence numbers the viewer received.
func (r *testRig) sent(d *DownTrack) []uint16 {
	w := r.writers[d]
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]uint16, len(w.seqs))
	for i, s := range w.seqs {
		out[i] = s - d.seqOffset
	}
	return out
}
