package node

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// The load tester's relay modes (loadtest.ICEMode): a Pion viewer built
// with loadtest.RelayICEServers, ApplyICEMode and RelayConfiguration
// watches over WHEP through the embedded TURN server over UDP, over TCP and
// over TLS (checked with the load tester's own TLS configuration: the
// test's self-signed certificate is skipped), its selected candidate a
// relay over that transport.
func TestTURN_LoadtestRelayModesReachTheNodeOverEachTransport(t *testing.T) {
	n := turnNode(t, nil)
	const room = "sizing"
	whipPublish(t, n, room)
	for mode, proto := range map[loadtest.ICEMode]string{loadtest.ICERelayUDP: "udp", loadtest.ICERelayTCP: "tcp", loadtest.ICERelayTLS: "tls"} {
		t.Run(string(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testutil.Wait)
			defer cancel()
			token := n.token(room, "sizer-"+string(mode), false, true)
			servers, err := loadtest.RelayICEServers(ctx, n.base+"/whep/"+room, token, mode)
			if err != nil || len(servers) != 1 {
				t.Fatalf("RelayICEServers(%s) = %v, %v", mode, servers, err)
			}
			me := &webrtc.MediaEngine{}
			if err := me.RegisterDefaultCodecs(); err != nil {
				t.Fatal(err)
			}
			se := webrtc.SettingEngine{}
			loadtest.ApplyICEMode(&se, mode, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's self-signed TURN certificate
			pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(loadtest.RelayConfiguration(servers))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pc.Close() })
			var packets atomic.Int64
			for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
				if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
					t.Fatal(err)
				}
			}
			pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				buf := make([]byte, 1500)
				for {
					if _, _, err := tr.Read(buf); err != nil {
						return
					}
					packets.Add(1)
				}
			})
			c := &whipClient{pc: pc}
			if resp := c.post(t, n.base+"/whep/"+room, token); resp.StatusCode != http.StatusCreated {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("WHEP POST: %d %s", resp.StatusCode, b)
			}
			testutil.Eventually(t, "media through the relay", func() bool { return packets.Load() > 100 })
			if typ, rp := selectedLocalRelay(pc); typ != "relay" || rp != proto {
				t.Fatalf("selected local candidate %s over %q, want relay over %s", typ, rp, proto)
			}
		})
	}
}
