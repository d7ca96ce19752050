package node

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// netnsEnv marks the test binary re-executed inside the network namespace
// of TestTURN_ViewerWhoseUDPIsDroppedWatchesThroughTURNOverTCP.
const netnsEnv = "HALOTEST_TURN_NETNS"

// The addresses of the namespace, all on its lo: the node (media, TURN and
// relays), the publisher, the viewer.
const (
	nsNode      = "127.0.0.2"
	nsPublisher = "127.0.0.3"
	nsViewer    = "127.0.0.1"
)

// nsRules drop every UDP datagram in the namespace except the node's own
// (the relay to the media port) and the publisher's: the viewer has TCP
// only, as behind a firewall that blocks UDP.
var nsRules = []string{
	"add table inet halo",
	`add chain inet halo in { type filter hook input priority 0; policy accept; }`,
	"add rule inet halo in ip saddr " + nsNode + " ip daddr " + nsNode + " meta l4proto udp accept",
	"add rule inet halo in ip saddr " + nsPublisher + " meta l4proto udp accept",
	"add rule inet halo in ip daddr " + nsPublisher + " meta l4proto udp accept",
	"add rule inet halo in meta l4proto udp drop",
}

// A viewer whose UDP is dropped (nftables in a network namespace the test
// creates, only lo in it) is given the node's TURN servers (UDP and TCP,
// from the WHEP Link headers) and nothing else forced: its host candidates
// and TURN/UDP fail, it watches through TURN over TCP, with < 1 % loss.
func TestTURN_ViewerWhoseUDPIsDroppedWatchesThroughTURNOverTCP(t *testing.T) {
	if os.Getenv(netnsEnv) != "1" {
		runInUDPDroppedNamespace(t)
		return
	}
	certless := func(c *config.Config) {
		c.SFU.UDPAddress = nsNode // TURN listens there too
		c.Turn.Domain = nsNode
		c.Turn.TLSPort = 0 // Pion checks a turns: certificate against the system's roots
	}
	n := turnNode(t, certless)
	const room = "noudp"
	pubAPI := ipAPI(t, nsPublisher)
	pub := nsPublish(t, n, room, pubAPI)

	token := n.token(room, "tcp-only-fan", false, true)
	servers := linkICEServers(t, n, room, token, "turn:")
	v := nsWatch(t, n, room, token, servers)
	deadline := time.Now().Add(testutil.Wait)
	for v.tracks() != 2 || v.received() <= 200 {
		if time.Now().After(deadline) {
			typ, proto := selectedLocalRelay(v.pc)
			t.Fatalf("no media through TURN over TCP: viewer %d tracks, %d packets, ICE %s, selected %s/%s; publisher %s; TURN allocations %v",
				v.tracks(), v.received(), v.pc.ICEConnectionState(), typ, proto, pub.pc.ICEConnectionState(), n.gauge(t, "halo_turn_allocations", "", ""))
		}
		time.Sleep(50 * time.Millisecond)
	}
	typ, proto := selectedLocalRelay(v.pc)
	if typ != "relay" || proto != "tcp" {
		t.Fatalf("selected local candidate %s over %q, want relay over tcp", typ, proto)
	}
	// Count from here for 3 s of media: what was lost on the way.
	v.reset()
	time.Sleep(3 * time.Second)
	recv, lost := v.counts()
	if recv < 100 {
		t.Fatalf("received %d packets in 3 s (publisher sent %d frames in all)", recv, pub.ticks.Load())
	}
	if loss := float64(lost) / float64(recv+lost); loss >= 0.01 {
		t.Fatalf("loss %.2f %% (%d lost, %d received), want < 1 %%", 100*loss, lost, recv)
	}
	t.Logf("through TURN/TCP with UDP dropped: %d packets received, %d lost in 3 s", recv, lost)
}

