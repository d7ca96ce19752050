package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// The deploy/ files the operator gets, relative to this package.
const (
	alertsFile     = "../../deploy/prometheus/alerts.yml"
	alertTestsFile = "../../deploy/prometheus/alerts_test.yml"
	promConfigFile = "../../deploy/prometheus/prometheus.yml"
	dashboardFile  = "../../deploy/grafana/halo-live.json"
)

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string
		Rules []struct {
			Alert, Record, Expr, For string
			Labels, Annotations      map[string]string
		}
	}
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return rf
}

// dashboardQueries returns every panel query of the dashboard, with the
// panel's title.
func dashboardQueries(t *testing.T) (queries [][2]string, variables []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string
		Targets []struct{ Expr string }
		Panels  json.RawMessage
	}
	var d struct {
		Panels     []panel
		Templating struct {
			List []struct{ Name string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				queries = append(queries, [2]string{p.Title, tg.Expr})
			}
			var inner []panel
			if len(p.Panels) > 0 && json.Unmarshal(p.Panels, &inner) == nil {
				walk(inner)
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		variables = append(variables, v.Name)
	}
	return queries, variables
}

// Every alert names its severity, says what is wrong and points to a
// runbook entry that exists in docs/operations.md; every rule has a for:.
// (Runs without Prometheus.)
func TestAlerts_EveryAlertHasASummaryAndARunbook(t *testing.T) {
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(ops), -1) {
		a := strings.ToLower(strings.TrimSpace(m[1]))
		a = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(a, "")
		anchors[strings.ReplaceAll(a, " ", "-")] = true
	}
	want := []string{"HaloNodeDown", "HaloRedisErrors", "HaloJoinFailureRate", "HaloJoinLatencyHigh",
		"HaloViewerLossHigh", "HaloCPUHigh", "HaloOriginLost", "HaloDrainStuck",
		"HaloJoinErrorBudgetBurnFast", "HaloJoinErrorBudgetBurnSlow"}
	seen := map[string]bool{}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			seen[r.Alert] = true
			if r.For == "" {
				t.Errorf("%s has no for: duration", r.Alert)
			}
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("%s: severity %q, want page or ticket", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s has no summary", r.Alert)
			}
			u := r.Annotations["runbook_url"]
			i := strings.LastIndex(u, "docs/operations.md#")
			if i < 0 || !anchors[u[i+len("docs/operations.md#"):]] {
				t.Errorf("%s: runbook_url %q is not a heading of docs/operations.md", r.Alert, u)
			}
		}
	}
	for _, a := range want {
		if !seen[a] {
			t.Errorf("alerts.yml has no %s", a)
		}
	}
}

// promBinaries returns the paths of prometheus and promtool, or skips the
// test naming what is missing (make deps installs Debian's prometheus).
func promBinaries(t *testing.T) (prom, promtool string) {
	t.Helper()
	var missing []string
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		missing = append(missing, "prometheus")
	}
	promtool, err = exec.LookPath("promtool")
	if err != nil {
		missing = append(missing, "promtool")
	}
	if len(missing) > 0 {
		t.Skipf("SKIP: %s not installed (make deps installs Debian's prometheus package; it could not be installed here)", strings.Join(missing, " and "))
	}
	return prom, promtool
}

