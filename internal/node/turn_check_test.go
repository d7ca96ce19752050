package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
)

// checkResult is the check page's window.haloCheck.
type checkResult struct {
	Node             string `json:"node"`
	Done             bool   `json:"done"`
	BrowserRelayOnly bool   `json:"browser_relay_only"`
	Error            string `json:"error"`
	Results          []struct {
		Path   string   `json:"path"`
		OK     *bool    `json:"ok"`
		State  string   `json:"state"`
		RTTms  *float64 `json:"rtt_ms"`
		Mbps   *float64 `json:"mbps"`
		Detail string   `json:"detail"`
	} `json:"results"`
}

// The /check page in Chromium against a node with its TURN server on UDP,
// TCP and TLS and an ICE-TCP port says that UDP, ICE-TCP and every TURN
// path work from here, with a round trip and a bandwidth figure for each
// TURN path and for ICE-TCP (a connection over the node's TCP candidates
// alone); its result is the JSON the page offers to copy. A screenshot
// goes to the test's artifact directory.
func TestCheckPage_ReportsUDPAndTURNOverUDPTCPAndTLS(t *testing.T) {
	n := turnNode(t, func(c *config.Config) { c.SFU.TCPPort = testutil.FreePort(t) })
	b := newTURNBrowser(t)
	ctx, cancel := context.WithTimeout(b.ctx, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/check"), chromedp.WaitVisible(chromedp.ID("check-table"))); err != nil {
		t.Fatal(err)
	}
	res := waitPage(t, b.ctx, "the check to finish", `window.haloCheck || null`, func(r *checkResult) bool { return r != nil && r.Done })
	screenshot(t, b.ctx, "check-page.png")
	if res.Error != "" || res.Node != n.cfg.Node.ID {
		t.Fatalf("check: error %q, node %q", res.Error, res.Node)
	}
	for _, r := range res.Results {
		t.Logf("%-9s ok=%v state=%q rtt=%v mbps=%v %s", r.Path, deref(r.OK), r.State, derefF(r.RTTms), derefF(r.Mbps), r.Detail)
		switch r.Path {
		case "ICE-TCP":
			if r.OK == nil || !*r.OK || r.RTTms == nil || *r.RTTms <= 0 || r.Mbps == nil || *r.Mbps <= 0 || !strings.Contains(r.Detail, " over tcp;") {
				t.Errorf("ICE-TCP: want working over the node's TCP candidate with a round trip and a bandwidth: ok=%v rtt=%v mbps=%v %s", deref(r.OK), derefF(r.RTTms), derefF(r.Mbps), r.Detail)
			}
		case "UDP":
			if r.OK == nil || !*r.OK {
				t.Errorf("UDP: not reported working: %+v", r)
			}
		default: // the TURN paths
			if r.OK == nil || !*r.OK || r.RTTms == nil || *r.RTTms <= 0 || r.Mbps == nil || *r.Mbps <= 0 {
				t.Errorf("%s: want working with a round trip and a bandwidth: ok=%v rtt=%v mbps=%v %s", r.Path, deref(r.OK), derefF(r.RTTms), derefF(r.Mbps), r.Detail)
			}
			if !strings.Contains(r.Detail, "relay over") {
				t.Errorf("%s: the probe did not go through a relay: %s", r.Path, r.Detail)
			}
		}
	}
	if r := res.Results[3]; r.Path != "TURN/TLS" || !strings.Contains(r.Detail, "relay over tls") {
		t.Errorf("TURN/TLS row: %+v", r)
	}
	// The text shown for copying is the same result.
	var shown checkResult
	var text string
	if err := evalJSON(b.ctx, `document.getElementById('check-json').textContent`, &text); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(text), &shown); err != nil || len(shown.Results) != len(res.Results) || !shown.Done {
		t.Fatalf("the JSON to copy does not parse as the result (%v): %.200s", err, text)
	}
	assertNoPageProblems(t, b)
}

