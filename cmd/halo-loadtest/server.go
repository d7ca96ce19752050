package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// serverSample is what the load tester reads of the server it loads, when it
// runs on the same machine: process CPU time and RSS from /proc, and the
// forwarded-packet counter from its Prometheus endpoint. That gives the cost
// figures that matter on a shared machine: CPU per forwarded packet and per
// viewer, memory per viewer.
type serverSample struct {
	at        time.Time
	cpu       time.Duration
	sys       time.Duration // of cpu, time in the kernel
	rssKiB    int64
	forwarded float64
}

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

func sampleServer(ctx context.Context, pid int, metricsURL string) (serverSample, error) {
	s := serverSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name (which may hold spaces) start at field 3.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(utime+stime) * clockTick
	s.sys = time.Duration(stime) * clockTick
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			s.rssKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	if metricsURL != "" {
		s.forwarded, err = scrapeCounter(ctx, metricsURL, "halo_packets_forwarded_total")
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// scrapeCounter reads the counter name from a Prometheus endpoint: the sum
// of its series (one, for a counter without labels). The exposition is
// parsed with prometheus/common/expfmt, the parser Prometheus itself uses,
// so comments, labels, escaping and exponents are read as a scraper reads
// them.
func scrapeCounter(ctx context.Context, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	// The text format: the one every exporter serves and expfmt's
	// TextParser reads.
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape %s: HTTP %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxScrapeBytes+1))
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	if len(body) > maxScrapeBytes {
		return 0, fmt.Errorf("scrape %s: more than %d bytes", url, maxScrapeBytes)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	mf, ok := families[name]
	if !ok {
		return 0, fmt.Errorf("scrape %s: %s not found", url, name)
	}
	if mf.GetType() != dto.MetricType_COUNTER {
		return 0, fmt.Errorf("scrape %s: %s is a %s, want a counter", url, name, strings.ToLower(mf.GetType().String()))
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum, nil
}

// maxScrapeBytes bounds what a scrape reads (a node's exposition is ~20 KiB).
const maxScrapeBytes = 4 << 20

// writeServerCost prints the server's cost between two samples.
func writeServerCost(w io.Writer, a, b serverSample, viewers int) {
	wall := b.at.Sub(a.at)
	cpu := b.cpu - a.cpu
	fmt.Fprintf(w, "server: %.2f s CPU over %.1f s (%.0f %% of one core; %.0f %% of it in the kernel)\n",
		cpu.Seconds(), wall.Seconds(), 100*cpu.Seconds()/wall.Seconds(), 100*(b.sys-a.sys).Seconds()/max(cpu.Seconds(), 1e-9))
	if fwd := b.forwarded - a.forwarded; fwd > 0 {
		fmt.Fprintf(w, "server: %.0f packets forwarded, %.2f us CPU per forwarded packet\n", fwd, float64(cpu.Microseconds())/fwd)
	}
	if viewers > 0 {
		fmt.Fprintf(w, "server: %.2f ms CPU per viewer per second, RSS %d MiB (+%d KiB per viewer)\n",
			float64(cpu.Milliseconds())/float64(viewers)/wall.Seconds(), b.rssKiB/1024, (b.rssKiB-a.rssKiB)/int64(viewers))
	}
}
