package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// childEnv carries a childSpec (JSON) to this program re-executed inside a
// region's namespace. Not HALO_*: halo-sfu refuses unknown HALO_ variables
// and the nodes inherit nothing of ours anyway.
const childEnv = "REGIONSIM_CHILD"

// childSpec is what a child process does, in one region.
type childSpec struct {
	Role       string // "wait", "trunks", "publisher" or "viewers"
	Region     string
	Addr       string // wait: host:port to accept a TCP connection; else the node's http base URL
	MetricsURL string // publisher: the origin node's /metrics
	Room       string
	Secret     string // auth.secret of the nodes, to mint tokens
	Viewers    int
	Bitrate    int
	// Delay is the one-way delay from the broadcaster's region: the
	// viewers count what was sent in the window, so they count from T0
	// plus it.
	Delay time.Duration
}

// window is when the children measure (all namespaces share the host's
// clock): the broadcaster counts the packets it sends from T0 to T1 and
// stops sending at T1; the viewers count what arrives from T0 plus their region's
// delay until nothing more comes, so both count the same packets.
type window struct {
	T0, T1 int64 // Unix ns
	// Cut and Heal are when a partition (-partition) starts and ends, Unix
	// ns; 0 without one.
	Cut, Heal int64 `json:",omitempty"`
}

// childResult is a child's one line of JSON on stdout (ready, then result).
type childResult struct {
	Ready bool   `json:"ready,omitempty"`
	Error string `json:"error,omitempty"`

	// viewers: per viewer
	Join []time.Duration `json:"join,omitempty"` // connecting until joined
	// A viewer arriving once the others receive the broadcast.
	LateJoin, LateTTFF time.Duration
	TTFF               []time.Duration `json:"ttff,omitempty"` // connecting until the first packets of video and audio
	KeyframeFirst      []bool          `json:"keyframe_first,omitempty"`
	Received           []uint64        `json:"received,omitempty"` // packets in the window
	Lost               []uint64        `json:"lost,omitempty"`     // sequence gaps in the window
	// viewers: all of the region's viewers' frames in the window
	LatP50, LatP95, LatP99, LatMax time.Duration
	Frames                         uint64

	// viewers, with a partition: see partitionResult
	partitionResult

	// publisher
	Sent           uint64  `json:"sent,omitempty"` // packets in the window
	RelayTracksOut float64 `json:"relay_tracks_out,omitempty"`
	RelaysOut      float64 `json:"relays_out,omitempty"`
	RelayPktsOut   float64 `json:"relay_packets_out,omitempty"`
}

// runChild is main for a re-executed child; it returns the exit code.
func runChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "halo-regionsim child: bad spec:", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewReader(os.Stdin)
	var err error
	switch s.Role {
	case "wait":
		err = waitTCP(ctx, s.Addr, 30*time.Second)
	case "trunks":
		err = waitTrunks(ctx, s.MetricsURL, s.Viewers, 60*time.Second)
	case "publisher":
		err = publish(ctx, s, in, out)
	case "viewers":
		err = watch(ctx, s, in, out)
	default:
		err = fmt.Errorf("unknown role %q", s.Role)
	}
	if err != nil {
		_ = out.Encode(childResult{Error: err.Error()})
		return 1
	}
	return 0
}