// Without TURN and without an ICE-TCP port the page still answers: every
// path is "not offered", nothing is reported blocked.
func TestCheckPage_WithoutTURNSaysWhatIsNotOffered(t *testing.T) {
	n := startNode(t, func(c *config.Config) {})
	b := newTURNBrowser(t)
	ctx, cancel := context.WithTimeout(b.ctx, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/check")); err != nil {
		t.Fatal(err)
	}
	res := waitPage(t, b.ctx, "the check to finish", `window.haloCheck || null`, func(r *checkResult) bool { return r != nil && r.Done })
	for _, r := range res.Results {
		if r.OK != nil {
			t.Errorf("%s: ok=%v without TURN, want not offered", r.Path, *r.OK)
		}
		if r.State != "not offered" {
			t.Errorf("%s: state %q, want not offered", r.Path, r.State)
		}
	}
	// Not a page: the other methods and the JSON endpoint's type.
	resp := doHTTP(t, "POST", n.base+"/check", "", "", "", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /check: %d, want 405", resp.StatusCode)
	}
	resp = doHTTP(t, "GET", n.base+"/check/ice-servers", "", "", "", nil)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/json" {
		t.Errorf("GET /check/ice-servers: %d %s", resp.StatusCode, ct)
	}
	// No ICE-TCP port: the check is refused with a code, not tried.
	resp = doHTTP(t, "POST", n.base+"/check/ice-tcp", "", "application/sdp", "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", nil)
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(string(body), "not_found:") {
		t.Errorf("POST /check/ice-tcp without ICE-TCP: %d %s", resp.StatusCode, body)
	}
}

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func derefF(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// The start-up banner names the TURN ports to open and the check page.
func TestPrintInfo_NamesTheTURNPortsAndTheCheckPage(t *testing.T) {
	n := turnNode(t, nil)
	var b strings.Builder
	n.PrintInfo(&b)
	for _, want := range []string{
		fmt.Sprintf("TURN:        UDP+TCP %d, TLS TCP %d\n", n.cfg.Turn.Port, n.cfg.Turn.TLSPort),
		"check:       " + n.base + "/check",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the banner lacks %q:\n%s", want, b.String())
		}
	}
}

// checkNetnsEnv marks the test binary re-executed inside the network
// namespace of TestCheckPage_WithUDPBlockedReportsICETCPAndTURNOverTCP.
const checkNetnsEnv = "HALOTEST_CHECK_NETNS"

// checkRelayIP is the TURN server's relay address in that namespace: apart
// from the node's (nsNode), so that the rules can let the relays' UDP to
// and from the media port through and drop every other datagram.
const checkRelayIP = "127.0.0.4"

// checkNSRules drop every UDP datagram in the namespace but those of the
// TURN relays (to and from checkRelayIP): the browser reaches nothing over
// UDP, as behind a firewall that blocks it, while the relays still reach
// the node's media port.
var checkNSRules = []string{
	"add table inet halo",
	`add chain inet halo in { type filter hook input priority 0; policy accept; }`,
	"add rule inet halo in ip saddr " + checkRelayIP + " meta l4proto udp accept",
	"add rule inet halo in ip daddr " + checkRelayIP + " meta l4proto udp accept",
	"add rule inet halo in meta l4proto udp drop",
}

