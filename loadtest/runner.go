package loadtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// RunConfig configures Run.
type RunConfig struct {
	Target Target
	// Scenario is what to run. Shorthand: when it has neither Rooms nor
	// Social, one room (Room, default "demo") with one publisher
	// (Publisher) and Viewers viewers at RampRate per second, held for
	// Duration.
	Scenario  Scenario
	Room      string
	Viewers   int
	RampRate  float64
	Duration  time.Duration
	Publisher PublisherConfig
	// Shard runs one slice of the scenario (see Plan.Slice).
	Shard Shard
	// TokenFunc mints a token per participant (see RoomTokenMinter);
	// without it everyone uses Token.
	TokenFunc func(identity, room string, publish bool) (string, error)
	Token     string
	// MediaTimeout bounds a publisher's start and, per viewer, the time
	// from its start until every track delivered media; default 10s. A
	// viewer that misses it counts as failed (code no_media).
	MediaTimeout time.Duration
	// PionViewers makes the viewers ordinary Pion PeerConnections instead
	// of lean ones (ViewerConfig.Lean), e.g. to compare their cost.
	PionViewers bool
	// ViewerLinkKbps puts each lean viewer behind a link of this rate
	// (ViewerConfig.LinkKbps): starved viewers, to see what a server and
	// the report make of them. 0: none.
	ViewerLinkKbps int
	// ICE and ICETLS: ViewerConfig.ICE and ICETLS of every viewer.
	ICE    ICEMode
	ICETLS *tls.Config
	// Server, when set, is measured: CPU, RSS, packets forwarded.
	Server ServerProbe
	// Progress, when set, is called every ProgressInterval (default 1s) on
	// Run's goroutine with live figures.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

// Progress is a live snapshot of a run.
type Progress struct {
	Elapsed, Length                    time.Duration
	Planned, Connected, Failed, Joined int
	// PacketsPerSecond and Kbps are received by all viewers over the last
	// interval.
	PacketsPerSecond, Kbps float64
	// LossLastPercent is the loss after repair over the last interval,
	// LossSoFarPercent over the whole run so far.
	LossLastPercent, LossSoFarPercent float64
	// LoadTesterCPUPercent is this process's CPU over the last interval, in
	// percent of one core.
	LoadTesterCPUPercent float64
}

func (c RunConfig) withDefaults() RunConfig {
	if c.MediaTimeout <= 0 {
		c.MediaTimeout = 10 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	return c
}

// plan returns the plan of the scenario (or the shorthand) for the shard.
func (c RunConfig) plan() Plan {
	s := c.Scenario
	if len(s.Rooms) == 0 && s.Social == nil {
		if c.Room != "" {
			s.RoomPrefix = c.Room
		} else if s.RoomPrefix == "" {
			s.RoomPrefix = "demo"
		}
		if c.RampRate > 0 {
			s.Ramp = c.RampRate
		}
		if c.Duration > 0 {
			s.Duration = Duration(c.Duration)
		}
		pc := c.Publisher.withDefaults()
		tracks := pc.VideoTracks
		audio := !pc.NoAudio
		s.Publisher = s.Publisher.merged(&MediaSpec{
			VideoKbps: pc.VideoBitrate / 1000, FPS: pc.FPS,
			KeyframeInterval: Duration(pc.KeyframeInterval), VideoTracks: &tracks, Audio: &audio,
			Simulcast: pc.Simulcast, Codec: pc.Codec,
		})
		s.Rooms = []RoomGroup{{Count: 1, Publishers: 1, Viewers: c.Viewers}}
	}
	return s.Plan().Slice(c.Shard)
}

func (c RunConfig) token(identity, room string, publish bool) (string, error) {
	if c.TokenFunc != nil {
		return c.TokenFunc(identity, room, publish)
	}
	return c.Token, nil
}

// viewer states in a run
const (
	statePending int32 = iota
	stateStarted
	stateConnected
	stateFailed
	stateLeft
)

type runViewer struct {
	plan   PlannedViewer
	tracks int // tracks it must receive
	state  atomic.Int32
	v      atomic.Pointer[Viewer]
	// leaveDue is set when its leave time came while it was still joining:
	// it leaves as soon as it is connected.
	leaveDue atomic.Bool
	startAt  time.Duration // since begin, set before state leaves pending

	mu      sync.Mutex
	err     error         // set before state becomes stateFailed
	final   *ViewerStats  // stats when it left, or at the end of the hold
	leftAt  time.Duration // since begin
	counted ViewerStats   // packet counts after the drain (end of run)
	// framesAtJoin and framesAtLeave are the frames its room's publishers
	// had sent (framesSent) when it had media on every track and when it
	// left; framesGotAtJoin and framesReceived the frames sent after it
	// joined that it had received then (its latency count).
	framesAtJoin, framesAtLeave     uint64
	framesGotAtJoin, framesReceived uint64
	// framesJoinAt and framesLeaveAt are when those counts were taken.
	framesJoinAt, framesLeaveAt time.Time
}

func (rv *runViewer) fail(err error) {
	rv.mu.Lock()
	rv.err = err
	rv.mu.Unlock()
	rv.state.Store(stateFailed)
}

// run is the state of one Run call.
type run struct {
	cfg   RunConfig
	plan  Plan
	begin time.Time

	viewers    []*runViewer
	publishers []*Publisher
	byRoom     map[string][]*Publisher // set once the publishers started
	pubErrs    []error
	wg         sync.WaitGroup // launch and leave goroutines

	chats, reactions atomic.Uint64

	// last is the counters at the last sample, before at the one before
	// it: a sample that ends a short interval (the end of the run just
	// after a tick) measures its rates from before instead.
	last, before counts
	timeline     []Sample
}

// counts are the run's counters at one sample.
type counts struct {
	at             time.Time
	packets, bytes uint64
	lost, lostRaw  uint64
	cpu            cpuSample
}

// Run executes the scenario of cfg: it starts the shard's publishers, then
// its viewers on the plan's clock (ramp, arrivals, churn departures), sends
// chat and reactions, and at the end stops the publishers, waits for the
// last packets, closes everyone and reports. Failures of participants are
// counted in the report, not returned: Run returns an error only for a
// configuration it cannot run, and ctx's error (with the report so far)
// when ctx ends early.
func Run(ctx context.Context, cfg RunConfig) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Target.validate(); err != nil {
		return nil, err
	}
	if cfg.Viewers < 0 {
		return nil, fmt.Errorf("loadtest: RunConfig.Viewers is %d", cfg.Viewers)
	}
	if err := cfg.Scenario.Validate(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, plan: cfg.plan()}
	if len(r.plan.Publishers) == 0 && len(r.plan.Viewers) == 0 {
		return nil, errNoParticipants
	}
	for _, pv := range r.plan.Viewers {
		room := r.plan.room(pv.Room)
		tracks := room.VideoTracks + room.AudioTracks
		if cfg.Target.Kind() == "whip-whep" {
			tracks = min(room.VideoTracks, 1) + min(room.AudioTracks, 1)
		}
		r.viewers = append(r.viewers, &runViewer{plan: pv, tracks: tracks})
	}

	rep := &Report{
		Schema: ReportSchema, Scenario: r.plan.Scenario, Target: cfg.Target.Kind(),
		URL: cfg.Target.URL, StartedAt: time.Now().UTC(),
	}
	if rep.URL == "" {
		rep.URL = cfg.Target.WHEP
	}
	if sh := cfg.Shard.String(); sh != "" {
		rep.Shards = []string{sh}
	}

	cpu0, machine0, sched0 := selfCPU(), readMachineCPU(), readSchedLatency()
	r.startPublishers(ctx)
	r.byRoom = map[string][]*Publisher{}
	for _, p := range r.publishers {
		r.byRoom[p.cfg.Room] = append(r.byRoom[p.cfg.Room], p)
	}
	// Baselines for the per-viewer figures: with the publishers in place
	// (their tracks and caches are not the viewers'), before any viewer.
	goroutines0, rss0 := runtime.NumGoroutine(), selfRSSKiB()
	var srv0 serverSample
	var srvErrs []string
	if cfg.Server.enabled() {
		var err error
		if srv0, err = cfg.Server.sample(ctx); err != nil {
			srvErrs = append(srvErrs, "baseline: "+err.Error())
		}
	}
	r.begin = time.Now()
	r.last.at, r.last.cpu = r.begin, selfCPU()
	runErr := r.drive(ctx)
	r.wg.Wait() // launches ended (they are bounded by MediaTimeout)

	// The audience is in place: freeze the viewers' measures, and sample the
	// server's memory with it.
	r.freezeMeasures()
	var srvAud serverSample
	audience := r.connectedNow()
	goroutines1, rss1 := runtime.NumGoroutine(), selfRSSKiB()
	if cfg.Server.enabled() {
		var err error
		if srvAud, err = cfg.Server.sample(context.Background()); err != nil {
			srvErrs = append(srvErrs, "with audience: "+err.Error())
		}
	}
	for _, p := range r.publishers {
		_ = p.Close()
	}
	r.drain()
	elapsed := time.Since(r.begin)
	var srv1 serverSample
	if cfg.Server.enabled() {
		var err error
		if srv1, err = cfg.Server.sample(context.Background()); err != nil {
			srvErrs = append(srvErrs, "end: "+err.Error())
		}
	}
	cpu1, machine1, sched1 := selfCPU(), readMachineCPU(), readSchedLatency()
	r.closeViewers()

	rep.ElapsedMS = msOf(elapsed)
	rep.Interrupted = runErr != nil
	r.fill(rep)
	rep.aggregate()
	rep.LoadTester = loadTesterCost(cpu0, cpu1, machine0, machine1, rep.Received.Packets)
	rep.LoadTester.SchedLatencyP99MS = sched1.quantileSince(sched0, 0.99)
	if audience > 0 {
		rep.LoadTester.GoroutinesPerViewer = float64(goroutines1-goroutines0) / float64(audience)
		rep.LoadTester.KiBPerViewer = float64(rss1-rss0) / float64(audience)
	}
	if cfg.Server.enabled() {
		rep.Server = serverCost(srv0, srvAud, srv1, audience)
		rep.Server.Errors = srvErrs
	}
	rep.Bottleneck = bottleneck(rep.LoadTester, rep.Server)
	return rep, runErr
}

// startPublishers starts the shard's publishers, 16 at a time, and waits
// for them (each bounded by MediaTimeout). A publisher that fails is
// counted by its error code.
func (r *run) startPublishers(ctx context.Context) {
	sem := make(chan struct{}, 16)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, pp := range r.plan.Publishers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := r.startPublisher(ctx, pp)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.pubErrs = append(r.pubErrs, fmt.Errorf("publisher %s: %w", pp.Identity, err))
				return
			}
			r.publishers = append(r.publishers, p)
		}()
	}
	wg.Wait()
}

