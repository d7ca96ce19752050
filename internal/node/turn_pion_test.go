package node

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
)

// relayViewer is a Pion WHEP viewer that may use only relay candidates
// (iceTransportPolicy "relay") through the given TURN servers.
type relayViewer struct {
	pc      *webrtc.PeerConnection
	packets atomic.Int64
	tracks  atomic.Int64
}

func watchThroughTURN(t *testing.T, n *testNode, room, token string, servers []webrtc.ICEServer) *relayViewer {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{
		ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	v := &relayViewer{pc: pc}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.tracks.Add(1)
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			v.packets.Add(1)
		}
	})
	c := &whipClient{pc: pc}
	if resp := c.post(t, n.base+"/whep/"+room, token); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, b)
	}
	return v
}

// selectedLocal is the type of the local candidate of pc's selected pair.
func selectedLocal(pc *webrtc.PeerConnection) string {
	p, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || p == nil {
		return ""
	}
	return p.Local.Typ.String()
}

// A viewer whose network allows nothing but the node's TURN server watches
// through it, over UDP and over TCP, with the credentials and URLs the node
// gave it in the WHEP Link headers.
func TestTURN_PionViewerWatchesOverWHEPThroughTheEmbeddedTURN(t *testing.T) {
	n := turnNode(t, nil)
	const room = "relayed"
	whipPublish(t, n, room)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			token := n.token(room, "fan-"+transport, false, true)
			servers := linkICEServers(t, n, room, token, "turn:")
			var only []webrtc.ICEServer
			for _, s := range servers {
				if strings.HasSuffix(s.URLs[0], "transport="+transport) {
					only = append(only, s)
				}
			}
			before := n.gauge(t, "halo_turn_relayed_bytes_total", "direction", "from_peer")
			v := watchThroughTURN(t, n, room, token, only)
			testutil.Eventually(t, "video and audio through the relay", func() bool {
				return v.tracks.Load() == 2 && v.packets.Load() > 100
			})
			if typ := selectedLocal(v.pc); typ != "relay" {
				t.Fatalf("selected local candidate %q, want relay", typ)
			}
			if n.gauge(t, "halo_turn_allocations", "", "") < 1 {
				t.Fatal("halo_turn_allocations is 0 while a viewer relays")
			}
			if after := n.gauge(t, "halo_turn_relayed_bytes_total", "direction", "from_peer"); after-before < 100*20 {
				t.Fatalf("relayed %v bytes from the node to the viewer, want the media", after-before)
			}
		})
	}
}
