package sfu

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Simulcast: a publisher may send a video track as up to three encodings
// of different quality (layers), each with its own SSRC and RID. Each layer
// is a Track of its own: one reader, one packet cache, one forwarder, its
// own keyframes and retransmissions. The room knows one of them, the
// primary (the first layer to arrive); the others hang off its layerSet.
//
// A viewer's down-track copies one layer at a time. Which one: the best
// layer that is being sent (a layer is active while packets arrive; browsers
// drop their upper layers under congestion) at or below the viewer's cap
// (Subscriber.SetLayer: low, medium or high; no cap means high). A move to
// another layer is seamless: the down-track keeps the layer it has until
// the target layer's next keyframe (asked for at once, rate-limited and
// merged across viewers like every keyframe request), then re-anchors
// (DownTrack.Switch): sequence numbers and timestamps continue. Only when
// the current layer stopped does it move at once, from the target's cached
// picture.
//
// Layers are ranked by the picture size their keyframes announce (VP8,
// H.264), else by their RID names (q/h/f, low/mid/high, r0/r1/r2 and the
// like), else by the highest bitrate each has carried (a higher layer
// carries more; while a browser ramps up, rates alone mislead), else in the
// order the publisher offered them.

// Layer caps a viewer may set.
const (
	LayerLow    = 0
	LayerMedium = 1
	LayerHigh   = 2
)

// ParseLayer reads a cap name: "low", "medium" or "high".
func ParseLayer(s string) (int, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "low":
		return LayerLow, true
	case "medium", "mid":
		return LayerMedium, true
	case "high":
		return LayerHigh, true
	}
	return 0, false
}

// layerTick is how often a layer set checks its layers and its viewers.
const layerTick = 250 * time.Millisecond

// layerIdle is how long a layer may go without a packet before it counts
// as stopped.
const layerIdle = time.Second

// layerSet is the simulcast layers of one published video track.
type layerSet struct {
	e    *Engine
	rids []string // every RID the publisher offered, in its order

	// onActive, when set, tells the publisher which layers to send: a layer
	// nobody has wanted for layerPauseAfter is paused, and resumed as soon
	// as a viewer wants it (monitor-owned state below).
	onActive func(active []string)
	paused   map[string]bool
	unwanted map[string]time.Time

	mu     sync.Mutex
	layers []*Track // the layers that have arrived
	ranked atomic.Pointer[[]*Track]
	stop   chan struct{}
	done   chan struct{}
}

// layerState is a layer's activity, kept by its layerSet's monitor.
type layerState struct {
	lastWritten uint64
	lastBytes   uint64
	idleSince   time.Time     // zero while packets arrive
	seen        bool          // a packet ever arrived
	maxRate     float64       // highest bytes per second over a tick
	rate        float64       // bits per second, smoothed (bwe.go)
	pubRate     atomic.Uint64 // float64 bits: rate, or the best so far before it is known, for other goroutines
	lastPixels  int64
	pixels      atomic.Int64 // width x height of the layer's last keyframe, set by its forwarder
	active      atomic.Bool
}

func newLayerSet(e *Engine, rids []string, onActive func(active []string)) *layerSet {
	g := &layerSet{e: e, rids: rids, onActive: onActive, stop: make(chan struct{}), done: make(chan struct{})}
	empty := []*Track{}
	g.ranked.Store(&empty)
	go g.monitor()
	return g
}

// add makes t one of the layers.
func (g *layerSet) add(t *Track) {
	t.group = g
	g.mu.Lock()
	g.layers = append(g.layers, t)
	g.rankLocked()
	g.mu.Unlock()
}

// ended drops a layer that ended; the set stops with its last layer.
func (g *layerSet) ended(t *Track) {
	g.mu.Lock()
	g.layers = slices.DeleteFunc(g.layers, func(x *Track) bool { return x == t })
	last := len(g.layers) == 0
	g.rankLocked()
	g.mu.Unlock()
	if last {
		close(g.stop)
		<-g.done
	}
}

