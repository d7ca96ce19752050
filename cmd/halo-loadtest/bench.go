package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// The bench-server subcommand (make bench-server, docs/benchmarks.md):
// for each audience size, a fresh halo-sfu in dev mode on its own loopback
// ports, one WHIP publisher (VP8 2.5 Mbit/s + Opus) and N WHEP viewers of
// this load tester, measured by the run's server probe (CPU per forwarded
// packet and its kernel share, RSS and goroutines per viewer from this
// run's baseline); then the floor benchmark (SRTP + sendto) of ./sfu/ and
// the ratio of the two.
type benchOptions struct {
	sfu      string
	viewers  []int
	duration time.Duration
	ramp     float64
	floorPkg string
	logDir   string
}

func parseBenchFlags(args []string, stderr io.Writer) (benchOptions, error) {
	o := benchOptions{}
	fs := flag.NewFlagSet("halo-loadtest bench-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.sfu, "sfu", "bin/halo-sfu", "halo-sfu binary to run (started fresh, in dev mode, for each audience size)")
	viewers := fs.String("viewers", "100,200", "audience sizes, comma-separated")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "hold once every viewer is started")
	fs.Float64Var(&o.ramp, "ramp", 20, "viewers started per second")
	fs.StringVar(&o.floorPkg, "floor", "./sfu/", "package of BenchmarkFloor, run with go test after each size (empty: skip)")
	fs.StringVar(&o.logDir, "log-dir", os.TempDir(), "where the servers' logs go")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if o.viewers, err = parseViewerList(*viewers); err != nil {
		return o, err
	}
	if o.duration <= 0 || o.ramp <= 0 {
		return o, errors.New("--duration and --ramp must be positive")
	}
	return o, nil
}

// parseViewerList reads "100,200" (spaces allowed).
func parseViewerList(s string) ([]int, error) {
	var out []int
	for f := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100_000 {
			return nil, fmt.Errorf("--viewers: %q is not a number of viewers (1..100000)", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("--viewers: give at least one audience size")
	}
	return out, nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "halo-loadtest bench-server:", err)
		return 2
	}
	code := 0
	for _, n := range o.viewers {
		res, err := benchOnce(ctx, o, n, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "halo-loadtest bench-server: %d viewers: %v\n", n, err)
			code = 1
			if ctx.Err() != nil {
				return code
			}
			continue
		}
		if o.floorPkg != "" {
			out, ferr := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkFloor$",
				"-benchtime", "1s", "-count", "3", o.floorPkg).CombinedOutput()
			if ferr == nil {
				res.floorNS, ferr = parseFloor(string(out))
			}
			if ferr != nil {
				fmt.Fprintf(stderr, "halo-loadtest bench-server: floor benchmark: %v\n%s", ferr, out)
				code = 1
			}
		}
		res.loadAfter = loadAverage()
		res.write(stdout)
	}
	return code
}

// benchResult is one audience size's run.
type benchResult struct {
	viewers               int
	duration              time.Duration
	rep                   *loadtest.Report
	floorNS               float64 // cpu-ns/pkt of BenchmarkFloor, 0 = not run
	loadBefore, loadAfter string
}

// benchOnce starts a fresh server and runs the audience against it.
func benchOnce(ctx context.Context, o benchOptions, n int, stderr io.Writer) (*benchResult, error) {
	srv, err := startSFU(ctx, o.sfu, filepath.Join(o.logDir, fmt.Sprintf("halo-sfu-bench-%d.log", n)))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	res := &benchResult{viewers: n, duration: o.duration, loadBefore: loadAverage()}
	cfg := loadtest.RunConfig{
		Target:    loadtest.Target{WHIP: srv.base + "/whip/{room}", WHEP: srv.base + "/whep/{room}"},
		Room:      "bench",
		Viewers:   n,
		RampRate:  o.ramp,
		Duration:  o.duration,
		TokenFunc: srv.mint,
		Publisher: loadtest.PublisherConfig{VideoBitrate: 2_500_000, FPS: 30, KeyframeInterval: 2 * time.Second},
		// AudioDTX off: Opus at 50 packets a second, the same count every run.
		Server: loadtest.ServerProbe{PID: srv.cmd.Process.Pid, MetricsURL: srv.metricsURL},
	}
	rep, err := loadtest.Run(ctx, cfg)
	if rep == nil {
		return nil, err
	}
	if err != nil {
		fmt.Fprintln(stderr, "halo-loadtest bench-server: run cut short:", err)
	}
	res.rep = rep
	return res, nil
}

