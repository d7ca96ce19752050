package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// Sender reports. Browsers need them to play a publisher's audio and video
// in sync, and a viewer's receiver reports echo them, which gives the SFU
// its round-trip time to the viewer. Pion's sender-report interceptor would
// see none of the packets the lean path writes (lean.go), so the engine
// sends them itself: one loop for every viewer connection, one compound
// packet per connection per interval, with each down-track's own counts.

// senderReportInterval is how often a viewer connection gets its reports.
const senderReportInterval = time.Second

type senderReports struct {
	mu      sync.Mutex
	subs    map[*Subscriber]struct{}
	stopped chan struct{}
	done    chan struct{}
	// The loop's own (or, stopped, a test's): the round's list, and
	// monoNow of the last round.
	list     []*Subscriber
	lastTick int64
	// onResume is told of each stall (OnResume).
	onResume atomic.Pointer[func(time.Duration)]
}

// OnResume has f told, with how late the media plane's clock found itself,
// each time the process resumes from a stall: it was stopped (SIGSTOP, a
// VM pause) or starved for longer than stallSlack. Connections that only
// this node watches may have been ended by their other side meanwhile
// (an origin ends a relay silent for 15 s). f runs on the engine's report
// loop and must not block. One f at a time; nil removes it.
func (e *Engine) OnResume(f func(late time.Duration)) {
	if f == nil {
		e.sr.onResume.Store(nil)
		return
	}
	e.sr.onResume.Store(&f)
}

func (e *Engine) startSenderReports() {
	r := &e.sr
	r.subs = map[*Subscriber]struct{}{}
	r.stopped, r.done = make(chan struct{}), make(chan struct{})
	r.lastTick = monoNow()
	go func() {
		defer close(r.done)
		tick := time.NewTicker(senderReportInterval)
		defer tick.Stop()
		for {
			select {
			case <-r.stopped:
				return
			case <-tick.C:
			}
			e.reportRound(monoNow(), time.Now())
		}
	}()
}

// stallSlack is how much later than scheduled the loop's tick may come
// before the loop takes it that the process was stopped (SIGSTOP, a VM
// pause, a long GC): a busy node's tick is late by milliseconds.
const stallSlack = 2 * time.Second

// reportRound is one round of the loop at mono (monoNow) and now: the
// handed-over connections' silence checks, hand-overs, sender reports.
// After a stall the silence clock restarts (handedOffSet.resumedAt): what
// the viewers sent meanwhile waits in the sockets, unread, and the
// process must read it before it can judge anyone silent.
func (e *Engine) reportRound(mono int64, now time.Time) {
	r := &e.sr
	if mono-r.lastTick > int64(senderReportInterval+stallSlack) {
		e.handedOff.resumedAt.Store(mono)
		late := time.Duration(mono - r.lastTick - int64(senderReportInterval))
		e.log.Info("the media plane's clock jumped: the process was stopped or starved; silence is counted from now",
			"late", late.Round(time.Millisecond))
		if f := r.onResume.Load(); f != nil {
			(*f)(late)
		}
	}
	r.lastTick = mono
	r.mu.Lock()
	list := r.list[:0]
	for s := range r.subs {
		list = append(list, s)
	}
	r.mu.Unlock()
	handoffs := 0
	for _, s := range list {
		if h := s.handed.Load(); h != nil {
			h.checkSilence(mono)
		} else if handoffs < handoffsPerRound && s.readyForHandOver(mono) {
			handoffs++
			s.handOver()
		}
		s.sendReports(now)
	}
	clear(list)
	r.list = list
}

func (e *Engine) stopSenderReports() {
	if e.sr.stopped != nil {
		close(e.sr.stopped)
		<-e.sr.done
		e.sr.stopped = nil
	}
}

func (e *Engine) addReported(s *Subscriber) {
	e.sr.mu.Lock()
	e.sr.subs[s] = struct{}{}
	e.sr.mu.Unlock()
}

func (e *Engine) removeReported(s *Subscriber) {
	e.sr.mu.Lock()
	delete(e.sr.subs, s)
	e.sr.mu.Unlock()
}

// sendReports sends a sender report for each of the connection's
// down-tracks that has sent something.
func (s *Subscriber) sendReports(now time.Time) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	dts := make([]*DownTrack, 0, len(s.subs))
	for _, sub := range s.subs {
		dts = append(dts, sub.dt)
	}
	s.mu.Unlock()
	var pkts []rtcp.Packet
	mono := monoNow()
	for _, d := range dts {
		if sr := d.senderReport(now, mono); sr != nil {
			pkts = append(pkts, sr)
		}
	}
	if len(pkts) == 0 {
		return
	}
	s.rtcpMu.Lock()
	defer s.rtcpMu.Unlock()
	for len(pkts) > 0 {
		n := rtcpBatch(pkts)
		if h := s.handed.Load(); h != nil {
			_ = h.writeRTCP(pkts[:n])
		} else if s.pc != nil {
			// Not handed over: Pion's connection is still there (it is
			// let go only after the hand-over, under rtcpMu), unless the
			// connection is parked (park.go).
			s.rtcpWrites++
			_ = s.pc.WriteRTCP(pkts[:n])
		}
		pkts = pkts[n:]
	}
}

// maxRTCPBatch bounds one compound RTCP packet of a connection's sender
// reports. A receiver reads a datagram into a buffer of about one MTU
// (Pion's 1,460 bytes; a larger datagram is dropped whole, logged "short
// buffer"), and a connection that carries many tracks (a relay trunk, a
// viewer of a large room) has more reports than fit: at 28 bytes a report,
// 52 tracks would not. 1,100 bytes leaves room for SRTCP's trailer and the
// path's headers.
const maxRTCPBatch = 1100

// rtcpBatch returns how many of pkts (at least one) go in one compound
// packet of at most maxRTCPBatch bytes.
func rtcpBatch(pkts []rtcp.Packet) int {
	size := 0
	for i, p := range pkts {
		size += p.MarshalSize()
		if size > maxRTCPBatch && i > 0 {
			return i
		}
	}
	return len(pkts)
}

// senderReport is the down-track's report at now (mono: monoNow), or nil
// before its first packet. Its RTP time is the last packet's, advanced by
// the wall-clock time since it was sent.
func (d *DownTrack) senderReport(now time.Time, mono int64) *rtcp.SenderReport {
	b := d.bind.Load()
	if b == nil {
		return nil
	}
	d.mu.Lock()
	sent, lastTS, lastAt := d.sent, d.lastTS, d.lastAt
	d.mu.Unlock()
	if !sent {
		return nil
	}
	ticks := uint64(max(mono-lastAt, 0)) * uint64(d.codec.ClockRate) / 1e9
	return &rtcp.SenderReport{
		SSRC:        b.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     lastTS + uint32(ticks),
		PacketCount: uint32(d.srPackets.Load()),
		OctetCount:  uint32(d.srOctets.Load()),
	}
}

// ntpTime is t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}
