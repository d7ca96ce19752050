package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// cpuSample is a process's CPU time at one moment.
type cpuSample struct {
	at        time.Time
	user, sys time.Duration
}

func (a cpuSample) total() time.Duration { return a.user + a.sys }

// selfCPU reads this process's CPU time (getrusage).
func selfCPU() cpuSample {
	var ru syscall.Rusage
	s := cpuSample{at: time.Now()}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.user = time.Duration(ru.Utime.Nano())
		s.sys = time.Duration(ru.Stime.Nano())
	}
	return s
}

// machineCPU is the machine's busy and total jiffies from /proc/stat; ok
// is false where there is none.
type machineCPU struct {
	busy, total uint64
	ok          bool
}

func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return machineCPU{}
	}
	var m machineCPU
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		m.total += n
		if i != 3 && i != 4 { // idle, iowait
			m.busy += n
		}
	}
	m.ok = m.total > 0
	return m
}

// selfRSSKiB is this process's resident set, or 0 where /proc has none.
func selfRSSKiB() int64 {
	var s serverSample
	if err := readProc(os.Getpid(), &s); err != nil {
		return 0
	}
	return s.rssKiB
}

// busyPercent is the share of the machine's CPU that was busy between a
// and b, or -1 when unknown.
func busyPercent(a, b machineCPU) float64 {
	if !a.ok || !b.ok || b.total <= a.total {
		return -1
	}
	return 100 * float64(b.busy-a.busy) / float64(b.total-a.total)
}

// ServerProbe names the server under load, for its cost figures: PID, on
// this machine (CPU time and RSS from /proc), and MetricsURL, its
// Prometheus endpoint (packets forwarded). Either may be empty.
type ServerProbe struct {
	PID        int
	MetricsURL string
}

func (p ServerProbe) enabled() bool { return p.PID > 0 || p.MetricsURL != "" }

// serverSample is what the load tester read of the server at one moment.
type serverSample struct {
	at        time.Time
	cpu       cpuSample
	rssKiB    int64
	forwarded float64
	skipped   float64 // packets the server's forwarders skipped (fell behind)
	nacks     float64 // packets viewers reported lost
	// goroutines is the server's go_goroutines gauge, -1 when it has none.
	goroutines float64
	hasProc    bool
	hasFwd     bool
}

// The server's counters a run reads (docs/operations.md).
const (
	metricForwarded  = "halo_forwarded_packets_total"
	metricSkipped    = "halo_forwarder_skipped_total"
	metricNACKs      = "halo_nacks_received_total"
	metricGoroutines = "go_goroutines"
)

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

// sample reads the server's /proc figures and its forwarded-packet counter.
func (p ServerProbe) sample(ctx context.Context) (serverSample, error) {
	s := serverSample{at: time.Now(), goroutines: -1}
	var errs []error
	if p.PID > 0 {
		if err := readProc(p.PID, &s); err != nil {
			errs = append(errs, fmt.Errorf("server pid %d: %w", p.PID, err))
		} else {
			s.hasProc = true
		}
	}
	if p.MetricsURL != "" {
		families, err := scrape(ctx, p.MetricsURL)
		var values map[string]float64
		if err == nil {
			values, err = counterValues(p.MetricsURL, families, metricForwarded, metricSkipped, metricNACKs)
		}
		if g, ok := families[metricGoroutines]; ok && g.GetType() == dto.MetricType_GAUGE && len(g.GetMetric()) == 1 {
			s.goroutines = g.GetMetric()[0].GetGauge().GetValue()
		}
		fwd, ok := values[metricForwarded]
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok:
			errs = append(errs, fmt.Errorf("scrape %s: %s not found", p.MetricsURL, metricForwarded))
		default:
			s.forwarded, s.hasFwd = fwd, true
			s.skipped, s.nacks = values[metricSkipped], values[metricNACKs]
		}
	}
	return s, errors.Join(errs...)
}

func readProc(pid int, s *serverSample) error {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err
	}
	// Fields after the command name (which may hold spaces) start at field 3.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = cpuSample{at: s.at, user: time.Duration(utime) * clockTick, sys: time.Duration(stime) * clockTick}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			s.rssKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return nil
}

// ScrapeCounter reads the counter name from a Prometheus endpoint: the sum
// of its series (one, for a counter without labels). The exposition is
// parsed with prometheus/common/expfmt, the parser Prometheus itself uses,
// so comments, labels, escaping and exponents are read as a scraper reads
// them.
func ScrapeCounter(ctx context.Context, url, name string) (float64, error) {
	values, err := scrapeCounters(ctx, url, name)
	if err != nil {
		return 0, err
	}
	v, ok := values[name]
	if !ok {
		return 0, fmt.Errorf("scrape %s: %s not found", url, name)
	}
	return v, nil
}

// scrapeCounters reads the named counters in one scrape; a counter the
// endpoint does not have is absent from the result, one that is not a
// counter is an error.
func scrapeCounters(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	families, err := scrape(ctx, url)
	if err != nil {
		return nil, err
	}
	return counterValues(url, families, names...)
}

