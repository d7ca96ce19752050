package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/signaling/auth"
)

func startRegionNode(t *testing.T, r *testutil.Redis, id, region, secret string, redirect bool) *testNode {
	return startNode(t, func(c *config.Config) {
		clusterConfig(t, c, r, id, region, secret)
		c.Cluster.RegionRedirect = redirect
		c.Cluster.RegionHeader = "X-Region"
	})
}

// A client that names another region is sent to that region's node: WHIP
// and WHEP with 307 to the same path there, a WebSocket with a redirect
// message. In its own region, or for a region without a node, it is served
// where it asked.
func TestRegion_ClientsAreSentToTheirRegionsNode(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("g6", 20)
	eu := startRegionNode(t, r, "node-eu", "eu", secret, true)
	in := startRegionNode(t, r, "node-in", "in", secret, true)
	testutil.Eventually(t, "eu knows the node in India", func() bool {
		code, nodes := getNodes(t, eu, eu.adminToken(auth.Grants{Admin: true}))
		ok := 0
		for _, n := range nodes {
			if n.Region == "in" && n.PublicURL != "" {
				ok++
			}
		}
		return code == http.StatusOK && ok == 1
	})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest("POST", eu.base+path, strings.NewReader(validOffer))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("Authorization", "Bearer "+eu.token("asia", "viewer", false, true))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for name, c := range map[string]struct {
		path string
		hdr  map[string]string
	}{
		"query":  {"/whep/asia?region=in", nil},
		"header": {"/whip/asia", map[string]string{"X-Region": "in"}},
	} {
		resp := post(c.path, c.hdr)
		if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), in.base+strings.Split(c.path, "?")[0]) {
			t.Errorf("%s: %d Location %q, want 307 to %s", name, resp.StatusCode, resp.Header.Get("Location"), in.base+c.path)
		}
	}
	for _, region := range []string{"eu", "mars"} { // its own, and one without a node
		if resp := post("/whep/asia?region="+region, nil); resp.StatusCode == http.StatusTemporaryRedirect {
			t.Errorf("region %s redirected to %s", region, resp.Header.Get("Location"))
		}
	}

	conn, _, err := websocket.DefaultDialer.Dial(strings.Replace(eu.wsURL, "/ws", "/ws?region=in", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Type string `json:"type"`
		Data struct {
			URL string `json:"url"`
		} `json:"data"`
	}
	if err := json.Unmarshal(msg, &env); err != nil || env.Type != "redirect" || env.Data.URL != in.wsURL+"?region=in" {
		t.Fatalf("WebSocket got %s, want a redirect to %s?region=in", msg, in.wsURL)
	}
}

// Without cluster.region_redirect a region is ignored.
func TestRegion_RedirectIsOffByDefault(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("k3", 20)
	eu := startRegionNode(t, r, "node-eu", "eu", secret, false)
	_ = startRegionNode(t, r, "node-in", "in", secret, false)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", eu.base+"/whep/asia?region=in", strings.NewReader(validOffer))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+eu.token("asia", "viewer", false, true))
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusTemporaryRedirect {
		t.Fatal("redirected with cluster.region_redirect off")
	}
}
