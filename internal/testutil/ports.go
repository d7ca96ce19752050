package testutil

import (
	"net"
	"os"
	"strings"
	"testing"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ServerEnv is this process's environment without its HALO_* variables
// (the server refuses any it does not know, a test's own included), plus
// env.
func ServerEnv(env []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HALO_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}
