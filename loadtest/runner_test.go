package loadtest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Viewers say their region as ?region= on the signalling and the WHEP URL;
// publishers do not.
func TestRun_ViewersSendTheirRegion(t *testing.T) {
	var mu sync.Mutex
	regions := map[string][]string{} // path -> regions seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		regions[r.URL.Path] = append(regions[r.URL.Path], r.URL.Query().Get("region"))
		mu.Unlock()
		http.Error(w, "not here", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	scenario := Scenario{
		Rooms:    []RoomGroup{{Count: 1, Publishers: 1, Viewers: 2}},
		Viewer:   ViewerSpec{Region: "eu-west"},
		Duration: Duration(100 * time.Millisecond),
	}
	for _, target := range []Target{
		{URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"},
		{WHIP: srv.URL + "/whip/{room}", WHEP: srv.URL + "/whep/{room}"},
	} {
		rep, err := Run(testCtx(t), RunConfig{Target: target, Scenario: scenario, Token: "t", MediaTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Viewers.Failed != 2 || rep.Publishers.Failed != 1 {
			t.Fatalf("%s: viewers %+v publishers %+v", target.Kind(), rep.Viewers, rep.Publishers)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for path, want := range map[string][]string{
		"/ws":            {"", "eu-west", "eu-west"}, // the publisher, then two viewers
		"/whip/loadtest": {""},
		"/whep/loadtest": {"eu-west", "eu-west"},
	} {
		got := regions[path]
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: regions %q, want %q", path, got, want)
		}
	}
}