// ridRank guesses a layer's quality from its RID: higher is better; -1
// when the name says nothing.
func ridRank(rid string) int {
	switch strings.ToLower(rid) {
	case "q", "l", "low", "quarter", "r0", "0", "lo":
		return 0
	case "h", "m", "mid", "medium", "half", "r1", "1", "me":
		return 1
	case "f", "full", "hi", "high", "r2", "2":
		return 2
	}
	return -1
}

// rankLocked orders the layers from the lowest quality to the highest.
func (g *layerSet) rankLocked() {
	list := slices.Clone(g.layers)
	slices.SortStableFunc(list, func(a, b *Track) int {
		if pa, pb := a.layer.pixels.Load(), b.layer.pixels.Load(); pa > 0 && pb > 0 && pa != pb {
			return cmpInt64(pa, pb)
		}
		if na, nb := ridRank(a.info.RID), ridRank(b.info.RID); na >= 0 && nb >= 0 && na != nb {
			return na - nb
		}
		if ra, rb := a.layer.maxRate, b.layer.maxRate; ra > 0 && rb > 0 && ra != rb {
			if ra < rb {
				return -1
			}
			return 1
		}
		return slices.Index(g.rids, a.info.RID) - slices.Index(g.rids, b.info.RID)
	})
	g.ranked.Store(&list)
}

// rankLimit is the highest rank (0: the lowest layer) a viewer with cap
// may receive, of ranked layers (or of the layers the publisher offered,
// when more).
func (g *layerSet) rankLimit(cap, ranked int) int {
	n := max(len(g.rids), ranked)
	switch cap {
	case LayerLow:
		return 0
	case LayerMedium:
		return min(1, n-1)
	}
	return n - 1
}

// pick returns the layer for a viewer with cap: the best active layer whose
// rank is at or below the cap (low: the lowest, medium: the second,
// high: the best), else the lowest active one, else the lowest.
func (g *layerSet) pick(cap int) *Track {
	list := *g.ranked.Load()
	if len(list) == 0 {
		return nil
	}
	limit := g.rankLimit(cap, len(list))
	var best, lowestActive *Track
	for i, t := range list {
		if !t.layer.active.Load() {
			continue
		}
		if lowestActive == nil {
			lowestActive = t
		}
		if rankOf(g, t, i, len(list)) <= limit {
			best = t
		}
	}
	switch {
	case best != nil:
		return best
	case lowestActive != nil:
		return lowestActive
	}
	return list[0]
}

// rankOf is the quality rank (0 = lowest of the offered RIDs) of the layer
// at index i of ranked (of size m): with every offered layer present it is
// i; with some missing, the RID names decide where it stands.
func rankOf(g *layerSet, t *Track, i, m int) int {
	if m >= len(g.rids) {
		return i
	}
	if r := ridRank(t.info.RID); r >= 0 && r < len(g.rids) {
		return r
	}
	return i
}

// monitor follows the layers' activity and moves viewers between layers.
func (g *layerSet) monitor() {
	defer close(g.done)
	tick := time.NewTicker(layerTick)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case now := <-tick.C:
			g.sample(now)
			g.rebalance(now)
			g.pauseUnwanted(now)
		}
	}
}

// sample updates each layer's activity and bitrate.
func (g *layerSet) sample(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	for _, t := range g.layers {
		s := &t.layer
		w, b := t.written.Load(), t.bytesIn.Load()
		if w != s.lastWritten {
			s.idleSince = time.Time{}
			s.seen = true
			rate := float64(b-s.lastBytes) / layerTick.Seconds()
			if s.rate == 0 {
				s.rate = rate * 8
			} else {
				s.rate = 0.8*s.rate + 0.2*rate*8
			}
			published := s.rate
			if published == 0 {
				published = s.maxRate * 8
			}
			s.pubRate.Store(math.Float64bits(published))
			if rate > s.maxRate*1.2 {
				s.maxRate = rate
				changed = true
			}
		} else if s.idleSince.IsZero() {
			s.idleSince = now
		}
		s.lastWritten, s.lastBytes = w, b
		if p := s.pixels.Load(); p != s.lastPixels {
			s.lastPixels = p
			changed = true
		}
		active := s.seen && (s.idleSince.IsZero() || now.Sub(s.idleSince) < layerIdle)
		if s.active.Swap(active) != active {
			changed = true
		}
	}
	if changed {
		g.rankLocked()
	}
}

