package node

import (
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
)

// lossyRelay forwards UDP datagrams between clients and a server on
// loopback, dropping a share of them at random in each direction (from a
// fixed seed). Each client address gets its own upstream socket, so the
// server sees one peer per client.
type lossyRelay struct {
	front  *net.UDPConn
	server *net.UDPAddr
	loss   float64

	mu       sync.Mutex
	up       map[string]*net.UDPConn
	upRand   *rand.Rand // client -> server decisions (front reader only)
	downRand *rand.Rand // server -> client decisions
	rtp      map[uint32]*relayCount
	toServer relayCount
	wg       sync.WaitGroup
}

type relayCount struct{ passed, dropped int }

func startLossyRelay(t *testing.T, server *net.UDPAddr, loss float64) *lossyRelay {
	t.Helper()
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &lossyRelay{
		front: front, server: server, loss: loss,
		up:     map[string]*net.UDPConn{},
		upRand: rand.New(rand.NewPCG(1, 2)), downRand: rand.New(rand.NewPCG(3, 4)),
		rtp: map[uint32]*relayCount{},
	}
	r.wg.Add(1)
	go r.fromClients()
	t.Cleanup(r.close)
	return r
}

func (r *lossyRelay) port() int { return r.front.LocalAddr().(*net.UDPAddr).Port }

func (r *lossyRelay) fromClients() {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, client, err := r.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		up, ok := r.up[client.String()]
		if !ok {
			up, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				r.mu.Unlock()
				continue
			}
			r.up[client.String()] = up
			r.wg.Add(1)
			go r.fromServer(up, client)
		}
		drop := r.upRand.Float64() < r.loss
		if drop {
			r.toServer.dropped++
		} else {
			r.toServer.passed++
		}
		r.mu.Unlock()
		if !drop {
			_, _ = up.WriteToUDP(buf[:n], r.server)
		}
	}
}

func (r *lossyRelay) fromServer(up *net.UDPConn, client *net.UDPAddr) {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := up.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		drop := r.downRand.Float64() < r.loss
		if ssrc, ok := rtpSSRC(buf[:n]); ok {
			c := r.rtp[ssrc]
			if c == nil {
				c = &relayCount{}
				r.rtp[ssrc] = c
			}
			if drop {
				c.dropped++
			} else {
				c.passed++
			}
		}
		r.mu.Unlock()
		if !drop {
			_, _ = r.front.WriteToUDP(buf[:n], client)
		}
	}
}

// rtpSSRC returns the SSRC of an (S)RTP packet, whose header is not
// encrypted; RTCP, STUN and DTLS report false (RFC 7983, RFC 5761).
func rtpSSRC(b []byte) (uint32, bool) {
	if len(b) < 12 || b[0] < 128 || b[0] > 191 {
		return 0, false
	}
	if pt := b[1] & 0x7f; pt >= 64 && pt <= 95 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[8:12]), true
}

// toViewer returns what the relay passed and dropped of the RTP stream ssrc.
func (r *lossyRelay) toViewer(ssrc uint32) relayCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.rtp[ssrc]; c != nil {
		return *c
	}
	return relayCount{}
}

