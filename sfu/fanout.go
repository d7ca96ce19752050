package sfu

import (
	"sync"

	"github.com/pion/rtp"
)

// fanout is the engine's pool of writers. A track with many viewers splits its
// down-track list into chunks and hands all but one to the pool, so one
// popular broadcast uses every core: SRTP encryption and the send system call
// per viewer are the cost, and they are independent per viewer.
type fanout struct {
	workers int
	jobs    chan fanJob
	wg      sync.WaitGroup
}

type fanJob struct {
	track   *Track
	list    []*DownTrack
	h       *rtp.Header
	payload []byte
	auStart bool
	wg      *sync.WaitGroup
}

// scratch is the per-writer memory for replaying cached packets, so the
// packet path does not allocate.
type scratch struct {
	buf   [maxCachedPacket]byte
	hdr   rtp.Header
	batch *sendBatch // the lean path's sends of this writer's round (lean.go), made on first use
}

// sendBatch returns the writer's batch.
func (sc *scratch) sendBatch(e *Engine) *sendBatch {
	if sc.batch == nil {
		sc.batch = newSendBatch(&e.stats)
	}
	return sc.batch
}

// flush sends what the writer's round queued.
func (sc *scratch) flush() {
	if sc.batch != nil {
		sc.batch.flush()
	}
}

func newFanout(workers int) *fanout {
	f := &fanout{workers: workers, jobs: make(chan fanJob, workers*4)}
	f.wg.Add(workers)
	for range workers {
		go f.run()
	}
	return f
}

func (f *fanout) run() {
	defer f.wg.Done()
	var sc scratch
	for j := range f.jobs {
		j.track.writeRange(j.list, j.h, j.payload, j.auStart, &sc)
		j.wg.Done()
	}
}

// close stops the workers once every queued job is done. No track may forward
// after close.
func (f *fanout) close() {
	close(f.jobs)
	f.wg.Wait()
}
