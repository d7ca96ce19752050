package loadtest

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/pion/rtp"
)

// rtpWriter is where a media source writes its packets;
// *webrtc.TrackLocalStaticRTP is one.
type rtpWriter interface {
	WriteRTP(p *rtp.Packet) error
}

// vp8Source makes synthetic VP8 frames and writes them as RTP packets. It
// reuses its buffers: writing a frame does not allocate. Not safe for
// concurrent use (the publisher's pacing goroutine owns it).
type vp8Source struct {
	frame     []byte // the largest frame, pre-filled with filler
	payload   []byte // one RTP payload
	pkt       rtp.Packet
	frameSize int
	keySize   int
	sizes     *frameSizer // nil: every frame frameSize, keyframes keySize
	tsStep    uint32
	pictureID uint16
	lastSize  int // bytes of the last frame written
}

// newVP8Source returns a source of frames of exactly bitrate/8/fps bytes
// (keyframes four times that) with RTP timestamps advancing by 90000/fps.
func newVP8Source(bitrate, fps int) *vp8Source {
	size := max(bitrate/8/fps, vp8MinFrame)
	return newVP8SourceSized(size, 4*size, fps, nil)
}

// newRealisticVP8Source returns a source whose frame sizes vary as an
// encoder's do (see frameSizer) around bitrate, for a keyframe every
// keyInterval.
func newRealisticVP8Source(bitrate, fps int, keyInterval time.Duration) *vp8Source {
	fs := newFrameSizer(bitrate, fps, keyInterval)
	return newVP8SourceSized(fs.meanDelta(), fs.maxKey(), fps, fs)
}

func newVP8SourceSized(size, keySize, fps int, fs *frameSizer) *vp8Source {
	s := &vp8Source{
		frame:     make([]byte, keySize),
		payload:   make([]byte, maxRTPPayload),
		frameSize: size,
		keySize:   keySize,
		sizes:     fs,
		tsStep:    uint32(90000 / fps),
		pictureID: uint16(rand.IntN(1 << 15)),
	}
	rng := rand.NewChaCha8(seed())
	_, _ = rng.Read(s.frame)
	s.pkt.Version = 2
	s.pkt.SequenceNumber = uint16(rand.Uint32())
	s.pkt.Timestamp = rand.Uint32()
	return s
}

// writeFrame writes one frame (a keyframe when key) stamped with sentAt
// (Unix nanoseconds) and returns the number of packets written. The RTP
// timestamp advances even when a write fails, so the stream stays regular.
func (s *vp8Source) writeFrame(w rtpWriter, key bool, sentAt int64) (int, error) {
	size := s.frameSize
	switch {
	case s.sizes != nil:
		size = s.sizes.next(key)
	case key:
		size = s.keySize
	}
	s.lastSize = size
	frame := s.frame[:size]
	putVP8FrameHeader(frame, key, sentAt)

	const chunk = maxRTPPayload - vp8DescriptorLen
	packets := 0
	var err error
	for off := 0; off < len(frame); off += chunk {
		end := min(off+chunk, len(frame))
		putVP8Descriptor(s.payload, off == 0, s.pictureID)
		n := vp8DescriptorLen + copy(s.payload[vp8DescriptorLen:], frame[off:end])
		s.pkt.Marker = end == len(frame)
		s.pkt.Payload = s.payload[:n]
		if werr := w.WriteRTP(&s.pkt); werr != nil && err == nil {
			err = werr
		}
		s.pkt.SequenceNumber++
		packets++
	}
	s.pkt.Timestamp += s.tsStep
	s.pictureID = (s.pictureID + 1) & 0x7fff
	return packets, err
}

// frameSizer gives frame sizes shaped like a real-time VP8 encoder's at a
// target bitrate: a keyframe costs keyFactor delta frames (about what
// libvpx spends at 720p), delta frames vary from frame to frame (uniform
// within +-40 %, around a level that drifts slowly, as scene complexity
// does), keyframes within +-15 %; over a keyframe interval the frames add
// up to the bitrate.
type frameSizer struct {
	rng         *rand.Rand
	delta, key  float64 // mean sizes in bytes
	drift       float64 // slow factor around 1
	everyFrames int
}

const keyFactor = 6

