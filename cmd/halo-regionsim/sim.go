package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The fixed parts of the simulated deployment.
const (
	originRegion = "nepal" // where the broadcaster publishes
	redisRegion  = "india" // where Redis runs
	redisPort    = "6379"
	httpPort     = "7880"
	metricsAddr  = "127.0.0.1:7881" // each namespace has its own loopback
	udpPort      = "7882"
	relayPort    = "7883"
	simRoom      = "regionsim"
)

// regionReport is what one region's viewers measured.
type regionReport struct {
	Region string
	Delay  time.Duration // one-way, from the origin's region
	childResult
}

// report is the outcome of one simulation.
type report struct {
	Link     string // how the delays were made
	Viewers  int
	Duration time.Duration
	Bitrate  int
	Sent     uint64 // packets the broadcaster sent in the window
	// The origin node's halo_relay_tracks{direction="out"} and relayed
	// packets at the end of the window.
	RelayTracksOut, RelayPktsOut float64
	Regions                      []regionReport
	// Partition is the -partition scenario (A "": none), and CutDrops the
	// packets it dropped.
	Partition partitionSpec
	CutDrops  uint64
}

// simulate sets up the regions, runs the broadcast and returns what was
// measured; everything it created is removed before it returns.
func simulate(ctx context.Context, o options, logw io.Writer) (rep *report, err error) {
	if err := checkHost(); err != nil {
		return nil, fmt.Errorf("cannot run here: %w", err)
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("cannot run here: needs redis-server (make deps installs it): %w", err)
	}
	lock, err := lockRun(o.lockWait)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := cleanStale(); err != nil {
		return nil, err
	}
	rep = &report{Viewers: o.viewers, Duration: o.duration, Bitrate: o.bitrate, Partition: o.partition}
	useNetem := o.link == "netem"
	// Only the delay line can cut links (no netem, no iptables needed).
	if (o.link == "auto" && o.partition.A == "") || o.link == "netem" {
		if nerr := netemWorks(); nerr == nil {
			useNetem = true
		} else if o.link == "netem" {
			return nil, fmt.Errorf("cannot run here: tc netem does not work (kernel without sch_netem?): %w; -link userspace delays packets in this program instead", nerr)
		} else {
			fmt.Fprintf(logw, "halo-regionsim: tc netem does not work here (%v); delaying packets with the user-space delay line instead\n", nerr)
		}
	}
	defer removeNamespaces()
	if err := createNamespaces(); err != nil {
		return nil, err
	}
	var line *delayLine
	if useNetem {
		rep.Link = "tc netem"
		if err := setupNetem(); err != nil {
			return nil, err
		}
	} else {
		rep.Link = "user-space delay line (TUN devices; tc netem unavailable)"
		d, derr := startDelayLine()
		if derr != nil {
			return nil, derr
		}
		line = d
		defer func() {
			if n := d.dropped.Load(); n > 0 {
				fmt.Fprintf(logw, "halo-regionsim: the delay line dropped %d packets (queue full)\n", n)
			}
			d.close()
			rep.CutDrops = d.cutDrops.Load()
		}()
	}

	// A server that dies ends the run at once, with its log.
	interrupted := ctx.Err
	ctx, serverDied := context.WithCancelCause(ctx)
	defer serverDied(nil)
	procs := &procSet{logDir: o.logDir, died: serverDied}
	if o.logDir != "" {
		if err := os.MkdirAll(o.logDir, 0o755); err != nil {
			return nil, fmt.Errorf("-logs: %w", err)
		}
	}
	defer procs.stopAll()
	defer func() {
		if interrupted() != nil {
			err = errors.New("interrupted; everything it created is removed")
			return
		}
		if err != nil { // what the servers said, for the operator
			for _, p := range procs.list() {
				if l := p.log.String(); l != "" {
					fmt.Fprintf(logw, "--- %s:\n%s\n", p.name, l)
				}
			}
		}
	}()
	secret, clusterSecret := randomHex(), randomHex()
	byName := map[string]*region{}
	for _, r := range regions {
		byName[r.name] = r
	}
	redisAddr := byName[redisRegion].addr + ":" + redisPort
	if err := procs.startServer(ctx, byName[redisRegion].ns, "redis", nil, "redis-server",
		"--bind", byName[redisRegion].addr, "--port", redisPort, "--protected-mode", "no",
		"--save", "", "--appendonly", "no"); err != nil {
		return nil, err
	}
	if err := procs.waitChild(ctx, byName[redisRegion].ns, childSpec{Role: "wait", Addr: redisAddr}); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	for _, r := range regions {
		env := []string{
			"HALO_AUTH_SECRET=" + secret,
			"HALO_CLUSTER_SECRET=" + clusterSecret,
			"HALO_NODE_ID=" + r.name + "-1",
			"HALO_NODE_REGION=" + r.name,
			"HALO_HTTP_LISTEN=" + r.addr + ":" + httpPort,
			"HALO_HTTP_PUBLIC_URL=http://" + r.addr + ":" + httpPort,
			"HALO_METRICS_LISTEN=" + metricsAddr,
			"HALO_SFU_UDP_PORT=" + udpPort,
			"HALO_CLUSTER_RELAY_ADDRESS=" + r.addr + ":" + relayPort,
			"HALO_REDIS_ADDRS=" + redisAddr,
			// every viewer of a region comes from one address
			"HALO_LIMITS_JOINS_PER_IP_PER_MINUTE=0",
			"HALO_LIMITS_UNJOINED_SOCKETS_PER_IP=0",
			"HALO_HTTP_MAX_CONNS_PER_IP=0",
			"HALO_LOG_LEVEL=" + o.logLevel,
			"HALO_SHUTDOWN_TIMEOUT=2s",
			"HALO_CLUSTER_RELAY_TRUNKS=" + strconv.FormatBool(o.trunks),
		}
		if o.redisTimeout > 0 {
			env = append(env, "HALO_REDIS_TIMEOUT="+o.redisTimeout.String())
		}
		if err := procs.startServer(ctx, r.ns, r.name+"-1", env, o.sfu); err != nil {
			return nil, err
		}
	}
	base := func(r *region) string { return "http://" + r.addr + ":" + httpPort }
	if o.trunks {
		// Trunks are opened as nodes find each other, before any room:
		// the room starts on a running cluster.
		for _, r := range regions {
			if err := procs.waitChild(ctx, r.ns, childSpec{Role: "trunks", MetricsURL: "http://" + metricsAddr + "/metrics", Viewers: len(regions) - 1}); err != nil {
				return nil, fmt.Errorf("%s: %w", r.name, err)
			}
		}
		fmt.Fprintf(logw, "halo-regionsim: every node holds a relay trunk to every other\n")
	}
	origin := byName[originRegion]
	pub, err := procs.startChild(ctx, origin.ns, "broadcaster", childSpec{Role: "publisher", Region: origin.name,
		Addr: base(origin), MetricsURL: "http://" + metricsAddr + "/metrics", Room: simRoom, Secret: secret, Bitrate: o.bitrate})
	if err != nil {
		return nil, err
	}
	if _, err := pub.next(ctx, 60*time.Second); err != nil {
		return nil, fmt.Errorf("broadcaster: %w", err)
	}
	fmt.Fprintf(logw, "halo-regionsim: broadcasting on %s-1; starting %d viewers per region\n", origin.name, o.viewers)
	var watchers []*proc
	for _, r := range regions {
		w, err := procs.startChild(ctx, r.ns, r.name+" viewers", childSpec{Role: "viewers", Region: r.name,
			Addr: base(r), Room: simRoom, Secret: secret, Viewers: o.viewers, Delay: oneWay(originRegion, r.name)})
		if err != nil {
			return nil, err
		}
		watchers = append(watchers, w)
	}
	for i, w := range watchers {
		if _, err := w.next(ctx, 90*time.Second); err != nil {
			return nil, fmt.Errorf("%s viewers: %w", regions[i].name, err)
		}
	}
	fmt.Fprintf(logw, "halo-regionsim: every viewer receives the broadcast; measuring for %v\n", o.duration)
	t0 := time.Now().Add(time.Second)
	w := window{T0: t0.UnixNano(), T1: t0.Add(o.duration).UnixNano()}
	if p := o.partition; p.A != "" {
		cut, heal := t0.Add(p.At), t0.Add(p.At+p.For)
		w.Cut, w.Heal = cut.UnixNano(), heal.UnixNano()
		line.partition(p.pairs(), cut, heal)
		fmt.Fprintf(logw, "halo-regionsim: partition: %s\n", p.describe())
	}
	win, _ := json.Marshal(w)
	for _, p := range append([]*proc{pub}, watchers...) {
		if _, err := p.stdin.Write(append(win, '\n')); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	limit := o.duration + 30*time.Second
	pr, err := pub.next(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("broadcaster: %w", err)
	}
	rep.Sent, rep.RelayTracksOut, rep.RelayPktsOut = pr.Sent, pr.RelayTracksOut, pr.RelayPktsOut
	for i, w := range watchers {
		res, err := w.next(ctx, limit)
		if err != nil {
			return rep, fmt.Errorf("%s viewers: %w", regions[i].name, err)
		}
		rep.Regions = append(rep.Regions, regionReport{Region: regions[i].name, Delay: oneWay(originRegion, regions[i].name), childResult: res})
	}
	return rep, rep.check()
}

// check says whether every viewer received the broadcast in the window.
func (r *report) check() error {
	var errs []error
	for _, g := range r.Regions {
		for i, n := range g.Received {
			if n == 0 {
				errs = append(errs, fmt.Errorf("%s viewer %d received nothing in the window", g.Region, i))
			}
		}
		if r.Partition.A != "" {
			errs = append(errs, g.checkPartition()...)
		}
	}
	return errors.Join(errs...)
}

// print writes the report as a table.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "three regions, one-way delays (each direction; round trip twice): nepal-india 40 ms, india-europe 120 ms, nepal-europe 180 ms\n")
	fmt.Fprintf(w, "delays by: %s\n", r.Link)
	fmt.Fprintf(w, "redis in %s; one halo-sfu node per region; broadcaster (VP8 %d kbit/s + Opus) on %s-1; %d viewers per region; window %v\n\n",
		redisRegion, r.Bitrate/1000, originRegion, r.Viewers, r.Duration)
	fmt.Fprintf(w, "%-7s %7s %7s %16s %6s %8s %8s %8s %8s %8s %9s %9s %9s %10s\n",
		"region", "delay", "viewers", "packets min/sent", "loss", "lat p50", "lat p95", "lat p99", "lat max", "join p50", "ttff p50", "ttff max", "key first", "late ttff")
	for _, g := range r.Regions {
		var minRecv, recv, lost uint64
		minRecv = ^uint64(0)
		keyFirst := 0
		for i := range g.Received {
			minRecv = min(minRecv, g.Received[i])
			recv += g.Received[i]
			lost += g.Lost[i]
			if g.KeyframeFirst[i] {
				keyFirst++
			}
		}
		loss := 0.0
		if recv+lost > 0 {
			loss = 100 * float64(lost) / float64(recv+lost)
		}
		tt := append([]time.Duration(nil), g.TTFF...)
		sortDurations(tt)
		jt := append([]time.Duration(nil), g.Join...)
		sortDurations(jt)
		fmt.Fprintf(w, "%-7s %7s %7d %16s %5.2f%% %8s %8s %8s %8s %8s %9s %9s %9s %10s\n",
			g.Region, ms(g.Delay), len(g.Received), fmt.Sprintf("%d/%d", minRecv, r.Sent), loss,
			ms(g.LatP50), ms(g.LatP95), ms(g.LatP99), ms(g.LatMax),
			ms(jt[len(jt)/2]), ms(tt[len(tt)/2]), ms(tt[len(tt)-1]), fmt.Sprintf("%d/%d", keyFirst, len(g.Received)), ms(g.LateTTFF))
	}
	fmt.Fprintf(w, "\norigin %s-1: halo_relay_tracks{direction=\"out\"} %g (tracks x edge nodes), %g relayed packets sent\n",
		originRegion, r.RelayTracksOut, r.RelayPktsOut)
	fmt.Fprintf(w, "packets: the least any viewer received of those the broadcaster sent in the window; loss: sequence gaps;\n")
	fmt.Fprintf(w, "latency: one-way, frame send time to arrival, all the region's viewers' frames in the window;\n")
	fmt.Fprintf(w, "join: connecting until joined; ttff: connecting until the first packets of video and audio (time to first frame);\n")
	fmt.Fprintf(w, "key first: viewers whose first video frame was a keyframe; late ttff: one more viewer's, once the region receives the broadcast\n")
	if r.Partition.A != "" {
		r.printPartition(w)
	}
}

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000)
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

