package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/halobuzz/live/config"
)

// composeService is the part of a compose service the test reads.
type composeService struct {
	Image       string
	EnvFile     []string          `yaml:"env_file"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string
	Volumes     []string
	Deploy      struct {
		Resources struct {
			Limits struct {
				CPUs   string `yaml:"cpus"`
				Memory string `yaml:"memory"`
			}
		}
	}
}

// readEnvFile reads KEY=VALUE lines, skipping comments and blank lines.
func readEnvFile(t *testing.T, path string) (keys []string, values map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	values = map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: line %q is not KEY=VALUE", path, l)
		}
		keys = append(keys, k)
		values[k] = v
	}
	return keys, values
}

// interpolate expands compose's ${VAR}, ${VAR:-default} and ${VAR:?message}
// from vars.
func interpolate(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	re := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		p := re.FindStringSubmatch(m)
		v := vars[p[1]]
		if v == "" && p[2] == ":-" {
			return p[3]
		}
		if v == "" && p[2] == ":?" {
			t.Fatalf("%s is required by compose.yaml (%s) and empty", p[1], p[3])
		}
		return v
	})
}

// exampleKeys returns every key of config.example.yaml, dotted.
func exampleKeys(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			keys[prefix+k] = true
		}
	}
	walk("", m)
	return keys
}

// envKey maps HALO_SFU_UDP_PORT to sfu.udp_port given the known keys.
func envKey(name string, keys map[string]bool) (string, bool) {
	rest := strings.ToLower(strings.TrimPrefix(name, "HALO_"))
	for k := range keys {
		if strings.ReplaceAll(k, ".", "_") == rest {
			return k, true
		}
	}
	return "", false
}

// portOf is the port of a host:port listen address.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// The 3-region compose file, read as Docker would (Docker cannot run
// here): every node's environment (env_file deploy/.env as shipped in
// .env.example, with the secrets filled in, plus its own variables) is a
// valid configuration for the real loader, naming only keys of
// config.example.yaml; its node id is its service name and each region
// differs; the ports it listens on are the ones published (UDP with the
// same number outside, as ICE announces it) and the ones Prometheus
// scrapes; every service has CPU and memory limits; Grafana gets the
// dashboard and Prometheus the rules; deploy/.env is ignored by git.
func TestCompose_ServicesPortsAndEnvMatchTheConfiguration(t *testing.T) {
	b, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]composeService
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, s := range []string{"redis", "node-eu", "node-in", "node-np", "prometheus", "grafana"} {
		if _, ok := compose.Services[s]; !ok {
			t.Errorf("compose.yaml has no service %s", s)
		}
	}
	envKeys, envVals := readEnvFile(t, "../../deploy/.env.example")
	secretRe := regexp.MustCompile(`SECRET|PASSWORD`)
	vars := map[string]string{}
	for k, v := range envVals {
		if secretRe.MatchString(k) {
			if v != "" {
				t.Errorf(".env.example ships a value for %s: secrets stay empty there", k)
			}
			r := make([]byte, 32)
			_, _ = rand.Read(r)
			v = hex.EncodeToString(r)
		}
		vars[k] = v
	}
	vars["PUBLIC_IP"] = "192.0.2.10" // what an operator fills in
	keys := exampleKeys(t)

	// Prometheus's targets, by host.
	pb, err := os.ReadFile("../../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string
				Labels  map[string]string
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(pb, &prom); err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{} // host:port -> "node/region"
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName != "halo-sfu" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = st.Labels["node"] + "/" + st.Labels["region"]
			}
		}
	}

	regions := map[string]string{}
	hostPorts := map[string]string{}
	nodes := 0
	for name, svc := range compose.Services {
		if svc.Deploy.Resources.Limits.CPUs == "" || svc.Deploy.Resources.Limits.Memory == "" {
			t.Errorf("%s has no CPU and memory limits", name)
		}
		published := map[string]string{} // "7882/udp" -> host port
		for _, p := range svc.Ports {
			spec, proto, _ := strings.Cut(p, "/")
			if proto == "" {
				proto = "tcp"
			}
			parts := strings.Split(spec, ":")
			host, cont := parts[len(parts)-2], parts[len(parts)-1]
			published[cont+"/"+proto] = host
			if other, dup := hostPorts[host+"/"+proto]; dup {
				t.Errorf("host port %s/%s published by %s and %s", host, proto, other, name)
			}
			hostPorts[host+"/"+proto] = name
		}
		if !strings.HasPrefix(name, "node-") {
			continue
		}
		nodes++
		if len(svc.EnvFile) != 1 || svc.EnvFile[0] != ".env" {
			t.Errorf("%s: env_file %v, want [.env]", name, svc.EnvFile)
		}
		// The node's environment: the env file, then its own variables.
		environ := []string{}
		for _, k := range envKeys {
			environ = append(environ, k+"="+vars[k])
		}
		for k, v := range svc.Environment {
			environ = append(environ, k+"="+interpolate(t, v, vars))
		}
		for _, kv := range environ {
			k, _, _ := strings.Cut(kv, "=")
			if !strings.HasPrefix(k, "HALO_") {
				continue
			}
			if _, ok := envKey(k, keys); !ok {
				t.Errorf("%s: %s is no key of config.example.yaml", name, k)
			}
		}
		cfg, err := config.Load(nil, environ)
		if err != nil {
			t.Errorf("%s: its environment is not a valid configuration: %v", name, err)
			continue
		}
		if cfg.Node.ID != name {
			t.Errorf("%s: node.id %q, want the service name", name, cfg.Node.ID)
		}
		if other, dup := regions[cfg.Node.Region]; dup {
			t.Errorf("%s and %s are both in region %q", name, other, cfg.Node.Region)
		}
		regions[cfg.Node.Region] = name
		if len(cfg.Redis.Addrs) != 1 || !strings.HasPrefix(cfg.Redis.Addrs[0], "redis:") {
			t.Errorf("%s: redis.addrs %v, want the redis service", name, cfg.Redis.Addrs)
		}
		if h, _, _ := net.SplitHostPort(cfg.Cluster.RelayAddress); h != name {
			t.Errorf("%s: cluster.relay_address %q is not on its own service name", name, cfg.Cluster.RelayAddress)
		}
		httpPort := portOf(t, cfg.HTTP.Listen)
		if _, ok := published[fmt.Sprintf("%d/tcp", httpPort)]; !ok {
			t.Errorf("%s listens on %d/tcp (http.listen), which it does not publish: %v", name, httpPort, svc.Ports)
		}
		udp := fmt.Sprintf("%d/udp", cfg.SFU.UDPPort)
		if host, ok := published[udp]; !ok || host != strconv.Itoa(cfg.SFU.UDPPort) {
			t.Errorf("%s: media port %s published as %q, want the same port on the host (ICE announces it)", name, udp, host)
		}
		if len(cfg.SFU.NAT1To1IPs) != 1 || cfg.SFU.NAT1To1IPs[0] != vars["PUBLIC_IP"] {
			t.Errorf("%s: sfu.nat_1to1_ips %v, want PUBLIC_IP", name, cfg.SFU.NAT1To1IPs)
		}
		metrics := fmt.Sprintf("%s:%d", name, portOf(t, cfg.Metrics.Listen))
		if got, want := targets[metrics], cfg.Node.ID+"/"+cfg.Node.Region; got != want {
			t.Errorf("prometheus.yml target %s labelled %q, want %q", metrics, got, want)
		}
		if _, exposed := published[fmt.Sprintf("%d/tcp", portOf(t, cfg.Metrics.Listen))]; exposed {
			t.Errorf("%s publishes its metrics port on the host", name)
		}
	}
	if nodes != 3 || len(regions) != 3 {
		t.Errorf("%d nodes in %d regions, want 3 in 3", nodes, len(regions))
	}
	if len(targets) != nodes {
		t.Errorf("prometheus.yml scrapes %d halo-sfu targets, compose runs %d nodes", len(targets), nodes)
	}

	mounts := strings.Join(append(compose.Services["prometheus"].Volumes, compose.Services["grafana"].Volumes...), "\n")
	for _, m := range []string{"./prometheus:/etc/prometheus", "./grafana/provisioning:/etc/grafana/provisioning", "./grafana/halo-live.json:"} {
		if !strings.Contains(mounts, m) {
			t.Errorf("compose.yaml does not mount %s", m)
		}
		src, _, _ := strings.Cut(m, ":")
		if _, err := os.Stat(filepath.Join("../../deploy", src)); err != nil {
			t.Errorf("mounted %s: %v", src, err)
		}
	}
	if out, err := exec.Command("git", "check-ignore", "-q", "../../deploy/.env").CombinedOutput(); err != nil {
		t.Errorf("deploy/.env is not ignored by git (%v %s): its secrets could be committed", err, out)
	}
}

// The Dockerfile builds in stages, runs as a user that is not root, has a
// health check and stamps the version; what it builds is static.
func TestDockerfile_StaticNonRootStampedWithAHealthcheck(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)); n < 2 {
		t.Errorf("%d FROM lines: not multi-stage", n)
	}
	if !regexp.MustCompile(`(?m)^FROM scratch$`).MatchString(df) {
		t.Error("the final stage is not FROM scratch")
	}
	users := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(df, -1)
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1][1], "0") || strings.HasPrefix(users[len(users)-1][1], "root") {
		t.Errorf("USER %v: the image must not run as root", users)
	}
	for _, want := range []string{"HEALTHCHECK", "CGO_ENABLED=0", "internal/version.version=${VERSION}", "internal/version.commit=${COMMIT}", "go mod verify", "./deploy/healthcheck"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, port := range []string{"7880/tcp", "7881/tcp", "7882/udp"} {
		if !strings.Contains(df, port) {
			t.Errorf("Dockerfile does not EXPOSE %s", port)
		}
	}
}

// The systemd unit is valid for systemd itself (when systemd-analyze is
// there) and runs the node with its config and an environment file for the
// secrets, not as root.
func TestSystemdUnit_IsValid(t *testing.T) {
	b, err := os.ReadFile("../../deploy/halo-sfu.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{"ExecStart=/usr/local/bin/halo-sfu --config /etc/halo/config.yaml", "EnvironmentFile=/etc/halo/halo.env", "DynamicUser=yes", "KillSignal=SIGTERM"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit syntax not verified by systemd")
		return
	}
	// Point ExecStart at an executable that exists here, so that only the
	// unit itself is judged.
	self, _ := os.Executable()
	dir := t.TempDir()
	path := filepath.Join(dir, "halo-sfu.service")
	unit = strings.Replace(unit, "ExecStart=/usr/local/bin/halo-sfu", "ExecStart="+self, 1)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
