package signaling

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/halobuzz/live/config"
)

func TestCheckICEServers_GivesShortCredentialsAndIsRateLimited(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Turn.Enabled, c.Turn.Secret, c.Turn.TLSPort = true, testTURNSecret, 0
		c.Limits.JoinsPerIPPerMinute = 2
	})
	get := func() (*http.Response, checkICE) {
		req, _ := http.NewRequest("GET", ts.url+"/check/ice-servers", nil)
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out checkICE
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
		}
		return resp, out
	}
	resp, out := get()
	if resp.StatusCode != http.StatusOK || out.STUN != "stun:127.0.0.1:3478" || len(out.TURN) != 1 || out.Node != "origin" {
		t.Fatalf("check ICE servers: %d %+v", resp.StatusCode, out)
	}
	cred := [2]string{out.TURN[0].Username, out.TURN[0].Credential}
	if !strings.HasPrefix(strings.SplitN(cred[0], ":", 2)[1], "check:127.0.0.1") {
		t.Fatalf("identity of the check's credential: %q", cred[0])
	}
	checkCredential(t, [2]string{cred[0], cred[1]}, strings.SplitN(cred[0], ":", 2)[1], checkCredentialTTL)
	if _, out := get(); len(out.TURN) != 1 {
		t.Fatal("second check refused within the budget of 2")
	}
	if resp, _ := get(); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third check in a minute: %d, want 429 with Retry-After", resp.StatusCode)
	}
}
