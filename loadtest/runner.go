package loadtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// RunConfig configures Run.
type RunConfig struct {
	URL, Room string
	// PublisherToken and ViewerToken are used as given when TokenFunc is nil.
	PublisherToken, ViewerToken string
	// TokenFunc, when set, mints a token per participant (see TokenMinter);
	// identities are "loadtest-publisher" and "loadtest-viewer-<n>".
	TokenFunc func(identity string, publish bool) (string, error)
	// Viewers is the number of viewers to start.
	Viewers int
	// Duration is how long the run holds once the last viewer was started;
	// default 30s. The ramp comes on top of it.
	Duration time.Duration
	// RampRate is the number of viewers started per second; default 50.
	RampRate float64
	// Publisher configures the one publisher; URL, Room and Token default
	// to the run's.
	Publisher PublisherConfig
	// MediaTimeout bounds the publisher's Start and, per viewer, the time
	// from its start until every track delivered media; default 10s. A viewer
	// that misses it counts as failed.
	MediaTimeout time.Duration
	// Progress, when set, is called every ProgressInterval (default 1s) on
	// Run's goroutine with live figures.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

// Progress is a live snapshot of a run.
type Progress struct {
	Elapsed                                         time.Duration
	ViewersStarted, ViewersConnected, ViewersFailed int
	// PacketsPerSecond is the rate received by all viewers over the last
	// interval.
	PacketsPerSecond float64
	// LossPercent is the cumulative loss seen by viewers.
	LossPercent float64
}

// Report is the result of a run.
type Report struct {
	Elapsed time.Duration
	// ViewersRequested were asked for, ViewersStarted joined, ViewersConnected
	// received media on every track, ViewersFailed did not (or did not join).
	ViewersRequested, ViewersStarted, ViewersConnected, ViewersFailed int
	// Received by all viewers.
	Packets, VideoPackets, AudioPackets, Bytes, Lost uint64
	LossPercent                                      float64
	Frames, Keyframes                                uint64
	// KeyframeFirst is the number of viewers whose first video frame was a
	// keyframe.
	KeyframeFirst int
	// Time from a viewer's ICE connected to its first keyframe, across the
	// viewers that got one.
	FirstKeyframeP50, FirstKeyframeP95, FirstKeyframeMax time.Duration
	// One-way video latency across all viewers' frames.
	LatencyP50, LatencyP95, LatencyP99, LatencyMax time.Duration
	// Publisher is what the publisher sent.
	Publisher PublisherStats
	// Errors holds the first viewer errors (at most 10).
	Errors []string
}

// Check returns an error when a viewer failed to receive media or the loss
// reached maxLossPercent.
func (r Report) Check(maxLossPercent float64) error {
	var errs []error
	if r.ViewersFailed > 0 {
		errs = append(errs, fmt.Errorf("%d of %d viewers failed to receive media", r.ViewersFailed, r.ViewersRequested))
	}
	if r.LossPercent >= maxLossPercent {
		errs = append(errs, fmt.Errorf("loss %.3f%% >= %.3f%%", r.LossPercent, maxLossPercent))
	}
	return errors.Join(errs...)
}

func (c RunConfig) withDefaults() RunConfig {
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.RampRate <= 0 {
		c.RampRate = 50
	}
	if c.MediaTimeout <= 0 {
		c.MediaTimeout = 10 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	if c.Publisher.URL == "" {
		c.Publisher.URL = c.URL
	}
	if c.Publisher.Room == "" {
		c.Publisher.Room = c.Room
	}
	return c
}

func (c RunConfig) token(identity string, publish bool) (string, error) {
	if c.TokenFunc != nil {
		return c.TokenFunc(identity, publish)
	}
	if publish {
		return c.PublisherToken, nil
	}
	return c.ViewerToken, nil
}

// viewer states in a run
const (
	statePending int32 = iota
	stateStarted
	stateConnected
	stateFailed
)

type runViewer struct {
	v     *Viewer
	state atomic.Int32
	err   error // set before state becomes stateFailed
}

// run is the state of one Run call.
type run struct {
	cfg      RunConfig
	expected int // tracks each viewer must receive

	mu      sync.Mutex
	viewers []*runViewer
	wg      sync.WaitGroup

	lastPackets uint64
	lastAt      time.Time
}

// Run starts one publisher and then cfg.Viewers viewers at cfg.RampRate per
// second, holds for cfg.Duration, closes everyone and reports. It returns an
// error when the publisher cannot start; when ctx ends early it returns the
// report so far with ctx's error.
func Run(ctx context.Context, cfg RunConfig) (Report, error) {
	cfg = cfg.withDefaults()
	if cfg.URL == "" {
		return Report{}, errors.New("loadtest: RunConfig.URL is empty")
	}
	if cfg.Viewers < 0 {
		return Report{}, fmt.Errorf("loadtest: RunConfig.Viewers is %d", cfg.Viewers)
	}
	pcfg := cfg.Publisher
	if pcfg.Token == "" {
		tok, err := cfg.token("loadtest-publisher", true)
		if err != nil {
			return Report{}, fmt.Errorf("loadtest: publisher token: %w", err)
		}
		pcfg.Token = tok
		if cfg.TokenFunc != nil && pcfg.TokenSource == nil {
			pcfg.TokenSource = func() (string, error) { return cfg.TokenFunc("loadtest-publisher", true) }
		}
	}
	eff := pcfg.withDefaults()
	r := &run{cfg: cfg, expected: eff.VideoTracks}
	if !eff.NoAudio {
		r.expected++
	}

	pub := NewPublisher(pcfg)
	startCtx, cancel := context.WithTimeout(ctx, cfg.MediaTimeout)
	err := pub.Start(startCtx)
	cancel()
	if err != nil {
		return Report{}, fmt.Errorf("publisher: %w", err)
	}
	defer pub.Close()

	begin := time.Now()
	r.lastAt = begin
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	err = r.drive(runCtx, begin)
	stop()
	r.wg.Wait()

	rep := r.report(pub)
	rep.Elapsed = time.Since(begin)
	r.closeViewers()
	return rep, err
}

// drive ramps the viewers up, then holds, reporting progress; it returns
// ctx's error if ctx ends first.
func (r *run) drive(ctx context.Context, begin time.Time) error {
	progress := time.NewTicker(r.cfg.ProgressInterval)
	defer progress.Stop()
	ramp := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.RampRate))
	defer ramp.Stop()
	for i := 0; i < r.cfg.Viewers; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-progress.C:
			r.progress(begin)
		case <-ramp.C:
			r.launch(ctx, i)
			i++
		}
	}
	ramp.Stop()
	hold := time.NewTimer(r.cfg.Duration)
	defer hold.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-progress.C:
			r.progress(begin)
		case <-hold.C:
			r.progress(begin)
			return nil
		}
	}
}

