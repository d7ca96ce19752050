package loadtest

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// marshalled returns the packets of c as wire bytes.
func marshalled(t testing.TB, c *capture) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range c.pkts {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestTrackReader_CountsFramesKeyframesLossAndLatency(t *testing.T) {
	v := NewViewer(ViewerConfig{})
	r := &trackReader{v: v, video: true, firstVideo: true}
	src := newVP8Source(500_000, 30)
	c := &capture{}
	sentAt := time.Now().Add(-5 * time.Millisecond).UnixNano()
	for _, key := range []bool{true, false, false} {
		if _, err := src.writeFrame(c, key, sentAt); err != nil {
			t.Fatal(err)
		}
	}
	pkts := marshalled(t, c)
	// Lose the second packet for good (the keyframe is not received
	// whole), and deliver the fourth after the fifth.
	order := []int{0}
	for i := 2; i < len(pkts); i++ {
		order = append(order, i)
	}
	order[3], order[4] = order[4], order[3]
	bytes := 0
	for _, i := range order {
		r.handle(pkts[i])
		bytes += len(pkts[i])
	}
	r.handle([]byte{0x80}) // not RTP: ignored

	s := v.Stats()
	if s.Tracks != 1 || s.Frames != 2 || s.Keyframes != 1 || !s.FirstVideoIsKeyframe || s.KeyframeFirstTracks != 1 {
		t.Fatalf("stats %+v", s)
	}
	if s.VideoPackets != uint64(len(order)) || s.AudioPackets != 0 || s.Bytes != uint64(bytes) {
		t.Fatalf("packets %d bytes %d, want %d and %d", s.VideoPackets, s.Bytes, len(order), bytes)
	}
	if s.Lost != 1 {
		t.Fatalf("lost %d, want 1", s.Lost)
	}
	if s.LatencyP50 < 4*time.Millisecond || s.LatencyMax < s.LatencyP95 {
		t.Fatalf("latency p50 %s p95 %s max %s", s.LatencyP50, s.LatencyP95, s.LatencyMax)
	}
}

func TestTrackReader_FirstFrameNotAKeyframeIsReported(t *testing.T) {
	v := NewViewer(ViewerConfig{})
	r := &trackReader{v: v, video: true, firstVideo: true}
	src := newVP8Source(100_000, 30)
	c := &capture{}
	_, _ = src.writeFrame(c, false, 1)
	_, _ = src.writeFrame(c, true, 1)
	for _, b := range marshalled(t, c) {
		r.handle(b)
	}
	if s := v.Stats(); s.FirstVideoIsKeyframe || s.KeyframeFirstTracks != 0 || s.Keyframes != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTrackReader_HandleDoesNotAllocate(t *testing.T) {
	v := NewViewer(ViewerConfig{})
	r := &trackReader{v: v, video: true}
	pkts := benchPackets(t)
	r.handle(pkts[0])
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		r.handle(pkts[i%len(pkts)])
		i++
	})
	if allocs != 0 {
		t.Fatalf("handle allocates %.1f times per packet", allocs)
	}
}

// benchPackets returns a few frames' packets with an RTP header extension
// (as Pion's interceptors add), so Unmarshal exercises its reuse.
func benchPackets(t testing.TB) [][]byte {
	src := newVP8Source(2_500_000, 30)
	c := &capture{}
	for _, key := range []bool{true, false, false} {
		_, _ = src.writeFrame(c, key, time.Now().UnixNano())
	}
	for i := range c.pkts {
		if err := c.pkts[i].SetExtension(1, []byte{1, 2}); err != nil {
			t.Fatal(err)
		}
		c.pkts[i].Extension, c.pkts[i].ExtensionProfile = true, rtp.ExtensionProfileOneByte
	}
	return marshalled(t, c)
}

func BenchmarkTrackReader_Handle(b *testing.B) {
	v := NewViewer(ViewerConfig{})
	r := &trackReader{v: v, video: true}
	pkts := benchPackets(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.handle(pkts[i%len(pkts)])
		i++
	}
}
