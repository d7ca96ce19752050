package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/halobuzz/live/config"
)

// checkResult is the check page's window.haloCheck.
type checkResult struct {
	Node    string `json:"node"`
	Done    bool   `json:"done"`
	Error   string `json:"error"`
	Results []struct {
		Path   string   `json:"path"`
		OK     *bool    `json:"ok"`
		State  string   `json:"state"`
		RTTms  *float64 `json:"rtt_ms"`
		Mbps   *float64 `json:"mbps"`
		Detail string   `json:"detail"`
	} `json:"results"`
}

// The /check page in Chromium against a node with its TURN server on UDP,
// TCP and TLS says that UDP and every TURN path work from here, with a
// round trip and a bandwidth figure for each TURN path, and that ICE-TCP
// is not tried; its result is the JSON the page offers to copy. A
// screenshot goes to the test's artifact directory.
func TestCheckPage_ReportsUDPAndTURNOverUDPTCPAndTLS(t *testing.T) {
	n := turnNode(t, nil)
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
			if r.OK != nil || r.State != "not tried" {
				t.Errorf("ICE-TCP: ok=%v state %q, want not tried", deref(r.OK), r.State)
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

// Without TURN the page still answers: the TURN paths and UDP are "not
// offered", nothing is reported blocked.
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
			t.Errorf("%s: ok=%v without TURN, want not offered/not tried", r.Path, *r.OK)
		}
		if r.Path != "ICE-TCP" && r.State != "not offered" {
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
