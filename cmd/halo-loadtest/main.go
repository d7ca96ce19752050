// Command halo-loadtest puts realistic load on a HaloBuzz Live node, or on
// any WHIP/WHEP server: synthetic broadcasters (VP8 video tracks plus Opus)
// and many synthetic viewers, all real WebRTC clients, laid out by a
// scenario (flags, or --scenario file.yaml). It shows a live status line on
// stderr, prints a table to stdout, and writes --json and --html reports.
//
//	halo-loadtest [flags]                       run a scenario
//	halo-loadtest merge a.json b.json [--json out.json] [--html report.html]
//	halo-loadtest bench-server [--sfu bin/halo-sfu] [--viewers 100,200]   whole-server benchmark (make bench-server)
//
// Authentication: --token gives one token to every participant; --secret
// mints an HS256 token per participant (the server's signing secret). Both
// may come from the environment instead of the command line, where other
// users can read them: HALO_LOADTEST_TOKEN, HALO_LOADTEST_SECRET.
//
// Exit status: 0 when every participant got going, every viewer received
// media, loss stayed under --max-loss percent, frame latency p95 within
// --max-latency, freezes within --max-freeze percent of the watch time and
// frames received at or above --min-frames percent of those sent; 1 when
// not (a sentence on stderr says why), when the run was interrupted (the
// reports are still written), or could not start; 2 on bad usage.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
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
	target                 loadtest.Target
	room, token, secret    string
	scenarioFile           string
	scenario               loadtest.Scenario
	shard                  loadtest.Shard
	jsonOut, htmlOut       string
	mediaTimeout           time.Duration
	limits                 loadtest.Limits
	maxLatency             time.Duration
	durationSet            bool
	server                 loadtest.ServerProbe
	viewers, rooms         int
	publishers             int
	bitrate, fps, tracks   int
	keyInterval            time.Duration
	noAudio, noDTX         bool
	duration, churn        time.Duration
	ramp                   float64
	region                 string
	chatRate, reactionRate float64
	seed                   uint64
	shardSpec              string
	cpuProfile             string
	shapeFlags             []string
	viewerKind             string
	viewerLinkKbps         int
	ice                    string
	iceInsecure            bool
	simulcast              int
	codec                  string
	hls                    int    // LL-HLS viewers (hls.go)
	hlsURL                 string // their playlist, when not the node's of --url
}

