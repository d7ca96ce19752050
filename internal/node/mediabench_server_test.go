package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
)

// The media benchmarks (mediabench_test.go) run the server as a separate
// process, as an operator would: its CPU time is read from /proc, apart from
// the synthetic clients' in the test process. Any halo-sfu binary of this
// project can be measured (an older commit's too: the keys set here exist
// in every version, and newer limits are switched off only when the binary
// knows them).

// benchServer is one halo-sfu binary under measurement.
type benchServer struct {
	label, bin string
}

// benchServers returns the binaries named by HALO_BENCH_SERVERS
// ("label=path label=path ..."; a bare path is labelled by its position), or
// the current tree's halo-sfu built into a temporary directory.
func benchServers(t *testing.T) []benchServer {
	t.Helper()
	spec := strings.Fields(os.Getenv("HALO_BENCH_SERVERS"))
	if len(spec) == 0 {
		bin := filepath.Join(t.TempDir(), "halo-sfu")
		out, err := exec.Command("go", "build", "-o", bin, "../../cmd/halo-sfu").CombinedOutput()
		if err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		return []benchServer{{label: "this tree", bin: bin}}
	}
	var list []benchServer
	for i, s := range spec {
		label, bin, ok := strings.Cut(s, "=")
		if !ok {
			label, bin = fmt.Sprintf("server %d", i+1), s
		}
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("HALO_BENCH_SERVERS: %v", err)
		}
		list = append(list, benchServer{label: label, bin: abs})
	}
	return list
}

// serverProc is a running halo-sfu process on loopback ports.
type serverProc struct {
	cmd        *exec.Cmd
	secret     string
	wsURL      string
	base       string
	metricsURL string
	log        *testutil.SyncBuffer
}

// startServerProc starts bin with a random secret, HTTP and metrics on free
// loopback ports, media on a free UDP port, no per-IP limits (every client is on
// 127.0.0.1) and warnings-only logs, and waits until it answers /healthz. It
// is stopped (SIGTERM, then killed) when t ends.
func startServerProc(t *testing.T, bin string, extraEnv ...string) *serverProc {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	env := []string{
		"HALO_AUTH_SECRET=" + hex.EncodeToString(secret),
		"HALO_HTTP_LISTEN=" + httpAddr,
		"HALO_METRICS_LISTEN=" + metricsAddr,
		"HALO_SFU_UDP_PORT=0",
		// sfu.udp_address stays at its default (every address): with an
		// address set, the media socket keeps the kernel's default 208 KiB
		// receive buffer instead of 4 MiB, and a busy machine then drops
		// the publisher's packets there (seen in join storms).
		"HALO_SFU_INCLUDE_LOOPBACK=true",
		"HALO_LIMITS_JOINS_PER_IP_PER_MINUTE=0",
		"HALO_LOG_LEVEL=warn",
	}
	// Limits that newer versions have; an older binary refuses unknown keys.
	probe := exec.Command(bin, "--print-config")
	probe.Env = testutil.ServerEnv(env)
	known, err := probe.CombinedOutput()
	if err != nil {
		t.Fatalf("%s --print-config: %v\n%s", bin, err, known)
	}
	for key, v := range map[string]string{
		"max_conns_per_ip":        "HALO_HTTP_MAX_CONNS_PER_IP=0",
		"unjoined_sockets_per_ip": "HALO_LIMITS_UNJOINED_SOCKETS_PER_IP=0",
		// A join storm from one address: hundreds of viewers whose
		// connections are not up yet at once.
		"pending_sessions_per_ip":   "HALO_LIMITS_PENDING_SESSIONS_PER_IP=0",
		"pending_sessions_per_room": "HALO_LIMITS_PENDING_SESSIONS_PER_ROOM=0",
	} {
		if bytes.Contains(known, []byte("\n  "+key+":")) {
			env = append(env, v)
		}
	}
	env = append(env, extraEnv...)
	cmd := exec.Command(bin)
	cmd.Env = testutil.ServerEnv(env)
	s := &serverProc{
		cmd: cmd, secret: hex.EncodeToString(secret), log: &testutil.SyncBuffer{},
		wsURL: "ws://" + httpAddr + "/ws", base: "http://" + httpAddr,
		metricsURL: "http://" + metricsAddr + "/metrics",
	}
	cmd.Stdout, cmd.Stderr = io.Discard, s.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s not healthy: %v\n%s", bin, err, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverSample is the server's CPU time and counters at one moment.
type serverSample struct {
	at       time.Time
	cpu      time.Duration // user + system, all threads
	counters map[string]float64
	// Datagrams dropped by the kernel at full receive buffers: at the
	// server's sockets, and at this process's (the viewers').
	serverDrops, clientDrops uint64
	// The whole machine's busy and total CPU time (all cores, /proc/stat).
	machineBusy, machineTotal uint64
}

// machineCPU returns the busy and total CPU ticks of all cores since boot.
func machineCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseUint(f, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			total += n
			continue
		}
		if i < 8 { // user nice system _ _ irq softirq steal; guest is inside user
			busy += n
			total += n
		}
	}
	return busy, total
}

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

