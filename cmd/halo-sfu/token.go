package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/signaling/auth"
)

// tokenUsage is `halo-sfu token --help`.
const tokenUsage = `Usage: halo-sfu token --room ROOM --identity ID [flags]

Prints an access token signed with the configured auth.secret (the same
configuration as the server: --config, HALO_CONFIG, HALO_* variables), so a
node accepts it. Without --publish it allows watching only; --admin without
--room allows every room and the server API (/admin/); --moderate with
--room allows the server API and the moderator's page on that room only.

Flags:
`

// runToken is `halo-sfu token`: it mints an access token with the signer
// the server verifies with (signaling/auth) and the configuration's
// auth.secret, and prints it on stdout. Exit codes: 0, 1 when signing
// fails, 2 for a usage or configuration error.
func runToken(args, environ []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("halo-sfu token", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	configFile := fs.String("config", "", "YAML configuration file (also HALO_CONFIG)")
	room := fs.String("room", "", `room the token is for; "" (any room) needs --admin`)
	identity := fs.String("identity", "", "the participant's identity (JWT sub), 1..128 characters")
	name := fs.String("name", "", "display name others see in chat (optional)")
	publish := fs.Bool("publish", false, "allow publishing")
	subscribe := fs.Bool("subscribe", true, "allow watching")
	admin := fs.Bool("admin", false, "admin grant: moderation, the server API, and any room when --room is empty")
	moderate := fs.Bool("moderate", false, "moderate grant: the server API and /admin/ on --room only (a broadcaster's moderators)")
	ttl := fs.Duration("ttl", 0, "lifetime (default auth.token_ttl, 24h unless configured)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(stderr, tokenUsage+fs.FlagUsages())
			return 0
		}
		fmt.Fprintf(stderr, "halo-sfu token: %v (run with --help for usage)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "halo-sfu token: unexpected argument %q (run with --help for usage)\n", fs.Arg(0))
		return 2
	}
	switch {
	case *identity == "":
		fmt.Fprintln(stderr, "halo-sfu token: --identity is required")
		return 2
	case *room == "" && *moderate && !*admin:
		fmt.Fprintln(stderr, "halo-sfu token: --moderate needs --room (the moderate grant acts on one room; use --admin for every room)")
		return 2
	case *room == "" && !*admin:
		fmt.Fprintln(stderr, "halo-sfu token: --room is required (a token for any room needs --admin)")
		return 2
	case fs.Changed("ttl") && *ttl <= 0:
		fmt.Fprintf(stderr, "halo-sfu token: --ttl %s: must be positive\n", *ttl)
		return 2
	}
	var cargs []string
	if fs.Changed("config") {
		cargs = []string{"--config", *configFile}
	}
	cfg, err := config.Load(cargs, environ)
	if err != nil {
		fmt.Fprintln(stderr, "halo-sfu token: configuration:", err)
		return 2
	}
	if !fs.Changed("ttl") {
		*ttl = cfg.Auth.TokenTTL
	}
	signer, err := auth.NewSigner([]byte(cfg.Auth.Secret))
	if err != nil {
		fmt.Fprintln(stderr, "halo-sfu token:", err)
		return 1
	}
	now := time.Now()
	tok, err := signer.Sign(auth.Claims{
		Identity: *identity, Name: *name, Room: *room,
		Grants:    auth.Grants{Publish: *publish, Subscribe: *subscribe, Admin: *admin, Moderate: *moderate},
		ExpiresAt: now.Add(*ttl), IssuedAt: now,
	})
	if err != nil {
		fmt.Fprintln(stderr, "halo-sfu token:", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