// shape flags describe the scenario; they and --scenario exclude each
// other.
var shapeFlags = map[string]bool{
	"viewers": true, "rooms": true, "publishers": true, "bitrate": true, "fps": true,
	"video-tracks": true, "simulcast": true, "codec": true, "keyframe-interval": true, "no-audio": true, "no-dtx": true,
	"ramp": true, "churn": true, "region": true, "chat-per-minute": true,
	"reactions-per-minute": true, "seed": true, "room": true,
	// --duration is not among them: it overrides a scenario's duration.
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("halo-loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: halo-loadtest [flags]                   run a scenario (docs/loadtest.md)\n"+
			"       halo-loadtest merge a.json b.json... [--json out.json] [--html report.html]\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.target.URL, "url", "", "signalling WebSocket URL of the node (default ws://127.0.0.1:7880/ws unless --whip/--whep)")
	fs.StringVar(&o.target.WHIP, "whip", "", "WHIP endpoint instead of the WebSocket protocol; {room} is replaced (e.g. http://host/whip/{room})")
	fs.StringVar(&o.target.WHEP, "whep", "", "WHEP endpoint, with --whip (e.g. http://host/whep/{room})")
	fs.StringVar(&o.room, "room", "demo", "room name (one room), or the prefix of room names (<room>-1, <room>-2 with --rooms)")
	// Credentials are not flag defaults: -h would print them.
	fs.StringVar(&o.token, "token", "", "access token used by every participant (or env HALO_LOADTEST_TOKEN)")
	fs.StringVar(&o.secret, "secret", "", "token signing secret: mint a token per participant (or env HALO_LOADTEST_SECRET)")
	fs.StringVar(&o.scenarioFile, "scenario", "", "YAML scenario file (see loadtest/scenarios/); excludes the scenario flags")
	fs.StringVar(&o.shardSpec, "shard", "", "run the i-th of N deterministic slices of the scenario: i/N")
	fs.StringVar(&o.jsonOut, "json", "", "write the JSON report (schema in docs/loadtest.md) to this file")
	fs.StringVar(&o.htmlOut, "html", "", "write the HTML report with plots to this file")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the load tester to this file (go tool pprof)")
	fs.IntVar(&o.viewers, "viewers", 50, "viewers per room")
	fs.IntVar(&o.rooms, "rooms", 1, "rooms")
	fs.IntVar(&o.publishers, "publishers", 1, "publishers per room")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to hold once every viewer is started")
	fs.Float64Var(&o.ramp, "ramp", 50, "viewers started per second")
	fs.DurationVar(&o.churn, "churn", 0, "mean stay of a viewer before it leaves and a new one takes its place (0: nobody leaves)")
	fs.IntVar(&o.bitrate, "bitrate", 2_500_000, "video bitrate per track, bits/s")
	fs.IntVar(&o.fps, "fps", 30, "video frames per second")
	fs.DurationVar(&o.keyInterval, "keyframe-interval", 2*time.Second, "time between keyframes")
	fs.IntVar(&o.tracks, "video-tracks", 1, "video tracks per publisher (multi-camera)")
	fs.BoolVar(&o.noAudio, "no-audio", false, "publish no audio track")
	fs.IntVar(&o.hls, "hls", 0, "LL-HLS viewers of the first room, beside the WebRTC viewers, started at --ramp and held --duration (the publishers must send H.264: --codec h264)")
	fs.StringVar(&o.hlsURL, "hls-url", "", "the LL-HLS playlist the --hls viewers play (default http://<host of --url>/hls/<room>/index.m3u8; give a signed URL's query here)")
	fs.StringVar(&o.codec, "codec", "vp8", "video codec the publishers send: vp8 or h264 (for servers that take no VP8)")
	fs.IntVar(&o.simulcast, "simulcast", 0, "send each video track in 2 or 3 simulcast layers (RIDs q, h, f; each a quarter of the bitrate of the one above)")
	fs.BoolVar(&o.noDTX, "no-dtx", false, "audio without DTX silences: 50 packets a second throughout")
	fs.StringVar(&o.region, "region", "", "viewers' region, sent as ?region=")
	fs.Float64Var(&o.chatRate, "chat-per-minute", 0, "chat messages per viewer per minute")
	fs.Float64Var(&o.reactionRate, "reactions-per-minute", 0, "reactions per viewer per minute")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the plan (churn stays)")
	fs.DurationVar(&o.mediaTimeout, "media-timeout", 10*time.Second, "time a viewer has to receive media on every track")
	addLimitFlags(fs, &o.limits, &o.maxLatency)
	fs.StringVar(&o.viewerKind, "viewer", "lean", "viewer transport: lean (own ICE/DTLS/SRTP, one batched reader per viewer) or pion (a Pion PeerConnection)")
	fs.StringVar(&o.ice, "ice", "direct", "how viewers reach the media: direct, or only through the node's TURN relay: relay-udp, relay-tcp or relay-tls (Pion viewers)")
	fs.BoolVar(&o.iceInsecure, "ice-insecure", false, "with --ice relay-tls: accept any certificate of the TURN server (a test's self-signed one)")
	fs.IntVar(&o.viewerLinkKbps, "viewer-link-kbps", 0, "put each lean viewer behind a link of this many kbit/s: packets beyond it are dropped (starved viewers; 0: none)")
	fs.IntVar(&o.server.PID, "server-pid", 0, "pid of the server on this machine: report its CPU, kernel share and memory")
	fs.StringVar(&o.server.MetricsURL, "metrics-url", "", "the server's Prometheus URL (e.g. http://127.0.0.1:7881/metrics), for packets forwarded")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.limits.MaxLatencyMS = float64(o.maxLatency) / float64(time.Millisecond)
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "duration" {
			o.durationSet = true
			return // --duration overrides a scenario's
		}
		if shapeFlags[f.Name] {
			o.shapeFlags = append(o.shapeFlags, "--"+f.Name)
		}
	})
	if o.token == "" && o.secret == "" {
		o.token, o.secret = os.Getenv("HALO_LOADTEST_TOKEN"), os.Getenv("HALO_LOADTEST_SECRET")
	}
	if o.target.URL == "" && o.target.WHIP == "" && o.target.WHEP == "" {
		o.target.URL = "ws://127.0.0.1:7880/ws"
	}
	switch {
	case o.viewerKind != "lean" && o.viewerKind != "pion":
		return o, fmt.Errorf("--viewer %q: want lean or pion", o.viewerKind)
	case !validICE(o.ice):
		return o, fmt.Errorf("--ice %q: want direct, relay-udp, relay-tcp or relay-tls", o.ice)
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.token != "" && o.secret != "":
		return o, errors.New("give --token or --secret, not both")
	case o.target.URL != "" && (o.target.WHIP != "" || o.target.WHEP != ""):
		return o, errors.New("give --url or --whip/--whep, not both")
	case (o.target.WHIP == "") != (o.target.WHEP == ""):
		return o, errors.New("--whip and --whep go together")
	case o.viewers < 0 || o.bitrate <= 0 || o.fps <= 0 || o.tracks < 0 || o.ramp <= 0 || o.rooms < 1 || o.publishers < 0:
		return o, errors.New("--viewers, --video-tracks, --publishers must be >= 0; --rooms >= 1; --bitrate, --fps, --ramp > 0")
	case o.tracks == 0 && o.noAudio:
		return o, errors.New("nothing to publish: --video-tracks 0 and --no-audio")
	case o.scenarioFile != "" && len(o.shapeFlags) > 0:
		return o, fmt.Errorf("give --scenario or the scenario flags (%v), not both", o.shapeFlags)
	}
	if o.shardSpec != "" {
		sh, err := loadtest.ParseShard(o.shardSpec)
		if err != nil {
			return o, fmt.Errorf("--shard: %w", err)
		}
		o.shard = sh
	}
	if o.scenarioFile != "" {
		data, err := os.ReadFile(o.scenarioFile)
		if err != nil {
			return o, fmt.Errorf("--scenario: %w", err)
		}
		if o.scenario, err = loadtest.ParseScenario(data); err != nil {
			return o, fmt.Errorf("--scenario %s: %w", o.scenarioFile, err)
		}
		if o.durationSet {
			o.scenario.Duration = loadtest.Duration(o.duration)
			if err := o.scenario.Validate(); err != nil {
				return o, fmt.Errorf("--duration: %w", err)
			}
		}
		if err := checkHLS(&o); err != nil {
			return o, err
		}
		return o, nil
	}
	audio, dtx := !o.noAudio, !o.noDTX
	tracks := o.tracks
	o.scenario = loadtest.Scenario{
		Seed: o.seed, Duration: loadtest.Duration(o.duration), Ramp: o.ramp, RoomPrefix: o.room,
		Rooms: []loadtest.RoomGroup{{Count: o.rooms, Publishers: o.publishers, Viewers: o.viewers}},
		Publisher: loadtest.MediaSpec{
			VideoKbps: o.bitrate / 1000, FPS: o.fps, KeyframeInterval: loadtest.Duration(o.keyInterval),
			VideoTracks: &tracks, Audio: &audio, AudioDTX: &dtx, Simulcast: o.simulcast, Codec: o.codec,
		},
		Churn:  loadtest.Churn{MeanWatch: loadtest.Duration(o.churn)},
		Viewer: loadtest.ViewerSpec{Region: o.region, ChatPerMinute: o.chatRate, ReactionsPerMinute: o.reactionRate},
	}
	if err := o.scenario.Validate(); err != nil {
		return o, err
	}
	if err := checkHLS(&o); err != nil {
		return o, err
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "merge" {
		return runMerge(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "bench-server" {
		return runBench(ctx, args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "halo-loadtest:", err)
		return 2
	}
	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "halo-loadtest: --cpuprofile:", err)
			return 2
		}
		defer stopProfile()
	}
	status := newStatus(stderr)
	ice, _ := loadtest.ParseICEMode(o.ice) // checked by parseFlags
	cfg := loadtest.RunConfig{
		Target:         o.target,
		Scenario:       o.scenario,
		Shard:          o.shard,
		MediaTimeout:   o.mediaTimeout,
		PionViewers:    o.viewerKind == "pion",
		ViewerLinkKbps: o.viewerLinkKbps,
		ICE:            ice,
		Server:         o.server,
		Progress:       func(p loadtest.Progress) { status.update(loadtest.StatusLine(p)) },
	}
	if o.iceInsecure {
		cfg.ICETLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for: --ice-insecure
	}
	switch {
	case o.secret != "":
		length := o.scenario.Plan().Length
		cfg.TokenFunc = loadtest.RoomTokenMinter(o.secret, length+time.Hour)
	case o.token != "" || o.target.URL == "":
		// A plain WHIP/WHEP server may take no token: none is sent.
		cfg.Token = o.token
	default:
		// No credentials for our protocol: a server in dev mode (make
		// run) gives a token per participant.
		mint, err := loadtest.DevTokenMinter(ctx, o.target.URL)
		if err != nil {
			fmt.Fprintln(stderr, "halo-loadtest: give --token or --secret (or HALO_LOADTEST_TOKEN / HALO_LOADTEST_SECRET);",
				"without them a dev-mode server's /dev/token is asked, and:", err)
			return 2
		}
		cfg.TokenFunc = mint
	}
	var waitHLS func() (*loadtest.HLSReport, error)
	if o.hls > 0 {
		if waitHLS, err = startHLS(ctx, o); err != nil {
			fmt.Fprintln(stderr, "halo-loadtest: --hls:", err)
			return 2
		}
	}
	rep, err := loadtest.Run(ctx, cfg)
	status.done()
	var hlsErr error
	if waitHLS != nil {
		var hrep *loadtest.HLSReport
		hrep, hlsErr = waitHLS()
		if rep != nil {
			rep.HLS = hrep
		}
	}
	if rep == nil {
		fmt.Fprintln(stderr, "halo-loadtest:", err)
		return 1
	}
	code := report(rep, o.jsonOut, o.htmlOut, o.limits, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "halo-loadtest: run cut short:", err)
		code = 1
	}
	if hlsErr != nil {
		fmt.Fprintln(stderr, "halo-loadtest:", hlsErr)
		code = 1
	}
	return code
}

