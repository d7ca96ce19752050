package main

import (
	"context"
	"sync"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// partitionResult is what a region's viewers measured around a partition.
type partitionResult struct {
	// GapMax is, per viewer, the longest time without a new video packet in
	// the window (a gap still open at its end counts).
	GapMax []time.Duration `json:"gap_max,omitempty"`
	// Recover is, per viewer, the time from the heal to its first video
	// packet after it; -1: none came before the end of the window.
	Recover []time.Duration `json:"recover,omitempty"`
	// During is a new viewer joining halfway through the partition, After
	// one joining at the heal: time from its start to its first media of
	// both tracks, or why it got none before the end of the window.
	DuringTTFF, AfterTTFF time.Duration
	DuringErr, AfterErr   string `json:",omitempty"`
}

// pollEvery is how often the gap tracker reads the viewers' counters: the
// resolution of the gaps and recoveries it reports.
const pollEvery = 20 * time.Millisecond

// partitionWatch measures a region's viewers around a partition: their
// gaps, their recovery after the heal, and two more viewers joining during
// and after it. Its goroutines end by the end of the window (or ctx).
type partitionWatch struct {
	wg  sync.WaitGroup
	res partitionResult
}

// start begins measuring viewers for window w (with a partition).
func (p *partitionWatch) start(ctx context.Context, s childSpec, w window, viewers []*loadtest.Viewer) {
	from := time.Unix(0, w.T0+int64(s.Delay))
	to := time.Unix(0, w.T1+int64(s.Delay))
	heal := time.Unix(0, w.Heal)
	p.wg.Add(3)
	go func() {
		defer p.wg.Done()
		p.res.GapMax, p.res.Recover = trackGaps(ctx, viewers, from, heal, to)
	}()
	go func() {
		defer p.wg.Done()
		sleepUntil(w.Cut + (w.Heal-w.Cut)/2)
		d, err := joinOne(ctx, s, s.Region+"-viewer-during-partition", to)
		p.res.DuringTTFF, p.res.DuringErr = d[1], errString(err)
	}()
	go func() {
		defer p.wg.Done()
		sleepUntil(w.Heal)
		d, err := joinOne(ctx, s, s.Region+"-viewer-after-heal", to)
		p.res.AfterTTFF, p.res.AfterErr = d[1], errString(err)
	}()
}

// wait returns the result once every measurement ended (zero without a
// partition).
func (p *partitionWatch) wait() partitionResult {
	p.wg.Wait()
	return p.res
}

// trackGaps polls the viewers' video packet counts from from to to and
// returns each one's longest gap and its time from heal to video again.
func trackGaps(ctx context.Context, viewers []*loadtest.Viewer, from, heal, to time.Time) (gaps, recovers []time.Duration) {
	n := len(viewers)
	gaps, recovers = make([]time.Duration, n), make([]time.Duration, n)
	last, lastAt := make([]uint64, n), make([]time.Time, n)
	atHeal := make([]uint64, n)
	healed := false
	sleepUntil(from.UnixNano())
	for i, v := range viewers {
		last[i], lastAt[i], recovers[i] = v.Stats().VideoPackets, from, -1
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for now := time.Now(); now.Before(to); {
		select {
		case now = <-tick.C:
		case <-ctx.Done():
			return gaps, recovers
		}
		if !healed && !now.Before(heal) {
			healed = true
			for i, v := range viewers {
				atHeal[i] = v.Stats().VideoPackets
			}
		}
		for i, v := range viewers {
			c := v.Stats().VideoPackets
			if c != last[i] {
				gaps[i] = max(gaps[i], now.Sub(lastAt[i]))
				last[i], lastAt[i] = c, now
			}
			if healed && recovers[i] < 0 && c > atHeal[i] {
				recovers[i] = now.Sub(heal)
			}
		}
	}
	for i := range viewers {
		gaps[i] = max(gaps[i], to.Sub(lastAt[i]))
	}
	return gaps, recovers
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