func newFrameSizer(bitrate, fps int, keyInterval time.Duration) *frameSizer {
	n := max(int(keyInterval.Seconds()*float64(fps)+0.5), 1)
	avg := float64(bitrate) / 8 / float64(fps)
	// n frames, one a keyframe: (keyFactor + n-1) deltas = n x avg.
	delta := avg * float64(n) / float64(keyFactor+n-1)
	return &frameSizer{
		rng:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		delta: math.Max(delta, vp8MinFrame), key: math.Max(keyFactor*delta, vp8MinFrame+10),
		drift: 1, everyFrames: n,
	}
}

func (f *frameSizer) meanDelta() int { return int(f.delta) }

// maxKey is the largest frame next can return.
func (f *frameSizer) maxKey() int { return int(math.Max(f.key*1.15, f.delta*1.4*1.2)) + 1 }

// next returns the size of the next frame.
func (f *frameSizer) next(key bool) int {
	// A random walk of the level, kept within 0.8..1.2 and pulled back to 1.
	f.drift += (f.rng.Float64()-0.5)*0.02 + (1-f.drift)*0.01
	f.drift = math.Min(math.Max(f.drift, 0.8), 1.2)
	if key {
		return int(math.Max(f.key*(0.85+0.3*f.rng.Float64()), vp8MinFrame+10))
	}
	return int(math.Max(f.delta*f.drift*(0.6+0.8*f.rng.Float64()), vp8MinFrame))
}

// opusSource makes synthetic Opus packets every 20 ms (RTP timestamps
// advancing by 960 at 48 kHz). Without DTX every packet is 160 random
// bytes. With DTX it talks and pauses like a speaker: talk spurts
// (exponential, mean 2.5 s) of 20 ms packets of 60 to 120 bytes (voice at
// ~32 kbit/s), then silences (mean 1.5 s) in which, as Opus DTX does, only
// one 3-byte comfort-noise packet goes out every 400 ms; the RTP marker bit
// is set on the first packet of each talk spurt (RFC 3551).
type opusSource struct {
	rng *rand.ChaCha8
	pkt rtp.Packet
	buf [160]byte

	dtx       bool
	sizes     *rand.Rand
	talking   bool
	left      int // 20 ms ticks left in the current spurt or silence
	sinceSent int // ticks since the last packet, in silence
}

// opusFrameTicks is one 20 ms Opus frame at 48 kHz: 50 packets a second.
const opusFrameTicks = 960

// dtxEvery is the interval of comfort-noise packets in a silence, in 20 ms
// ticks (400 ms).
const dtxEvery = 20

func newOpusSource(dtx bool) *opusSource {
	s := &opusSource{rng: rand.NewChaCha8(seed()), dtx: dtx}
	s.pkt.Version = 2
	s.pkt.SequenceNumber = uint16(rand.Uint32())
	s.pkt.Timestamp = rand.Uint32()
	if dtx {
		s.sizes = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		s.talking, s.left = true, s.spurt(2.5)
	}
	return s
}

// spurt draws a length in ticks, exponential of mean seconds.
func (s *opusSource) spurt(mean float64) int {
	return max(int(s.sizes.ExpFloat64()*mean*50), 1)
}

// tick is called every 20 ms; it writes a packet when one is due and
// reports whether it did.
func (s *opusSource) tick(w rtpWriter) (bool, error) {
	size := len(s.buf)
	s.pkt.Marker = false
	if s.dtx {
		if s.left == 0 {
			s.talking = !s.talking
			if s.talking {
				s.left = s.spurt(2.5)
				s.pkt.Marker = true
			} else {
				s.left, s.sinceSent = s.spurt(1.5), dtxEvery-1
			}
		}
		s.left--
		if s.talking {
			size = 60 + s.sizes.IntN(61)
		} else {
			s.sinceSent++
			if s.sinceSent < dtxEvery {
				s.pkt.Timestamp += opusFrameTicks
				return false, nil
			}
			s.sinceSent = 0
			size = 3
		}
	}
	_, _ = s.rng.Read(s.buf[:size])
	s.pkt.Payload = s.buf[:size]
	err := w.WriteRTP(&s.pkt)
	s.pkt.SequenceNumber++
	s.pkt.Timestamp += opusFrameTicks
	return true, err
}

func seed() [32]byte {
	var s [32]byte
	for i := 0; i < len(s); i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			s[i+j] = byte(v >> (8 * j))
		}
	}
	return s
}
