// Command halo-sfu is the HaloBuzz Live media server: one node of SFU plus
// signalling. Run it with --dev to try it on one machine:
//
//	go run ./cmd/halo-sfu --dev
//
// It prints a token and the web page's address. See README.md.
//
//	halo-sfu token --room demo --identity alice [--publish] [--admin] [--ttl 1h]
//
// prints a token signed with the configured auth.secret.
//
// This package is the process only: flags and configuration, the logger,
// the garbage collector's target, signals and exit codes. The node itself
// is built, started and drained by internal/node.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/node"
	"github.com/halobuzz/live/internal/version"
)

// defaultGCPercent is the garbage collector's target unless GOGC is set.
// The packet path does not allocate, so collections follow joins and
// signalling, not traffic: a heap target of a quarter over the live heap
// instead of Go's double costs no CPU per packet and a fifth of the
// memory per viewer (docs/benchmarks.md, "make bench-server").
const defaultGCPercent = 25

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: tests call it too. Exit codes: 0 after
// a clean drain, 1 when the node could not start or its drain did not
// finish, 2 for a configuration error. "token" as the first argument mints
// a token instead (runToken).
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], environ, stdout, stderr)
	}
	for _, a := range args {
		if a == "--version" || a == "-version" {
			// Before the configuration: --version works without a secret or a file.
			fmt.Fprintln(stdout, version.Get())
			return 0
		}
	}
	cfg, err := config.Load(args, environ)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "\nSubcommand:\n  halo-sfu token --room ROOM --identity ID [--publish] [--admin] [--ttl 1h]\n"+
			"      prints a token signed with the configured auth.secret (halo-sfu token --help)")
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "halo-sfu: configuration:", err)
		return 2
	}
	if cfg.PrintConfig {
		out, err := cfg.MaskedYAML()
		if err != nil {
			fmt.Fprintln(stderr, "halo-sfu:", err)
			return 1
		}
		_, _ = stdout.Write(out)
		return 0
	}
	log := node.NewLogger(cfg.Log, stderr)
	var incomplete *node.ShutdownError
	switch err := node.Run(ctx, cfg, log, stdout); {
	case errors.As(err, &incomplete):
		log.Warn("shutdown incomplete", "err", incomplete.Err)
		return 1
	case err != nil:
		log.Error("start failed", "err", portTaken(err, cfg))
		return 1
	}
	return 0
}

// portTaken names the key to change when the media port is in use: the
// error from the media plane names the port and the address but not
// sfu.udp_port.
func portTaken(err error, cfg *config.Config) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "listen" && strings.HasPrefix(op.Net, "udp") && errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("sfu.udp_port %d is in use by another process (another halo-sfu?): stop it, or set another port "+
			"with sfu.udp_port, HALO_SFU_UDP_PORT or --sfu.udp_port: %w", cfg.SFU.UDPPort, err)
	}
	return err
}