// sample reads the process's CPU time from /proc/<pid>/stat and the
// halo_* counters from its metrics endpoint.
func (s *serverProc) sample(t *testing.T) serverSample {
	t.Helper()
	out := serverSample{at: time.Now(), counters: map[string]float64{}}
	out.cpu = procCPU(s.cmd.Process.Pid)
	out.serverDrops, out.clientDrops = udpDrops(s.cmd.Process.Pid), udpDrops(os.Getpid())
	out.machineBusy, out.machineTotal = machineCPU()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// name{labels} value: series of one name are summed (newer
		// versions label every series with node and region).
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || !strings.HasPrefix(line, "halo_") {
			continue
		}
		name, _, _ := strings.Cut(line[:sp], "{")
		if v, err := strconv.ParseFloat(line[sp+1:], 64); err == nil {
			out.counters[name] += v
		}
	}
	return out
}

// procCPU returns the CPU time (user + system, all threads) a process has
// used, from /proc/<pid>/stat; 0 when it cannot be read.
func procCPU(pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at field 3.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// serverCost is the server's work between two samples.
type serverCost struct {
	wall, cpu time.Duration
	forwarded float64 // halo_forwarded_packets_total: live and replayed packets written to viewers
	nacks     map[string]float64
	// kernel drops at full receive buffers, by side
	serverDrops, clientDrops uint64
	machineBusy              float64 // share of all cores busy (anyone's work), 0..1
}

func costBetween(a, b serverSample) serverCost {
	c := serverCost{wall: b.at.Sub(a.at), cpu: b.cpu - a.cpu, nacks: map[string]float64{},
		serverDrops: b.serverDrops - a.serverDrops, clientDrops: b.clientDrops - a.clientDrops}
	if t := b.machineTotal - a.machineTotal; t > 0 {
		c.machineBusy = float64(b.machineBusy-a.machineBusy) / float64(t)
	}
	c.forwarded = b.counters["halo_forwarded_packets_total"] - a.counters["halo_forwarded_packets_total"]
	for _, k := range []string{"received", "answered", "ignored", "dropped"} {
		name := "halo_nacks_" + k + "_total"
		if _, ok := b.counters[name]; ok {
			c.nacks[k] = b.counters[name] - a.counters[name]
		} else {
			c.nacks[k] = -1 // not counted by this version
		}
	}
	return c
}

// corePercent is the CPU used as a percentage of one core.
func (c serverCost) corePercent() float64 { return 100 * c.cpu.Seconds() / c.wall.Seconds() }

// perPacket is CPU time per forwarded packet in microseconds.
func (c serverCost) perPacket() float64 {
	if c.forwarded == 0 {
		return 0
	}
	return float64(c.cpu.Microseconds()) / c.forwarded
}

// udpDrops returns the datagrams the kernel dropped (a full receive buffer)
// at the UDP sockets of the processes pids, from /proc/net/udp{,6}: loss
// that happened before anyone's code saw the packet, at that side.
func udpDrops(pids ...int) uint64 {
	inodes := map[string]bool{}
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			l, err := os.Readlink(dir + "/" + e.Name())
			if inode, ok := strings.CutPrefix(l, "socket:["); ok && err == nil {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	var drops uint64
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 13 || !inodes[fields[9]] {
				continue
			}
			n, _ := strconv.ParseUint(fields[len(fields)-1], 10, 64)
			drops += n
		}
	}
	return drops
}
