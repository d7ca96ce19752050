package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testSecret is a valid production secret.
const testSecret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// withSecret is an environment with a valid secret and the extra entries.
func withSecret(extra ...string) []string {
	return append([]string{"HALO_AUTH_SECRET=" + testSecret}, extra...)
}

func writeConfig(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "halo.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustLoad loads with usage output discarded and fails the test on error.
func mustLoad(t *testing.T, args, environ []string) *Config {
	t.Helper()
	cfg, err := load(args, environ, io.Discard)
	if err != nil {
		t.Fatalf("load(%q, %q): %v", args, environ, err)
	}
	return cfg
}

// loadErr loads and returns the error text, failing the test on success.
func loadErr(t *testing.T, args, environ []string) string {
	t.Helper()
	_, err := load(args, environ, io.Discard)
	if err == nil {
		t.Fatalf("load(%q, %q) succeeded, want an error", args, environ)
	}
	return err.Error()
}

func TestLoad_PrecedenceIsDefaultThenFileThenEnvThenFlag(t *testing.T) {
	// Values of each key: default, file, environment, flag.
	keysUnderTest := []struct {
		key    string
		get    func(*Config) string
		values [4]string
	}{
		{"sfu.udp_port", func(c *Config) string { return strconv.Itoa(c.SFU.UDPPort) },
			[4]string{"7882", "1001", "1002", "1003"}},
		{"http.listen", func(c *Config) string { return c.HTTP.Listen },
			[4]string{":7880", ":8001", ":8002", "127.0.0.1:8003"}},
		{"metrics.listen", func(c *Config) string { return c.Metrics.Listen },
			[4]string{"127.0.0.1:7881", ":9101", ":9102", ""}},
		{"node.region", func(c *Config) string { return c.Node.Region },
			[4]string{"local", "eu-west", "ap-south", "np-1"}},
		{"log.level", func(c *Config) string { return c.Log.Level },
			[4]string{"info", "warn", "error", "debug"}},
	}
	layers := []struct {
		name            string
		file, env, flag bool
		want            int
	}{
		{"default only", false, false, false, 0},
		{"file over default", true, false, false, 1},
		{"env over default", false, true, false, 2},
		{"flag over default", false, false, true, 3},
		{"env over file", true, true, false, 2},
		{"flag over file", true, false, true, 3},
		{"flag over env", false, true, true, 3},
		{"flag over env over file", true, true, true, 3},
	}
	for _, k := range keysUnderTest {
		for _, layer := range layers {
			t.Run(k.key+"/"+layer.name, func(t *testing.T) {
				t.Parallel()
				var args []string
				env := withSecret()
				if layer.file {
					section, name, _ := strings.Cut(k.key, ".")
					args = append(args, "--config", writeConfig(t,
						section+":\n  "+name+": "+strconv.Quote(k.values[1])+"\n"))
				}
				if layer.env {
					env = append(env, keys().byKey[k.key].env+"="+k.values[2])
				}
				if layer.flag {
					args = append(args, "--"+k.key+"="+k.values[3])
				}
				cfg := mustLoad(t, args, env)
				if got := k.get(cfg); got != k.values[layer.want] {
					t.Errorf("%s = %q, want %q", k.key, got, k.values[layer.want])
				}
			})
		}
	}
}

func TestLoad_EnvironmentReachesEveryKind(t *testing.T) {
	cfg := mustLoad(t, nil, withSecret(
		"HALO_REDIS_ADDRS=redis-a:6379, redis-b:6379",
		"HALO_CLUSTER_SECRET="+testClusterSecret,
		"HALO_HTTP_ALLOWED_ORIGINS=https://a.example.com,https://b.example.com",
		"HALO_AUTH_TOKEN_TTL=90m",
		"HALO_SFU_INCLUDE_LOOPBACK=true",
		"HALO_SFU_PACKET_CACHE=4096",
		"HALO_NODE_ID=edge-7",
		"HALO_SFU_NAT_1TO1_IPS=203.0.113.7",
		"HALO_SFU_UDP_PORT=1000", // overridden by the later duplicate
		"HALO_SFU_UDP_PORT=2000",
		"HALO_LOG_FORMAT=json",
		"PATH=/usr/bin",    // not ours
		"halo_sfu_bogus=1", // not ours: the prefix is upper case
		"HALO_NOVALUE",     // not NAME=value: ignored
	))
	want := Default()
	want.Node.ID = "edge-7"
	want.Auth.Secret = testSecret
	want.Redis.Addrs = []string{"redis-a:6379", "redis-b:6379"}
	want.Cluster.Secret = testClusterSecret
	want.HTTP.AllowedOrigins = []string{"https://a.example.com", "https://b.example.com"}
	want.Auth.TokenTTL = 90 * time.Minute
	want.SFU.IncludeLoopback = true
	want.SFU.PacketCache = 4096
	want.SFU.NAT1To1IPs = []string{"203.0.113.7"}
	want.SFU.UDPPort = 2000
	want.Log.Format = "json"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestLoad_EmptyEnvironmentListOverridesDefault(t *testing.T) {
	msg := loadErr(t, nil, withSecret("HALO_HTTP_ALLOWED_ORIGINS="))
	if !strings.Contains(msg, "http.allowed_origins: must not be empty") {
		t.Errorf("got %q", msg)
	}
}

func TestLoad_RejectsBadEnvironment(t *testing.T) {
	tests := []struct{ env, want string }{
		{"HALO_SFU_UDP_PROT=7000", "environment variable HALO_SFU_UDP_PROT matches no configuration key (did you mean HALO_SFU_UDP_PORT?)"},
		{"HALO_SOMETHING_ELSE=1", "environment variable HALO_SOMETHING_ELSE matches no configuration key"},
		{"HALO_SFU_UDP_PORT=abc", `environment variable HALO_SFU_UDP_PORT (sfu.udp_port): "abc" is not an integer`},
		{"HALO_DEV=maybe", `environment variable HALO_DEV: only the --dev flag enables dev mode`},
		{"HALO_AUTH_TOKEN_TTL=24", `environment variable HALO_AUTH_TOKEN_TTL (auth.token_ttl): "24" is not a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Parallel()
			if msg := loadErr(t, nil, withSecret(tt.env)); !strings.Contains(msg, tt.want) {
				t.Errorf("got %q, want it to contain %q", msg, tt.want)
			}
		})
	}
}

func TestLoad_RejectsBadFile(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key in section", "sfu:\n  udp_prot: 7000\n", "sfu.udp_prot: unknown key (did you mean sfu.udp_port?)"},
		{"unknown top-level key", "bogus: 1\n", "bogus: unknown key"},
		{"unknown section", "media:\n  port: 1\n", "media: unknown key"},
		{"section is a scalar", "sfu: 5\n", "sfu: 5 is not a mapping of keys"},
		{"wrong type", "sfu:\n  udp_port: abc\n", `sfu.udp_port: "abc" is not an integer`},
		{"list for a scalar", "log:\n  level: [a]\n", "log.level: a list is not a string"},
		{"mapping for a list", "redis:\n  addrs: {a: 1}\n", "redis.addrs: a mapping is not a list of strings"},
		{"duration without unit", "auth:\n  token_ttl: 24\n", "auth.token_ttl: 24 needs a unit"},
		{"top level is a list", "- a\n- b\n", "the top level is a list, not a mapping of keys"},
		{"not yaml", "sfu: [\n", "yaml:"},
		{"same key twice by case", "log:\n  level: info\n  LEVEL: debug\n", "log.level: set twice"},
		{"valid value, invalid config", "sfu:\n  udp_port: 70000\n", "sfu.udp_port: 70000 is not a port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, tt.yaml)
			msg := loadErr(t, []string{"--config", path}, withSecret())
			if !strings.Contains(msg, tt.want) {
				t.Errorf("got %q, want it to contain %q", msg, tt.want)
			}
		})
	}
}

func TestLoad_FileKeysAreCaseInsensitiveAndNullKeepsDefault(t *testing.T) {
	path := writeConfig(t, "SFU:\n  UDP_Port: 1234\n  packet_cache:\nredis:\nlog: {}\n")
	cfg := mustLoad(t, []string{"--config", path}, withSecret())
	if cfg.SFU.UDPPort != 1234 || cfg.SFU.PacketCache != 2048 {
		t.Errorf("udp_port %d packet_cache %d, want 1234 and the default 2048", cfg.SFU.UDPPort, cfg.SFU.PacketCache)
	}
	if cfg.ConfigFile != path {
		t.Errorf("ConfigFile = %q, want %q", cfg.ConfigFile, path)
	}
}

func TestLoad_ConfigFileFromEnvironmentAndFlag(t *testing.T) {
	envFile := writeConfig(t, "node:\n  region: from-env-file\n")
	flagFile := writeConfig(t, "node:\n  region: from-flag-file\n")
	cfg := mustLoad(t, nil, withSecret("HALO_CONFIG="+envFile))
	if cfg.Node.Region != "from-env-file" {
		t.Errorf("HALO_CONFIG: region %q", cfg.Node.Region)
	}
	cfg = mustLoad(t, []string{"--config", flagFile}, withSecret("HALO_CONFIG="+envFile))
	if cfg.Node.Region != "from-flag-file" {
		t.Errorf("--config over HALO_CONFIG: region %q", cfg.Node.Region)
	}
}

func TestLoad_MissingConfigFileIsAClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	msg := loadErr(t, []string{"--config", path}, withSecret())
	if !strings.Contains(msg, "config file") || !strings.Contains(msg, path) ||
		!strings.Contains(msg, "no such file") {
		t.Errorf("got %q", msg)
	}
}

func TestLoad_HelpPrintsUsageAndReturnsErrHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var out bytes.Buffer
		cfg, err := load([]string{arg}, nil, &out)
		if !errors.Is(err, flag.ErrHelp) || cfg != nil {
			t.Errorf("%s: got (%v, %v), want (nil, flag.ErrHelp)", arg, cfg, err)
		}
		for _, want := range []string{"Usage: halo-sfu", "--config", "--sfu.udp_port", "--print-config",
			"HALO_SFU_UDP_PORT", "(default 7882)", "HALO_AUTH_TOKEN_TTL", "(default 24h)"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, out.String())
			}
		}
	}
}

func TestLoad_RejectsBadCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"--sfu.udp_port=abc"}, "--sfu.udp_port"},
		{[]string{"serve"}, `unexpected argument "serve"`},
	}
	for _, tt := range tests {
		if msg := loadErr(t, tt.args, withSecret()); !strings.Contains(msg, tt.want) {
			t.Errorf("%q: got %q, want it to contain %q", tt.args, msg, tt.want)
		}
	}
}

func TestLoad_PrintConfigFlag(t *testing.T) {
	if cfg := mustLoad(t, []string{"--print-config"}, withSecret()); !cfg.PrintConfig {
		t.Error("PrintConfig not set by --print-config")
	}
	if cfg := mustLoad(t, nil, withSecret()); cfg.PrintConfig {
		t.Error("PrintConfig set without the flag")
	}
}

func TestLoad_ProductionRefusesMissingOrPlaceholderSecret(t *testing.T) {
	for _, env := range [][]string{nil, {"HALO_AUTH_SECRET=change-me"}, {"HALO_AUTH_SECRET=short"}} {
		if msg := loadErr(t, nil, env); !strings.Contains(msg, errSecret) {
			t.Errorf("%q: got %q, want the auth.secret error", env, msg)
		}
	}
}

func TestLoad_DevModeGeneratesSecretAndLoopback(t *testing.T) {
	cfg := mustLoad(t, []string{"--dev"}, nil)
	if !cfg.Dev || !cfg.Auth.SecretGenerated || !cfg.SFU.IncludeLoopback {
		t.Fatalf("dev %v generated %v loopback %v, want all true", cfg.Dev, cfg.Auth.SecretGenerated, cfg.SFU.IncludeLoopback)
	}
	if b, err := hex.DecodeString(cfg.Auth.Secret); err != nil || len(b) != 32 {
		t.Errorf("generated secret %q is not 32 bytes of hex", cfg.Auth.Secret)
	}
	again := mustLoad(t, []string{"--dev"}, nil)
	if again.Auth.Secret == cfg.Auth.Secret {
		t.Error("two dev-mode loads generated the same secret")
	}

	noLoopback := mustLoad(t, []string{"--dev"}, []string{"HALO_SFU_INCLUDE_LOOPBACK=false"})
	if noLoopback.SFU.IncludeLoopback {
		t.Error("dev mode overrode sfu.include_loopback explicitly set to false")
	}

	placeholder := mustLoad(t, []string{"--dev"}, []string{"HALO_AUTH_SECRET=change-me"})
	if placeholder.Auth.Secret == "change-me" || !placeholder.Auth.SecretGenerated {
		t.Error("dev mode kept the well-known placeholder secret of config.example.yaml")
	}

	prod := mustLoad(t, nil, withSecret())
	if prod.Auth.SecretGenerated || prod.SFU.IncludeLoopback {
		t.Error("outside dev mode a secret was generated or loopback turned on")
	}
}

// Dev mode opens /dev/token, which signs tokens for anyone: only the --dev
// flag turns it on, never a setting that could linger in a production
// environment or file, and it never signs with a configured secret.
func TestLoad_DevModeOnlyFromTheFlag(t *testing.T) {
	for _, tt := range []struct {
		name          string
		args, environ []string
		want          string
	}{
		{"HALO_DEV=true", nil, withSecret("HALO_DEV=true"), "environment variable HALO_DEV: only the --dev flag enables dev mode"},
		{"HALO_DEV=true without a secret", nil, []string{"HALO_DEV=true"}, "environment variable HALO_DEV: only the --dev flag enables dev mode"},
		{"dev: true in the file", []string{"--config", writeConfig(t, "dev: true\n")}, withSecret(), "dev: only the --dev flag enables dev mode"},
		{"DEV: yes in the file", []string{"--config", writeConfig(t, "DEV: yes\n")}, withSecret(), "dev: only the --dev flag enables dev mode"},
		{"--dev with HALO_AUTH_SECRET", []string{"--dev"}, withSecret(), "auth.secret: is set, but dev mode (--dev) always generates its own secret"},
		{"--dev with auth.secret in the file", []string{"--dev", "--config", writeConfig(t, "auth:\n  secret: "+testSecret+"\n")}, nil,
			"auth.secret: is set, but dev mode (--dev) always generates its own secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg := loadErr(t, tt.args, tt.environ)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("got %q, want it to contain %q", msg, tt.want)
			}
			if strings.Contains(msg, testSecret) {
				t.Errorf("the error shows the secret: %q", msg)
			}
		})
	}
}

func TestMaskedYAML_HidesSecretsAndShowsTheRest(t *testing.T) {
	cfg := Default()
	cfg.Auth.Secret = testSecret
	cfg.Redis.Password = "hunter2-redis-password"
	cfg.Redis.Addrs = []string{"redis:6379"}
	cfg.Cluster.Secret = testClusterSecret
	cfg.Redis.SentinelPassword = "sentinel-pass-xyz"
	out, err := cfg.MaskedYAML()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, secret := range []string{testSecret, "hunter2", testClusterSecret, "sentinel-pass"} {
		if strings.Contains(text, secret) {
			t.Errorf("masked output shows a secret:\n%s", text)
		}
	}
	if strings.Count(text, "secret: '******'") != 2 {
		t.Errorf("auth.secret and cluster.secret should both show masked:\n%s", text)
	}
	for _, want := range []string{"secret: '******'", "password: '******'", "sentinel_password: '******'", "udp_port: 7882",
		"token_ttl: 24h\n", "keyframe_min_interval: 500ms", "addrs: ['redis:6379']",
		"allowed_origins: ['*']", "nat_1to1_ips: []", "level: info"} {
		if !strings.Contains(text, want) {
			t.Errorf("masked output lacks %q:\n%s", want, text)
		}
	}

	// The output has the shape of a config file: every key, none unknown.
	values, err := parseYAML(out)
	if err != nil {
		t.Fatalf("masked output does not parse as a config file: %v", err)
	}
	if got, want := sortedKeys(values), keys().keyNames(); !slices.Equal(got, want) {
		t.Errorf("masked output keys\n got %v\nwant %v", got, want)
	}

	cfg.Redis.Password = ""
	out, _ = cfg.MaskedYAML()
	if !strings.Contains(string(out), `password: ""`) {
		t.Errorf("an unset password should show as empty:\n%s", out)
	}
}

func TestExampleFile_DocumentsEveryKeyAtItsDefault(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	values, err := parseYAML(data)
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if got, want := sortedKeys(values), keys().keyNames(); !slices.Equal(got, want) {
		t.Errorf("config.example.yaml keys differ from Config:\n got %v\nwant %v", got, want)
	}

	// As shipped, its placeholder secret is refused.
	msg := loadErr(t, []string{"--config", "../config.example.yaml"}, nil)
	if !strings.Contains(msg, errSecret) {
		t.Errorf("example with placeholder secret: got %q, want the auth.secret error", msg)
	}

	// With a real secret it loads, and every value is the default.
	fixed := strings.Replace(string(data), "secret: change-me", "secret: "+testSecret, 1)
	cfg := mustLoad(t, []string{"--config", writeConfig(t, fixed)}, nil)
	want := Default()
	want.Auth.Secret = testSecret
	cfg.ConfigFile = ""
	if cfg.Node.ID == "" {
		t.Error(`node.id "" was not replaced by the default`)
	}
	cfg.Node.ID = want.Node.ID // random when the host has no name
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("example values differ from Default():\n got %+v\nwant %+v", cfg, want)
	}
}

func TestDefault_IsValidButForTheSecret(t *testing.T) {
	err := Default().Validate()
	if err == nil || err.Error() != errSecret {
		t.Errorf("Default().Validate() = %v, want only the secret error", err)
	}
	cfg := Default()
	cfg.Auth.Secret = testSecret
	if err := cfg.Validate(); err != nil {
		t.Errorf("Default() with a secret: %v", err)
	}
	if cfg.Node.ID == "" {
		t.Error("Default() has no node id")
	}
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Dev mode serves /dev/token, so it listens on this machine only unless
// http.listen says otherwise (flag, environment or file); production keeps
// the documented ":7880".
func TestLoad_DevModeListensOnLoopbackUnlessTold(t *testing.T) {
	if got := mustLoad(t, []string{"--dev"}, nil).HTTP.Listen; got != "127.0.0.1:7880" {
		t.Errorf("dev mode http.listen = %q, want 127.0.0.1:7880", got)
	}
	for _, tt := range []struct {
		name    string
		args    []string
		environ []string
	}{
		{"flag", []string{"--dev", "--http.listen", ":9000"}, nil},
		{"environment", []string{"--dev"}, []string{"HALO_HTTP_LISTEN=:9000"}},
		{"file", []string{"--dev", "--config", writeConfig(t, "http:\n  listen: \":9000\"\n")}, nil},
	} {
		if got := mustLoad(t, tt.args, tt.environ).HTTP.Listen; got != ":9000" {
			t.Errorf("%s: dev mode http.listen = %q, want the explicit :9000", tt.name, got)
		}
	}
	if got := mustLoad(t, nil, withSecret()).HTTP.Listen; got != ":7880" {
		t.Errorf("production http.listen = %q, want :7880", got)
	}
}

// A first start without any configuration says how to start: --dev to try
// it, HALO_AUTH_SECRET for production. A secret that is set but bad gets
// the auth.secret error alone.
func TestLoad_NoConfigurationNamesDevAndTheSecretVariable(t *testing.T) {
	msg := loadErr(t, nil, nil)
	for _, want := range []string{errSecret, "--dev", "HALO_AUTH_SECRET"} {
		if !strings.Contains(msg, want) {
			t.Errorf("no configuration: error %q lacks %q", msg, want)
		}
	}
	if msg := loadErr(t, nil, []string{"HALO_AUTH_SECRET=short"}); strings.Contains(msg, "--dev") {
		t.Errorf("a short secret got the no-configuration hint: %q", msg)
	}
}