func (r *run) startPublisher(ctx context.Context, pp PlannedPublisher) (*Publisher, error) {
	cfg := pp.Media.publisherConfig()
	if r.cfg.Scenario.Social == nil && len(r.cfg.Scenario.Rooms) == 0 {
		// The shorthand keeps every field of RunConfig.Publisher.
		cfg = r.cfg.Publisher
	}
	cfg.URL, cfg.Room, cfg.Name = r.cfg.Target.URL, pp.Room, pp.Identity
	if r.cfg.Target.WHIP != "" {
		cfg.URL, cfg.WHIPURL = "", RoomURL(r.cfg.Target.WHIP, pp.Room)
	}
	tok, err := r.cfg.token(pp.Identity, pp.Room, true)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	cfg.Token = tok
	if r.cfg.TokenFunc != nil {
		cfg.TokenSource = func() (string, error) { return r.cfg.TokenFunc(pp.Identity, pp.Room, true) }
	}
	p := NewPublisher(cfg)
	sctx, cancel := context.WithTimeout(ctx, r.cfg.MediaTimeout)
	defer cancel()
	if err := p.Start(sctx); err != nil {
		return nil, err
	}
	return p, nil
}

// framesSent returns the video frames the publishers of room have sent so
// far that one viewer of it is to receive: every video track of every
// publisher (one simulcast layer each); over WHEP, one video track.
func (r *run) framesSent(room string) uint64 {
	pr := r.plan.room(room)
	if pr.Publishers == 0 || pr.VideoTracks == 0 {
		return 0
	}
	perPublisher := uint64(pr.VideoTracks / pr.Publishers)
	var n uint64
	for _, p := range r.byRoom[room] {
		t := p.frameTicks.Load()
		if r.cfg.Target.Kind() == "whip-whep" {
			n = max(n, t)
			continue
		}
		n += t * perPublisher
	}
	return n
}