// rebalance adapts every viewer of the set to its link and moves it to the
// layer it should have.
func (g *layerSet) rebalance(now time.Time) {
	for _, t := range *g.ranked.Load() {
		for _, d := range *t.downs.Load() {
			if d.Track() == t {
				g.adapt(d, now)
				g.place(d)
			}
		}
	}
}

// place moves d toward the layer its cap and the active layers call for.
func (g *layerSet) place(d *DownTrack) {
	if d.pinRID != "" {
		return // a relay's copy of one layer
	}
	want := g.pick(int(d.layerCap.Load()))
	cur := d.Track()
	if want == nil || cur == nil {
		return
	}
	if l := d.bwLayer.Load(); d.bw != nil && l != nil && l.layer.active.Load() {
		if list := *g.ranked.Load(); rankIn(list, l) >= 0 && rankIn(list, l) < rankIn(list, want) {
			want = l // what the viewer's link carries
		}
	}
	if want == cur {
		d.cancelNext()
		return
	}
	if !cur.layer.active.Load() || cur.group != g {
		_ = d.Switch(want) // nothing flows where it is: move now, from the cached picture
		return
	}
	d.switchAtKeyframe(want)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// layerPauseAfter is how long nobody must have wanted a layer before its
// publisher is told to pause it.
const layerPauseAfter = 5 * time.Second

// desired is the layer a viewer with cap would have if every layer were
// being sent.
func (g *layerSet) desired(cap int) *Track {
	list := *g.ranked.Load()
	if len(list) == 0 {
		return nil
	}
	limit := g.rankLimit(cap, len(list))
	best := list[0]
	for i, t := range list {
		if rankOf(g, t, i, len(list)) <= limit {
			best = t
		}
	}
	return best
}

// pauseUnwanted tells the publisher to pause the layers no viewer (nor
// relay) has wanted for layerPauseAfter, and to resume a paused layer as
// soon as one does. The lowest layer is always sent, so a viewer arriving
// gets a picture at once.
func (g *layerSet) pauseUnwanted(now time.Time) {
	if g.onActive == nil {
		return // a WHIP publisher: nobody can tell it
	}
	list := *g.ranked.Load()
	if len(list) < 2 {
		return
	}
	wanted := map[*Track]bool{list[0]: true}
	for _, t := range list {
		for _, d := range *t.downs.Load() {
			if d.Track() == t {
				if d.pinRID != "" {
					wanted[t] = true // a relay carries this layer
				} else if w := g.desired(int(d.layerCap.Load())); w != nil {
					wanted[w] = true
				}
			}
			if d.next.Load() == t {
				wanted[t] = true
			}
		}
	}
	if g.paused == nil {
		g.paused, g.unwanted = map[string]bool{}, map[string]time.Time{}
	}
	changed := false
	for _, t := range list {
		rid := t.info.RID
		switch {
		case wanted[t]:
			delete(g.unwanted, rid)
			if g.paused[rid] {
				delete(g.paused, rid)
				changed = true
			}
		case g.paused[rid]:
		case g.unwanted[rid].IsZero():
			g.unwanted[rid] = now
		case now.Sub(g.unwanted[rid]) >= layerPauseAfter:
			g.paused[rid] = true
			changed = true
		}
	}
	if !changed {
		return
	}
	active := make([]string, 0, len(g.rids))
	for _, rid := range g.rids {
		if !g.paused[rid] {
			active = append(active, rid)
		}
	}
	g.e.log.Debug("simulcast layers to send", "track", list[0].info.ID, "active", active)
	g.onActive(active)
}
