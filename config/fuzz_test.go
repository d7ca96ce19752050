package config

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadYAML feeds arbitrary bytes to Load as the config file. Load must
// never panic; what it accepts must be valid and printable as a config file.
//
// One execution writes a file and builds a whole configuration (about half a
// millisecond), so the fuzzer's minimization of a new input can hold progress
// at "0/sec" for a while; -fuzzminimizetime=3s keeps long runs moving.
func FuzzLoadYAML(f *testing.F) {
	if example, err := os.ReadFile("../config.example.yaml"); err == nil {
		f.Add(example)
	}
	for _, seed := range []string{
		"",
		"# only a comment\n",
		"sfu:\n  udp_port: 7000\n",
		"sfu: 5\n",
		"SFU:\n  UDP_PORT: '1'\n",
		"redis:\n  addrs: [a:1, {b: 2}]\n",
		"auth:\n  token_ttl: 1e3\n",
		"1: 2\n",
		"? [a, b]\n: c\n",
		"a: &x [*x]\n",
		"- 1\n",
		"sfu.udp_port: 9\nsfu:\n  udp_port: 10\n",
		"limits:\n  max_message_bytes: 99999999999999999999\n",
		"http:\n  allowed_origins: \"*,https://a.com\"\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := load([]string{"--config", path}, withSecret(), io.Discard)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load returned an invalid config: %v", err)
		}
		out, err := cfg.MaskedYAML()
		if err != nil {
			t.Fatalf("MaskedYAML: %v", err)
		}
		if _, err := parseYAML(out); err != nil {
			t.Fatalf("MaskedYAML output does not parse: %v\n%s", err, out)
		}
	})
}
