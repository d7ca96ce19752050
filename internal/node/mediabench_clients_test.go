package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// Clients whose own work must not weigh on the measured viewers run in a
// child process: the join storm's 100 joiners (their ICE and DTLS set-up)
// and the NACK flood's hostile viewer (the retransmissions it receives).
// The child is this test binary re-executed as TestMediaBench_ClientProcess;
// it talks over its stdin and stdout in lines.

// clientProc is a running child process of clients.
type clientProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan clientLine // the child's lines meant for us; closed at its end
}

// clientLine is a line of the child's and when it arrived.
type clientLine struct {
	text string
	at   time.Time
}

// startClients starts a child with n clients of the given mode ("joiners"
// or "hostile") for room on srv, and returns once it is ready (the hostile
// viewer receives media; the joiners are not started yet). It is ended when
// t ends.
func startClients(t *testing.T, srv *serverProc, room, mode string, n int) *clientProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMediaBench_ClientProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"HALO_BENCH_CLIENTS="+mode, "HALO_BENCH_CLIENTS_URL="+srv.wsURL, "HALO_BENCH_CLIENTS_ROOM="+room,
		"HALO_BENCH_CLIENTS_SECRET="+srv.secret, fmt.Sprintf("HALO_BENCH_CLIENTS_N=%d", n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &clientProc{cmd: cmd, stdin: stdin, lines: make(chan clientLine, 16)}
	go func() { // ends with the child's stdout
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "clients ") {
				c.lines <- clientLine{text: l, at: time.Now()}
			}
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if line := c.line(t); line.text != "clients ready" {
		t.Fatalf("client process: %q", line.text)
	}
	return c
}

// line returns the child's next line meant for us (go test prints its own).
func (c *clientProc) line(t *testing.T) clientLine {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("client process ended")
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatal("client process: no answer in 60 s")
	}
	return clientLine{}
}

func (c *clientProc) command(t *testing.T, cmd string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
}

// joinerReport is what the joiners' child reports once all are in.
type joinerReport struct {
	connected, failed        int
	firstKeyP50, firstKeyP95 time.Duration
	at                       time.Time // when the report arrived: all were in
}

// joined waits for the joiners' report.
func (c *clientProc) joined(t *testing.T) joinerReport {
	t.Helper()
	var r joinerReport
	var p50, p95 float64
	line := c.line(t)
	if _, err := fmt.Sscanf(line.text, "clients connected %d failed %d firstkey %f %f", &r.connected, &r.failed, &p50, &p95); err != nil {
		t.Fatalf("client process: %q: %v", line.text, err)
	}
	r.firstKeyP50, r.firstKeyP95 = time.Duration(p50*1e6), time.Duration(p95*1e6)
	r.at = line.at
	return r
}

// stopFlood stops the hostile viewer's flood and returns the NACKs it sent.
func (c *clientProc) stopFlood(t *testing.T) uint64 {
	t.Helper()
	c.command(t, "stop")
	var n uint64
	line := c.line(t)
	if _, err := fmt.Sscanf(line.text, "clients sent %d", &n); err != nil {
		t.Fatalf("client process: %q: %v", line.text, err)
	}
	return n
}

// TestMediaBench_ClientProcess is the child side (it does nothing in a
// normal test run).
//
//	joiners: prints "clients ready"; on a line, starts its viewers at 100/s,
//	         and prints how many received media and their time to first
//	         keyframe once all are in
//	hostile: starts one viewer and prints "clients ready" once it receives
//	         media; "go" starts its NACK flood, "stop" ends it and prints the
//	         NACKs sent
//
// Both close their viewers when stdin ends.
func TestMediaBench_ClientProcess(t *testing.T) {
	mode := os.Getenv("HALO_BENCH_CLIENTS")
	if mode == "" {
		t.Skip("the media benchmarks' child process")
	}
	url, room := os.Getenv("HALO_BENCH_CLIENTS_URL"), os.Getenv("HALO_BENCH_CLIENTS_ROOM")
	n, _ := strconv.Atoi(os.Getenv("HALO_BENCH_CLIENTS_N"))
	mint := loadtest.TokenMinter(os.Getenv("HALO_BENCH_CLIENTS_SECRET"), room, time.Hour)
	viewers := make([]*loadtest.Viewer, n)
	for i := range viewers {
		tok, err := mint(fmt.Sprintf("%s-%d", mode, i), false)
		if err != nil {
			t.Fatal(err)
		}
		viewers[i] = loadtest.NewViewer(loadtest.ViewerConfig{URL: url, Room: room, Token: tok})
	}
	defer func() {
		var wg sync.WaitGroup
		for _, v := range viewers {
			wg.Go(func() { _ = v.Close() })
		}
		wg.Wait()
	}()
	in := bufio.NewScanner(os.Stdin)
	switch mode {
	case "joiners":
		fmt.Println("clients ready")
		if !in.Scan() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fmt.Println(startJoiners(ctx, viewers, benchJoinRate))
	case "hostile":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		v := viewers[0]
		if err := v.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatal(err)
		}
		fmt.Println("clients ready")
		for in.Scan() && in.Text() != "go" {
		}
		fctx, stop := context.WithCancel(context.Background())
		sent := make(chan uint64, 1)
		go func() { sent <- v.FloodNACKs(fctx, loadtest.NACKFlood{Rate: benchNACKRate, Span: benchNACKSpan}) }()
		for in.Scan() && in.Text() != "stop" {
		}
		stop()
		fmt.Printf("clients sent %d\n", <-sent)
	default:
		t.Fatalf("HALO_BENCH_CLIENTS=%q", mode)
	}
	for in.Scan() {
	}
}

// startJoiners starts the viewers at rate per second and returns the report
// line once each received media on both tracks or failed.
func startJoiners(ctx context.Context, viewers []*loadtest.Viewer, rate int) string {
	ok := make([]bool, len(viewers))
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i, v := range viewers {
		if i > 0 {
			<-tick.C
		}
		wg.Go(func() {
			ok[i] = v.Start(ctx) == nil && v.WaitTracks(ctx, 2) == nil
		})
	}
	tick.Stop()
	wg.Wait()
	// The first keyframe follows the video track's first packet closely,
	// not always before WaitTracks returns.
	time.Sleep(500 * time.Millisecond)
	var connected int
	var firstKey []time.Duration
	for i, v := range viewers {
		if ok[i] {
			connected++
			if s := v.Stats(); s.Keyframes > 0 {
				firstKey = append(firstKey, s.FirstKeyframeAfter)
			}
		}
	}
	slices.Sort(firstKey)
	q := func(f float64) float64 {
		if len(firstKey) == 0 {
			return 0
		}
		i := min(max(int(f*float64(len(firstKey))+0.5)-1, 0), len(firstKey)-1)
		return firstKey[i].Seconds() * 1e3
	}
	return fmt.Sprintf("clients connected %d failed %d firstkey %.1f %.1f", connected, len(viewers)-connected, q(0.5), q(0.95))
}
