package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// maxFileBytes bounds the config file; a real one is a few kilobytes.
const maxFileBytes = 1 << 20

// Load builds the effective configuration from args (os.Args[1:]) and
// environ (os.Environ()): defaults, then the YAML file named by --config or
// HALO_CONFIG, then HALO_* variables, then flags. It validates the result and
// returns it only when it is valid.
//
// For -h or --help it prints usage to stderr and returns flag.ErrHelp.
// Unknown flags, unknown keys in the file and HALO_* variables that match no
// key are errors, so a typo is never silently ignored.
//
// Dev mode comes from the --dev flag only: a "dev" key in the file or
// HALO_DEV in the environment is an error naming it. In dev mode Load turns on
// sfu.include_loopback unless it was explicitly set to false, and always
// generates auth.secret (Auth.SecretGenerated reports it): a configured
// secret is refused, because /dev/token would sign tokens with it (the
// placeholder of config.example.yaml counts as none). Dev mode listens on
// 127.0.0.1:7880 unless http.listen is set (file, environment or flag):
// /dev/token must not be offered to the network by default. An empty
// node.id means the host-name based default.
//
// Outside dev mode, when auth.secret is set nowhere, the error also says how
// to start: --dev to try it, HALO_AUTH_SECRET (or a file) for production.
func Load(args []string, environ []string) (*Config, error) {
	return load(args, environ, os.Stderr)
}

// flagKeys are the configuration keys that also have a flag of the same name.
var flagKeys = []struct{ key, usage string }{
	{"http.listen", "signalling and web page listen address"},
	{"metrics.listen", `Prometheus listen address; "" disables it`},
	{"sfu.udp_port", "UDP port shared by all peers; 0 picks a free port"},
	{"node.region", "region of this node"},
	{"log.level", "log level: debug, info, warn or error"},
}

func load(args, environ []string, stderr io.Writer) (*Config, error) {
	fs := newFlagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printUsage(stderr, fs)
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("%w (run with --help for usage)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (run with --help for usage)", fs.Arg(0))
	}

	env, envFile, err := parseEnviron(environ)
	if err != nil {
		return nil, err
	}
	path := envFile
	if f := fs.Lookup("config"); f.Changed {
		path = f.Value.String()
	}

	// Viper layers the sources: the defaults, then its config map (the file
	// with the environment merged over it), then the flags that were given.
	// doc.go says why viper reads neither the file nor the environment.
	v := viper.New()
	def := Default()
	for _, l := range keys().leaves {
		v.SetDefault(l.key, l.value(def).Interface())
	}
	if path != "" {
		fileValues, err := readFile(path)
		if err != nil {
			return nil, err
		}
		if err := v.MergeConfigMap(fileValues); err != nil {
			return nil, err
		}
	}
	if err := v.MergeConfigMap(env); err != nil {
		return nil, err
	}
	for _, f := range flagKeys {
		if err := v.BindPFlag(f.key, fs.Lookup(f.key)); err != nil {
			return nil, err
		}
	}

	// Every value is already of its field's type (coerce), so viper's weak
	// typing and decode hooks have nothing to convert; UnmarshalExact still
	// refuses a key that Config lacks.
	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return nil, fmt.Errorf("decoding configuration: %w", err)
	}
	cfg.ConfigFile = path
	cfg.PrintConfig, _ = fs.GetBool("print-config")
	cfg.Dev, _ = fs.GetBool("dev")
	if cfg.Dev && cfg.Auth.Secret != "" && cfg.Auth.Secret != placeholderSecret {
		return nil, fmt.Errorf("invalid configuration:\n%s", errDevSecret)
	}
	cfg.finish(v.InConfig("sfu.include_loopback"), v.InConfig("http.listen") || fs.Changed("http.listen"))
	if err := cfg.Validate(); err != nil {
		if !cfg.Dev && !v.InConfig("auth.secret") {
			err = errors.Join(err, errors.New(hintNoSecret))
		}
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return &cfg, nil
}

// devHTTPListen is http.listen in dev mode unless it is set: this machine
// only, since /dev/token signs a token for anyone who reaches it.
const devHTTPListen = "127.0.0.1:7880"

