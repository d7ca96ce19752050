package sfu

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// A viewer's feedback is bounded so that one viewer, broken or hostile,
// cannot raise the server's cost for everyone:
//   - NACKs: a sequence number resent within the last RTT (or minRtxGap) is
//     not resent again, nor is one first sent less than an RTT ago (the
//     original may still be on its way); what left the cache is ignored; and
//     every resend spends the viewer's retransmission budget (bytes per
//     second, sfu.nack_budget): beyond it requests are dropped and counted.
//     Work per NACK packet is bounded by its size (at most 17 sequence
//     numbers per 4 bytes) and is a few nanoseconds for each one dropped.
//   - PLIs: answered from the cached picture, a replay to that viewer alone,
//     at most once per pliGap; only when the track has no cached picture does
//     the request go upstream, merged with everyone's as before.

// minRtxGap is the least time between two resends of one packet to one
// viewer while its RTT is unknown.
const minRtxGap = 20 * time.Millisecond

// pliGap is the least time between two cache replays for one viewer.
const pliGap = 500 * time.Millisecond

type nackGuard struct {
	mu     sync.Mutex
	rate   float64 // bytes per second; 0 means unlimited
	burst  float64
	tokens float64
	last   int64 // monoNow of the last refill
	// What was resent lately, by sequence number modulo 256: made at the
	// first NACK (4 KiB a down-track that most viewers never need, and
	// that a parked connection should not hold, park.go).
	recent *[256]recentRtx
	rtt    atomic.Int64 // nanoseconds, from receiver reports; 0 until known
	rtx    *scratch     // made at the first resend: most viewers never ask
	out    rtp.Header
}

func (g *nackGuard) init(rate int) {
	g.rate = float64(rate)
	g.burst = max(g.rate/4, 16<<10)
	g.tokens = g.burst
}

type recentRtx struct {
	seq uint16
	at  int64
}

// history returns the resend history, made on first use. g.mu is held.
func (g *nackGuard) history() *[256]recentRtx {
	if g.recent == nil {
		g.recent = new([256]recentRtx)
		for i := range g.recent {
			g.recent[i].at = -1
		}
	}
	return g.recent
}

// spend takes n bytes from the budget.
func (g *nackGuard) spend(n int, now int64) bool {
	if g.rate == 0 {
		return true
	}
	if now > g.last {
		g.tokens = min(g.burst, g.tokens+float64(now-g.last)*g.rate/1e9)
		g.last = now
	}
	if g.tokens < float64(n) {
		return false
	}
	g.tokens -= float64(n)
	return true
}

