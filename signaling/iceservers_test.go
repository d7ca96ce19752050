package signaling

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the scheme under test
	"encoding/base64"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/loadtest"
)

const testTURNSecret = "turn-test-0123456789abcdef0123456789abcdef"

func TestTURNCredential_IsCoturnsUseAuthSecretScheme(t *testing.T) {
	// base64(HMAC-SHA1("north-secret", "1767225600:alice")), computed
	// outside Go: python3 -c 'import hmac,hashlib,base64; ...'.
	user, pass := TURNCredential("north-secret", "alice", time.Unix(1767225600, 0))
	if user != "1767225600:alice" || pass != "PtgFkMyqgR4om/PGc3sDV5OnNo8=" {
		t.Fatalf("TURNCredential = %q, %q", user, pass)
	}
}

// linkRE parses one Link header of ours.
var linkRE = regexp.MustCompile(`^<([^>]+)>; rel="ice-server"; username="((?:[^"\\]|\\.)*)"; credential="((?:[^"\\]|\\.)*)"; credential-type="password"$`)

// turnLinks returns the TURN Link headers of h: url -> username, credential.
func turnLinks(t *testing.T, h http.Header) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	for _, v := range h.Values("Link") {
		if !strings.HasPrefix(v, "<turn") {
			continue
		}
		m := linkRE.FindStringSubmatch(v)
		if m == nil {
			t.Fatalf("Link header %q is not an RFC 9725 ice-server link with credentials", v)
		}
		unq := strings.NewReplacer(`\"`, `"`, `\\`, `\`)
		out[m[1]] = [2]string{unq.Replace(m[2]), unq.Replace(m[3])}
	}
	return out
}

func request(t *testing.T, method, url, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", mimeSDP)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

// checkCredential checks that a link's credential is valid for identity
// under the secret, and expires about ttl from now.
func checkCredential(t *testing.T, cred [2]string, identity string, ttl time.Duration) {
	t.Helper()
	ts, id, ok := strings.Cut(cred[0], ":")
	exp, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || id != identity {
		t.Fatalf("username %q, want expiry:%s", cred[0], identity)
	}
	if d := time.Until(time.Unix(exp, 0)); d < ttl-time.Minute || d > ttl+time.Minute {
		t.Fatalf("credential expires in %v, want about %v", d, ttl)
	}
	m := hmac.New(sha1.New, []byte(testTURNSecret))
	m.Write([]byte(cred[0]))
	if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); cred[1] != want {
		t.Fatalf("credential %q for %q, want %q", cred[1], cred[0], want)
	}
}

func TestWHIPAndWHEP_GiveTURNCredentialsAsLinkHeaders(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Turn.Enabled, c.Turn.Secret, c.Turn.Domain = true, testTURNSecret, "turn.example.com"
		c.Turn.ExternalTLS, c.Turn.PublicTLSPort = true, 443
		c.Turn.ExternalURLs = []string{"turns:coturn.example.com:5349?transport=tcp"}
		c.Turn.CredentialTTL = 30 * time.Minute
	})
	const roomName = "linked"
	wantURLs := []string{
		"turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp",
		"turns:turn.example.com:443?transport=tcp", "turns:coturn.example.com:5349?transport=tcp",
	}
	identity := `fan "quoted" \ one`
	tok := ts.token(t, identity, roomName, false)

	for _, kind := range []string{"whip", "whep"} {
		resp := request(t, "OPTIONS", ts.url+"/"+kind+"/"+roomName, tok, "")
		links := turnLinks(t, resp.Header)
		if len(links) != len(wantURLs) {
			t.Fatalf("OPTIONS /%s with a token: TURN links %v, want %v", kind, links, wantURLs)
		}
		for _, u := range wantURLs {
			cred, ok := links[u]
			if !ok {
				t.Fatalf("OPTIONS /%s: no link for %s in %v", kind, u, links)
			}
			checkCredential(t, cred, identity, 30*time.Minute)
		}
		// Anonymous (a CORS preflight, anyone): no credentials.
		if links := turnLinks(t, request(t, "OPTIONS", ts.url+"/"+kind+"/"+roomName, "", "").Header); len(links) != 0 {
			t.Fatalf("anonymous OPTIONS /%s got TURN credentials %v", kind, links)
		}
		// A token for another room: none either.
		other := ts.token(t, "fan", "elsewhere", false)
		if links := turnLinks(t, request(t, "OPTIONS", ts.url+"/"+kind+"/"+roomName, other, "").Header); len(links) != 0 {
			t.Fatalf("OPTIONS /%s with another room's token got TURN credentials", kind)
		}
	}

	// A session created: 201 with the links; a refused one: none.
	broadcastWith(t, ts, roomName, ts.token(t, "star", roomName, true))
	resp := request(t, "POST", ts.url+"/whep/"+roomName, tok, edgeOffer(t))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP POST: %d", resp.StatusCode)
	}
	links := turnLinks(t, resp.Header)
	if len(links) != len(wantURLs) {
		t.Fatalf("WHEP 201: TURN links %v", links)
	}
	checkCredential(t, links[wantURLs[0]], identity, 30*time.Minute)
	if loc := resp.Header.Get("Location"); loc != "" {
		request(t, "DELETE", ts.url+loc, "", "")
	}
	resp = request(t, "POST", ts.url+"/whep/"+roomName, "not-a-token", edgeOffer(t))
	if resp.StatusCode == http.StatusCreated || len(turnLinks(t, resp.Header)) != 0 {
		t.Fatalf("WHEP POST with a bad token: %d with links %v", resp.StatusCode, resp.Header.Values("Link"))
	}
}

func TestTURNLinks_HostFromTheRequestWithoutDomain(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Turn.Enabled, c.Turn.Secret, c.Turn.TLSPort = true, testTURNSecret, 0
	})
	tok := ts.token(t, "fan", "r1", false)
	links := turnLinks(t, request(t, "OPTIONS", ts.url+"/whep/r1", tok, "").Header)
	if _, ok := links["turn:127.0.0.1:3478?transport=udp"]; !ok || len(links) != 2 {
		t.Fatalf("links %v: want turn: UDP and TCP at the host the client reached, no turns: without TLS", links)
	}
}

func TestTURNLinks_NoneWhenTURNIsOff(t *testing.T) {
	ts := startServer(t, nil)
	tok := ts.token(t, "fan", "r1", false)
	if links := turnLinks(t, request(t, "OPTIONS", ts.url+"/whep/r1", tok, "").Header); len(links) != 0 {
		t.Fatalf("TURN off, links %v", links)
	}
}

func TestLinkQuote_EscapesAndDropsControlCharacters(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:      `"plain"`,
		`a"b`:        `"a\"b"`,
		`a\b`:        `"a\\b"`,
		"a\r\nLink:": `"aLink:"`,
		"\x00\x7f":   `""`,
	} {
		if got := linkQuote(in); got != want {
			t.Errorf("linkQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// A WebSocket client gets the same TURN servers in joined (turn_servers),
// with credentials for its identity; without TURN configured, none.
func TestJoined_CarriesTURNServers(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Turn.Enabled, c.Turn.Secret, c.Turn.Domain = true, testTURNSecret, "turn.example.com"
		c.Turn.CredentialTTL = 30 * time.Minute
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := loadtest.Dial(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	no := false
	env, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: ts.token(t, "fan", "turned", false), AutoSubscribe: &no})
	if err != nil {
		t.Fatal(err)
	}
	var joined struct {
		TURNServers []ICEServer `json:"turn_servers"`
	}
	if err := env.Decode(&joined); err != nil || len(joined.TURNServers) != 1 {
		t.Fatalf("joined turn_servers %+v (%v), want one entry", joined.TURNServers, err)
	}
	got := joined.TURNServers[0]
	if !slices.Contains(got.URLs, "turn:turn.example.com:3478?transport=udp") {
		t.Errorf("turn_servers URLs %v, want the node's turn: URL", got.URLs)
	}
	checkCredential(t, [2]string{got.Username, got.Credential}, "fan", 30*time.Minute)

	plain := startServer(t, nil)
	c2, err := loadtest.Dial(ctx, "ws"+strings.TrimPrefix(plain.url, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Close() })
	env, err = c2.Request(ctx, "join", loadtest.JoinRequest{Token: plain.token(t, "fan", "plain", false), AutoSubscribe: &no})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(env.Data), "turn_servers") {
		t.Errorf("joined without TURN configured: %s, want no turn_servers", env.Data)
	}
}