// launch starts viewer i on its own goroutine, which ends once the viewer
// has media on every track, has failed, or ctx ended. The viewer itself stays
// open until closeViewers.
func (r *run) launch(ctx context.Context, i int) {
	rv := &runViewer{}
	r.mu.Lock()
	r.viewers = append(r.viewers, rv)
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		identity := fmt.Sprintf("loadtest-viewer-%d", i)
		tok, err := r.cfg.token(identity, false)
		if err != nil {
			rv.fail(fmt.Errorf("token: %w", err))
			return
		}
		vcfg := ViewerConfig{URL: r.cfg.URL, Room: r.cfg.Room, Token: tok, Name: identity}
		if r.cfg.TokenFunc != nil {
			// Minted tokens are minted again when the server asks.
			vcfg.TokenSource = func() (string, error) { return r.cfg.TokenFunc(identity, false) }
		}
		v := NewViewer(vcfg)
		r.mu.Lock()
		rv.v = v
		r.mu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, r.cfg.MediaTimeout)
		defer cancel()
		if err := v.Start(wctx); err != nil {
			rv.fail(err)
			return
		}
		rv.state.Store(stateStarted)
		if err := v.WaitTracks(wctx, r.expected); err != nil {
			if ctx.Err() == nil { // a timeout, not the end of the run
				rv.fail(err)
			}
			return
		}
		rv.state.Store(stateConnected)
	}()
}

