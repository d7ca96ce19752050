package webhook_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/webhook"
	"github.com/halobuzz/live/signaling/webhook/redisqueue"
)

// What webhooks cost and how fast they go (docs/benchmarks.md section 21):
// events queued as a node queues them (Queue.Append), delivered by the
// Service to a real HTTP receiver on loopback in a process of its own
// (bench_receiver_test.go), which checks every signature the Standard
// Webhooks way. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench Webhooks -benchtime 5000x ./signaling/webhook/
//
// Throughput queues b.N events over 64 rooms at once and reports the
// events delivered per second, the sender's CPU per delivered event (this
// process: the queue client, the worker, signing, HTTP), redis-server's
// CPU per event with the Redis queue, and the delivery latency (time of
// the event to its arrival) p50/p99, which in a burst is mostly the wait
// in the queue. Latency queues one event at a time and waits for it: the
// latency of an idle queue.

// benchRooms is how many rooms a burst spreads over: a room's events go
// one after the other, rooms in parallel.
const benchRooms = 64

// benchReceiverEnv is the receiver process's marker (bench_receiver_test.go).
const benchReceiverEnv = "HALOTEST_WEBHOOK_RECEIVER"

// benchRig is a Service delivering one queue to a receiver process.
type benchRig struct {
	q     webhook.Queue
	rdb   *redis.Client // the Redis queue's client; nil for memory
	got   chan receipt
	index int // events queued so far (their ids)
}

type receipt struct {
	latency time.Duration
	ok      bool
}

// startRig starts the receiver process, the queue ("memory" or "redis",
// on a real redis-server) and a Service delivering it, all stopped when b
// ends.
func startRig(b *testing.B, kind string, size int) *benchRig {
	b.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := config.WebhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
	r := &benchRig{got: make(chan receipt, size+1024)}
	url := startReceiver(b, secret, r.got)

	log := slog.New(slog.DiscardHandler)
	switch kind {
	case "memory":
		r.q = webhook.NewMemoryQueue(size + 1024)
	case "redis":
		srv := testutil.StartRedis(b)
		r.rdb = redis.NewClient(&redis.Options{Addr: srv.Addr()})
		rq, err := redisqueue.New(r.rdb, redisqueue.Options{Prefix: "bench:", NodeID: "bench-node",
			Lease: 1500 * time.Millisecond, Renew: 300 * time.Millisecond, Log: log})
		if err != nil {
			b.Fatal(err)
		}
		rq.Start()
		b.Cleanup(func() { rq.Close(); _ = r.rdb.Close() })
		r.q = rq
	}
	rooms, err := room.NewStandalone(testutil.SFUConfig(false), room.Options{NodeID: "bench-node", Log: log})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rooms.Close)
	cfg := config.Default().Webhooks
	cfg.URLs, cfg.Secret, cfg.QueueSize = []string{url}, secret, size+1024
	s, err := webhook.Start(webhook.Options{Config: cfg, NodeID: "bench-node", Region: "eu", Rooms: rooms,
		Queue: r.q, Log: log, NodePoll: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	if kind == "redis" {
		// The queue's partitions are taken by the first lease round.
		r.send(b, 1)
		r.wait(b, 1)
	}
	return r
}

// startReceiver starts the receiver process; each event it receives is
// sent on got. It returns the URL to deliver to.
func startReceiver(b *testing.B, secret string, got chan<- receipt) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), benchReceiverEnv+"="+secret)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "addr ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.Fatalf("receiver: %q", sc.Text())
	}
	addr := strings.TrimPrefix(sc.Text(), "addr ")
	read := make(chan struct{})
	go func() { // ends at the receiver's exit (its stdout closes)
		defer close(read)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 {
				continue
			}
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			got <- receipt{latency: time.Duration(ns), ok: f[2] == "1"}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	b.Cleanup(func() {
		_ = stdin.Close() // the receiver exits
		<-read
		_ = cmd.Wait()
	})
	return "http://" + addr + "/hook"
}

// send queues n viewer_count events over the rooms, benchRooms per Append
// (a node's dispatcher appends in batches too).
func (r *benchRig) send(b *testing.B, n int) {
	b.Helper()
	ctx := context.Background()
	ops := make([]webhook.Op, 0, benchRooms)
	for i := range n {
		r.index++
		room := "room-" + strconv.Itoa(r.index%benchRooms)
		viewers := r.index
		ev, _ := json.Marshal(webhook.Event{ID: "evt_bench_" + strconv.Itoa(r.index), Type: webhook.ViewerCount,
			Time: time.Now(), Room: room, Node: "bench-node", Region: "eu", Viewers: &viewers})
		ops = append(ops, webhook.Op{Room: room, Event: ev})
		if len(ops) == cap(ops) || i == n-1 {
			if err := r.q.Append(ctx, ops...); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
}

// wait takes n receipts; every signature must have been valid.
func (r *benchRig) wait(b *testing.B, n int) []time.Duration {
	b.Helper()
	lat := make([]time.Duration, 0, n)
	deadline := time.After(5 * time.Minute)
	for range n {
		select {
		case rc := <-r.got:
			if !rc.ok {
				b.Fatal("the receiver found a delivery whose signature does not verify")
			}
			lat = append(lat, rc.latency)
		case <-deadline:
			b.Fatalf("%d of %d events delivered in 5 minutes", len(lat), n)
		}
	}
	return lat
}

// redisCPU is redis-server's CPU time so far (INFO cpu).
func (r *benchRig) redisCPU(b *testing.B) time.Duration {
	if r.rdb == nil {
		return 0
	}
	info, err := r.rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return time.Duration(sum * float64(time.Second))
}

// processCPU is this process's CPU time so far (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportLatency reports p50 and p99 of lat in milliseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

func BenchmarkWebhooks_Throughput(b *testing.B) {
	for _, kind := range []string{"memory", "redis"} {
		b.Run(kind, func(b *testing.B) {
			r := startRig(b, kind, b.N)
			cpu0, rcpu0 := processCPU(), r.redisCPU(b)
			b.ResetTimer()
			start := time.Now()
			r.send(b, b.N)
			lat := r.wait(b, b.N)
			elapsed := time.Since(start)
			b.StopTimer()
			cpu, rcpu := processCPU()-cpu0, r.redisCPU(b)-rcpu0
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/event")
			if kind == "redis" {
				b.ReportMetric(float64(rcpu.Microseconds())/float64(b.N), "redis-cpu-us/event")
			}
			reportLatency(b, lat)
		})
	}
}

func BenchmarkWebhooks_Latency(b *testing.B) {
	for _, kind := range []string{"memory", "redis"} {
		b.Run(kind, func(b *testing.B) {
			r := startRig(b, kind, b.N)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				r.send(b, 1)
				lat = append(lat, r.wait(b, 1)...)
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}