// addLimitFlags adds the flags of what a run must meet to pass.
func addLimitFlags(fs *flag.FlagSet, l *loadtest.Limits, maxLatency *time.Duration) {
	d := loadtest.DefaultLimits()
	fs.Float64Var(&l.MaxLossPercent, "max-loss", d.MaxLossPercent, "loss percentage (after repair) at or above which the run fails")
	fs.DurationVar(maxLatency, "max-latency", time.Duration(d.MaxLatencyMS)*time.Millisecond, "frame latency p95 above which the run fails (0: not checked)")
	fs.Float64Var(&l.MaxFreezePercent, "max-freeze", d.MaxFreezePercent, "percentage of the viewers' watch time frozen above which the run fails (0: not checked)")
	fs.Float64Var(&l.MinFramesPercent, "min-frames", d.MinFramesPercent, "percentage of the frames sent the viewers must receive (0: not checked)")
}

// report judges the run against limits, writes the table and the report
// files, and says why the run failed.
func report(rep *loadtest.Report, jsonOut, htmlOut string, limits loadtest.Limits, stdout, stderr io.Writer) int {
	checkErr := rep.Check(limits)
	_ = rep.WriteText(stdout)
	code := 0
	write := func(path string, f func(io.Writer) error) {
		if path == "" {
			return
		}
		if err := writeFile(path, f); err != nil {
			fmt.Fprintln(stderr, "halo-loadtest:", err)
			code = 1
			return
		}
		fmt.Fprintln(stderr, "halo-loadtest: wrote", path)
	}
	write(jsonOut, rep.WriteJSON)
	write(htmlOut, rep.WriteHTML)
	if checkErr != nil {
		for _, f := range rep.Failures {
			fmt.Fprintln(stderr, "halo-loadtest: FAIL:", f)
		}
		code = 1
	}
	return code
}

