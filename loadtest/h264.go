package loadtest

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/pion/rtp"
)

// Synthetic H.264 (RFC 6184 packetization mode 1), for servers that take
// no VP8: a keyframe is a STAP-A with an SPS and a PPS, then an IDR slice;
// a delta frame is one non-IDR slice; a slice larger than one packet goes
// in FU-A fragments. A slice starts with first_mb_in_slice = 0, then the
// magic "halo" and the send time (8 bytes, big-endian Unix nanoseconds),
// then filler.
const (
	h264STAPA = 24
	h264FUA   = 28
	// h264SliceHeader is the NAL header, one byte of slice header, the
	// magic and the send time.
	h264SliceHeader = 1 + 1 + 4 + 8
)

var (
	h264SPS = []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x06, 0xd0, 0xa1, 0x35}
	h264PPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

// h264Info is what parseH264 learns from one RTP payload.
type h264Info struct {
	// Keyframe: the packet carries an SPS or an IDR slice.
	Keyframe bool
	// Start: the packet begins an access unit: its first NAL unit is an
	// access unit delimiter or an SPS, or it starts the first slice
	// (first_mb_in_slice 0) of a non-IDR picture. An IDR picture begins
	// with its SPS (as this package's and browsers' do).
	Start bool
	// SentAt is the send time of a synthetic slice starting in this packet,
	// 0 when none.
	SentAt int64
}

// parseH264 reads an H.264 RTP payload (single NAL, STAP-A or FU-A). It
// never panics and does not allocate.
func parseH264(p []byte) h264Info {
	var info h264Info
	if len(p) < 1 {
		return info
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		info.Start = h264Begins(t, p[1:])
		info.slice(t, p[1:])
	case t == h264STAPA:
		if len(p) >= 4 {
			info.Start = h264Begins(p[3]&0x1f, p[4:])
		}
		for rest := p[1:]; len(rest) >= 2; {
			n := int(binary.BigEndian.Uint16(rest))
			rest = rest[2:]
			if n == 0 || n > len(rest) {
				break
			}
			info.slice(rest[0]&0x1f, rest[1:n])
			rest = rest[n:]
		}
	case t == h264FUA && len(p) >= 2 && p[1]&0x80 != 0: // start fragment
		info.Start = h264Begins(p[1]&0x1f, p[2:])
		info.slice(p[1]&0x1f, p[2:])
	}
	return info
}

// h264Begins reports whether a NAL unit of type t, whose bytes after the
// header start with body, begins an access unit (h264Info.Start).
func h264Begins(t byte, body []byte) bool {
	switch t {
	case 7, 9: // SPS, access unit delimiter
		return true
	case 1: // non-IDR slice: first_mb_in_slice is ue(v), 0 is the bit 1
		return len(body) > 0 && body[0]&0x80 != 0
	}
	return false
}

// slice takes one NAL unit of type t whose bytes after the header are
// body.
func (i *h264Info) slice(t byte, body []byte) {
	switch t {
	case 7, 5:
		i.Keyframe = true
	}
	if (t == 1 || t == 5) && len(body) >= 13 && [4]byte(body[1:5]) == vp8Magic {
		i.SentAt = int64(binary.BigEndian.Uint64(body[5:13]))
	}
}

// h264Source makes synthetic H.264 frames, sized by a frameSizer like the
// VP8 source's. Not safe for concurrent use.
type h264Source struct {
	nal     []byte // the largest slice NAL unit, pre-filled with filler
	payload []byte
	pkt     rtp.Packet
	sizes   *frameSizer
	tsStep  uint32
}

func newH264Source(bitrate, fps int, keyInterval time.Duration) *h264Source {
	fs := newFrameSizer(bitrate, fps, keyInterval)
	s := &h264Source{
		nal:     make([]byte, max(fs.maxKey(), h264SliceHeader)),
		payload: make([]byte, maxRTPPayload),
		sizes:   fs,
		tsStep:  uint32(90000 / fps),
	}
	rng := rand.NewChaCha8(seed())
	_, _ = rng.Read(s.nal)
	s.pkt.Version = 2
	s.pkt.SequenceNumber = uint16(rand.Uint32())
	s.pkt.Timestamp = rand.Uint32()
	return s
}

// writeFrame writes one access unit and returns the packets written.
func (s *h264Source) writeFrame(w rtpWriter, key bool, sentAt int64) (int, error) {
	packets := 0
	var err error
	write := func(payload []byte, last bool) {
		s.pkt.Payload, s.pkt.Marker = payload, last
		if werr := w.WriteRTP(&s.pkt); werr != nil && err == nil {
			err = werr
		}
		s.pkt.SequenceNumber++
		packets++
	}
	if key {
		p := append(s.payload[:0], h264STAPA|0x60)
		for _, nal := range [][]byte{h264SPS, h264PPS} {
			p = binary.BigEndian.AppendUint16(p, uint16(len(nal)))
			p = append(p, nal...)
		}
		write(p, false)
	}
	nal := s.nal[:max(s.sizes.next(key), h264SliceHeader)]
	nal[0] = 0x41 // nal_ref_idc 2, non-IDR slice
	if key {
		nal[0] = 0x65 // nal_ref_idc 3, IDR slice
	}
	nal[1] = 0x88 // first_mb_in_slice 0, then filler bits
	copy(nal[2:], vp8Magic[:])
	binary.BigEndian.PutUint64(nal[6:], uint64(sentAt))
	if len(nal) <= maxRTPPayload {
		write(nal, true)
	} else {
		const chunk = maxRTPPayload - 2
		for off := 1; off < len(nal); off += chunk {
			end := min(off+chunk, len(nal))
			hdr := nal[0] & 0x1f
			if off == 1 {
				hdr |= 0x80
			}
			if end == len(nal) {
				hdr |= 0x40
			}
			p := append(s.payload[:0], nal[0]&0xe0|h264FUA, hdr)
			write(append(p, nal[off:end]...), end == len(nal))
		}
	}
	s.pkt.Timestamp += s.tsStep
	return packets, err
}