// promtool accepts the rule file, and its unit tests (alerts_test.yml: one
// that fires and one that does not, per alert) pass.
func TestAlerts_PromtoolChecksAndUnitTests(t *testing.T) {
	_, promtool := promBinaries(t)
	if out, err := exec.Command(promtool, "check", "rules", alertsFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := exec.Command(promtool, "check", "config", promConfigFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", filepath.Base(alertTestsFile))
	cmd.Dir = filepath.Dir(alertTestsFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	// Each alert has a unit test that fires it and one that does not.
	b, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && (!fires[r.Alert] || !quiet[r.Alert]) {
				t.Errorf("%s: unit test that fires it %v, that does not %v; want both", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
}

// promClient queries a Prometheus's HTTP API.
type promClient struct{ base string }

type promResult struct {
	Status    string `json:"status"`
	Error     string `json:"error"`
	ErrorType string `json:"errorType"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

func (p promClient) query(q string) (promResult, error) {
	var r promResult
	resp, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	if r.Status != "success" {
		return r, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	return r, nil
}

// metricNames returns the series names an expression reads.
func metricNames(expr string) []string {
	re := regexp.MustCompile(`\b(halo_[a-z_]+|process_[a-z_]+|go_[a-z_]+|up|region:[a-z_:0-9]+)\b`)
	set := map[string]bool{}
	for _, m := range re.FindAllString(expr, -1) {
		set[m] = true
	}
	var out []string
	for m := range set {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// A real Prometheus (Debian's, on a free port, temporary storage) scrapes
// a running node with a broadcaster and viewers, with the shipped
// prometheus.yml (only the target and the intervals changed) and
// alerts.yml. Every rule is evaluated without error and every series it
// reads exists; every panel query of the dashboard is valid and returns
// series with values.
func TestPrometheus_ScrapesANodeAndEvaluatesAlertsAndDashboard(t *testing.T) {
	prom, _ := promBinaries(t)
	n := startNode(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n.publisher(ctx, "prom", loadtest.PublisherConfig{VideoBitrate: 300_000})
	if err := n.viewer(ctx, "prom", "ws").WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	sock, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var whepPackets atomic.Int64
	whepViewerOn(t, n, "prom", sock, &whepPackets) // reads RTCP: its reports carry an RTT
	c := n.dial(t, ctx)
	_, _ = c.Request(ctx, "join", loadtest.JoinRequest{Token: "forged"}) // an error by code
	_ = c.Close()

	// The shipped configuration, pointed at this node.
	dir := t.TempDir()
	b, err := os.ReadFile(promConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var job map[string]any
	for _, sc := range cfg["scrape_configs"].([]any) {
		if m := sc.(map[string]any); m["job_name"] == "halo-sfu" {
			job = m
		}
	}
	if job == nil {
		t.Fatal("prometheus.yml has no job halo-sfu (the alerts select job=\"halo-sfu\")")
	}
	job["static_configs"] = []any{map[string]any{
		"targets": []any{n.metricsLn.Addr().String()},
		"labels":  map[string]any{"node": n.cfg.Node.ID, "region": n.cfg.Node.Region},
	}}
	cfg["scrape_configs"] = []any{job}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	abs, _ := filepath.Abs(alertsFile)
	cfg["rule_files"] = []any{abs}
	out, _ := yaml.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	cmd := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port), "--log.level=warn")
	var logs testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	}()
	p := promClient{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	testutil.Eventually(t, "Prometheus ready", func() bool {
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// Enough scrapes for rates over them, and viewers' reports with RTTs
	// in the last of them. Ten scrapes take ten seconds by themselves: 15 s
	// left too little for Prometheus's start on a loaded machine (seen in
	// CI), so this one waits up to 40.
	testutil.EventuallyWithin(t, 40*time.Second, "ten scrapes of the node, viewers' RTTs among them", func() bool {
		r, err := p.query(`count_over_time(up{job="halo-sfu"}[1m]) >= 10 and on() sum(increase(halo_viewer_rtt_seconds_count[30s])) > 0`)
		return err == nil && len(r.Data.Result) > 0
	})

	// A viewer joins while Prometheus watches, so that the join rates
	// have something to show.
	if err := n.viewer(ctx, "prom", "late").WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the late join scraped", func() bool {
		r, err := p.query(`increase(halo_join_duration_seconds_count[20s]) > 0`)
		return err == nil && len(r.Data.Result) > 0
	})

	// Prometheus itself evaluates every rule without an error.
	var ruleErrors []string
	testutil.Eventually(t, "every rule evaluated", func() bool {
		resp, err := http.Get(p.base + "/api/v1/rules")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var rr struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name, Health, LastError string
					}
				}
			}
		}
		if json.NewDecoder(resp.Body).Decode(&rr) != nil {
			return false
		}
		count := 0
		for _, g := range rr.Data.Groups {
			for _, r := range g.Rules {
				if r.Health == "err" {
					ruleErrors = append(ruleErrors, r.Name+": "+r.LastError)
				} else if r.Health != "ok" {
					return false // not evaluated yet
				}
				count++
			}
		}
		return count > 0
	})
	for _, e := range ruleErrors {
		t.Errorf("Prometheus evaluated rule %s", e)
	}

	// Every rule is valid, and every series it reads exists (a rule over
	// a misspelt or missing metric would never fire).
	rf := readRules(t)
	var missing []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if _, err := p.query(r.Expr); err != nil {
				t.Errorf("%s: expression invalid: %v", name, err)
			}
			for _, m := range metricNames(r.Expr) {
				if res, err := p.query(fmt.Sprintf(`count({__name__=%q})`, m)); err != nil || len(res.Data.Result) == 0 {
					missing = append(missing, fmt.Sprintf("%s (read by %s)", m, name))
				}
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("series the rules read that the node does not export:\n  %s", strings.Join(missing, "\n  "))
	}
	queries, variables := dashboardQueries(t)
	if len(queries) < 20 {
		t.Fatalf("dashboard has %d queries", len(queries))
	}
	if strings.Join(variables, ",") != "datasource,region,node" {
		t.Errorf("dashboard variables %v, want datasource, region and node", variables)
	}
	expand := strings.NewReplacer(`"$region"`, `".*"`, `"$node"`, `".*"`, "$__rate_interval", "1m")
	for _, q := range queries {
		res, err := p.query(expand.Replace(q[1]))
		if err != nil {
			t.Errorf("panel %q: %s: %v", q[0], q[1], err)
			continue
		}
		if len(res.Data.Result) == 0 {
			t.Errorf("panel %q: %s returns no series", q[0], q[1])
			continue
		}
		for _, s := range res.Data.Result {
			if v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64); math.IsNaN(v) {
				t.Errorf("panel %q: %s is NaN for %v (no data in the window)", q[0], q[1], s.Metric)
			}
		}
	}
	// The region and node selectors find this node.
	for _, label := range []string{"region", "node"} {
		resp, err := http.Get(p.base + "/api/v1/label/" + label + "/values?match[]=halo_build_info")
		if err != nil {
			t.Fatal(err)
		}
		var lv struct{ Data []string }
		_ = json.NewDecoder(resp.Body).Decode(&lv)
		resp.Body.Close()
		if len(lv.Data) != 1 {
			t.Errorf("label_values(halo_build_info, %s) = %v, want this node's", label, lv.Data)
		}
	}
}
