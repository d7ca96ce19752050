package signaling

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/signaling/auth"
)

// trunkOffer is an edge's first trunk offer: its control channel only.
func trunkOffer(t *testing.T) string {
	t.Helper()
	pc := testutil.LoopbackPeer(t, testutil.PeerOptions{})
	if _, err := pc.CreateDataChannel("halo-trunk", nil); err != nil {
		t.Fatal(err)
	}
	return testutil.LocalOffer(t, pc)
}

// A trunk is set up only with a trunk token signed with the cluster
// secret, once per token; a room's relay token, a client's token or none
// is refused, and a trunk token does not open a room's relay.
func TestRelayTrunk_SetUpNeedsAOneUseTrunkToken(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Cluster.RelayTrunks = true })
	_, ids := broadcast(t, ts, "trunked")
	signer, err := auth.NewSigner([]byte(ts.cfg.Cluster.Secret))
	if err != nil {
		t.Fatal(err)
	}
	trunkTok, err := relayToken(signer, "edge-b", trunkTokenRoom, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roomTok, err := relayToken(signer, "edge-b", "trunked", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	offer := trunkOffer(t)
	for name, tok := range map[string]string{
		"no token":           "",
		"a client's token":   ts.token(t, "sneaky", "trunked", true),
		"a room relay token": roomTok,
		"garbage":            "not-a-token",
	} {
		if status, _, body := do(t, "POST", ts.url+trunkPath, tok, mimeSDP, offer); status != http.StatusUnauthorized {
			t.Errorf("%s: %d %q, want 401", name, status, body)
		}
	}
	if status, _, body := relayAsk(t, ts, trunkTok, "trunked", ids, edgeOffer(t)); status != http.StatusUnauthorized {
		t.Errorf("a trunk token on a room's relay endpoint: %d %q, want 401", status, body)
	}
	fresh, err := relayToken(signer, "edge-b", trunkTokenRoom, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	status, _, body := do(t, "POST", ts.url+trunkPath, fresh, mimeSDP, offer)
	if status != http.StatusCreated || !strings.Contains(body, "a=fingerprint") || !strings.Contains(body, "webrtc-datachannel") {
		t.Fatalf("a trunk request: %d %q, want 201 with the trunk's answer", status, body)
	}
	if status, _, body := do(t, "POST", ts.url+trunkPath, fresh, mimeSDP, offer); status != http.StatusUnauthorized || !strings.HasPrefix(body, CodeTokenReplayed+":") {
		t.Errorf("the trunk token replayed: %d %q, want 401 %s", status, body, CodeTokenReplayed)
	}
}

// A node with cluster.relay_trunks off serves no trunk, with a code an
// edge can tell from a refusal of its token; a room's relay still works.
func TestRelayTrunk_OffRefusesTrunksNotRelays(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Cluster.RelayTrunks = false })
	_, ids := broadcast(t, ts, "untrunked")
	signer, err := auth.NewSigner([]byte(ts.cfg.Cluster.Secret))
	if err != nil {
		t.Fatal(err)
	}
	trunkTok, err := relayToken(signer, "edge-b", trunkTokenRoom, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if status, _, body := do(t, "POST", ts.url+trunkPath, trunkTok, mimeSDP, trunkOffer(t)); status != http.StatusServiceUnavailable || !strings.HasPrefix(body, CodeClusterUnavailable+":") {
		t.Errorf("a trunk request with trunks off: %d %q, want 503 %s", status, body, CodeClusterUnavailable)
	}
	roomTok, err := relayToken(signer, "edge-b", "untrunked", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if status, _, body := relayAsk(t, ts, roomTok, "untrunked", ids, edgeOffer(t)); status != http.StatusCreated {
		t.Errorf("a room's relay with trunks off: %d %q, want 201", status, body)
	}
}
