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
}

// inlineFanout is how many down-tracks one writer takes before the list is
// split over the engine's fan-out workers. Writing in parallel costs about a
// quarter more CPU per packet (the writers contend on the shared socket; see
// BenchmarkForward), so it is kept for lists one core cannot serve: 256
// viewers take ~1.2 ms per packet on one core here.
const inlineFanout = 256

// Track is one published track: the single reader of the publisher's RTP,
// the packet cache shared by all its viewers, and the list of down-tracks.
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
	downs atomic.Pointer[[]*DownTrack] // copy-on-write: the reader loads without locking

	// Reader-owned state. Fan-out workers read it too, but only while the
	// reader waits for them, which orders their reads after its writes.
	kfSeq   uint16
	kfValid bool
	scratch scratch
	fanWG   sync.WaitGroup

	done     chan struct{}
	onceDone sync.Once
}

func newTrack(e *Engine, remote *webrtc.TrackRemote, info TrackInfo, requestKeyframe func(uint32)) *Track {
	t := newTrackFor(e, info, remote.Codec().RTPCodecCapability, uint32(remote.SSRC()), requestKeyframe)
	t.remote = remote
	return t
}

// newTrackFor builds a track without its Pion receiver (benchmarks feed it
// packets directly).
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
	t.engine.stats.downTracks.Add(1)
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
		t.engine.stats.downTracks.Add(-1)
	}
	t.downs.Store(&next)
}

// readLoop is the track's one reader: it reads each packet once and hands
// it to ingest. It returns when the publisher's track ends.
func (t *Track) readLoop() {
	defer t.finish()
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

// ingest stores a packet from the publisher in the shared cache, notes where
// the latest keyframe begins, and forwards it to every down-track. h is the
// reader's scratch header; pkt may be reused once ingest returns.
func (t *Track) ingest(pkt []byte, h *rtp.Header) {
	hl, err := h.Unmarshal(pkt)
	if err != nil {
		return
	}
	payload, ok := trimPadding(h, pkt, hl)
	if !ok {
		return
	}
	seq := h.SequenceNumber
	t.cache.put(seq, pkt)
	if t.isVideo() {
		if isKeyframeStart(t.mime, payload) && (!t.kfValid || int16(seq-t.kfSeq) > 0) {
			// A late retransmission of an older keyframe does not move the
			// start of the current picture back.
			t.kfSeq, t.kfValid = seq, true
		} else if t.kfValid && int(seq-t.kfSeq) >= t.cache.size()-1 && int16(seq-t.kfSeq) > 0 {
			// The picture since the keyframe no longer fits the cache:
			// a late joiner must wait for a fresh keyframe instead.
			t.kfValid = false
		}
	}
	t.forward(h, payload)
}

// forward writes one packet to every down-track, spreading a long list over
// the engine's workers. It returns when every down-track has been written, so
// buf may be reused for the next read.
func (t *Track) forward(h *rtp.Header, payload []byte) {
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
		t.writeRange(list, h, payload, &t.scratch)
		return
	}
	per := (n + chunks - 1) / chunks
	t.fanWG.Add(chunks - 1)
	for i := 1; i < chunks; i++ {
		lo, hi := i*per, min((i+1)*per, n)
		t.engine.fan.jobs <- fanJob{track: t, list: list[lo:hi], h: h, payload: payload, wg: &t.fanWG}
	}
	t.writeRange(list[:per], h, payload, &t.scratch)
	t.fanWG.Wait()
}

func (t *Track) writeRange(list []*DownTrack, h *rtp.Header, payload []byte, sc *scratch) {
	var pkts, bytes uint64
	for _, d := range list {
		if b := d.forward(h, payload, sc); b > 0 {
			pkts++
			bytes += uint64(b)
		}
	}
	t.engine.stats.packetsForwarded.Add(pkts)
	t.engine.stats.bytesForwarded.Add(bytes)
}

func (t *Track) finish() {
	t.onceDone.Do(func() {
		close(t.done)
		t.engine.stats.tracks.Add(-1)
	})
}