func (rv *runViewer) fail(err error) {
	rv.err = err
	rv.state.Store(stateFailed)
}

// snapshot returns the viewers launched so far.
func (r *run) snapshot() []*runViewer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.viewers)
}

func (r *run) viewerOf(rv *runViewer) *Viewer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return rv.v
}

func (r *run) progress(begin time.Time) {
	if r.cfg.Progress == nil {
		return
	}
	var p Progress
	var packets, lost uint64
	for _, rv := range r.snapshot() {
		switch rv.state.Load() {
		case stateStarted:
			p.ViewersStarted++
		case stateConnected:
			p.ViewersStarted++
			p.ViewersConnected++
		case stateFailed:
			p.ViewersFailed++
		}
		if v := r.viewerOf(rv); v != nil {
			packets += v.videoPackets.Load() + v.audioPackets.Load()
			lost += uint64(max(v.lost.Load(), 0))
		}
	}
	now := time.Now()
	p.Elapsed = now.Sub(begin)
	if dt := now.Sub(r.lastAt).Seconds(); dt > 0 && packets >= r.lastPackets {
		p.PacketsPerSecond = float64(packets-r.lastPackets) / dt
	}
	r.lastPackets, r.lastAt = packets, now
	p.LossPercent = lossPercent(lost, packets)
	r.cfg.Progress(p)
}

func lossPercent(lost, received uint64) float64 {
	if lost+received == 0 {
		return 0
	}
	return 100 * float64(lost) / float64(lost+received)
}

// report gathers the viewers' figures; the launch goroutines have ended.
func (r *run) report(pub *Publisher) Report {
	rep := Report{ViewersRequested: r.cfg.Viewers, Publisher: pub.Stats()}
	var latency histogram
	var firstKey []time.Duration
	for _, rv := range r.viewers {
		if rv.state.Load() == stateFailed {
			rep.ViewersFailed++
			if len(rep.Errors) < 10 {
				rep.Errors = append(rep.Errors, rv.err.Error())
			}
			continue
		}
		if rv.v == nil || rv.state.Load() == statePending {
			rep.ViewersFailed++ // cancelled before it joined
			continue
		}
		rep.ViewersStarted++
		s := rv.v.Stats()
		if s.Tracks >= r.expected {
			rep.ViewersConnected++
		} else {
			rep.ViewersFailed++
			if len(rep.Errors) < 10 {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%d of %d tracks delivered media", s.Tracks, r.expected))
			}
		}
		rep.VideoPackets += s.VideoPackets
		rep.AudioPackets += s.AudioPackets
		rep.Bytes += s.Bytes
		rep.Lost += s.Lost
		rep.Frames += s.Frames
		rep.Keyframes += s.Keyframes
		if s.FirstVideoIsKeyframe {
			rep.KeyframeFirst++
		}
		if s.Keyframes > 0 {
			firstKey = append(firstKey, s.FirstKeyframeAfter)
		}
		latency.merge(&rv.v.latency)
	}
	// Viewers never launched (the run was cut short) failed too.
	rep.ViewersFailed += r.cfg.Viewers - len(r.viewers)
	rep.Packets = rep.VideoPackets + rep.AudioPackets
	rep.LossPercent = lossPercent(rep.Lost, rep.Packets)
	rep.LatencyP50 = latency.quantile(0.50)
	rep.LatencyP95 = latency.quantile(0.95)
	rep.LatencyP99 = latency.quantile(0.99)
	rep.LatencyMax = latency.maxDuration()
	if len(firstKey) > 0 {
		slices.Sort(firstKey)
		rep.FirstKeyframeP50 = percentile(firstKey, 0.50)
		rep.FirstKeyframeP95 = percentile(firstKey, 0.95)
		rep.FirstKeyframeMax = firstKey[len(firstKey)-1]
	}
	return rep
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// closeViewers closes every viewer, 32 at a time.
func (r *run) closeViewers() {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, rv := range r.viewers {
		if rv.v == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = rv.v.Close()
		}()
	}
	wg.Wait()
}
