package record

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// item is one object to upload: a spooled file (segment or init segment)
// or a playlist rendered when its turn comes (so it lists what was
// uploaded before it).
type item struct {
	rec   *recording
	key   string
	ctype string
	file  string // the spool file; "" for a playlist
	size  int64
	// seg is the segment this item is (it may be dropped); nil otherwise.
	seg    *segment
	render func() ([]byte, error)
	// last: the recording's final playlist; after it the recording's
	// spool directory is removed.
	last bool
}

// queue is the spool: the objects not uploaded yet, uploaded one at a
// time in the order they were made, each retried with back-off until the
// store takes it. It holds at most max bytes of files: past it the oldest
// segment waiting is dropped.
type queue struct {
	st       *store
	log      *slog.Logger
	max      int64
	retryMax time.Duration

	mu    sync.Mutex
	items []*item
	busy  *item // items[0] while it uploads
	size  int64 // bytes of the files of items

	wake chan struct{}
	// idle is closed and replaced when the queue empties.
	idle chan struct{}

	spoolBytes atomic.Int64
	dropped    atomic.Uint64
	uploaded   atomic.Uint64
	failures   atomic.Uint64
}

func newQueue(st *store, max int64, retryMax time.Duration, log *slog.Logger) *queue {
	return &queue{st: st, log: log, max: max, retryMax: retryMax, wake: make(chan struct{}, 1), idle: make(chan struct{})}
}

// push adds it at the end. A playlist replaces the same playlist still
// waiting (the later lists more). A file over the bound drops the oldest
// segments waiting, or it itself when nothing older can go.
func (q *queue) push(it *item) {
	q.mu.Lock()
	if it.file == "" {
		for i, x := range q.items {
			if x != q.busy && x.key == it.key && x.file == "" {
				q.items = append(q.items[:i], q.items[i+1:]...)
				break
			}
		}
	}
	for it.file != "" && q.size+it.size > q.max {
		i := q.oldestSegmentLocked()
		if i < 0 {
			if it.seg != nil {
				q.dropLocked(it)
				q.mu.Unlock()
				return
			}
			break // an init segment goes in over the bound: without it nothing plays
		}
		x := q.items[i]
		q.items = append(q.items[:i], q.items[i+1:]...)
		q.size -= x.size
		q.dropLocked(x)
	}
	q.items = append(q.items, it)
	q.size += it.size
	q.spoolBytes.Store(q.size)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) oldestSegmentLocked() int {
	for i, x := range q.items {
		if x != q.busy && x.seg != nil {
			return i
		}
	}
	return -1
}

// dropLocked forgets a segment that will never be uploaded.
func (q *queue) dropLocked(x *item) {
	_ = os.Remove(x.file)
	q.dropped.Add(1)
	x.rec.segmentDropped(x.seg)
	q.log.Warn("recording: spool full, segment dropped (halo_recording_segments_dropped_total)",
		"room", x.rec.info.Room, "recording", x.rec.info.ID, "key", x.key, "spool_bytes", q.size)
}

// wait returns a channel closed once the queue is empty.
func (q *queue) waitIdle() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return q.idle
}

// pending counts the items not uploaded.
func (q *queue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// run uploads until ctx ends.
func (q *queue) run(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for {
		q.mu.Lock()
		var it *item
		if len(q.items) > 0 {
			it = q.items[0]
			q.busy = it
		}
		q.mu.Unlock()
		if it == nil {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		err := q.upload(ctx, it)
		if err == nil {
			q.done(it)
			backoff = 200 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			q.mu.Lock()
			q.busy = nil
			q.mu.Unlock()
			return
		}
		if q.failures.Add(1) == 1 || backoff >= q.retryMax {
			q.log.Warn("recording: upload failed, retrying (the spool keeps it)", "key", it.key, "err", err, "retry_in", backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			q.mu.Lock()
			q.busy = nil
			q.mu.Unlock()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, q.retryMax)
	}
}

// upload puts one item.
func (q *queue) upload(ctx context.Context, it *item) error {
	if it.render != nil {
		b, err := it.render()
		if err != nil {
			q.log.Error("recording: cannot write a playlist; skipped", "key", it.key, "err", err)
			return nil
		}
		return q.st.put(ctx, it.key, bytes.NewReader(b), int64(len(b)), it.ctype)
	}
	f, err := os.Open(it.file)
	if err != nil {
		q.log.Error("recording: spooled file lost; skipped", "key", it.key, "err", err)
		return nil
	}
	defer f.Close()
	return q.st.put(ctx, it.key, io.Reader(f), it.size, it.ctype)
}

// done forgets an uploaded item.
func (q *queue) done(it *item) {
	if it.file != "" {
		_ = os.Remove(it.file)
	}
	if it.seg != nil {
		it.rec.segmentUploaded(it.seg)
	}
	if it.last {
		_ = os.Remove(it.rec.dir)
	}
	q.uploaded.Add(1)
	q.mu.Lock()
	q.items = q.items[1:]
	q.busy = nil
	q.size -= it.size
	q.spoolBytes.Store(q.size)
	if len(q.items) == 0 {
		close(q.idle)
		q.idle = make(chan struct{})
	}
	q.mu.Unlock()
}
