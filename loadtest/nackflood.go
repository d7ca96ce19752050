package loadtest

import (
	"context"
	"errors"
	"time"

	"github.com/pion/rtcp"
)

// NACKFlood describes a hostile viewer's feedback, for measuring what such a
// viewer costs the server and everyone else (Viewer.FloodNACKs). No real
// client does this; a broken or malicious one may.
type NACKFlood struct {
	// Rate is NACK packets per second; at least 1.
	Rate int
	// Span is the number of sequence numbers each NACK names, rounded up
	// to a multiple of 17; default 1700 (100 pairs, a 412-byte packet).
	Span int
}

// FloodNACKs sends f.Rate NACKs a second until ctx ends or the viewer
// closes, and returns how many it sent. Each reports as lost the f.Span
// sequence numbers up to the newest packet of the viewer's first video
// track (packets it has in fact received), in pairs with every bit set. It
// sends nothing before the first video packet, and writes on whatever
// subscriber connection is current. The caller owns the goroutine it runs
// on.
func (v *Viewer) FloodNACKs(ctx context.Context, f NACKFlood) uint64 {
	span := f.Span
	if span <= 0 {
		span = 1700
	}
	pairs := make([]rtcp.NackPair, (span+16)/17)
	tick := time.NewTicker(time.Second / time.Duration(max(f.Rate, 1)))
	defer tick.Stop()
	var sent uint64
	for {
		select {
		case <-ctx.Done():
			return sent
		case <-v.stop:
			return sent
		case <-tick.C:
		}
		ssrc := v.videoSSRC.Load()
		if ssrc == 0 {
			continue
		}
		first := uint16(v.videoSeq.Load()) - uint16(len(pairs)*17) + 1
		for i := range pairs {
			pairs[i] = rtcp.NackPair{PacketID: first + uint16(i*17), LostPackets: 0xffff}
		}
		if err := v.writeRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: pairs}}); err == nil {
			sent++
		}
	}
}

// writeRTCP sends pkts on the current subscriber connection, lean or Pion.
func (v *Viewer) writeRTCP(pkts []rtcp.Packet) error {
	v.mu.Lock()
	pc, lp := v.pc, v.lean
	v.mu.Unlock()
	switch {
	case lp != nil:
		_, err := lp.writeRTCP(pkts)
		return err
	case pc != nil:
		return pc.WriteRTCP(pkts)
	}
	return errors.New("loadtest: viewer not connected")
}
