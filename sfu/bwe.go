package sfu

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Bandwidth estimation toward viewers (sfu.bandwidth_estimation). Every
// packet to a viewer carries a transport-wide sequence number (the
// transport-cc header extension); the viewer's transport-cc feedback tells
// when each arrived, and a send-side estimator per viewer connection
// (Pion's Google congestion control, without its pacer: packets leave as
// the forwarder writes them) turns that into a target bitrate and an
// overuse signal.
//
// A simulcast viewer's layer follows it, within the viewer's cap:
//   - it starts on the best layer that fits the initial estimate;
//   - down at once: when the estimator sees overuse (queues growing, or
//     over 10 % loss) and its target is below the layer's bitrate, the
//     viewer moves to the best layer that fits the target;
//   - up only after the link held: 2 s without overuse, then the next layer
//     is tried (a probe: the estimate alone cannot rise above what is sent,
//     GCC caps it at 1.5 times the received rate); the probe stands after
//     2.5 s without overuse, else the viewer goes back and waits before the
//     next try, four times as long after each failure (4 s, 16 s, 60 s):
//     a probe costs a weak link a few hundred milliseconds of queueing.
// Audio is never touched: a viewer's budget for video is its estimate less
// audioReserve.

// bwe tuning.
const (
	bweInitial      = 500_000
	bweMin          = 50_000
	bweMax          = 20_000_000
	audioReserve    = 64_000
	bweHeldBeforeUp = 2 * time.Second
	bweProbeHold    = 2500 * time.Millisecond
	bweBackoffMin   = 4 * time.Second
	bweBackoffMax   = 60 * time.Second
)

// newViewerBWE makes a viewer connection's estimator. The lean write path
// (lean.go) stamps each packet with the connection's transport-wide
// sequence number and hands it to the estimator as it is sent; the
// viewer's transport-cc feedback reaches it from the connection's RTCP
// (viewerrtcp.go).
func (e *Engine) newViewerBWE() (*viewerBWE, error) {
	est, err := gcc.NewSendSideBWE(
		gcc.SendSideBWEInitialBitrate(bweInitial),
		gcc.SendSideBWEMinBitrate(bweMin),
		gcc.SendSideBWEMaxBitrate(bweMax),
		gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
		gcc.WithLoggerFactory(e.lf),
	)
	if err != nil {
		return nil, err
	}
	b := &viewerBWE{est: est}
	e.bweMu.Lock()
	e.bwes[b] = struct{}{}
	e.bweMu.Unlock()
	return b, nil
}

// viewerBWE is one viewer connection's estimator.
type viewerBWE struct {
	est *gcc.SendSideBWE
	seq atomic.Uint32 // the next transport-wide sequence number

	mu     sync.Mutex
	at     time.Time // when the cached reading below was taken
	target int
	over   bool
}

// read returns the estimator's target (bits/s) and whether it sees
// overuse, read at most once per layer tick.
func (b *viewerBWE) read(now time.Time) (target int, overuse bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.at) < layerTick/2 {
		return b.target, b.over
	}
	b.at = now
	b.target = b.est.GetTargetBitrate()
	st := b.est.GetStats()
	usage, _ := st["usage"].(string)
	loss, _ := st["averageLoss"].(float64)
	b.over = usage == "overuse" || loss > 0.1
	return b.target, b.over
}

// bweState is a down-track's adaptation: owned by its layer set's monitor.
type bweState struct {
	stableSince time.Time // no overuse since
	probing     *Track    // the layer being tried
	from        *Track    // the layer before the probe
	started     time.Time
	backoff     time.Duration
	next        time.Time // no probe before
}

// layerRate is a layer's bitrate now (bits/s), as its layer set's monitor
// last measured it (readable from any goroutine).
func layerRate(t *Track) float64 {
	return math.Float64frombits(t.layer.pubRate.Load())
}

// fitting returns the best active layer at or below top whose bitrate fits
// budget (bits/s), else the lowest active layer.
func (g *layerSet) fitting(top *Track, budget int) *Track {
	list := *g.ranked.Load()
	var best, lowest *Track
	for _, t := range list {
		if !t.layer.active.Load() {
			continue
		}
		if lowest == nil {
			lowest = t
		}
		if layerRate(t)*1.15 <= float64(budget) {
			best = t
		}
		if t == top {
			break
		}
	}
	switch {
	case best != nil:
		return best
	case lowest != nil:
		return lowest
	}
	return top // nothing measured yet
}