// handleNACK resends the packets a viewer reports lost, from the track's
// shared cache, mapping the viewer's sequence numbers back to the source's.
func (d *DownTrack) handleNACK(nack *rtcp.TransportLayerNack) {
	b := d.bind.Load()
	t := d.src.Load()
	if b == nil {
		return
	}
	d.mu.Lock()
	live := d.sent && d.state != dtWaiting
	anc, lastSeq := d.anc, d.lastSeq
	d.mu.Unlock()
	stats := &t.engine.stats
	var requested uint64
	for _, p := range nack.Nacks {
		requested += 1 + uint64(bits.OnesCount16(uint16(p.LostPackets)))
	}
	stats.nacksReceived.Add(requested)
	if !live {
		stats.nacksIgnored.Add(requested)
		return
	}
	g := &d.nack
	g.mu.Lock()
	defer g.mu.Unlock()
	now := monoNow()
	rtt := g.rtt.Load()
	gap := max(rtt, int64(minRtxGap))
	var answered, ignored, dropped uint64
	resend := func(out uint16) bool {
		// Only what this anchor sent, and nothing beyond the newest.
		if int16(out-anc.outStart) < 0 || int16(lastSeq-out) < 0 {
			ignored++
			return true
		}
		r := &g.history()[out&255]
		if r.seq == out && r.at >= 0 && now-r.at < gap {
			ignored++ // resent within the last RTT
			return true
		}
		src := out - anc.seqOffset
		at, ok := t.cache.arrival(src)
		if !ok || now-at < rtt {
			ignored++ // gone from the cache, or sent less than an RTT ago
			return true
		}
		if g.rtx == nil {
			g.rtx = new(scratch)
		}
		payload, ok := cachedPacket(t.cache, src, g.rtx)
		if !ok {
			ignored++
			return true
		}
		if !g.spend(12+len(payload), now) {
			return false
		}
		rewrite(&g.out, &g.rtx.hdr, b, out, anc.mapTS(g.rtx.hdr.Timestamp))
		if d.write(b, &g.out, payload, nil) > 0 {
			answered++
			r.seq, r.at = out, now
		}
		return true
	}
	var handled uint64
walk:
	for _, pair := range nack.Nacks {
		// The pair names PacketID and, by bitmask, the 16 that follow it.
		if !resend(pair.PacketID) {
			break walk
		}
		handled++
		for i := range uint16(16) {
			if pair.LostPackets&(1<<i) != 0 {
				if !resend(pair.PacketID + i + 1) {
					break walk
				}
				handled++
			}
		}
	}
	dropped = requested - handled
	stats.nacksAnswered.Add(answered)
	stats.nacksIgnored.Add(ignored)
	stats.nacksDropped.Add(dropped)
}

// handlePLI notes a viewer's picture loss; the forwarder answers it with the
// next packet (servePLI).
func (d *DownTrack) handlePLI() {
	t := d.src.Load()
	if t == nil || !t.isVideo() {
		return
	}
	t.engine.stats.plisReceived.Add(1)
	d.pliPending.Store(true)
}

// servePLI restarts the viewer on the cached picture when there is one
// (and it has not been given one within pliGap), else asks the publisher.
// d.mu is held; it runs on t's forwarder.
func (d *DownTrack) servePLI(t *Track) {
	if d.state != dtLive {
		return // starting anyway
	}
	if !t.pic.kfValid {
		t.RequestKeyframe()
		return
	}
	if d.pliAt != 0 && t.fwdAt-d.pliAt < int64(pliGap) {
		t.engine.stats.plisIgnored.Add(1)
		return
	}
	d.pliAt = t.fwdAt
	t.engine.stats.plisFromCache.Add(1)
	d.state = dtWaiting // the next packet starts a replay, continuing the sequence
}

// handleReceiverReport takes the viewer's round-trip time from a report
// block about this down-track, and hands the block to the engine's quality
// observer (quality.go).
func (d *DownTrack) handleReceiverReport(r rtcp.ReceptionReport, now time.Time) {
	rtt := reportRTT(r, now)
	if rtt > 0 {
		d.nack.rtt.Store(int64(rtt))
	}
	d.observeReport(r, rtt)
}

// reportRTT is the round-trip time a report block gives (RFC 3550 section
// 6.4.1: now - LSR - DLSR, in 1/65536 s of the middle 32 bits of NTP time),
// or 0 when it gives none.
func reportRTT(r rtcp.ReceptionReport, now time.Time) time.Duration {
	if r.LastSenderReport == 0 {
		return 0
	}
	mid := ntpMiddle(now)
	rtt := mid - r.LastSenderReport - r.Delay
	if int32(rtt) <= 0 || rtt > 10<<16 { // not plausible (clock step, forged)
		return 0
	}
	return time.Duration(int64(rtt) * int64(time.Second) >> 16)
}

// ntpMiddle returns the middle 32 bits of the NTP timestamp of t.
func ntpMiddle(t time.Time) uint32 { return uint32(ntpTime(t) >> 16) }

// RTT returns the viewer's last measured round-trip time (0 when unknown).
func (d *DownTrack) RTT() time.Duration { return time.Duration(d.nack.rtt.Load()) }