// scrape reads a Prometheus text exposition.
func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// The text format: the one every exporter serves and expfmt's
	// TextParser reads.
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := whipClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxScrapeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	if len(body) > maxScrapeBytes {
		return nil, fmt.Errorf("scrape %s: more than %d bytes", url, maxScrapeBytes)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return families, nil
}

// counterValues sums the series of each named counter of families.
func counterValues(url string, families map[string]*dto.MetricFamily, names ...string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, name := range names {
		mf, ok := families[name]
		if !ok {
			continue
		}
		if mf.GetType() != dto.MetricType_COUNTER {
			return nil, fmt.Errorf("scrape %s: %s is a %s, want a counter", url, name, strings.ToLower(mf.GetType().String()))
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		out[name] = sum
	}
	return out, nil
}

// maxScrapeBytes bounds what a scrape reads (a node's exposition is ~20 KiB).
const maxScrapeBytes = 4 << 20

func loadTesterCost(a, b cpuSample, ma, mb machineCPU, packets uint64) LoadTesterCost {
	cpu := b.total() - a.total()
	wall := b.at.Sub(a.at)
	c := LoadTesterCost{
		CPUSeconds:         cpu.Seconds(),
		CoresAvailable:     runtime.NumCPU(),
		MachineBusyPercent: busyPercent(ma, mb),
	}
	if wall > 0 {
		c.Cores = cpu.Seconds() / wall.Seconds()
	}
	if packets > 0 {
		c.CPUMicrosPerPacket = float64(cpu.Microseconds()) / float64(packets)
	}
	return c
}

// serverCost derives the server's figures from the samples at the start
// (baseline), with the audience, and at the end.
func serverCost(a, aud, b serverSample, audience int) *ServerCost {
	c := &ServerCost{}
	wall := b.at.Sub(a.at)
	if a.hasProc && b.hasProc {
		cpu := b.cpu.total() - a.cpu.total()
		c.CPUSeconds = cpu.Seconds()
		if cpu > 0 {
			c.KernelPercent = 100 * (b.cpu.sys - a.cpu.sys).Seconds() / cpu.Seconds()
		}
		if wall > 0 {
			c.Cores = cpu.Seconds() / wall.Seconds()
			if audience > 0 {
				c.CPUMillisPerViewerSecond = float64(cpu.Milliseconds()) / float64(audience) / wall.Seconds()
			}
		}
	}
	if a.hasFwd && b.hasFwd {
		c.ForwarderSkipped = b.skipped - a.skipped
		c.NACKsReceived = b.nacks - a.nacks
		c.PacketsForwarded = b.forwarded - a.forwarded
		if c.PacketsForwarded > 0 && c.CPUSeconds > 0 {
			c.CPUMicrosPerForwarded = c.CPUSeconds * 1e6 / c.PacketsForwarded
		}
	}
	if a.hasProc && aud.hasProc {
		c.RSSBaselineKiB, c.RSSAudienceKiB, c.AudienceAtRSS = a.rssKiB, aud.rssKiB, audience
		switch {
		case audience == 0:
			c.MemoryNote = "no viewer was connected at the end of the hold: no memory per viewer"
		case a.hasFwd && a.forwarded > 0:
			c.MemoryNote = fmt.Sprintf("no memory per viewer: the server had already forwarded %.0f packets before this run, "+
				"so its heap kept what earlier load grew; restart it for this figure", a.forwarded)
		case !a.hasFwd:
			c.MemoryNote = "memory per viewer assumes the server was freshly started (give --metrics-url to check)"
			fallthrough
		default:
			per := float64(aud.rssKiB-a.rssKiB) / float64(audience)
			c.KiBPerViewer = &per
		}
	}
	if a.goroutines >= 0 && aud.goroutines >= 0 {
		// Goroutines come and go with sessions: per viewer only from a
		// server that had served nobody before this run.
		c.GoroutinesBaseline, c.GoroutinesAudience, c.AudienceAtRSS = int(a.goroutines), int(aud.goroutines), audience
		if audience > 0 && a.hasFwd && a.forwarded == 0 {
			g := (aud.goroutines - a.goroutines) / float64(audience)
			c.GoroutinesPerViewer = &g
		}
	}
	return c
}

// schedBottleneckMS is the p99 wait for a CPU above which the load tester
// counts as the bottleneck: a reader that waits that long has let a frame
// and more queue behind it.
const schedBottleneckMS = 20

// bottleneck says in words when the load tester limited the run, or when
// other work on the machine may have.
func bottleneck(lt LoadTesterCost, srv *ServerCost) string {
	tester := testerBottleneck(lt, srv)
	if srv == nil || srv.ForwarderSkipped <= 0 {
		return tester
	}
	server := fmt.Sprintf("The server fell behind: its forwarders skipped %.0f packets (halo_forwarder_skipped_total), "+
		"which its viewers never got.", srv.ForwarderSkipped)
	if tester == "" {
		return server
	}
	return tester + " " + server
}

// testerBottleneck is bottleneck's sentence about the load tester and the
// machine.
func testerBottleneck(lt LoadTesterCost, srv *ServerCost) string {
	if lt.CoresAvailable == 0 {
		return ""
	}
	share := 100 * lt.Cores / float64(lt.CoresAvailable)
	busyCores := lt.MachineBusyPercent / 100 * float64(lt.CoresAvailable)
	saturated := lt.MachineBusyPercent >= 90
	switch {
	case lt.SchedLatencyP99MS >= schedBottleneckMS && saturated && lt.Cores < 0.5*busyCores &&
		(srv == nil || srv.Cores == 0 || lt.Cores+srv.Cores < 0.5*busyCores):
		// Waiting for a CPU it hardly used: the machine, not the tester.
		server := "the server, if it runs here: --server-pid shows its share"
		if srv != nil && srv.Cores > 0 {
			server = fmt.Sprintf("the server used %.2f", srv.Cores)
		}
		return fmt.Sprintf("The machine was the bottleneck: it was %.0f %% busy mostly with other work (%s), and the load tester, "+
			"which used only %.2f of the %d cores, waited up to %.0f ms (p99) for a CPU, so packets queued in its receive buffers; "+
			"latency, jitter and freezes above are partly that wait. Fewer viewers per process will not help: run when the machine is quieter, or on another one.",
			lt.MachineBusyPercent, server, lt.Cores, lt.CoresAvailable, lt.SchedLatencyP99MS)
	case lt.SchedLatencyP99MS >= schedBottleneckMS:
		return fmt.Sprintf("The load tester was the bottleneck: its goroutines waited up to %.0f ms (p99) for a CPU "+
			"(it kept %.2f of the %d cores busy), so packets queued in its own receive buffers; "+
			"latency, jitter and freezes above are partly its own. Run fewer viewers per process (--shard i/N on more machines).",
			lt.SchedLatencyP99MS, lt.Cores, lt.CoresAvailable)
	case share >= 80:
		return fmt.Sprintf("The load tester was the bottleneck: it kept %.2f of the %d cores busy (%.0f %%). "+
			"Latency, jitter, loss and freezes above are partly its own; run fewer viewers per process (--shard i/N on more machines).",
			lt.Cores, lt.CoresAvailable, share)
	case saturated && srv != nil && srv.Cores > 0 && lt.Cores > srv.Cores && lt.Cores >= 0.4*busyCores:
		return fmt.Sprintf("The machine was saturated (%.0f %% busy) and the load tester used more of it than the server "+
			"(%.2f against %.2f cores): the load tester, not the server, limited this run; put them on separate machines.",
			lt.MachineBusyPercent, lt.Cores, srv.Cores)
	case saturated && srv != nil && srv.Cores > 0 && lt.Cores+srv.Cores < 0.5*busyCores:
		return fmt.Sprintf("The machine was saturated (%.0f %% busy) mostly by other work: the load tester used %.2f and the server %.2f "+
			"of the %d cores. Latency, jitter and loss may reflect that, not the server.",
			lt.MachineBusyPercent, lt.Cores, srv.Cores, lt.CoresAvailable)
	case saturated && (srv == nil || srv.Cores == 0):
		return fmt.Sprintf("The machine was saturated (%.0f %% busy; the load tester used %.2f of %d cores): "+
			"if the server runs here too, the figures measure the machine, not the server (give --server-pid to tell).",
			lt.MachineBusyPercent, lt.Cores, lt.CoresAvailable)
	}
	return ""
}

// schedLatency is a copy of the Go runtime's histogram of the time
// goroutines spent runnable before they ran: when the load tester lacks
// CPU its readers wait here, packets queue in its receive buffers, and the
// latency it measures is its own.
type schedLatency struct {
	counts  []uint64
	buckets []float64 // seconds; len(counts)+1 boundaries
}

const schedLatencyMetric = "/sched/latencies:seconds"

func readSchedLatency() schedLatency {
	s := []metrics.Sample{{Name: schedLatencyMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return schedLatency{}
	}
	h := s[0].Value.Float64Histogram()
	return schedLatency{counts: slices.Clone(h.Counts), buckets: h.Buckets}
}

// quantileSince returns the q-quantile, in milliseconds, of the waits
// between a (earlier) and b: the upper bound of the bucket that holds it.
func (b schedLatency) quantileSince(a schedLatency, q float64) float64 {
	if len(b.counts) == 0 || len(a.counts) != len(b.counts) {
		return 0
	}
	var total uint64
	d := make([]uint64, len(b.counts))
	for i := range d {
		d[i] = b.counts[i] - a.counts[i]
		total += d[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range d {
		seen += c
		if seen >= rank {
			hi := b.buckets[i+1]
			if math.IsInf(hi, 1) {
				hi = b.buckets[i]
			}
			return hi * 1000
		}
	}
	return 0
}