// adapt runs one step of d's bandwidth adaptation (see above) and sets the
// layer its link allows (d.bwLayer).
func (g *layerSet) adapt(d *DownTrack, now time.Time) {
	b := d.bw
	if b == nil {
		return
	}
	list := *g.ranked.Load()
	top := g.pick(int(d.layerCap.Load()))
	if top == nil {
		return
	}
	target, over := b.read(now)
	budget := target - audioReserve
	st := &d.bwst
	cur := d.bwLayer.Load()
	if cur == nil || !cur.layer.active.Load() || !slices.Contains(list, cur) {
		cur = g.fitting(top, budget)
		d.bwLayer.Store(cur)
		st.stableSince, st.probing = time.Time{}, nil
	}
	if st.probing != nil {
		switch {
		case over:
			d.bwLayer.Store(st.from)
			st.probing = nil
			st.backoff = min(max(4*st.backoff, bweBackoffMin), bweBackoffMax)
			st.next = now.Add(st.backoff)
			st.stableSince = time.Time{}
		case now.Sub(st.started) >= bweProbeHold:
			st.probing = nil
			st.backoff = 0
			st.stableSince = now
		}
		return
	}
	if over {
		st.stableSince = time.Time{}
		if float64(target) < layerRate(cur) {
			if down := g.fitting(cur, budget); down != cur {
				d.bwLayer.Store(down)
				st.next = laterOf(st.next, now.Add(bweBackoffMin))
			}
		}
		return
	}
	if st.stableSince.IsZero() {
		st.stableSince = now
	}
	if now.Sub(st.stableSince) < bweHeldBeforeUp || now.Before(st.next) {
		return
	}
	// The next active layer above cur, within the cap.
	i := slices.Index(list, cur)
	if i < 0 || cur == top {
		return
	}
	for _, up := range list[i+1:] {
		if !up.layer.active.Load() {
			continue
		}
		if rankIn(list, up) > rankIn(list, top) {
			return
		}
		st.probing, st.from, st.started = up, cur, now
		d.bwLayer.Store(up)
		return
	}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func rankIn(list []*Track, t *Track) int { return slices.Index(list, t) }

// BandwidthEstimates returns the current estimate (bits/s) of every viewer
// connection that has one.
func (e *Engine) BandwidthEstimates() []int {
	e.bweMu.Lock()
	list := make([]*viewerBWE, 0, len(e.bwes))
	for b := range e.bwes {
		list = append(list, b)
	}
	e.bweMu.Unlock()
	out := make([]int, 0, len(list))
	for _, b := range list {
		out = append(out, b.est.GetTargetBitrate())
	}
	return out
}

// estimated is how a down-track's packets reach its connection's
// estimator: stamped with the connection's transport-wide sequence number
// (header extension id), then written through the estimator's stream
// writer, which notes size and send time and hands them on (writeOut).
type estimated struct {
	bw *viewerBWE
	id uint8
	w  interceptor.RTPWriter
}

// estScratch is what a writer needs to stamp a packet.
type estScratch struct {
	attrs interceptor.Attributes
	tcc   [2]byte
}

// batchAttr is the attribute that carries the writer's batch through the
// estimator's stream writer.
type batchAttr struct{}

// bindEstimator registers the down-track's stream with bw, when the viewer
// accepted transport-wide sequence numbers.
func (d *DownTrack) bindEstimator(bw *viewerBWE, ssrc uint32, exts []webrtc.RTPHeaderExtensionParameter) {
	var id int
	for _, x := range exts {
		if x.URI == sdp.TransportCCURI {
			id = x.ID
		}
	}
	if id <= 0 || id > 14 {
		return
	}
	info := &interceptor.StreamInfo{SSRC: ssrc, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: id}}}
	w := bw.est.AddStream(info, interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		sb, _ := a[batchAttr{}].(*sendBatch)
		return d.writeOut(d.bind.Load(), h, payload, sb), nil
	}))
	d.est.Store(&estimated{bw: bw, id: uint8(id), w: w})
}

// writeEstimated stamps the packet and writes it through the estimator.
func (d *DownTrack) writeEstimated(eo *estimated, b *binding, h *rtp.Header, payload []byte, sb *sendBatch) int {
	var es *estScratch
	if sb != nil {
		es = &sb.est
	} else {
		es = &estScratch{} // a retransmission, from the viewer's RTCP
	}
	if es.attrs == nil {
		es.attrs = interceptor.Attributes{}
	}
	seq := uint16(eo.bw.seq.Add(1) - 1)
	binary.BigEndian.PutUint16(es.tcc[:], seq)
	if err := h.SetExtension(eo.id, es.tcc[:]); err != nil {
		return d.writeOut(b, h, payload, sb)
	}
	es.attrs[batchAttr{}] = sb
	n, _ := eo.w.Write(h, payload, es.attrs)
	es.attrs[batchAttr{}] = nil
	return n
}