// event is a viewer start or leave on the plan's clock.
type event struct {
	at    time.Duration
	rv    *runViewer
	leave bool
}

// drive runs the plan's clock: viewer starts and leaves, chat, progress;
// it returns ctx's error if ctx ends first.
func (r *run) drive(ctx context.Context) error {
	var events []event
	for _, rv := range r.viewers {
		events = append(events, event{at: rv.plan.Start, rv: rv})
		if rv.plan.Leave > 0 {
			events = append(events, event{at: rv.plan.Leave, rv: rv, leave: true})
		}
	}
	slices.SortStableFunc(events, func(a, b event) int { return int(a.at - b.at) })
	progress := time.NewTicker(r.cfg.ProgressInterval)
	defer progress.Stop()
	chat := r.chatTicker()
	defer chat.stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	end := time.NewTimer(r.plan.Length)
	defer end.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			r.sample()
			return ctx.Err()
		case <-end.C:
			r.sample()
			return nil
		case <-progress.C:
			r.sample()
		case now := <-chat.c:
			r.chat(now)
		case <-timer.C:
			elapsed := time.Since(r.begin)
			for next < len(events) && events[next].at <= elapsed {
				e := events[next]
				next++
				if e.leave {
					r.leave(e.rv)
				} else {
					r.launch(ctx, e.rv)
				}
			}
			if next < len(events) {
				timer.Reset(events[next].at - time.Since(r.begin))
			}
		}
	}
}