// write prints one run's figures.
func (b *benchResult) write(w io.Writer) {
	r := b.rep
	fmt.Fprintf(w, "bench-server: %d WHEP viewers, 1 WHIP publisher (VP8 2.5 Mbit/s 30 fps + Opus), %s hold; load average %s before, %s after\n",
		b.viewers, b.duration, b.loadBefore, b.loadAfter)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %-34s %s\n", name, fmt.Sprintf(format, args...))
	}
	sv := r.Server
	if sv == nil {
		sv = &loadtest.ServerCost{}
	}
	row("server CPU per forwarded packet", "%.2f us (%.0f %% in the kernel), %.0f packets, %.2f cores",
		sv.CPUMicrosPerForwarded, sv.KernelPercent, sv.PacketsForwarded, sv.Cores)
	if b.floorNS > 0 {
		ratio := 0.0
		if sv.CPUMicrosPerForwarded > 0 {
			ratio = sv.CPUMicrosPerForwarded * 1000 / b.floorNS
		}
		row("floor (SRTP + sendto)", "%.2f us; server / floor %.2f", b.floorNS/1000, ratio)
	}
	if sv.KiBPerViewer != nil {
		row("server RSS per viewer", "%.0f KiB (%d MiB before the viewers, %d MiB with %d)",
			*sv.KiBPerViewer, sv.RSSBaselineKiB/1024, sv.RSSAudienceKiB/1024, sv.AudienceAtRSS)
	} else {
		row("server RSS per viewer", "not measured: %s", sv.MemoryNote)
	}
	if sv.GoroutinesPerViewer != nil {
		row("server goroutines per viewer", "%.1f (%d before the viewers, %d with %d)",
			*sv.GoroutinesPerViewer, sv.GoroutinesBaseline, sv.GoroutinesAudience, sv.AudienceAtRSS)
	}
	m := r.Measures
	row("first keyframe p50 / p95", "%.0f / %.0f ms", m.FirstKeyframeMS.P50, m.FirstKeyframeMS.P95)
	row("loss raw / after repair", "%.3f %% / %.3f %%", r.Received.LossRawPercent, r.Received.LossPercent)
	row("viewers connected", "%d of %d (%d failed)", r.Viewers.Connected, r.Viewers.Planned, r.Viewers.Failed)
	lt := r.LoadTester
	row("load tester", "%.2f us per received packet, %.2f cores; machine busy %.0f %%",
		lt.CPUMicrosPerPacket, lt.Cores, lt.MachineBusyPercent)
	if r.Bottleneck != "" {
		row("NOTE", "%s", r.Bottleneck)
	}
	for _, e := range sv.Errors {
		row("server probe", "%s", e)
	}
}

// parseFloor reads the cpu-ns/pkt metric of BenchmarkFloor from go test
// -bench output: the median of its runs (-count), the machine being noisy.
func parseFloor(out string) (float64, error) {
	var runs []float64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || (f[0] != "BenchmarkFloor" && !strings.HasPrefix(f[0], "BenchmarkFloor-")) {
			continue
		}
		i := slices.Index(f, "cpu-ns/pkt")
		if i < 3 {
			return 0, errors.New("BenchmarkFloor: no cpu-ns/pkt metric in its line")
		}
		v, err := strconv.ParseFloat(f[i-1], 64)
		if err != nil || v <= 0 || math.IsInf(v, 0) {
			return 0, fmt.Errorf("BenchmarkFloor: cpu-ns/pkt %q is not a positive number", f[i-1])
		}
		runs = append(runs, v)
	}
	if len(runs) == 0 {
		return 0, errors.New("no BenchmarkFloor result in the output")
	}
	slices.Sort(runs)
	return runs[len(runs)/2], nil
}

// loadAverage is the first three fields of /proc/loadavg, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// benchServer is a halo-sfu started by bench-server.
type benchServer struct {
	cmd              *exec.Cmd
	base, metricsURL string
	mint             func(identity, room string, publish bool) (string, error)
	done             chan struct{}
}

// startSFU starts bin in dev mode on free loopback ports (media on
// 127.0.0.1) and waits until its /dev/token answers: each participant
// takes a token of its own there.
func startSFU(ctx context.Context, bin, logPath string) (*benchServer, error) {
	httpPort, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	metricsPort, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	udpPort, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--dev")
	cmd.Env = append(os.Environ(),
		"HALO_HTTP_LISTEN=127.0.0.1:"+strconv.Itoa(httpPort),
		"HALO_METRICS_LISTEN=127.0.0.1:"+strconv.Itoa(metricsPort),
		"HALO_SFU_UDP_PORT="+strconv.Itoa(udpPort),
		"HALO_SFU_UDP_ADDRESS=127.0.0.1")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &benchServer{
		cmd:        cmd,
		base:       "http://127.0.0.1:" + strconv.Itoa(httpPort),
		metricsURL: "http://127.0.0.1:" + strconv.Itoa(metricsPort) + "/metrics",
		done:       make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mint, err = loadtest.DevTokenMinter(ctx, "ws"+strings.TrimPrefix(s.base, "http")+"/ws")
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited at start (log: %s)", bin, logPath)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s not ready after 20 s: %w (log: %s)", bin, err, logPath)
		}
	}
}

// stop ends the server with SIGTERM (it drains) and waits for it.
func (s *benchServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// freePort returns a port of network ("tcp" or "udp") free on 127.0.0.1
// a moment ago.
func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
