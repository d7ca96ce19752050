package hls

import (
	"fmt"

	"github.com/pion/rtp/codecs"
)

// vp9Assembler collects one VP9 frame from RTP payloads (the VP9 RTP
// payload format: a descriptor whose B and E flags mark the frame's first
// and last packets). One frame per picture: a broadcaster's spatial layers
// (SVC) are not combined into a superframe.
type vp9Assembler struct {
	pkt   codecs.VP9Packet
	buf   []byte
	open  bool // between a packet with B and the frame's end
	whole bool // E seen: buf is a frame
	reset bool // a packet of the frame was lost or malformed
}

// push adds one RTP payload to the frame being assembled.
func (a *vp9Assembler) push(p []byte) error {
	payload, err := a.pkt.Unmarshal(p)
	if err != nil {
		return fmt.Errorf("hls: VP9 payload: %w", err)
	}
	if a.pkt.B {
		a.buf, a.open, a.whole = a.buf[:0], true, false
	}
	if !a.open {
		return errFUAOrder
	}
	if len(a.buf)+len(payload) > maxAccessUnit {
		return errTooLarge
	}
	a.buf = append(a.buf, payload...)
	if a.pkt.E {
		a.open, a.whole = false, true
	}
	return nil
}

// take returns the frame assembled (in a fresh buffer the muxer may keep),
// or nil when there is no whole frame, and starts the next one.
func (a *vp9Assembler) take() []byte {
	defer a.clear()
	if a.reset || !a.whole || len(a.buf) == 0 {
		return nil
	}
	return append([]byte(nil), a.buf...)
}

// drop discards the frame being assembled.
func (a *vp9Assembler) drop() { a.reset = true }

func (a *vp9Assembler) clear() {
	a.buf, a.open, a.whole, a.reset = a.buf[:0], false, false, false
}