// runInUDPDroppedNamespace runs the test again in a new network namespace
// with nsRules, and fails with its output when it fails.
func runInUDPDroppedNamespace(t *testing.T) {
	for _, tool := range []string{"unshare", "ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is missing (apt-get install nftables iproute2 util-linux): cannot build the namespace without UDP", tool)
		}
	}
	if err := exec.Command("unshare", "--net", "true").Run(); err != nil {
		t.Skipf("unshare --net not permitted here (%v): cannot build the namespace without UDP", err)
	}
	script := "set -e; ip link set lo up; ip addr add " + nsNode + "/8 dev lo; ip addr add " + nsPublisher + "/8 dev lo\n"
	for _, r := range nsRules {
		script += "nft '" + r + "'\n"
	}
	script += `exec "$0" -test.run '^TestTURN_ViewerWhoseUDPIsDroppedWatchesThroughTURNOverTCP$' -test.count=1 -test.v`
	cmd := exec.Command("unshare", "--net", "sh", "-c", script, os.Args[0])
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, "turn_netns_test.go") || strings.HasPrefix(l, "---") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if err != nil {
		t.Fatalf("the test in the namespace without UDP failed: %v\n%s", err, out)
	}
}

// ipAPI is a Pion API gathering host candidates on ip only.
func ipAPI(t *testing.T, ip string) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	want := net.ParseIP(ip)
	se.SetIPFilter(func(a net.IP) bool { return a.Equal(want) })
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
}

// nsPublish publishes synthetic VP8 and Opus over WHIP from the
// publisher's address, as whipPublish does.
func nsPublish(t *testing.T, n *testNode, room string, api *webrtc.API) *whipClient {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "cam", "whip")
	audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "mic", "whip")
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	c := &whipClient{pc: pc, stop: make(chan struct{}), done: make(chan struct{})}
	if resp := c.post(t, n.base+"/whip/"+room, n.token(room, "whip", true, false)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHIP POST: %d %s", resp.StatusCode, b)
	}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		frame := append([]byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, make([]byte, 2000)...)
		for {
			select {
			case <-c.stop:
				return
			case <-tick.C:
				_ = video.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond})
				_ = audio.WriteSample(media.Sample{Data: make([]byte, 160), Duration: 20 * time.Millisecond})
				c.ticks.Add(1)
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

// lossViewer is a WHEP viewer counting, per track, packets received and
// sequence numbers skipped.
type lossViewer struct {
	pc *webrtc.PeerConnection
	mu sync.Mutex
	n  int
	st map[uint32]*seqCount
}

type seqCount struct {
	last           uint16
	started        bool
	received, lost int
}

func (v *lossViewer) tracks() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n
}

func (v *lossViewer) received() int {
	r, _ := v.counts()
	return r
}

func (v *lossViewer) counts() (received, lost int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range v.st {
		received += s.received
		lost += s.lost
	}
	return received, lost
}

// reset starts counting again from the next packet of each track.
func (v *lossViewer) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range v.st {
		*s = seqCount{}
	}
}

// nsWatch is a WHEP viewer from the viewer's address with servers as its
// ICE servers and the default policy (every candidate type).
func nsWatch(t *testing.T, n *testNode, room, token string, servers []webrtc.ICEServer) *lossViewer {
	t.Helper()
	pc, err := ipAPI(t, nsViewer).NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	v := &lossViewer{pc: pc, st: map[uint32]*seqCount{}}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.mu.Lock()
		v.n++
		s := &seqCount{}
		v.st[uint32(tr.SSRC())] = s
		v.mu.Unlock()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.mu.Lock()
			if s.started {
				if gap := p.SequenceNumber - s.last; gap > 1 && gap < 1000 {
					s.lost += int(gap - 1)
				}
			}
			if !s.started || p.SequenceNumber-s.last < 1000 {
				s.last, s.started = p.SequenceNumber, true
			}
			s.received++
			v.mu.Unlock()
		}
	})
	c := &whipClient{pc: pc}
	if resp := c.post(t, n.base+"/whep/"+room, token); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, b)
	}
	return v
}

// selectedLocalRelay is the type and relay protocol of pc's selected local
// candidate, from its stats.
func selectedLocalRelay(pc *webrtc.PeerConnection) (typ, relayProtocol string) {
	p, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || p == nil {
		return "", ""
	}
	for _, s := range pc.GetStats() {
		if c, ok := s.(webrtc.ICECandidateStats); ok && c.Type == webrtc.StatsTypeLocalCandidate &&
			c.IP == p.Local.Address && int(c.Port) == int(p.Local.Port) {
			return p.Local.Typ.String(), c.RelayProtocol
		}
	}
	return p.Local.Typ.String(), ""
}
