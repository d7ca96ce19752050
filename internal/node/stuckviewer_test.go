package node

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
)

// freezingProxy relays TCP connections to target until freeze, after which
// it stops reading what the target sends: to the target, the client behind
// it is a viewer whose socket is not read.
type freezingProxy struct {
	l      net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{l: l, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezingProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *freezingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		// A fixed 64 KB window: what the server can push into a socket that is
		// not read is bounded (no receive-buffer autotuning).
		_ = s.(*net.TCPConn).SetReadBuffer(64 << 10)
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(s, c) }()
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 2048)
			for !p.frozen.Load() {
				n, err := s.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

func (p *freezingProxy) close() {
	_ = p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

var tcpCandidatePort = regexp.MustCompile(`(a=candidate:\S+ \d+ tcp \d+ \S+ )(\d+)( typ host tcptype passive)`)

// A viewer on ICE-TCP whose socket stops being read cannot stall the track:
// its connection's bounded buffer fills and its packets are dropped for it
// alone, while a UDP viewer of the same broadcast keeps receiving all of them.
func TestStuckViewer_DoesNotReduceWhatOthersReceive(t *testing.T) {
	tcpPort := testutil.FreePort(t)
	n := startNode(t, func(c *config.Config) { c.SFU.TCPPort = tcpPort })
	// 20 KB frames at 50 fps: 1 MB/s fills the kernel's TCP buffers toward
	// the stuck viewer within seconds.
	pub := whipPublishFrames(t, n, "stuck", 20000)
	defer pub.close()
	testutil.Eventually(t, "broadcast published", func() bool { r := n.rooms.Room("stuck"); return r != nil && len(r.Tracks()) == 2 })

	// The UDP viewer counts what it receives.
	_, udp := whepRecord(t, n, "stuck")
	udpPackets := func() int { return udp.count(webrtc.RTPCodecTypeVideo) + udp.count(webrtc.RTPCodecTypeAudio) }
	testutil.Eventually(t, "UDP viewer receives", func() bool { return udpPackets() > 50 })

	// The TCP viewer reaches the server through the proxy only.
	proxy := startFreezingProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort)))
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	var tcpPackets atomic.Int64
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			tcpPackets.Add(1)
		}
	})
	offer, _ := pc.CreateOffer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	_ = pc.SetLocalDescription(offer)
	<-gathered
	resp := doHTTP(t, "POST", n.base+"/whep/stuck", n.token("stuck", "tcp", false, true), "application/sdp", pc.LocalDescription().SDP, nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, body)
	}
	answer := tcpCandidatePort.ReplaceAllString(string(body), "${1}"+strconv.Itoa(proxy.port())+"${3}")
	if answer == string(body) {
		t.Fatal("the answer has no passive TCP candidate")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "TCP viewer receives", func() bool { return tcpPackets.Load() > 50 })

	rate := func() float64 { // the UDP viewer's packets per second over 2 s
		got0 := udpPackets()
		time.Sleep(2 * time.Second)
		return float64(udpPackets()-got0) / 2
	}
	before := rate()

	// The TCP viewer's socket is no longer read.
	proxy.frozen.Store(true)
	// Wait until the TCP viewer has been offered more than every buffer on its
	// way holds: Pion's 512 KiB per connection, the kernel's send buffer (at
	// most 4 MiB, net.ipv4.tcp_wmem) and the proxy's 64 KiB window. Half of
	// what is forwarded goes to each viewer.
	fwd0 := n.engine.Stats().BytesForwarded
	testutil.Eventually(t, "the stuck viewer's buffers are full", func() bool {
		return n.engine.Stats().BytesForwarded-fwd0 > 2*(5<<20)
	})
	after := rate()
	if after < 0.9*before {
		t.Fatalf("UDP viewer received %.0f packets/s with the TCP viewer stuck, %.0f before: the stuck viewer slowed it", after, before)
	}
	if pub.ticks.Load() == 0 {
		t.Fatal("publisher sent nothing")
	}
}