// hintNoSecret follows the errors of a start that set auth.secret nowhere,
// typically a first `halo-sfu` without any configuration.
const hintNoSecret = "no auth.secret is configured: to try HaloBuzz Live on this machine run `halo-sfu --dev` (or `make run`); " +
	"in production set HALO_AUTH_SECRET=$(openssl rand -hex 32), or auth.secret in a --config file (see README, \"Run in production\")"

// finish fills the values that depend on others once all layers are in.
// loopbackSet reports that the file or the environment set
// sfu.include_loopback; listenSet that the file, the environment or a flag
// set http.listen.
func (c *Config) finish(loopbackSet, listenSet bool) {
	for _, l := range keys().leaves {
		if f := l.value(c); l.typ == stringSliceType && f.Len() == 0 {
			f.SetZero()
		}
	}
	if c.Node.ID == "" {
		c.Node.ID = defaultNodeID()
	}
	if c.Dev && !loopbackSet {
		c.SFU.IncludeLoopback = true
	}
	if c.Dev && !listenSet {
		c.HTTP.Listen = devHTTPListen
	}
	if c.Dev {
		// Dev mode signs with a secret nobody else knows, so a token minted
		// by /dev/token is worthless on any other node.
		c.Auth.Secret = randomHex(32)
		c.Auth.SecretGenerated = true
	}
}

func newFlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("halo-sfu", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; usage is printed by load
	fs.SortFlags = false
	def := Default()
	fs.String("config", "", "YAML configuration file (also HALO_CONFIG)")
	fs.Bool("print-config", false, "print the effective configuration, secrets masked, and exit")
	fs.Bool("dev", false, "dev mode: loopback candidates, generated secret, printed token; never in production")
	for _, f := range flagKeys {
		l := keys().byKey[f.key]
		switch l.typ.Kind() {
		case reflect.Int:
			fs.Int(f.key, int(l.value(def).Int()), f.usage)
		default:
			fs.String(f.key, l.value(def).String(), f.usage)
		}
	}
	return fs
}

// parseEnviron reads the HALO_* entries of environ ("NAME=value"; the last of
// duplicates wins) into typed values by key, and HALO_CONFIG.
func parseEnviron(environ []string) (values map[string]any, configFile string, err error) {
	raw := map[string]string{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, envPrefix) {
			raw[name] = val
		}
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	slices.Sort(names)

	values = map[string]any{}
	var errs []error
	for _, name := range names {
		if name == envConfigFile {
			configFile = raw[name]
			continue
		}
		if name == envDev {
			errs = append(errs, fmt.Errorf("environment variable %s: %s", name, errDevKey))
			continue
		}
		l, ok := keys().byEnv[name]
		if !ok {
			errs = append(errs, fmt.Errorf("environment variable %s matches no configuration key%s",
				name, suggest(name, keys().envNames())))
			continue
		}
		val, err := l.coerce(raw[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s (%s): %w", name, l.key, err))
			continue
		}
		values[l.key] = val
	}
	return values, configFile, errors.Join(errs...)
}

func printUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintf(w, `Usage: halo-sfu [flags]

halo-sfu is the HaloBuzz Live media server: a WebRTC SFU with WebSocket, WHIP
and WHEP signalling.

Flags:
%s
Every key of the YAML file (see config.example.yaml) can also be set with an
environment variable: HALO_ and the key in upper case, dots as underscores;
lists are comma separated. Precedence: defaults < file < environment < flags.

Environment variables:
`, fs.FlagUsages())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\tYAML configuration file, as --config\n", envConfigFile)
	def := Default()
	for _, l := range keys().leaves {
		switch v := formatValue(l, l.value(def)); {
		case l.key == "node.id":
			fmt.Fprintf(tw, "  %s\t(default: the host name)\n", l.env)
		case v == "":
			fmt.Fprintf(tw, "  %s\n", l.env)
		default:
			fmt.Fprintf(tw, "  %s\t(default %s)\n", l.env, v)
		}
	}
	tw.Flush()
}

// formatValue renders a value the way a user would write it in the
// environment.
func formatValue(l leaf, v reflect.Value) string {
	switch l.typ {
	case durationType:
		return formatDuration(v.Interface().(time.Duration))
	case stringSliceType:
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}
