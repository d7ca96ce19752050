package hls

import "errors"

// H.264 RTP payload types (RFC 6184 section 5.2).
const (
	naluSTAPA = 24
	naluFUA   = 28
)

// maxAccessUnit bounds what one access unit may hold: a publisher sending a
// never-ending picture cannot grow the muxer's memory without bound.
const maxAccessUnit = 4 << 20

// Errors of the H.264 depacketizer. A packet that fails drops the access
// unit it belongs to; the muxer waits for the next one.
var (
	errShortPayload = errors.New("hls: H.264 payload too short")
	errBadSTAPA     = errors.New("hls: malformed STAP-A")
	errFUAOrder     = errors.New("hls: FU-A fragment without its start")
	errUnsupported  = errors.New("hls: H.264 packetization not supported")
	errTooLarge     = errors.New("hls: H.264 access unit too large")
)

// h264Assembler collects the NAL units of one access unit from RTP
// payloads (single NAL unit, STAP-A and FU-A: packetization-mode 1).
// NAL units are kept back to back in buf; ends marks where each ends.
type h264Assembler struct {
	buf   []byte
	ends  []int
	inFU  bool // a FU-A fragment sequence is open (its NAL unit is the last)
	reset bool // the current access unit lost a packet: drop it
}

// push adds one RTP payload to the access unit being assembled.
func (a *h264Assembler) push(p []byte) error {
	if len(p) < 1 {
		return errShortPayload
	}
	switch typ := p[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		a.inFU = false
		return a.add(p)
	case typ == naluSTAPA:
		a.inFU = false
		for q := p[1:]; len(q) > 0; {
			if len(q) < 2 {
				return errBadSTAPA
			}
			n := int(q[0])<<8 | int(q[1])
			q = q[2:]
			if n == 0 || n > len(q) {
				return errBadSTAPA
			}
			if err := a.add(q[:n]); err != nil {
				return err
			}
			q = q[n:]
		}
		return nil
	case typ == naluFUA:
		if len(p) < 3 {
			return errShortPayload
		}
		start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
		if start {
			hdr := p[0]&0xe0 | p[1]&0x1f
			if err := a.add([]byte{hdr}); err != nil {
				return err
			}
			a.inFU = true
		} else if !a.inFU {
			return errFUAOrder
		}
		if len(a.buf)+len(p)-2 > maxAccessUnit {
			return errTooLarge
		}
		a.buf = append(a.buf, p[2:]...)
		a.ends[len(a.ends)-1] = len(a.buf)
		if end {
			a.inFU = false
		}
		return nil
	default:
		return errUnsupported
	}
}

func (a *h264Assembler) add(nalu []byte) error {
	if len(a.buf)+len(nalu) > maxAccessUnit {
		return errTooLarge
	}
	a.buf = append(a.buf, nalu...)
	a.ends = append(a.ends, len(a.buf))
	return nil
}

// take returns the access unit assembled so far as NAL units (in a fresh
// buffer the muxer may keep) and starts the next one. It returns nil when
// there is nothing whole to give.
func (a *h264Assembler) take() [][]byte {
	defer a.clear()
	if a.reset || a.inFU || len(a.ends) == 0 {
		return nil
	}
	data := make([]byte, len(a.buf))
	copy(data, a.buf)
	au := make([][]byte, 0, len(a.ends))
	start := 0
	for _, end := range a.ends {
		if end > start {
			au = append(au, data[start:end])
		}
		start = end
	}
	return au
}

// drop discards the access unit being assembled (a packet was lost or
// malformed).
func (a *h264Assembler) drop() { a.reset = true }

func (a *h264Assembler) clear() {
	a.buf, a.ends, a.inFU, a.reset = a.buf[:0], a.ends[:0], false, false
}
