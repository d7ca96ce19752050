package loadtest

import (
	"math"
	"testing"
	"time"
)

func TestRealisticVP8Source_SizesLikeAnEncoder(t *testing.T) {
	const bitrate, fps = 2_500_000, 30
	src := newRealisticVP8Source(bitrate, fps, 2*time.Second)
	var keys, deltas []float64
	total := 0
	const frames = 60 * 20 // 20 keyframe intervals
	for i := range frames {
		key := i%60 == 0
		c := &capture{}
		n, err := src.writeFrame(c, key, 1)
		if err != nil || n != len(c.pkts) {
			t.Fatal(n, err)
		}
		size := 0
		for j, p := range c.pkts {
			info, err := ParseVP8(p.Payload)
			if err != nil || info.FrameStart != (j == 0) || p.Marker != (j == len(c.pkts)-1) {
				t.Fatalf("frame %d packet %d: %+v %v marker %v", i, j, info, err, p.Marker)
			}
			if j == 0 && (info.Keyframe != key || info.SentAt != 1) {
				t.Fatalf("frame %d: header %+v", i, info)
			}
			size += len(p.Payload) - info.HeaderLen
		}
		if size != src.lastSize {
			t.Fatalf("frame %d: %d bytes on the wire, %d made", i, size, src.lastSize)
		}
		total += size
		if key {
			keys = append(keys, float64(size))
		} else {
			deltas = append(deltas, float64(size))
		}
	}
	got := float64(total) * 8 / (float64(frames) / fps)
	if math.Abs(got-bitrate)/bitrate > 0.05 {
		t.Fatalf("%.0f bit/s for a %d bit/s target", got, bitrate)
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	md, mk := mean(deltas), mean(keys)
	if mk < 4*md {
		t.Fatalf("keyframes %.0f bytes, deltas %.0f: keyframes should be several times larger", mk, md)
	}
	variance := 0.0
	for _, d := range deltas {
		variance += (d - md) * (d - md)
	}
	if cv := math.Sqrt(variance/float64(len(deltas))) / md; cv < 0.15 {
		t.Fatalf("delta frame sizes barely vary (cv %.2f)", cv)
	}
}

func TestOpusSource_DTXTalksAndPauses(t *testing.T) {
	src := newOpusSource(true)
	c := &capture{}
	const ticks = 50 * 120 // two minutes
	for range ticks {
		if _, err := src.tick(c); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.pkts); n >= ticks*9/10 || n < ticks/4 {
		t.Fatalf("%d packets in %d ticks", n, ticks)
	}
	spurts, silences := 0, 0
	for i, p := range c.pkts {
		size := len(p.Payload)
		if size != 3 && (size < 60 || size > 120) {
			t.Fatalf("packet %d of %d bytes", i, size)
		}
		if i == 0 {
			continue
		}
		prev := c.pkts[i-1]
		if p.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, p.SequenceNumber, prev.SequenceNumber)
		}
		gap := p.Timestamp - prev.Timestamp
		switch {
		case size == 3 && len(prev.Payload) == 3:
			// Comfort noise in a silence: one packet every 400 ms.
			if gap != dtxEvery*opusFrameTicks {
				t.Fatalf("packet %d: silence packets %d ticks apart", i, gap)
			}
			silences++
		case size != 3 && len(prev.Payload) == 3:
			// A talk spurt begins: marker set.
			if !p.Marker || gap%opusFrameTicks != 0 {
				t.Fatalf("packet %d starts a spurt: marker %v, gap %d", i, p.Marker, gap)
			}
			spurts++
		case size != 3 && len(prev.Payload) != 3:
			if p.Marker || gap != opusFrameTicks {
				t.Fatalf("packet %d inside a spurt: marker %v, gap %d", i, p.Marker, gap)
			}
		}
	}
	if spurts < 10 || silences < 10 {
		t.Fatalf("%d spurts and %d silence packets in two minutes", spurts, silences)
	}

	steady := newOpusSource(false)
	c = &capture{}
	for range 100 {
		_, _ = steady.tick(c)
	}
	if len(c.pkts) != 100 || len(c.pkts[0].Payload) != 160 {
		t.Fatalf("without DTX: %d packets of %d bytes", len(c.pkts), len(c.pkts[0].Payload))
	}
}
