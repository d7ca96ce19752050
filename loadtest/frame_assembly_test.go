package loadtest

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// threeFrames returns a keyframe and two delta frames of a 1 Mbit/s 30 fps
// source, codec VP8 or H.264 (every frame at least two packets: the
// sources' sizes vary down to about half the mean, and at 500 kbit/s a
// delta frame could fit one packet),
// stamped 5 ms ago, and the index of each frame's first packet.
func threeFrames(t *testing.T, h264 bool) ([]rtp.Packet, []int) {
	t.Helper()
	var w packetLog
	var firsts []int
	sentAt := time.Now().Add(-5 * time.Millisecond).UnixNano()
	vp8, avc := newVP8Source(1_000_000, 30), newH264Source(1_000_000, 30, 2*time.Second)
	for _, key := range []bool{true, false, false} {
		firsts = append(firsts, len(w.pkts))
		var err error
		if h264 {
			_, err = avc.writeFrame(&w, key, sentAt)
		} else {
			_, err = vp8.writeFrame(&w, key, sentAt)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range firsts {
		end := len(w.pkts)
		if i+1 < len(firsts) {
			end = firsts[i+1]
		}
		if end-firsts[i] < 2 {
			t.Fatalf("frame %d has %d packets, the test needs 2 or more", i, end-firsts[i])
		}
	}
	return w.pkts, firsts
}

// feed hands pkts to a new video track reader in order and returns the
// viewer's stats and how many frames its latency histogram holds (frames
// received of sent counts those).
func feed(t *testing.T, h264 bool, pkts []rtp.Packet) (ViewerStats, uint64) {
	t.Helper()
	v := NewViewer(ViewerConfig{})
	r := &trackReader{v: v, video: true, firstVideo: true, h264: h264, clockRate: 90000}
	for _, p := range pkts {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r.handle(b)
	}
	return v.Stats(), v.Latency().Count()
}

// renumber gives pkts contiguous sequence numbers from the first one's, as
// the server's down-track does when it skips packets it never sends.
func renumber(pkts []rtp.Packet) []rtp.Packet {
	out := append([]rtp.Packet(nil), pkts...)
	for i := range out {
		out[i].SequenceNumber = pkts[0].SequenceNumber + uint16(i)
	}
	return out
}

func without(pkts []rtp.Packet, i int) []rtp.Packet {
	return append(append([]rtp.Packet(nil), pkts[:i]...), pkts[i+1:]...)
}

// A frame is received when all of its packets are: one missing for good,
// a tail the server never sent (contiguous sequence numbers, no marker) or
// a frame begun mid-way leaves it out of frames received and latency; a
// late retransmission completes it; a duplicate counts once.
func TestTrackReader_OnlyWholeFramesAreReceived(t *testing.T) {
	for _, codec := range []struct {
		name string
		h264 bool
	}{{"VP8", false}, {"H.264", true}} {
		pkts, firsts := threeFrames(t, codec.h264)
		second := firsts[1]
		lastOfSecond := firsts[2] - 1
		late := append(without(pkts, second+1), pkts[second+1]) // arrives after the third frame
		dup := append(append([]rtp.Packet(nil), pkts...), pkts[second], pkts[lastOfSecond])
		for _, tc := range []struct {
			name     string
			pkts     []rtp.Packet
			frames   uint64
			lost     uint64
			firstKey bool
		}{
			{"all packets", pkts, 3, 0, true},
			{"second frame misses a packet", without(pkts, second+1), 2, 1, true},
			{"second frame misses its marker packet", without(pkts, lastOfSecond), 2, 1, true},
			{"second frame cut short, sequence contiguous", renumber(without(pkts, lastOfSecond)), 2, 0, true},
			{"second frame begun mid-way, sequence contiguous", renumber(without(pkts, second)), 2, 0, true},
			{"keyframe begun mid-way", pkts[1:], 2, 0, false},
			{"a packet repaired late", late, 3, 0, true},
			{"duplicates", dup, 3, 0, true},
		} {
			s, latencies := feed(t, codec.h264, tc.pkts)
			if s.Frames != tc.frames || latencies != tc.frames || s.Lost != tc.lost {
				t.Errorf("%s, %s: frames %d, latencies %d, lost %d; want %d frames and latencies, lost %d",
					codec.name, tc.name, s.Frames, latencies, s.Lost, tc.frames, tc.lost)
			}
			if tc.firstKey && (s.Keyframes != 1 || !s.FirstVideoIsKeyframe) {
				t.Errorf("%s, %s: keyframes %d, first is keyframe %v", codec.name, tc.name, s.Keyframes, s.FirstVideoIsKeyframe)
			}
		}
	}
}

// A freeze is a gap between frames a viewer could show: frames arriving
// incomplete for longer than FreezeThreshold are a freeze.
func TestTrackReader_IncompleteFramesFreeze(t *testing.T) {
	v := NewViewer(ViewerConfig{})
	r := &trackReader{v: v, video: true, firstVideo: true}
	src := newVP8Source(500_000, 30)
	send := func(key, complete bool) {
		var w packetLog
		if _, err := src.writeFrame(&w, key, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
		pkts := w.pkts
		if !complete {
			pkts = pkts[:len(pkts)-1]
		}
		for _, p := range pkts {
			b, _ := p.Marshal()
			r.handle(b)
		}
	}
	send(true, true)
	deadline := time.Now().Add(FreezeThreshold + 200*time.Millisecond)
	for time.Now().Before(deadline) {
		send(false, false)
		time.Sleep(30 * time.Millisecond)
	}
	send(true, true)
	if s := v.Stats(); s.Frames != 2 || s.Freezes != 1 || s.FreezeTime < FreezeThreshold {
		t.Fatalf("frames %d, freezes %d (%s); want 2 frames and 1 freeze over %s", s.Frames, s.Freezes, s.FreezeTime, FreezeThreshold)
	}
}

// The frame assembler takes any packet a server sends: it never panics,
// and never counts more frames than marker packets it was given.
func FuzzFrameAssembler(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 1, 3, 0, 2, 0, 0, 0, 1, 2, 0, 3, 0, 0, 0, 1, 1})
	f.Add([]byte{255, 255, 0, 0, 0, 9, 3, 0, 0, 0, 0, 0, 9, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a frameAssembler
		var markers, whole int
		for ; len(b) >= 7; b = b[7:] {
			seq := uint16(b[0])<<8 | uint16(b[1])
			ts := uint32(b[2])<<24 | uint32(b[3])<<16 | uint32(b[4])<<8 | uint32(b[5])
			marker, start := b[6]&2 != 0, b[6]&1 != 0
			if marker {
				markers++
			}
			if a.add(seq, ts, marker, start, int64(seq)).ok {
				whole++
			}
		}
		if whole > markers {
			t.Fatalf("%d frames whole of %d marker packets", whole, markers)
		}
	})
}