func (r *lossyRelay) close() {
	_ = r.front.Close()
	r.mu.Lock()
	for _, c := range r.up {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// extSeqs records a stream's sequence numbers as they arrive, extended
// beyond 16 bits.
type extSeqs struct {
	ssrc uint32
	got  map[int64]bool
	min  int64
	max  int64
}

func (e *extSeqs) add(seq uint16) {
	if e.got == nil {
		e.got = map[int64]bool{}
		e.min, e.max = int64(seq), int64(seq)
	}
	x := e.max + int64(int16(seq-uint16(e.max)))
	e.got[x] = true
	e.min, e.max = min(e.min, x), max(e.max, x)
}

// missing counts the sequence numbers from the first received to upTo that
// never arrived.
func (e *extSeqs) missing(upTo int64) (missing, span int) {
	for x := e.min; x <= upTo; x++ {
		if !e.got[x] {
			missing++
		}
	}
	return missing, int(upTo - e.min + 1)
}

var udpCandidatePort = regexp.MustCompile(`(a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 )(\d+)( typ host)`)

// TestLoss_NACKRepairsFivePercentLossEachWay: a viewer that reaches the
// server through a link losing 5 % of the datagrams in each direction (its
// NACKs and receiver reports too) still gets all but a trace of the video:
// the NACK generator of an ordinary WebRTC client asks again for what is
// missing and the server resends it from the track's cache.
func TestLoss_NACKRepairsFivePercentLossEachWay(t *testing.T) {
	if testing.Short() {
		t.Skip("ten seconds of media")
	}
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n.publisher(ctx, "lossy", loadtest.PublisherConfig{VideoBitrate: testBitrate})

	// An ordinary Pion viewer: default codecs and interceptors (a NACK
	// generator and receiver reports), on 127.0.0.1 only. Its SRTP replay
	// window is a browser's: libwebrtc keeps 1,024 packets so that
	// retransmissions on the media SSRC are accepted; Pion's default of 64
	// rejects a resend that arrives after 64 newer packets (a packet whose
	// first resend was lost too).
	pc := newViewerPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	recs := map[webrtc.RTPCodecType]*extSeqs{}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		rec := &extSeqs{ssrc: uint32(tr.SSRC())}
		mu.Lock()
		recs[tr.Kind()] = rec
		mu.Unlock()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			mu.Lock()
			rec.add(p.SequenceNumber)
			mu.Unlock()
		}
	})
	var relay *lossyRelay
	connectBehindRelay(t, n, pc, "/whep/lossy", n.token("lossy", "lossy-viewer", false, true), func(server *net.UDPAddr) int {
		relay = startLossyRelay(t, server, 0.05)
		return relay.port()
	})
	testutil.Eventually(t, "video through the lossy relay", func() bool {
		mu.Lock()
		defer mu.Unlock()
		v, a := recs[webrtc.RTPCodecTypeVideo], recs[webrtc.RTPCodecTypeAudio]
		return v != nil && a != nil && len(v.got) > 20 && len(a.got) > 20
	})

	time.Sleep(10 * time.Second)
	mu.Lock()
	upTo := map[webrtc.RTPCodecType]int64{}
	for k, r := range recs {
		upTo[k] = r.max
	}
	mu.Unlock()
	// What was lost just before now is still being repaired: give it time.
	time.Sleep(time.Second)

	mu.Lock()
	defer mu.Unlock()
	v := recs[webrtc.RTPCodecTypeVideo]
	vMissing, vSpan := v.missing(upTo[webrtc.RTPCodecTypeVideo])
	aMissing, aSpan := recs[webrtc.RTPCodecTypeAudio].missing(upTo[webrtc.RTPCodecTypeAudio])
	raw := relay.toViewer(v.ssrc)
	rawLoss := float64(raw.dropped) / float64(raw.passed+raw.dropped)
	relay.mu.Lock()
	up := relay.toServer
	relay.mu.Unlock()
	st := n.engine.Stats()
	t.Logf("video: %d of %d sequence numbers missing after repair (%.2f %%); the relay dropped %d of %d video packets toward the viewer (%.2f %%) and %d of %d datagrams toward the server",
		vMissing, vSpan, 100*float64(vMissing)/float64(vSpan), raw.dropped, raw.passed+raw.dropped, 100*rawLoss, up.dropped, up.passed+up.dropped)
	t.Logf("audio (Opus is not NACKed): %d of %d missing (%.2f %%)", aMissing, aSpan, 100*float64(aMissing)/float64(aSpan))
	t.Logf("server: NACKed %d, resent %d, ignored %d, dropped %d", st.NACKsReceived, st.NACKsAnswered, st.NACKsIgnored, st.NACKsDropped)

	if vSpan < 300 || raw.passed+raw.dropped < 300 {
		t.Fatalf("only %d video packets in 10 s", vSpan)
	}
	// The link really was lossy, both ways.
	if rawLoss < 0.02 || rawLoss > 0.09 || up.dropped == 0 {
		t.Fatalf("the relay dropped %.2f %% of the video toward the viewer and %d datagrams toward the server, want about 5 %% and some", 100*rawLoss, up.dropped)
	}
	if residual := float64(vMissing) / float64(vSpan); residual >= 0.005 {
		t.Errorf("video residual loss %.2f %% (%d of %d) after NACK repair, want < 0.5 %%", 100*residual, vMissing, vSpan)
	}
}

// connectBehindRelay offers pc's SDP to path (WHIP or WHEP) WITHOUT its ICE
// candidates, so the server can reach the client only through the relay that
// start builds toward the server's UDP port (it returns the relay's port):
// the answer's candidate is rewritten to the relay, and the server learns
// the relay's address from the client's connectivity checks.
func connectBehindRelay(t *testing.T, n *testNode, pc *webrtc.PeerConnection, path, token string, start func(server *net.UDPAddr) int) {
	t.Helper()
	testutil.LocalOffer(t, pc)
	var lines []string
	for _, l := range strings.SplitAfter(pc.LocalDescription().SDP, "\n") {
		if !strings.HasPrefix(l, "a=candidate:") {
			lines = append(lines, l)
		}
	}
	resp := doHTTP(t, "POST", n.base+path, token, "application/sdp", strings.Join(lines, ""), nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, body)
	}
	m := udpCandidatePort.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("the answer has no UDP host candidate on 127.0.0.1:\n%s", body)
	}
	serverPort, _ := strconv.Atoi(m[2])
	relayPort := start(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: serverPort})
	answer := udpCandidatePort.ReplaceAllString(string(body), "${1}"+strconv.Itoa(relayPort)+"${3}")
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
}

// newViewerPC is an ordinary Pion viewer: default codecs and interceptors
// (NACK generator, receiver reports, transport-cc feedback), on 127.0.0.1
// only, with a browser's SRTP replay window (1,024 packets), closed when t
// ends.
func newViewerPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	return testutil.LoopbackPeer(t, testutil.PeerOptions{ReplayWindow: 1024})
}
