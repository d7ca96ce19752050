package main

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/internal/version"
)

// --version prints the build and exits 0 before any configuration is read:
// it works without a secret or a config file.
func TestVersion_PrintsTheBuildWithoutAConfig(t *testing.T) {
	var out, errOut testutil.SyncBuffer
	code := run(context.Background(), []string{"--version"}, []string{"HALO_AUTH_SECRET="}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if want := version.Get().String() + "\n"; out.String() != want {
		t.Fatalf("--version printed %q, want %q", out.String(), want)
	}
}

// stampedBinary builds halo-sfu as `make build` and deploy/Dockerfile do,
// with the version and commit given to the linker, static (without cgo, as
// the image needs it), into a temporary directory.
func stampedBinary(t *testing.T, ver, commit string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "halo-sfu")
	ldflags := "-X github.com/halobuzz/live/internal/version.version=" + ver +
		" -X github.com/halobuzz/live/internal/version.commit=" + commit
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the CGO_ENABLED=0 build needs a dynamic loader: the FROM scratch image could not run it")
		}
	}
	return bin
}

// readmeBlock returns the lines of the first ```sh block after marker in
// README.md.
func readmeBlock(t *testing.T, marker string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatalf("no sh block after %q", marker)
	}
	return strings.Split(strings.TrimSpace(s[start+6:start+6+end]), "\n")
}

// The README's production commands, run as written in a fresh directory:
// copy the example config, set the secret, start. The start line's
// `make build` is the stamped build above; the binary then serves, reports
// its build on the metrics listener, and stops cleanly on SIGTERM. Only the
// ports are moved (by HALO_* variables, which the README documents to
// override the file) so the test runs beside anything else.
func TestREADME_ProductionCommandsStartANode(t *testing.T) {
	lines := readmeBlock(t, "From a checkout, three commands")
	if len(lines) != 3 {
		t.Fatalf("README production block has %d commands, want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	const start = "make build && ./bin/halo-sfu "
	if !strings.HasPrefix(lines[2], start) {
		t.Fatalf("third command %q does not start with %q", lines[2], start)
	}
	dir := t.TempDir()
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.example.yaml"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range lines[:2] {
		cmd := exec.Command("sh", "-c", l)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", l, err, out)
		}
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if bytes.Contains(cfg, []byte("change-me")) {
		t.Fatal("the secret command left the placeholder in config.yaml")
	}
	// config.yaml holds the signing secret: only its owner reads it.
	if fi, err := os.Stat(filepath.Join(dir, "config.yaml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config.yaml written by the README's commands: %v (%v), want mode 0600", fi.Mode().Perm(), err)
	}

	const commit = "0123456789abcdef0123456789abcdef01234567"
	bin := stampedBinary(t, "v0.0.0-test", commit)
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin, filepath.Join(dir, "bin", "halo-sfu")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(dir, "bin", "halo-sfu"), "--version").Output()
	if err != nil || !strings.Contains(string(out), commit) || !strings.Contains(string(out), "v0.0.0-test") {
		t.Fatalf("--version = %q (%v), want the stamped version and commit", out, err)
	}

	httpPort, metricsPort := testutil.FreePort(t), testutil.FreePort(t)
	cmd := exec.Command("sh", "-c", "exec "+strings.TrimPrefix(lines[2], "make build && "))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("HALO_HTTP_LISTEN=127.0.0.1:%d", httpPort),
		fmt.Sprintf("HALO_METRICS_LISTEN=127.0.0.1:%d", metricsPort),
		"HALO_SFU_UDP_PORT=0", "HALO_SFU_UDP_ADDRESS=127.0.0.1")
	var stdout, stderr testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testutil.Eventually(t, "the node answers /healthz", func() bool {
		code, _ := get(fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort))
		return code == http.StatusOK
	})
	// The start says where everything is, as dev mode does: the banner is
	// written once the node serves, which /healthz may answer a moment
	// before (a busy CI machine read an empty stdout).
	testutil.Eventually(t, "the start's banner", func() bool { return strings.Contains(stdout.String(), "halo-sfu token") })
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	for _, want := range []string{
		"web page:    " + base + "/\n", "WebSocket:   " + fmt.Sprintf("ws://127.0.0.1:%d/ws", httpPort),
		"WHIP:        " + base + "/whip/{room}", "WHEP:        " + base + "/whep/{room}",
		fmt.Sprintf("metrics:     http://127.0.0.1:%d/metrics", metricsPort), "halo-sfu token",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the production start's banner lacks %q:\n%s", want, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), "eyJ") {
		t.Errorf("the production start printed a token:\n%s", stdout.String())
	}
	_, metrics := get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if !regexp.MustCompile(`halo_build_info\{commit="` + commit + `",go="go[^"]+",node="[^"]+",region="local",version="v0.0.0-test"\} 1`).MatchString(metrics) {
		t.Errorf("metrics lack halo_build_info with the stamped build:\n%s", grepLines(metrics, "halo_build_info"))
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit 20 s after SIGTERM\n%s", stderr.String())
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// The files the README's commands write in the checkout (config.yaml with
// the secret, the load tester's reports) are ignored by git, so a
// `git add .` commits neither a secret nor a report.
func TestGitignore_CoversWhatTheREADMEWrites(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{"config.yaml": true}
	for _, m := range regexp.MustCompile(`--(?:html|json) ([\w.-]+)`).FindAllStringSubmatch(string(readme), -1) {
		files[m[1]] = true
	}
	if len(files) < 3 {
		t.Fatalf("found only %v in README.md's commands; the pattern no longer matches them", files)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: cannot ask it what it ignores")
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to ignore", err)
	}
	for f := range files {
		cmd := exec.Command("git", "check-ignore", "-q", "--no-index", f)
		cmd.Dir = strings.TrimSpace(string(root))
		if err := cmd.Run(); err != nil {
			t.Errorf("git does not ignore %s, which the README's commands write (%v)", f, err)
		}
	}
}
