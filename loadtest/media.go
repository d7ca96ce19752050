package loadtest

import (
	"math/rand/v2"

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
	frame     []byte // keyframe-sized, pre-filled with filler
	payload   []byte // one RTP payload
	pkt       rtp.Packet
	frameSize int
	keySize   int
	tsStep    uint32
	pictureID uint16
}

// newVP8Source returns a source of frames of bitrate/8/fps bytes (keyframes
// four times that) with RTP timestamps advancing by 90000/fps.
func newVP8Source(bitrate, fps int) *vp8Source {
	size := max(bitrate/8/fps, vp8MinFrame)
	s := &vp8Source{
		frame:     make([]byte, 4*size),
		payload:   make([]byte, maxRTPPayload),
		frameSize: size,
		keySize:   4 * size,
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
	if key {
		size = s.keySize
	}
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

// opusSource makes synthetic Opus packets: 160 random bytes each, RTP
// timestamps advancing by 960 (20 ms at 48 kHz).
type opusSource struct {
	rng *rand.ChaCha8
	pkt rtp.Packet
	buf [160]byte
}

// opusFrameTicks is one 20 ms Opus frame at 48 kHz: 50 packets a second.
const opusFrameTicks = 960

func newOpusSource() *opusSource {
	s := &opusSource{rng: rand.NewChaCha8(seed())}
	s.pkt.Version = 2
	s.pkt.SequenceNumber = uint16(rand.Uint32())
	s.pkt.Timestamp = rand.Uint32()
	return s
}

// writePacket writes one audio packet.
func (s *opusSource) writePacket(w rtpWriter) error {
	_, _ = s.rng.Read(s.buf[:])
	s.pkt.Payload = s.buf[:]
	err := w.WriteRTP(&s.pkt)
	s.pkt.SequenceNumber++
	s.pkt.Timestamp += opusFrameTicks
	return err
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
