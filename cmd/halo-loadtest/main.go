// Command halo-loadtest puts realistic load on a HaloBuzz Live node: one
// synthetic broadcaster (VP8 video tracks plus Opus) and many synthetic
// viewers, all real WebRTC clients speaking the WebSocket signalling protocol.
// It prints live progress every second to stderr and a summary with
// percentiles to stdout.
//
// Authentication: --token gives one token to every participant; --secret
// mints an HS256 token per participant (the server's signing secret). Both
// may come from the environment instead of the command line, where other
// users can read them: HALO_LOADTEST_TOKEN, HALO_LOADTEST_SECRET.
//
// Exit status: 0 when every viewer received media and loss stayed under
// --max-loss percent; 1 when not, or when the run could not start; 2 on bad
// usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/halobuzz/live/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed command line.
type options struct {
	url, room, token, secret string
	viewers, bitrate, fps    int
	videoTracks              int
	noAudio                  bool
	duration, mediaTimeout   time.Duration
	ramp, maxLoss            float64
	serverPID                int
	metricsURL               string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("halo-loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "ws://127.0.0.1:7880/ws", "signalling WebSocket URL of the node")
	fs.StringVar(&o.room, "room", "demo", "room to publish to and watch")
	// Credentials are not flag defaults: -h would print them.
	fs.StringVar(&o.token, "token", "", "access token used by every participant (or env HALO_LOADTEST_TOKEN)")
	fs.StringVar(&o.secret, "secret", "", "token signing secret: mint a token per participant (or env HALO_LOADTEST_SECRET)")
	fs.IntVar(&o.viewers, "viewers", 50, "number of viewers")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to hold once every viewer is started")
	fs.Float64Var(&o.ramp, "ramp", 50, "viewers started per second")
	fs.IntVar(&o.bitrate, "bitrate", 2_500_000, "video bitrate per track, bits/s")
	fs.IntVar(&o.fps, "fps", 30, "video frames per second")
	fs.IntVar(&o.videoTracks, "video-tracks", 1, "video tracks of the publisher (multi-camera)")
	fs.BoolVar(&o.noAudio, "no-audio", false, "publish no audio track")
	fs.DurationVar(&o.mediaTimeout, "media-timeout", 10*time.Second, "time a viewer has to receive media on every track")
	fs.Float64Var(&o.maxLoss, "max-loss", 1, "loss percentage at or above which the run fails")
	fs.IntVar(&o.serverPID, "server-pid", 0, "pid of the server on this machine: report its CPU and memory per viewer and per packet")
	fs.StringVar(&o.metricsURL, "metrics-url", "", "the server's Prometheus URL (e.g. http://127.0.0.1:7881/metrics), for packets forwarded")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.token == "" && o.secret == "" {
		o.token, o.secret = os.Getenv("HALO_LOADTEST_TOKEN"), os.Getenv("HALO_LOADTEST_SECRET")
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.token == "" && o.secret == "":
		return o, errors.New("give --token or --secret (or HALO_LOADTEST_TOKEN / HALO_LOADTEST_SECRET)")
	case o.token != "" && o.secret != "":
		return o, errors.New("give --token or --secret, not both")
	case o.viewers < 0 || o.bitrate <= 0 || o.fps <= 0 || o.videoTracks < 0 || o.ramp <= 0:
		return o, errors.New("--viewers, --video-tracks must be >= 0; --bitrate, --fps, --ramp > 0")
	case o.videoTracks == 0 && o.noAudio:
		return o, errors.New("nothing to publish: --video-tracks 0 and --no-audio")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "halo-loadtest:", err)
		return 2
	}
	cfg := loadtest.RunConfig{
		URL:      o.url,
		Room:     o.room,
		Viewers:  o.viewers,
		Duration: o.duration,
		RampRate: o.ramp,
		Publisher: loadtest.PublisherConfig{
			VideoTracks:  o.videoTracks,
			NoVideo:      o.videoTracks == 0,
			NoAudio:      o.noAudio,
			VideoBitrate: o.bitrate,
			FPS:          o.fps,
		},
		MediaTimeout: o.mediaTimeout,
		Progress: func(p loadtest.Progress) {
			fmt.Fprintf(stderr, "%6.1fs  viewers %d/%d connected, %d failed  %8.0f pkt/s  loss %.3f%%\n",
				p.Elapsed.Seconds(), p.ViewersConnected, o.viewers, p.ViewersFailed, p.PacketsPerSecond, p.LossPercent)
		},
	}
	if o.secret != "" {
		ramp := time.Duration(float64(o.viewers) / o.ramp * float64(time.Second))
		cfg.TokenFunc = loadtest.TokenMinter(o.secret, o.room, ramp+o.duration+time.Hour)
	} else {
		cfg.PublisherToken, cfg.ViewerToken = o.token, o.token
	}

	var before serverSample
	if o.serverPID > 0 {
		if before, err = sampleServer(ctx, o.serverPID, o.metricsURL); err != nil {
			fmt.Fprintln(stderr, "halo-loadtest: --server-pid:", err)
			return 2
		}
	}
	rep, err := loadtest.Run(ctx, cfg)
	if o.serverPID > 0 {
		if after, serr := sampleServer(context.Background(), o.serverPID, o.metricsURL); serr == nil {
			defer writeServerCost(stdout, before, after, rep.ViewersConnected)
		}
	}
	if err != nil && rep.Elapsed == 0 { // nothing ran: the publisher did not start
		fmt.Fprintln(stderr, "halo-loadtest:", err)
		return 1
	}
	_ = rep.WriteText(stdout)
	if err != nil {
		fmt.Fprintln(stderr, "halo-loadtest: run cut short:", err)
		return 1
	}
	if err := rep.Check(o.maxLoss); err != nil {
		fmt.Fprintln(stderr, "halo-loadtest: FAIL:", err)
		return 1
	}
	return 0
}
