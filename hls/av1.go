package hls

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/pion/rtp/codecs"
)

// av1Assembler collects one AV1 temporal unit from RTP payloads (the AV1
// RTP payload format, depacketized by pion into the low-overhead bitstream)
// and splits it into OBUs for the muxer.
type av1Assembler struct {
	d     codecs.AV1Depacketizer
	buf   []byte
	reset bool // a packet of the temporal unit was lost or malformed
}

// push adds one RTP payload to the temporal unit being assembled.
func (a *av1Assembler) push(p []byte) error {
	out, err := a.d.Unmarshal(p)
	if err != nil {
		return fmt.Errorf("hls: AV1 payload: %w", err)
	}
	if len(a.buf)+len(out) > maxAccessUnit {
		return errTooLarge
	}
	a.buf = append(a.buf, out...)
	return nil
}

// take returns the temporal unit's OBUs (fresh buffers the muxer may keep),
// or nil when there is nothing whole, and starts the next one.
func (a *av1Assembler) take() [][]byte {
	defer a.clear()
	if a.reset || len(a.buf) == 0 {
		return nil
	}
	var bs av1.Bitstream
	if err := bs.Unmarshal(a.buf); err != nil {
		return nil
	}
	return bs
}

// drop discards the temporal unit being assembled, and any OBU fragment
// the depacketizer holds.
func (a *av1Assembler) drop() {
	a.reset = true
	a.d = codecs.AV1Depacketizer{}
}

func (a *av1Assembler) clear() {
	a.buf, a.reset = a.buf[:0], false
}
