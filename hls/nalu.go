package hls

import "errors"

// RTP payload types of aggregation and fragmentation units: H.264's
// (RFC 6184 section 5.2) and H.265's (RFC 7798 section 4.4).
const (
	naluSTAPA = 24
	naluFUA   = 28
	h265AP    = 48
	h265FU    = 49
)

// maxAccessUnit bounds what one access unit may hold: a publisher sending a
// never-ending picture cannot grow the muxer's memory without bound.
const maxAccessUnit = 4 << 20

// Errors of the H.264 depacketizer. A packet that fails drops the access
// unit it belongs to; the muxer waits for the next one.
var (
	errShortPayload = errors.New("hls: H.264/H.265 payload too short")
	errBadSTAPA     = errors.New("hls: malformed aggregation packet")
	errFUAOrder     = errors.New("hls: fragment without its start")
	errUnsupported  = errors.New("hls: packetization not supported")
	errTooLarge     = errors.New("hls: access unit too large")
)

// naluAssembler collects the NAL units of one access unit from RTP
// payloads: H.264's single NAL unit, STAP-A and FU-A (packetization-mode
// 1), or with h265 set H.265's single NAL unit, AP and FU (without DONL:
// sprop-max-don-diff 0, what WebRTC senders use). NAL units are kept back
// to back in buf; ends marks where each ends.
type naluAssembler struct {
	h265  bool
	buf   []byte
	ends  []int
	inFU  bool // a FU-A fragment sequence is open (its NAL unit is the last)
	reset bool // the current access unit lost a packet: drop it
}

// push adds one RTP payload to the access unit being assembled.
func (a *naluAssembler) push(p []byte) error {
	if a.h265 {
		return a.push265(p)
	}
	if len(p) < 1 {
		return errShortPayload
	}
	switch typ := p[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		a.inFU = false
		return a.add(p)
	case typ == naluSTAPA:
		a.inFU = false
		return a.aggregate(p[1:])
	case typ == naluFUA:
		if len(p) < 3 {
			return errShortPayload
		}
		start, end := p[1]&0x80 != 0, p[1]&0x40 != 0
		return a.fragment(start, end, []byte{p[0]&0xe0 | p[1]&0x1f}, p[2:])
	default:
		return errUnsupported
	}
}

// push265 is push for H.265.
func (a *naluAssembler) push265(p []byte) error {
	if len(p) < 3 {
		return errShortPayload
	}
	switch typ := p[0] >> 1 & 0x3f; {
	case typ < h265AP:
		a.inFU = false
		return a.add(p)
	case typ == h265AP:
		a.inFU = false
		return a.aggregate(p[2:])
	case typ == h265FU:
		start, end := p[2]&0x80 != 0, p[2]&0x40 != 0
		return a.fragment(start, end, []byte{p[0]&0x81 | (p[2]&0x3f)<<1, p[1]}, p[3:])
	default:
		return errUnsupported
	}
}

// aggregate adds the NAL units of an aggregation packet's body: each a
// 16-bit size, then the unit.
func (a *naluAssembler) aggregate(q []byte) error {
	for len(q) > 0 {
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
}

// fragment adds one fragment of a NAL unit whose header is hdr.
func (a *naluAssembler) fragment(start, end bool, hdr, body []byte) error {
	if start {
		if err := a.add(hdr); err != nil {
			return err
		}
		a.inFU = true
	} else if !a.inFU {
		return errFUAOrder
	}
	if len(a.buf)+len(body) > maxAccessUnit {
		return errTooLarge
	}
	a.buf = append(a.buf, body...)
	a.ends[len(a.ends)-1] = len(a.buf)
	if end {
		a.inFU = false
	}
	return nil
}

func (a *naluAssembler) add(nalu []byte) error {
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
func (a *naluAssembler) take() [][]byte {
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
func (a *naluAssembler) drop() { a.reset = true }

func (a *naluAssembler) clear() {
	a.buf, a.ends, a.inFU, a.reset = a.buf[:0], a.ends[:0], false, false
}