// startCPUProfile profiles this process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// writeFile writes through f to path, replacing it only once complete.
func writeFile(path string, f func(io.Writer) error) error {
	tmp := path + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := f(out); err != nil {
		_ = out.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// runMerge is the merge subcommand: flags may come after the files.
func runMerge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("halo-loadtest merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOut := fs.String("json", "", "write the merged JSON report to this file")
	htmlOut := fs.String("html", "", "write the merged HTML report to this file")
	var limits loadtest.Limits
	var maxLatency time.Duration
	addLimitFlags(fs, &limits, &maxLatency)
	var files []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintln(stderr, "halo-loadtest merge:", err)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "halo-loadtest merge: give the JSON reports to merge")
		return 2
	}
	var reps []*loadtest.Report
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(stderr, "halo-loadtest merge:", err)
			return 2
		}
		r, err := loadtest.ReadReport(f)
		_ = f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "halo-loadtest merge: %s: %v\n", name, err)
			return 2
		}
		reps = append(reps, r)
	}
	merged, err := loadtest.Merge(reps...)
	if err != nil {
		fmt.Fprintln(stderr, "halo-loadtest merge:", err)
		return 2
	}
	limits.MaxLatencyMS = float64(maxLatency) / float64(time.Millisecond)
	return report(merged, *jsonOut, *htmlOut, limits, stdout, stderr)
}

// validICE reports whether --ice names a mode the load tester knows.
func validICE(s string) bool {
	_, err := loadtest.ParseICEMode(s)
	return err == nil
}