// A browser whose UDP is dropped (nftables in a network namespace the test
// creates, only lo in it) opens /check: the page says UDP and TURN/UDP do
// not work, and that ICE-TCP, TURN/TCP and TURN/TLS do, each with a round
// trip and a bandwidth. A screenshot goes to the test's artifact directory.
func TestCheckPage_WithUDPBlockedReportsICETCPAndTURNOverTCP(t *testing.T) {
	if os.Getenv(checkNetnsEnv) != "1" {
		runInNamespace(t, "TestCheckPage_WithUDPBlockedReportsICETCPAndTURNOverTCP", checkNetnsEnv,
			[]string{nsNode, checkRelayIP}, checkNSRules)
		return
	}
	n := turnNode(t, func(c *config.Config) {
		c.SFU.UDPAddress = nsNode // TURN and ICE-TCP listen there too
		c.SFU.TCPPort = testutil.FreePort(t)
		c.Turn.Domain = nsNode
		c.Turn.RelayIP = checkRelayIP
	})
	b := newTURNBrowser(t)
	ctx, cancel := context.WithTimeout(b.ctx, browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/check"), chromedp.WaitVisible(chromedp.ID("check-table"))); err != nil {
		t.Fatal(err)
	}
	// Each blocked path takes the page its whole step (10 s) to give up.
	var res *checkResult
	for deadline := time.Now().Add(3 * browserDeadline); res == nil || !res.Done; time.Sleep(500 * time.Millisecond) {
		if err := evalJSON(b.ctx, `window.haloCheck || null`, &res); err != nil || time.Now().After(deadline) {
			t.Fatalf("the check did not finish: %v, last %+v", err, res)
		}
	}
	screenshot(t, b.ctx, "check-page-udp-blocked.png")
	var status string
	if err := evalJSON(b.ctx, `document.getElementById('check-status').textContent`, &status); err != nil {
		t.Fatal(err)
	}
	t.Logf("the page says: %s", status)
	for _, r := range res.Results {
		t.Logf("%-9s ok=%v state=%q rtt=%v mbps=%v %s", r.Path, deref(r.OK), r.State, derefF(r.RTTms), derefF(r.Mbps), r.Detail)
		switch r.Path {
		case "UDP", "TURN/UDP":
			if r.OK != nil && *r.OK {
				t.Errorf("%s reported working with UDP blocked: %s", r.Path, r.Detail)
			}
		default:
			if r.OK == nil || !*r.OK || r.RTTms == nil || *r.RTTms <= 0 || r.Mbps == nil || *r.Mbps <= 0 {
				t.Errorf("%s: want working with a round trip and a bandwidth: ok=%v %s", r.Path, deref(r.OK), r.Detail)
			}
		}
	}
	if !strings.Contains(status, "ICE-TCP") || strings.Contains(status, "UDP,") {
		t.Errorf("the page's summary %q should name ICE-TCP among what works, and not UDP", status)
	}
	assertNoPageProblems(t, b)
}

// runInNamespace runs the test name again in a new network namespace with
// only lo, the extra addresses on it and the nftables rules, with env set
// to 1, and fails with its output when it fails.
func runInNamespace(t *testing.T, name, env string, addrs, rules []string) {
	t.Helper()
	for _, tool := range []string{"unshare", "ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is missing (apt-get install nftables iproute2 util-linux): cannot build the namespace without UDP", tool)
		}
	}
	if err := exec.Command("unshare", "--net", "true").Run(); err != nil {
		t.Skipf("unshare --net not permitted here (%v): cannot build the namespace without UDP", err)
	}
	// A veth pair gives the browser a network interface of its own
	// (Chromium gathers no candidates with only lo): its datagrams come
	// from 10.99.0.1 and the rules drop them.
	script := "set -e; ip link set lo up\nip link add halo0 type veth peer name halo1\nip addr add 10.99.0.1/24 dev halo0\nip link set halo0 up\nip link set halo1 up\n"
	for _, a := range addrs {
		script += "ip addr add " + a + "/8 dev lo\n"
	}
	for _, r := range rules {
		script += "nft '" + r + "'\n"
	}
	script += `exec "$0" -test.run '^` + name + `$' -test.count=1 -test.v`
	if d := os.Getenv("HALO_TEST_ARTIFACTS"); d != "" {
		script += " -test.artifacts -test.outputdir " + d
	}
	cmd := exec.Command("unshare", "--net", "sh", "-c", script, os.Args[0])
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, ".go:") || strings.HasPrefix(l, "---") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if err != nil {
		t.Fatalf("the test in the namespace without UDP failed: %v\n%s", err, out)
	}
}