func randomHex() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// proc is one process inside a namespace.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan childResult // a child's JSON lines
	log   *tailBuffer
	done  chan struct{}
}

// next returns the child's next line, or why there is none.
func (p *proc) next(ctx context.Context, limit time.Duration) (childResult, error) {
	select {
	case r, ok := <-p.lines:
		if !ok {
			return r, fmt.Errorf("exited: %s", p.log.String())
		}
		if r.Error != "" {
			return r, errors.New(r.Error)
		}
		return r, nil
	case <-time.After(limit):
		return childResult{}, fmt.Errorf("no answer in %v: %s", limit, p.log.String())
	case <-ctx.Done():
		return childResult{}, context.Cause(ctx)
	}
}

// procSet owns every process the simulation started.
type procSet struct {
	logDir string // each process's whole stderr goes to a file there too
	// died is called when a server (Redis, a node) exits before stopAll.
	died     func(error)
	stopping atomic.Bool
	mu       sync.Mutex
	procs    []*proc
}

// startServer is start for a process that must run until the end.
func (s *procSet) startServer(ctx context.Context, ns, label string, env []string, name string, args ...string) error {
	p, err := s.start(ctx, ns, label, env, name, args...)
	if err != nil {
		return err
	}
	go func() {
		<-p.done
		if !s.stopping.Load() && s.died != nil {
			s.died(fmt.Errorf("%s exited: %s", label, p.log.String()))
		}
	}()
	return nil
}