// waitTCP waits until addr accepts a connection.
func waitTCP(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not listening after %v: %w", addr, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitReady waits until the node at base answers /readyz with 200.
func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("node %s not ready: %w", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

// readWindow reads the measuring window the parent sends.
func readWindow(in *bufio.Reader) (window, error) {
	var w window
	line, err := in.ReadBytes('\n')
	if err != nil {
		return w, fmt.Errorf("no window from the parent: %w", err)
	}
	return w, json.Unmarshal(line, &w)
}

func sleepUntil(ns int64) { time.Sleep(time.Until(time.Unix(0, ns))) }

// publish runs the broadcaster: ready once publishing, then the packets it
// sent in the window and the origin's relay metrics near its end; it stops
// sending at the end and exits when stdin closes.
func publish(ctx context.Context, s childSpec, in *bufio.Reader, out *json.Encoder) error {
	if err := waitReady(ctx, s.Addr); err != nil {
		return err
	}
	tok, err := loadtest.MintToken(s.Secret, loadtest.TokenClaims{Identity: "broadcaster", Name: "broadcaster",
		Room: s.Room, Grants: loadtest.Grants{Publish: true}, TTL: time.Hour})
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p := loadtest.NewPublisher(loadtest.PublisherConfig{URL: wsURL(s.Addr), Room: s.Room, Token: tok, VideoBitrate: s.Bitrate})
	if err := p.Start(sctx); err != nil {
		return fmt.Errorf("broadcaster: %w", err)
	}
	defer p.Close()
	if err := out.Encode(childResult{Ready: true}); err != nil {
		return err
	}
	w, err := readWindow(in)
	if err != nil {
		return err
	}
	sleepUntil(w.T0)
	p0 := p.Stats()
	// The relays while they carry the broadcast, just before its end.
	sleepUntil(w.T1 - int64(500*time.Millisecond))
	m, err := scrape(s.MetricsURL)
	if err != nil {
		return err
	}
	sleepUntil(w.T1)
	p1 := p.Stats()
	// Stop sending without ending the broadcast: a dropped connection
	// keeps the tracks (room.republish_grace), so what is on its way
	// still reaches every region. A leave would end the relays at once,
	// and the end event (over Redis) can overtake the last packets.
	p.DropConnection()
	res := childResult{Sent: p1.VideoPackets + p1.AudioPackets - p0.VideoPackets - p0.AudioPackets}
	res.RelayTracksOut = m[`halo_relay_tracks{direction="out"}`]
	res.RelayPktsOut = m[`halo_relay_packets_total{direction="out"}`]
	if err := out.Encode(res); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, in) // until the parent is done
	return nil
}

// watch runs the region's viewers: each joins, its time to first media is
// measured, and what arrives in the window is counted.
func watch(ctx context.Context, s childSpec, in *bufio.Reader, out *json.Encoder) error {
	if err := waitReady(ctx, s.Addr); err != nil {
		return err
	}
	var res childResult
	viewers := make([]*loadtest.Viewer, s.Viewers)
	res.TTFF = make([]time.Duration, s.Viewers)
	res.Join = make([]time.Duration, s.Viewers)
	errs := make([]error, s.Viewers)
	var wg sync.WaitGroup
	defer func() {
		for _, v := range viewers {
			if v != nil {
				_ = v.Close()
			}
		}
	}()
	for i := range viewers {
		id := s.Region + "-viewer-" + strconv.Itoa(i)
		tok, err := loadtest.MintToken(s.Secret, loadtest.TokenClaims{Identity: id, Name: id, Room: s.Room,
			Grants: loadtest.Grants{Subscribe: true}, TTL: time.Hour})
		if err != nil {
			return err
		}
		viewers[i] = loadtest.NewViewer(loadtest.ViewerConfig{URL: wsURL(s.Addr), Room: s.Room, Token: tok, Name: id})
		wg.Add(1)
		go func() {
			defer wg.Done()
			vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			start := time.Now()
			if err := viewers[i].Start(vctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", id, err)
				return
			}
			res.Join[i] = time.Since(start)
			if err := viewers[i].WaitTracks(vctx, 2); err != nil {
				errs[i] = fmt.Errorf("%s: %w", id, err)
				return
			}
			res.TTFF[i] = time.Since(start)
		}()
		// Joins a little apart, as an audience arrives (and the first
		// viewer's relay set-up is measured by the first one alone).
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// One more viewer once the region receives the broadcast: what a
	// viewer arriving later waits (the relay, if any, is up).
	late, err := lateViewer(ctx, s)
	if err != nil {
		return err
	}
	res.LateJoin, res.LateTTFF = late[0], late[1]
	if err := out.Encode(childResult{Ready: true}); err != nil {
		return err
	}
	w, err := readWindow(in)
	if err != nil {
		return err
	}
	var part partitionWatch
	if w.Heal != 0 {
		part.start(ctx, s, w, viewers)
	}
	sleepUntil(w.T0 + int64(s.Delay))
	s0 := make([]loadtest.ViewerStats, len(viewers))
	l0 := make([]*loadtest.Latency, len(viewers))
	for i, v := range viewers {
		s0[i], l0[i] = v.Stats(), v.Latency()
	}
	sleepUntil(w.T1 + int64(s.Delay))
	settle(viewers)
	lat := &loadtest.Latency{}
	for i, v := range viewers {
		st := v.Stats()
		lat.Add(v.Latency().Since(l0[i]))
		res.Received = append(res.Received, st.VideoPackets+st.AudioPackets-s0[i].VideoPackets-s0[i].AudioPackets)
		// Lost can go down (a late packet fills a gap): never below 0.
		res.Lost = append(res.Lost, st.Lost-min(st.Lost, s0[i].Lost))
		res.KeyframeFirst = append(res.KeyframeFirst, st.FirstVideoIsKeyframe)
	}
	res.LatP50, res.LatP95, res.LatP99, res.LatMax = lat.Quantile(0.5), lat.Quantile(0.95), lat.Quantile(0.99), lat.Quantile(1)
	res.Frames = lat.Count()
	res.partitionResult = part.wait()
	return out.Encode(res)
}

// lateViewer joins one more viewer, returns its time to join and to first
// media, and closes it.
func lateViewer(ctx context.Context, s childSpec) ([2]time.Duration, error) {
	return joinOne(ctx, s, s.Region+"-late-viewer", time.Now().Add(30*time.Second))
}

// joinOne joins viewer id, returns its time to join and to first media
// (both from its start), waiting until deadline at most, and closes it.
func joinOne(ctx context.Context, s childSpec, id string, deadline time.Time) ([2]time.Duration, error) {
	var d [2]time.Duration
	tok, err := loadtest.MintToken(s.Secret, loadtest.TokenClaims{Identity: id, Name: id, Room: s.Room,
		Grants: loadtest.Grants{Subscribe: true}, TTL: time.Hour})
	if err != nil {
		return d, err
	}
	vctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	v := loadtest.NewViewer(loadtest.ViewerConfig{URL: wsURL(s.Addr), Room: s.Room, Token: tok, Name: id})
	defer v.Close()
	start := time.Now()
	if err := v.Start(vctx); err != nil {
		return d, fmt.Errorf("%s: %w", id, err)
	}
	d[0] = time.Since(start)
	if err := v.WaitTracks(vctx, 2); err != nil {
		return d, fmt.Errorf("%s: %w", id, err)
	}
	d[1] = time.Since(start)
	return d, nil
}

// settle waits until no viewer has received anything for a second (the
// broadcast has ended), at most 10 s.
func settle(viewers []*loadtest.Viewer) {
	total := func() (n uint64) {
		for _, v := range viewers {
			s := v.Stats()
			n += s.VideoPackets + s.AudioPackets
		}
		return n
	}
	last, quiet := total(), 0
	for deadline := time.Now().Add(10 * time.Second); quiet < 5 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		if n := total(); n != last {
			last, quiet = n, 0
		} else {
			quiet++
		}
	}
}

// scrape reads a Prometheus text page into series -> value, without the
// node and region labels (every series of a node carries them).
// waitTrunks waits until the node at metricsURL pulls n relay trunks: with
// -trunks the broadcast starts on a running cluster, whose trunks are open
// before any room is (as in production), not while the nodes start.
func waitTrunks(ctx context.Context, metricsURL string, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		m, err := scrape(metricsURL)
		if err == nil && m[`halo_relay_trunks{direction="in"}`] >= float64(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d relay trunks not open within %s (metrics: %v)", n, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || !strings.HasPrefix(line, "halo_") {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		m[dropLabels(line[:sp], "node", "region")] += v
	}
	return m, sc.Err()
}

// dropLabels removes the named labels from a series name{a="x",b="y"}.
func dropLabels(series string, names ...string) string {
	name, rest, ok := strings.Cut(series, "{")
	if !ok {
		return series
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
		k, _, _ := strings.Cut(l, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop && l != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return name
	}
	return name + "{" + strings.Join(keep, ",") + "}"
}