// The ICE-TCP check's endpoint answers bad input with a code and never
// starts a connection for it: a body that is not SDP, an offer without a
// data channel, SDP that does not parse, one too large, another method.
func TestCheckPage_ICETCPEndpointRefusesBadInputWithACode(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.SFU.TCPPort = testutil.FreePort(t) })
	url := n.base + "/check/ice-tcp"
	for _, c := range []struct {
		name, method, ctype, body string
		status                    int
		code                      string
	}{
		{"not SDP", "POST", "application/json", "{}", http.StatusUnsupportedMediaType, "bad_request"},
		{"no data channel", "POST", "application/sdp", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", http.StatusBadRequest, "invalid_sdp"},
		{"does not parse", "POST", "application/sdp", "m=application garbage\r\n\x00\x01", http.StatusBadRequest, "invalid_sdp"},
		{"too large", "POST", "application/sdp", "m=application " + strings.Repeat("x", 20<<10), http.StatusRequestEntityTooLarge, "message_too_large"},
		{"GET", "GET", "", "", http.StatusMethodNotAllowed, ""},
	} {
		resp := doHTTP(t, c.method, url, "", c.ctype, c.body, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.status || !strings.HasPrefix(string(body), c.code) {
			t.Errorf("%s: %d %q, want %d %s", c.name, resp.StatusCode, body, c.status, c.code)
		}
	}
	var ice struct {
		ICETCP bool `json:"ice_tcp"`
	}
	resp := doHTTP(t, "GET", n.base+"/check/ice-servers", "", "", "", nil)
	if err := json.NewDecoder(resp.Body).Decode(&ice); err != nil || !ice.ICETCP {
		t.Errorf("/check/ice-servers on a node with ICE-TCP: ice_tcp %v (%v), want true", ice.ICETCP, err)
	}
}

// A browser that may use only relays (iceTransportPolicy "relay" forced on
// every connection, as an extension or a managed browser does) opens
// /check: the page says the relays work and that it could not try the
// direct paths from this browser, rather than calling them blocked.
func TestCheckPage_BrowserForcedToRelaySaysWhatItCouldNotTry(t *testing.T) {
	n := turnNode(t, func(c *config.Config) { c.SFU.TCPPort = testutil.FreePort(t) })
	b := newTURNBrowser(t)
	forceRelay(t, b.ctx)
	ctx, cancel := context.WithTimeout(b.ctx, 3*browserDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(n.base+"/check"), chromedp.WaitVisible(chromedp.ID("check-table"))); err != nil {
		t.Fatal(err)
	}
	var res *checkResult
	for deadline := time.Now().Add(3 * browserDeadline); res == nil || !res.Done; time.Sleep(500 * time.Millisecond) {
		if err := evalJSON(b.ctx, `window.haloCheck || null`, &res); err != nil || time.Now().After(deadline) {
			t.Fatalf("the check did not finish: %v, last %+v", err, res)
		}
	}
	screenshot(t, b.ctx, "check-page-relay-only.png")
	var status string
	if err := evalJSON(b.ctx, `document.getElementById('check-status').textContent`, &status); err != nil {
		t.Fatal(err)
	}
	t.Logf("the page says: %s", status)
	for _, r := range res.Results {
		t.Logf("%-9s ok=%v state=%q rtt=%v mbps=%v %s", r.Path, deref(r.OK), r.State, derefF(r.RTTms), derefF(r.Mbps), r.Detail)
		switch r.Path {
		case "ICE-TCP":
			if r.OK != nil || r.State != "not tried" || !strings.Contains(r.Detail, "relays only") {
				t.Errorf("ICE-TCP: ok=%v state %q (%s), want not tried because the browser uses relays only", deref(r.OK), r.State, r.Detail)
			}
		case "UDP": // reached through the TURN/UDP exchange, and said so
			if r.OK == nil || !*r.OK || !strings.Contains(r.Detail, "TURN/UDP") || !strings.Contains(r.Detail, "relays only") {
				t.Errorf("UDP: ok=%v %s, want working through TURN/UDP, the browser being relay-only", deref(r.OK), r.Detail)
			}
		default:
			if r.OK == nil || !*r.OK || !strings.Contains(r.Detail, "relay over") {
				t.Errorf("%s: ok=%v %s, want working through the relay", r.Path, deref(r.OK), r.Detail)
			}
		}
	}
	if !res.BrowserRelayOnly || !strings.Contains(status, "relays only") || !strings.Contains(status, "direct connections were not tried") {
		t.Errorf("the page does not say the browser is relay-only: browser_relay_only %v, %q", res.BrowserRelayOnly, status)
	}
	assertNoPageProblems(t, b)
}
