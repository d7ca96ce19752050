package sfu

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TrackInfo describes a published track. ID is chosen by the caller (the
// room) and is what viewers see as the track id; StreamID groups a
// publisher's tracks so browsers keep them in sync (it is the participant id).
type TrackInfo struct {
	ID       string
	StreamID string
	Kind     webrtc.RTPCodecType
	MimeType string
	Source   string // camera, screen, microphone
	Name     string
	MID      string
	ClientID string // the publisher's own track id (msid), used to find its metadata
	// RID names the simulcast layer this track is (empty without simulcast);
	// Layers lists every RID the publisher offered for the track.
	RID    string
	Layers []string
	// Siblings is how many audio and video tracks the publisher's last
	// offer sends, this one included, when the track started (0 for a
	// relay's): another node relaying the broadcast waits for all of them
	// rather than set a relay up twice (room/relay.go).
	Siblings int
}

// inlineFanout is how many down-tracks one writer takes before the list is
// split over the engine's fan-out workers. Writing in parallel costs about a
// quarter more CPU per packet (the writers contend on the shared socket; see
// BenchmarkForward), so it is kept for lists one core cannot serve: 256
// viewers take ~1.2 ms per packet on one core here.
const inlineFanout = 256

// arrivalRing is how many packets the forwarder may fall behind the reader
// before it skips ahead (and viewers see loss). At 2.5 Mbit/s that is about
// four seconds: a forwarder that far behind has lost its viewers anyway.
const arrivalRing = 1024

// Track is one published track (or a relayed one): the single reader of the
// publisher's RTP, the packet cache shared by all its viewers, the forwarder
// that writes to them, and the list of down-tracks.
//
// The reader only stores each packet in the cache and notes its arrival; it
// never waits for viewers, so the arrival times the publisher's congestion
// control sees (TWCC) are true whatever the audience does. The forwarder, a
// goroutine of its own, takes packets in arrival order from the cache,
// follows where the current picture begins, writes every packet to every
// live down-track (spread over the fan-out workers for a big audience) and
// then, within a budget, replays the cached picture to viewers that are
// starting, so that a crowd of late joiners cannot delay anyone else.
type Track struct {
	info   TrackInfo
	engine *Engine
	remote *webrtc.TrackRemote
	codec  webrtc.RTPCodecCapability
	mime   string // codec.MimeType in lower case
	ssrc   uint32
	cache  *packetCache
	log    *slog.Logger

	// requestKeyframe sends a PLI to the publisher; set by the Publisher.
	requestKeyframe func(ssrc uint32)
	lastKeyframeReq atomic.Int64 // unix nanoseconds of the last PLI sent upstream

	mu    sync.Mutex                   // serialises changes of downs
	downs atomic.Pointer[[]*DownTrack] // copy-on-write: the forwarder loads without locking
	muted atomic.Bool                  // a moderator muted it: nothing is forwarded (mute.go)

	// Arrival order, written by the reader: the sequence number of the
	// n-th packet is arrivals[n%arrivalRing], and written counts them.
	arrivals [arrivalRing]atomic.Uint32
	written  atomic.Uint64
	wake     chan struct{} // cap 1: the reader's "there is more"
	stop     chan struct{} // closed when the reader ends
	fwdDone  chan struct{} // closed when the forwarder has stopped

	// Forwarder-owned. Fan-out workers read pic too, but only while the
	// forwarder waits for them, which orders their reads after its writes.
	read    uint64 // arrivals consumed
	fwdAt   int64  // monoNow of the packet being forwarded
	pic     picture
	prevTS  uint32 // timestamp of the previous packet forwarded
	scratch scratch
	pkt     [maxCachedPacket]byte
	hdr     rtp.Header
	fanWG   sync.WaitGroup

	repMu     sync.Mutex   // guards replaying (down-tracks add themselves from fan-out workers)
	replaying []*DownTrack // down-tracks being given the cached picture
	rrNext    int          // round-robin start of the next replay round

	// Simulcast (simulcast.go): the track's layers, and this layer's
	// activity. bytesIn counts what the reader took.
	group   *layerSet
	layer   layerState
	extra   bool // a layer other than the one the room knows (not counted in Tracks)
	bytesIn atomic.Uint64

	removed atomic.Bool // stopped by its publisher on purpose (unpublish.go)
	relay   bool        // fed by a relay from another node (relay.go)
	// A relayed track's origin reports (relay_watch.go): the packet count
	// of its latest sender report, and whether one came.
	srPackets atomic.Uint32
	srSeen    atomic.Bool
	// keyAt is when the forwarder last saw a keyframe start (monoNow; 0:
	// none yet), for KeyframeAge.
	keyAt    atomic.Int64
	done     chan struct{}
	onceDone sync.Once
}

func newTrack(e *Engine, remote *webrtc.TrackRemote, info TrackInfo, requestKeyframe func(uint32)) *Track {
	t := newTrackFor(e, info, remote.Codec().RTPCodecCapability, uint32(remote.SSRC()), requestKeyframe)
	t.remote = remote
	return t
}

// newTrackFor builds a track without its Pion receiver (tests and benchmarks
// feed it packets directly; a relay feeds it from another node).
func newTrackFor(e *Engine, info TrackInfo, codec webrtc.RTPCodecCapability, ssrc uint32, requestKeyframe func(uint32)) *Track {
	size := e.cacheSize
	if info.Kind == webrtc.RTPCodecTypeAudio {
		// Audio needs no keyframe history; a second of NACK history is plenty.
		size = 256
	}
	t := &Track{
		info:            info,
		engine:          e,
		codec:           codec,
		mime:            strings.ToLower(codec.MimeType),
		ssrc:            ssrc,
		cache:           newPacketCache(size),
		log:             e.log.With("track", info.ID),
		requestKeyframe: requestKeyframe,
		wake:            make(chan struct{}, 1),
		stop:            make(chan struct{}),
		fwdDone:         make(chan struct{}),
		done:            make(chan struct{}),
	}
	empty := []*DownTrack{}
	t.downs.Store(&empty)
	return t
}

// Info returns the track's description.
func (t *Track) Info() TrackInfo { return t.info }

// Done is closed when the publisher's track has ended.
func (t *Track) Done() <-chan struct{} { return t.done }

// KeyframeAge returns how long ago the track's last keyframe started
// (a video track; an hour when none has yet).
func (t *Track) KeyframeAge() time.Duration {
	at := t.keyAt.Load()
	if at == 0 {
		return time.Hour
	}
	return time.Duration(monoNow() - at)
}

// ViewerCount returns how many down-tracks are bound to the track.
func (t *Track) ViewerCount() int { return len(*t.downs.Load()) }

func (t *Track) isVideo() bool { return t.info.Kind == webrtc.RTPCodecTypeVideo }

// RequestKeyframe asks the publisher for a keyframe unless one was asked for
// within the engine's minimum interval: requests from many viewers merge into
// one PLI per interval, so a crowd joining at once cannot storm the broadcaster.
func (t *Track) RequestKeyframe() {
	if !t.isVideo() || t.requestKeyframe == nil {
		return
	}
	now := time.Now().UnixNano()
	last := t.lastKeyframeReq.Load()
	if now-last < int64(t.engine.keyframeGap) || !t.lastKeyframeReq.CompareAndSwap(last, now) {
		return
	}
	t.engine.stats.plisSent.Add(1)
	t.requestKeyframe(t.ssrc)
}

func (t *Track) addDown(d *DownTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.downs.Load()
	for _, x := range old {
		if x == d {
			return
		}
	}
	next := make([]*DownTrack, len(old), len(old)+1)
	copy(next, old)
	next = append(next, d)
	t.downs.Store(&next)
	if d.lists.Add(1) == 1 {
		t.engine.stats.downTracks.Add(1)
		if d.relay {
			t.engine.stats.relayTracksOut.Add(1)
		}
	}
	t.engine.watchDown(d)
}

func (t *Track) removeDown(d *DownTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.downs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	if len(next) != len(old) {
		if d.Track() == t { // not a simulcast viewer leaving this layer for another
			t.engine.unwatchDown(d)
		}
		if d.lists.Add(-1) == 0 {
			t.engine.stats.downTracks.Add(-1)
			if d.relay {
				t.engine.stats.relayTracksOut.Add(-1)
			}
		}
	}
	t.downs.Store(&next)
}

// start runs the forwarder. The reader (readLoop, or a caller feeding
// ingest) must call end when it stops.
func (t *Track) start() {
	go t.forwardLoop()
}

// readLoop is the track's one reader: it reads each packet once and hands it
// to ingest. It returns, once the forwarder has stopped too, when the
// publisher's track ends.
func (t *Track) readLoop() {
	t.start()
	defer t.end()
	buf := make([]byte, maxCachedPacket)
	var h rtp.Header
	for {
		n, _, err := t.remote.Read(buf)
		if err != nil {
			return
		}
		t.ingest(buf[:n], &h)
	}
}

// end stops the forwarder after it has written what was read, and marks the
// track done.
func (t *Track) end() {
	close(t.stop)
	<-t.fwdDone
	t.finish()
}

// ingest stores a packet from the publisher in the shared cache and queues
// it for the forwarder. h is the reader's scratch header; pkt may be reused
// once ingest returns. It never blocks.
func (t *Track) ingest(pkt []byte, h *rtp.Header) {
	if _, err := h.Unmarshal(pkt); err != nil {
		return
	}
	if len(pkt) > maxCachedPacket {
		return // larger than any path MTU: not forwardable either
	}
	seq := h.SequenceNumber
	if t.relay {
		t.engine.stats.relayPacketsIn.Add(1)
		t.engine.stats.relayBytesIn.Add(uint64(len(pkt)))
	}
	t.cache.put(seq, pkt, monoNow())
	t.bytesIn.Add(uint64(len(pkt)))
	n := t.written.Load()
	t.arrivals[n%arrivalRing].Store(uint32(seq))
	t.written.Store(n + 1)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// replayTick is how soon the forwarder comes back to unfinished replays
// when no packet wakes it first.
const replayTick = 2 * time.Millisecond

func (t *Track) forwardLoop() {
	defer close(t.fwdDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-t.wake:
		case <-timer.C:
		case <-t.stop:
			t.forwardPending()
			t.endReplays()
			return
		}
		t.forwardPending()
		// Replay rounds follow one another while no live packet waits
		// (up to replayBurst of them): joiners catch up with live in
		// milliseconds on a node that has the time, and a replay not done
		// within sfu.max_lag (a starved node) is given up (lag.go).
		more := t.replayRound()
		for i := 1; more && i < replayBurst && t.written.Load() == t.read; i++ {
			more = t.replayRound()
		}
		if more {
			timer.Reset(replayTick)
		}
	}
}

// replayBurst is how many replay rounds the forwarder runs back to back
// while no live packet waits: about a thousand cached packets before it
// looks at its channels again.
const replayBurst = 16

// forwardPending forwards every packet the reader has queued, in arrival order.
func (t *Track) forwardPending() {
	w := t.written.Load()
	if w-t.read > arrivalRing {
		// Lapped by the reader: the oldest entries were overwritten.
		lost := w - t.read - arrivalRing
		t.engine.stats.forwarderSkipped.Add(lost)
		t.read = w - arrivalRing
		t.pic.reset()
	}
	for ; t.read < w; t.read++ {
		if h := t.engine.fwdHook; h != nil {
			h() // tests hold the forwarder back here (lag_test.go)
		}
		t.fwdAt = monoNow()
		payload, auStart, at, ok := t.take(uint16(t.arrivals[t.read%arrivalRing].Load()))
		if !ok {
			continue
		}
		lag := t.fwdAt - at
		if m := t.engine.maxLag; m > 0 && lag > m {
			t.skipAhead() // lag.go
			continue
		}
		t.engine.lag.observe(lag)
		if t.muted.Load() {
			continue // followed, not written (mute.go)
		}
		t.forward(&t.hdr, payload, auStart)
	}
}

// take loads packet seq from the cache into t.pkt and t.hdr and follows
// the picture with it. It returns the payload, whether the packet starts
// an access unit, and when it arrived; ok is false when the packet is gone
// from the cache or malformed.
func (t *Track) take(seq uint16) (payload []byte, auStart bool, at int64, ok bool) {
	n, at := t.cache.getAt(seq, t.pkt[:])
	if n == 0 {
		return nil, false, 0, false // overwritten in the cache already: far too late
	}
	hl, err := t.hdr.Unmarshal(t.pkt[:n])
	if err != nil {
		return nil, false, 0, false
	}
	payload, ok = trimPadding(&t.hdr, t.pkt[:n], hl)
	if !ok {
		return nil, false, 0, false
	}
	auStart = t.hdr.Timestamp != t.prevTS
	t.prevTS = t.hdr.Timestamp
	if t.isVideo() {
		key := isKeyframe(t.mime, payload)
		if key && auStart {
			t.keyAt.Store(t.fwdAt)
		}
		if key && t.group != nil {
			if w, h, ok := frameSize(t.mime, payload); ok {
				t.layer.pixels.Store(int64(w) * int64(h))
			}
		}
		t.pic.observe(seq, t.hdr.Timestamp, key, t.cache.size(), time.Now())
	}
	return payload, auStart, at, true
}

// forward writes one packet to every down-track, spreading a long list over
// the engine's workers. It returns when every down-track has been written.
func (t *Track) forward(h *rtp.Header, payload []byte, auStart bool) {
	list := *t.downs.Load()
	n := len(list)
	if n == 0 {
		return
	}
	chunks := 1
	if w := t.engine.fan; w != nil && n > inlineFanout {
		chunks = min(w.workers+1, (n+inlineFanout-1)/inlineFanout)
	}
	if chunks == 1 {
		t.writeRange(list, h, payload, auStart, &t.scratch)
		return
	}
	per := (n + chunks - 1) / chunks
	t.fanWG.Add(chunks - 1)
	for i := 1; i < chunks; i++ {
		lo, hi := i*per, min((i+1)*per, n)
		t.engine.fan.jobs <- fanJob{track: t, list: list[lo:hi], h: h, payload: payload, auStart: auStart, wg: &t.fanWG}
	}
	t.writeRange(list[:per], h, payload, auStart, &t.scratch)
	t.fanWG.Wait()
}

func (t *Track) writeRange(list []*DownTrack, h *rtp.Header, payload []byte, auStart bool, sc *scratch) {
	var pkts, bytes uint64
	for _, d := range list {
		if b := d.onPacket(t, h, payload, auStart, sc); b > 0 {
			pkts++
			bytes += uint64(b)
		}
	}
	sc.flush()
	t.engine.stats.packetsForwarded.Add(pkts)
	t.engine.stats.bytesForwarded.Add(bytes)
}

// Replay budgets: per forwarder round, at most replayRoundBudget cached
// packets are replayed in all, and at most replayViewerBudget to one viewer,
// round-robin. A round follows each batch of live packets (or replayTick),
// so live viewers wait at most one budget's worth of writes (~0.5 ms here)
// however many join, and a joiner still gets a 100-packet keyframe in a few
// milliseconds when it is alone.
const (
	replayRoundBudget  = 64
	replayViewerBudget = 16
)

// addReplaying registers d for replay rounds.
func (t *Track) addReplaying(d *DownTrack) {
	t.repMu.Lock()
	t.replaying = append(t.replaying, d)
	t.repMu.Unlock()
}

// replayRound gives starting viewers the next packets of the cached picture
// and reports whether any replay is still unfinished.
func (t *Track) replayRound() bool {
	t.repMu.Lock()
	list := t.replaying
	t.repMu.Unlock()
	if len(list) == 0 || t.muted.Load() {
		return false // muted: joiners wait for the unmute's keyframe (mute.go)
	}
	if h := t.engine.fwdHook; h != nil {
		h() // tests starve the replay rounds too (lag_test.go)
	}
	t.fwdAt = monoNow()
	budget := replayRoundBudget
	finished := 0
	n := len(list)
	start := t.rrNext % n
	var pkts, bytes uint64
	i := 0
	for ; i < n && budget > 0; i++ {
		d := list[(start+i)%n]
		sent, b, done := d.replayMore(t, min(budget, replayViewerBudget), &t.scratch)
		budget -= max(sent, 1)
		pkts += uint64(sent)
		bytes += uint64(b)
		if done {
			finished++
		}
	}
	t.rrNext = start + i
	t.scratch.flush()
	t.engine.stats.packetsForwarded.Add(pkts)
	t.engine.stats.bytesForwarded.Add(bytes)
	if finished > 0 {
		t.repMu.Lock()
		keep := t.replaying[:0]
		for _, d := range t.replaying {
			if d.isReplaying(t) {
				keep = append(keep, d)
			}
		}
		clear(t.replaying[len(keep):])
		t.replaying = keep
		t.repMu.Unlock()
	}
	t.repMu.Lock()
	more := len(t.replaying) > 0
	t.repMu.Unlock()
	return more
}

// endReplays forgets unfinished replays when the track ends; their viewers
// wait for a new source.
func (t *Track) endReplays() {
	t.repMu.Lock()
	list := t.replaying
	t.replaying = nil
	t.repMu.Unlock()
	for _, d := range list {
		d.abandonReplay(t)
	}
}

func (t *Track) finish() {
	t.onceDone.Do(func() {
		if t.group != nil {
			t.group.ended(t)
		}
		close(t.done)
		if !t.extra {
			t.engine.stats.tracks.Add(-1)
		}
		if t.relay {
			t.engine.stats.relayTracksIn.Add(-1)
		}
	})
}