// start runs name args inside ns with env added to ours (without HALO_*).
func (s *procSet) start(ctx context.Context, ns, label string, env []string, name string, args ...string) (*proc, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HALO_") && !strings.HasPrefix(kv, childEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	// Dies with us even when we are killed; its own process group, so a
	// Ctrl-C reaches us and we stop it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	p := &proc{name: label, cmd: cmd, log: &tailBuffer{}, lines: make(chan childResult, 4), done: make(chan struct{})}
	cmd.Stderr = p.log
	var logFile *os.File
	if s.logDir != "" {
		f, err := os.Create(filepath.Join(s.logDir, strings.ReplaceAll(label, " ", "-")+".log"))
		if err != nil {
			return nil, err
		}
		logFile = f
		cmd.Stderr = io.MultiWriter(p.log, f)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", label, err)
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r childResult
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				p.lines <- r
			} else {
				p.log.Write(append(sc.Bytes(), '\n'))
			}
		}
	}()
	go func() { // Wait returns once stderr is copied
		_ = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// startChild re-executes this program in ns for spec.
func (s *procSet) startChild(ctx context.Context, ns, label string, spec childSpec) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(spec)
	return s.start(ctx, ns, label, []string{childEnv + "=" + string(b)}, self)
}

// waitChild runs a child to its end and returns its error.
func (s *procSet) waitChild(ctx context.Context, ns string, spec childSpec) error {
	p, err := s.startChild(ctx, ns, spec.Role, spec)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if r, ok := <-p.lines; ok && r.Error != "" {
		return errors.New(r.Error)
	}
	if c := p.cmd.ProcessState.ExitCode(); c != 0 {
		return fmt.Errorf("exit %d: %s", c, p.log.String())
	}
	return nil
}

func (s *procSet) list() []*proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*proc(nil), s.procs...)
}

// stopAll ends every process, newest first: SIGTERM, then SIGKILL after 5 s.
func (s *procSet) stopAll() {
	s.stopping.Store(true)
	s.mu.Lock()
	procs := s.procs
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		_ = p.stdin.Close()
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// tailBuffer keeps the last 8 KiB written to it (a process's stderr).
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = t.b[len(t.b)-8<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
