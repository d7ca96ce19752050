package loadtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// DevTokenMinter asks /dev/token for each participant's own token, with
// publish only for publishers, and refuses a server without the endpoint
// at once.
func TestDevTokenMinter_OneTokenPerParticipant(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/dev/token" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		_ = json.NewEncoder(w).Encode(map[string]string{"token": q.Get("room") + "/" + q.Get("identity") + "/" + q.Get("publish")})
	}))
	defer srv.Close()
	mint, err := DevTokenMinter(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		identity, room string
		publish        bool
		want           string
	}{
		{"viewer-1", "demo", false, "demo/viewer-1/"},
		{"caster", "demo", true, "demo/caster/1"},
	} {
		if got, err := mint(tc.identity, tc.room, tc.publish); err != nil || got != tc.want {
			t.Errorf("mint(%s) = %q, %v; want %q", tc.identity, got, err, tc.want)
		}
	}
	for _, bad := range []string{"ftp://x/ws", "::", "ws:///ws"} {
		if _, err := DevTokenMinter(t.Context(), bad); err == nil {
			t.Errorf("DevTokenMinter(%q) succeeded", bad)
		}
	}
	notDev := httptest.NewServer(http.NotFoundHandler())
	defer notDev.Close()
	if _, err := DevTokenMinter(t.Context(), "ws"+strings.TrimPrefix(notDev.URL, "http")+"/ws"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("server without /dev/token: %v", err)
	}
}
