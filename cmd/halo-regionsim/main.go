// Command halo-regionsim runs HaloBuzz Live in three simulated regions on
// one Linux machine and measures what viewers in each region get:
//
//	sudo make region-sim                      # or:
//	sudo bin/halo-regionsim -viewers 5 -duration 20s
//
// It creates three network namespaces (nepal, india, europe; addresses
// 10.77.0.1-3, nothing else), delays every packet between them by a fixed
// one-way delay (nepal-india 40 ms, india-europe 120 ms, nepal-europe
// 180 ms, each direction) with tc netem or, where the kernel has no netem,
// with its own user-space delay line over TUN devices, and starts Redis in
// india, one halo-sfu node per region (its own binary, -sfu), a broadcaster
// on the nepal node and viewers on every node, all as processes inside the
// namespaces (the clients are this program re-executed there). It prints
// per region the viewers' one-way latency (from the send time in every
// frame: all namespaces share the machine's clock), loss, time to first
// frame, and the origin's outbound relay count from its /metrics.
//
// -partition cuts links for a while in the measuring window (the delay
// line drops every packet, UDP and TCP, both directions):
// nepal-europe@10s+20s cuts the broadcaster's node from europe's 10 s into
// the window for 20 s (both still reach Redis in india), nepal@10s+20s cuts
// nepal from everything else, Redis included. It then prints per region the
// viewers' longest gap without video, their time from the heal to video
// again, and the time to media of a viewer joining during the partition and
// of one joining at the heal; a viewer with no video after the heal, or a
// new viewer who got none, fails the run.
//
// It needs root, ip and tc (iproute2); where it cannot run it says why and
// exits 1. It removes everything it created on exit, on Ctrl-C, and at start
// what a killed run left behind. Exit status: 0 when every viewer in every
// region received the broadcast, 1 otherwise, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed command line.
type options struct {
	sfu, link    string
	viewers      int
	bitrate      int
	duration     time.Duration
	redisTimeout time.Duration
	logLevel     string        // the nodes' log.level
	logDir       string        // "": keep only the end of each process's log, shown on failure
	lockWait     time.Duration // how long to wait for another run to end
	partition    partitionSpec // A "": none
	trunks       bool          // the nodes' cluster.relay_trunks
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("halo-regionsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	self, _ := os.Executable()
	fs.StringVar(&o.sfu, "sfu", filepath.Join(filepath.Dir(self), "halo-sfu"), "halo-sfu binary to run in every region (make build puts it in bin/)")
	fs.IntVar(&o.viewers, "viewers", 5, "viewers per region")
	fs.BoolVar(&o.trunks, "trunks", false, "relay between the nodes over relay trunks (cluster.relay_trunks), not a connection per room")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long to measure once every viewer receives the broadcast")
	fs.IntVar(&o.bitrate, "bitrate", 1_000_000, "broadcaster's video bits per second (plus Opus audio)")
	fs.StringVar(&o.link, "link", "auto", "how the delays are made: netem (tc netem only), userspace (this program's delay line), auto (netem when the kernel has it)")
	// Redis is 120 ms (one way) from europe: with halo-sfu's default 500 ms
	// a join that needs a new Redis connection (dial, HELLO, the read:
	// three round trips, 720 ms) fails with cluster_unavailable.
	fs.DurationVar(&o.redisTimeout, "redis-timeout", 2*time.Second, "redis.timeout of the nodes (0: halo-sfu's default, 500ms, too short for a Redis 240 ms round trip away)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log.level of the nodes: debug, info, warn or error")
	fs.StringVar(&o.logDir, "logs", "", "directory to write each process's whole log to (nodes, Redis, clients)")
	fs.Func("partition", "cut the links between two regions, both directions, UDP and TCP, from START into the window for LENGTH: "+
		"REGION-REGION@START+LENGTH (e.g. nepal-europe@10s+20s: the broadcaster's node and europe's; both still reach india's Redis) "+
		"or REGION@START+LENGTH (e.g. nepal@10s+20s: nepal cut from everything else, Redis included); uses the user-space delay line",
		func(v string) (err error) { o.partition, err = parsePartition(v); return err })
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.viewers < 1 || o.viewers > 200:
		return o, errors.New("-viewers: 1..200 per region")
	case o.duration < time.Second:
		return o, errors.New("-duration: at least 1s")
	case o.bitrate < 50_000:
		return o, errors.New("-bitrate: at least 50000")
	case o.logLevel != "debug" && o.logLevel != "info" && o.logLevel != "warn" && o.logLevel != "error":
		return o, fmt.Errorf("-log-level: debug, info, warn or error, not %q", o.logLevel)
	case o.link != "auto" && o.link != "netem" && o.link != "userspace":
		return o, fmt.Errorf("-link: auto, netem or userspace, not %q", o.link)
	case o.partition.A != "" && o.link == "netem":
		return o, errors.New("-partition needs the user-space delay line (-link userspace or auto), not -link netem")
	case o.partition.A != "" && o.partition.At+o.partition.For+minAfterHeal > o.duration:
		return o, fmt.Errorf("-partition %v ends %v into the window: -duration must be at least %v (%v after the heal, to see the viewers receive again)",
			o.partition, o.partition.At+o.partition.For, o.partition.At+o.partition.For+minAfterHeal, minAfterHeal)
	}
	if _, err := os.Stat(o.sfu); err != nil {
		return o, fmt.Errorf("-sfu: %w (build it with make build)", err)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "halo-regionsim:", err)
		return 2
	}
	rep, err := simulate(ctx, o, stderr)
	if rep != nil {
		rep.print(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "halo-regionsim:", err)
		return 1
	}
	return 0
}