// connectedNow counts viewers connected at this moment.
func (r *run) connectedNow() int {
	n := 0
	for _, rv := range r.viewers {
		if rv.state.Load() == stateConnected {
			n++
		}
	}
	return n
}

// totals adds up the packet counters of every viewer (those that left:
// as they left).
func (r *run) totals() (packets, bytes, lost, lostRaw uint64) {
	for _, rv := range r.viewers {
		var s ViewerStats
		switch rv.state.Load() {
		case stateLeft:
			rv.mu.Lock()
			s = rv.counted
			rv.mu.Unlock()
		case statePending:
			continue
		default:
			v := rv.v.Load()
			if v == nil {
				continue
			}
			s = v.counters()
		}
		packets += s.VideoPackets + s.AudioPackets
		bytes += s.Bytes
		lost += s.Lost
		lostRaw += s.LostRaw
	}
	return
}

// sample records a timeline point and reports progress.
func (r *run) sample() {
	now := time.Now()
	packets, bytes, lost, lostRaw := r.totals()
	cpu := selfCPU()
	s := Sample{TMS: msOf(now.Sub(r.begin))}
	for _, rv := range r.viewers {
		switch rv.state.Load() {
		case stateConnected:
			s.Connected++
		case stateFailed:
			s.Failed++
		}
	}
	from := r.last
	if now.Sub(from.at) < r.cfg.ProgressInterval/2 && !r.before.at.IsZero() {
		// Packets arrive in bursts (a frame's packets to every viewer at
		// once): over a few milliseconds one burst read as 8 times the
		// rate. Measure over this interval and the one before.
		from = r.before
	}
	dt := now.Sub(from.at).Seconds()
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	if dt > 0 {
		s.PacketsPerSecond = float64(sub(packets, from.packets)) / dt
		s.Kbps = float64(sub(bytes, from.bytes)) * 8 / 1000 / dt
		s.LoadTesterCPUPercent = 100 * (cpu.total() - from.cpu.total()).Seconds() / dt
	}
	dp := sub(packets, from.packets)
	s.LossLastPercent = lossPercent(sub(lost, from.lost), dp)
	s.LossRawLastPercent = lossPercent(sub(lostRaw, from.lostRaw), dp)
	s.LossSoFarPercent = lossPercent(lost, packets)
	r.before, r.last = from, counts{at: now, packets: packets, bytes: bytes, lost: lost, lostRaw: lostRaw, cpu: cpu}
	r.timeline = append(r.timeline, s)
	if r.cfg.Progress != nil {
		joined := 0
		for _, rv := range r.viewers {
			if rv.state.Load() != statePending {
				joined++
			}
		}
		r.cfg.Progress(Progress{
			Elapsed: now.Sub(r.begin), Length: r.plan.Length,
			Planned: len(r.viewers), Connected: s.Connected, Failed: s.Failed, Joined: joined,
			PacketsPerSecond: s.PacketsPerSecond, Kbps: s.Kbps,
			LossLastPercent: s.LossLastPercent, LossSoFarPercent: s.LossSoFarPercent,
			LoadTesterCPUPercent: s.LoadTesterCPUPercent,
		})
	}
}

