// Package deploy holds no code: its tests check the supply-chain gates
// that make supply-chain runs in CI (the secret scan and govulncheck), by
// showing that each catches what it is there to catch.
package deploy

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tool finds a pinned tool installed by `make tools` (on PATH or in
// GOPATH/bin), or skips naming it.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("SKIP: %s is not installed (make tools installs it at its pinned version)", name)
	return ""
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// randomUpper returns n characters of [A-Z0-9].
func randomUpper(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// The secret scan of the whole history passes on the repository as it is
// (its test fixtures are allowlisted by value), and fails on a fake AWS key
// planted in a scratch commit of a temporary clone, in an ordinary file and
// in a test file alike.
func TestSecretScan_CatchesAPlantedAWSKey(t *testing.T) {
	gitleaks := tool(t, "gitleaks")
	clone := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("git", "clone", "--quiet", "..", clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	config, err := filepath.Abs("gitleaks.toml")
	if err != nil {
		t.Fatal(err)
	}
	scan := func() (int, []map[string]any) {
		report := filepath.Join(t.TempDir(), "report.json")
		// Findings exit 3, so that they differ from gitleaks's own errors (1).
		cmd := exec.Command(gitleaks, "git", "--no-banner", "--redact", "--log-level", "error",
			"--config", config, "--exit-code", "3",
			"--report-format", "json", "--report-path", report, clone)
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatalf("gitleaks: %v\n%s", err, out)
			}
			code = ee.ExitCode()
			if code != 3 {
				t.Fatalf("gitleaks failed (exit %d):\n%s", code, out)
			}
		}
		var findings []map[string]any
		if b, err := os.ReadFile(report); err == nil {
			_ = json.Unmarshal(b, &findings)
		}
		return code, findings
	}
	if code, findings := scan(); code != 0 {
		t.Fatalf("the repository's own history fails the scan (exit %d): %v", code, findings)
	}

	// A fake key, made now: it exists only in the scratch commit.
	key := "AKIA" + randomUpper(16)
	secret := randomUpper(20) + strings.ToLower(randomUpper(20))
	leak := "AWS_ACCESS_KEY_ID=" + key + "\nAWS_SECRET_ACCESS_KEY=" + secret + "\n"
	if err := os.WriteFile(filepath.Join(clone, "deploy", "leak.env"), []byte(leak), 0o644); err != nil {
		t.Fatal(err)
	}
	fixture := "package config\n\nconst awsKey = \"" + key + "\"\n"
	if err := os.WriteFile(filepath.Join(clone, "config", "leak_test.go"), []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, clone, "add", "deploy/leak.env", "config/leak_test.go")
	git(t, clone, "commit", "--quiet", "-m", "scratch: a planted key")
	code, findings := scan()
	if code != 3 {
		t.Fatalf("gitleaks exit %d after a planted AWS key, want 3 (a finding)", code)
	}
	files := map[string]bool{}
	for _, f := range findings {
		if f["RuleID"] == "aws-access-token" {
			files[f["File"].(string)] = true
		}
	}
	for _, want := range []string{"deploy/leak.env", "config/leak_test.go"} {
		if !files[want] {
			t.Errorf("the planted key in %s was not reported as aws-access-token: %v", want, findings)
		}
	}
}

// govulncheck fails the build on a vulnerability the code calls and not on
// one it only imports: shown with a local vulnerability database of two
// planted entries for gorilla/websocket (a module we use), one in
// Upgrader.Upgrade (called by the server binary through signaling) and one in JoinMessages (never
// called). It needs no network: the real database is used by make
// supply-chain.
func TestVulnCheck_FailsOnACalledVulnerabilityOnly(t *testing.T) {
	govulncheck := tool(t, "govulncheck")
	db := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(db, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const modified = "2099-01-01T00:00:00Z"
	write("index/db.json", `{"modified":"`+modified+`"}`)
	write("index/modules.json", `[{"path":"github.com/gorilla/websocket","vulns":[`+
		`{"id":"GO-2099-0001","modified":"`+modified+`","fixed":"99.0.0"},`+
		`{"id":"GO-2099-0002","modified":"`+modified+`","fixed":"99.0.0"}]}]`)
	for id, symbol := range map[string]string{"GO-2099-0001": "Upgrader.Upgrade", "GO-2099-0002": "JoinMessages"} {
		write("ID/"+id+".json", `{"schema_version":"1.3.1","id":"`+id+`","modified":"`+modified+`","published":"`+modified+`",`+
			`"summary":"planted test entry in `+symbol+`","details":"test",`+
			`"affected":[{"package":{"name":"github.com/gorilla/websocket","ecosystem":"Go"},`+
			`"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"99.0.0"}]}],`+
			`"ecosystem_specific":{"imports":[{"path":"github.com/gorilla/websocket","symbols":["`+symbol+`"]}]}}],`+
			`"database_specific":{"url":"https://pkg.go.dev/vuln/`+id+`"}}`)
	}
	cmd := exec.Command(govulncheck, "-db", "file://"+db, "./cmd/halo-sfu")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 {
		t.Fatalf("govulncheck with a called vulnerability: %v, want exit 3\n%s", err, out)
	}
	called, _, _ := strings.Cut(string(out), "Your code is affected")
	if !strings.Contains(called, "GO-2099-0001") || !strings.Contains(called, "websocket.Upgrader.Upgrade") {
		t.Errorf("the called entry is not reported with its trace:\n%s", out)
	}
	if strings.Contains(called, "GO-2099-0002") {
		t.Errorf("the entry in a function nobody calls is reported as called:\n%s", out)
	}
}
