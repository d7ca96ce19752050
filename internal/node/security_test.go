package node

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
)

// A production node has no /dev/token at all (the other half of
// TestDevMode_HALODEVDoesNotEnableIt, which starts the binary's path).
func TestDevMode_ProductionNodeHasNoDevToken(t *testing.T) {
	n := startNode(t, nil)
	resp, err := http.Get(n.base + "/dev/token?room=demo&publish=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("production /dev/token: %d, want 404", resp.StatusCode)
	}
}

// Profiles are served only when metrics.pprof is on (default off), and never
// on the public listener.
func TestPprof_OnlyWhenEnabled(t *testing.T) {
	get := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	off := startNode(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0" })
	if got := get("http://" + off.metricsLn.Addr().String() + "/debug/pprof/"); got != http.StatusNotFound {
		t.Errorf("pprof with metrics.pprof false: %d, want 404", got)
	}
	if got := get("http://" + off.metricsLn.Addr().String() + "/metrics"); got != http.StatusOK {
		t.Errorf("/metrics: %d, want 200", got)
	}
	on := startNode(t, func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:0"; c.Metrics.Pprof = true })
	if got := get("http://" + on.metricsLn.Addr().String() + "/debug/pprof/"); got != http.StatusOK {
		t.Errorf("pprof with metrics.pprof true: %d, want 200", got)
	}
	if got := get(on.base + "/debug/pprof/"); got == http.StatusOK {
		t.Errorf("pprof on http.listen: %d", got)
	}
}

// ICE credentials follow RFC 8839 (ufrag 4-256, pwd 22-256 ice-chars), in a
// WHIP/WHEP offer and in a PATCH fragment alike: anything else is 400.
func TestWHIP_InvalidICECredentialsGet400(t *testing.T) {
	n := startNode(t, nil)
	pubTok := n.token("ice", "p", true, false)
	for name, offer := range map[string]string{
		"ufrag a":        strings.Replace(validOffer, "a=ice-ufrag:abcd", "a=ice-ufrag:a", 1),
		"short pwd":      strings.Replace(validOffer, "a=ice-pwd:abcdefghijklmnopqrstuvwx", "a=ice-pwd:abc", 1),
		"no fingerprint": strings.Replace(validOffer, "a=fingerprint:", "a=x-fingerprint:", 1),
	} {
		resp := doHTTP(t, "POST", n.base+"/whip/ice", pubTok, "application/sdp", offer, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(string(body), "invalid_sdp:") {
			t.Errorf("POST with %s: %d %q, want 400 invalid_sdp", name, resp.StatusCode, body)
		}
	}
	c := whipPublish(t, n, "ice")
	for name, frag := range map[string]string{
		"ufrag a":        "a=ice-ufrag:a\r\na=ice-pwd:newpasswordnewpassword12\r\na=mid:0\r\n",
		"short pwd":      "a=ice-ufrag:abcd\r\na=ice-pwd:short\r\na=mid:0\r\n",
		"non-ice-char":   "a=ice-ufrag:ab;d\r\na=ice-pwd:newpasswordnewpassword12\r\na=mid:0\r\n",
		"ufrag, no pwd":  "a=ice-ufrag:abcd\r\na=mid:0\r\n",
		"257-char ufrag": "a=ice-ufrag:" + strings.Repeat("u", 257) + "\r\na=ice-pwd:newpasswordnewpassword12\r\na=mid:0\r\n",
	} {
		resp := doHTTP(t, "PATCH", n.base+c.location, "", "application/trickle-ice-sdpfrag", frag, map[string]string{"If-Match": c.etag})
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PATCH with %s: %d %q, want 400", name, resp.StatusCode, body)
		}
	}
	// The session is unharmed: a valid ICE restart still works.
	resp := doHTTP(t, "PATCH", n.base+c.location, "", "application/trickle-ice-sdpfrag",
		"a=ice-ufrag:newfrag1\r\na=ice-pwd:newpasswordnewpassword12\r\na=mid:0\r\n", map[string]string{"If-Match": c.etag})
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("valid ICE restart after bad ones: %d %s", resp.StatusCode, b)
	}
}

// A wrong method on a known path is 405 with an Allow header, not 404.
func TestMethods_WrongMethodGets405WithAllow(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Dev = true })
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/whip/room", "POST, OPTIONS"},
		{"PUT", "/whep/room", "POST, OPTIONS"},
		{"DELETE", "/whip/room", "POST, OPTIONS"},
		{"GET", "/whip/room/0123", "PATCH, DELETE, OPTIONS"},
		{"POST", "/whep/room/0123", "PATCH, DELETE, OPTIONS"},
		{"POST", "/ws", "GET, HEAD"},
		{"DELETE", "/ws", "GET, HEAD"},
		{"POST", "/dev/token", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
	} {
		resp := doHTTP(t, tc.method, n.base+tc.path, "", "", "", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
		}
	}
	// The right methods still reach their handlers.
	if resp := doHTTP(t, "GET", n.base+"/dev/token?room=demo", "", "", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /dev/token: %d", resp.StatusCode)
	}
	if resp := doHTTP(t, "OPTIONS", n.base+"/whip/room", "", "", "", nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("OPTIONS /whip/room: %d", resp.StatusCode)
	}
	if resp := doHTTP(t, "GET", n.base+"/nowhere", "", "", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nowhere: %d, want 404", resp.StatusCode)
	}
}

// WHIP and WHEP check the token before reading the body: a bad token with a
// body that never ends is answered 401 at once and the connection closed,
// instead of the node waiting for (and holding) the body.
func TestWHIP_TokenCheckedBeforeTheBody(t *testing.T) {
	n := startNode(t, nil)
	for _, tc := range []struct{ path, token string }{
		{"/whip/room", "not-a-token"},
		{"/whep/room", ""},
		{"/whip/room", n.token("room", "viewer", false, true)}, // no publish grant: 403
	} {
		conn, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		auth := ""
		if tc.token != "" {
			auth = "Authorization: Bearer " + tc.token + "\r\n"
		}
		// 100 MB announced, 1 KiB sent, the rest never comes.
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/sdp\r\nContent-Length: 100000000\r\n\r\n%s",
			tc.path, auth, strings.Repeat("v", 1024))
		// A guard against a hang, not a timing: the answer must come while
		// the body is still incomplete.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer while the body is pending: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		want := http.StatusUnauthorized
		if strings.HasPrefix(tc.path, "/whip") && tc.token != "not-a-token" {
			want = http.StatusForbidden
		}
		if resp.StatusCode != want || !resp.Close {
			t.Errorf("%s: %d close %v %q, want %d and the connection closed", tc.path, resp.StatusCode, resp.Close, body, want)
		}
	}
}