// freezeMeasures takes the measures (freezes, latency, jitter) of every
// viewer still watching, before the publishers stop: the end of the
// stream is not a freeze.
func (r *run) freezeMeasures() {
	for _, rv := range r.viewers {
		st, v := rv.state.Load(), rv.v.Load()
		if st == statePending || st == stateLeft || v == nil {
			continue
		}
		s := v.Stats()
		// The frames it is to receive end here too: a frame sent while
		// the publishers leave may never be forwarded.
		sent := r.framesSent(rv.plan.Room)
		rv.mu.Lock()
		rv.final, rv.framesAtLeave, rv.framesLeaveAt = &s, sent, time.Now()
		rv.mu.Unlock()
	}
}

// drain waits, after the publishers stopped, until the viewers' packet
// count stops growing (the last packets in flight arrived), at most 5 s,
// then records the counts.
func (r *run) drain() {
	deadline := time.Now().Add(5 * time.Second)
	prev, _, _, _ := r.totals()
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		cur, _, _, _ := r.totals()
		if cur == prev {
			break
		}
		prev = cur
	}
	for _, rv := range r.viewers {
		if st := rv.state.Load(); st == statePending || st == stateLeft {
			continue
		}
		if v := rv.v.Load(); v != nil {
			c := v.counters()
			rv.mu.Lock()
			rv.counted = c
			rv.mu.Unlock()
		}
	}
}

// closeViewers closes every viewer still open, 32 at a time.
func (r *run) closeViewers() {
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, rv := range r.viewers {
		v := rv.v.Load()
		if v == nil || rv.state.Load() == stateLeft {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = v.Close()
		}()
	}
	wg.Wait()
	r.wg.Wait() // the leave goroutines
}

// fill writes the run's raw figures into rep; aggregate derives the rest.
func (r *run) fill(rep *Report) {
	rep.Publishers.Planned = len(r.plan.Publishers)
	rep.Publishers.Started = len(r.publishers)
	rep.Publishers.Failed = len(r.pubErrs)
	for _, err := range r.pubErrs {
		if rep.Publishers.FailedByCode == nil {
			rep.Publishers.FailedByCode = map[string]int{}
		}
		rep.Publishers.FailedByCode[FailureCode(err)]++
		if len(rep.Errors) < 10 {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	for _, p := range r.publishers {
		s := p.Stats()
		rep.Sent.VideoPackets += s.VideoPackets
		rep.Sent.AudioPackets += s.AudioPackets
		rep.Sent.VideoFrames += s.VideoFrames
		rep.Sent.Keyframes += s.Keyframes
		rep.Sent.KeyframeRequests += s.PLIs
	}
	rep.Sent.Chats, rep.Sent.Reactions = r.chats.Load(), r.reactions.Load()
	latency := &Latency{}
	stays := make([]chatStay, len(r.viewers))
	for i, rv := range r.viewers {
		if v := rv.v.Load(); v != nil {
			stays[i] = v.chat.stay(rv.plan.Room)
		}
	}
	expected, received := roomDelivery(stays)
	for i, rv := range r.viewers {
		rec := r.record(rv, latency)
		rec.ToOthersExpected, rec.ToOthersReceived = expected[i], received[i]
		if rec.Error != "" && len(rep.Errors) < 10 {
			rep.Errors = append(rep.Errors, rec.Identity+": "+rec.Error)
		}
		rep.PerViewer = append(rep.PerViewer, rec)
	}
	rep.LatencyBuckets = latency.buckets()
	rep.Timeline = r.timeline
}
