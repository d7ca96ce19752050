package node

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// distantRelay stands between a publisher and the server: every datagram
// takes delay each way (in order), and every 50th video packet the
// publisher sends is lost the first time (its retransmissions pass).
type distantRelay struct {
	front  *net.UDPConn
	server *net.UDPAddr
	delay  time.Duration

	mu          sync.Mutex
	up          *net.UDPConn
	client      *net.UDPAddr
	seen        map[uint32]map[uint16]bool
	originals   int
	dropped     int
	retransmits int
	wg          sync.WaitGroup
}

type delayed struct {
	due  time.Time
	data []byte
}

func startDistantRelay(t *testing.T, server *net.UDPAddr, delay time.Duration) *distantRelay {
	t.Helper()
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &distantRelay{front: front, up: up, server: server, delay: delay, seen: map[uint32]map[uint16]bool{}}
	toServer, toClient := make(chan delayed, 1<<14), make(chan delayed, 1<<14)
	r.wg.Add(4)
	go r.read(front, toServer, true)
	go r.read(up, toClient, false)
	go r.write(toServer, func(b []byte) { _, _ = up.WriteToUDP(b, server) })
	go r.write(toClient, func(b []byte) {
		r.mu.Lock()
		c := r.client
		r.mu.Unlock()
		if c != nil {
			_, _ = front.WriteToUDP(b, c)
		}
	})
	t.Cleanup(func() {
		_ = front.Close()
		_ = up.Close()
		r.wg.Wait()
	})
	return r
}

func (r *distantRelay) port() int { return r.front.LocalAddr().(*net.UDPAddr).Port }

// read queues what conn receives for write, until conn is closed; then it
// closes out. From the publisher (fromClient), it drops every 50th new
// video packet.
func (r *distantRelay) read(conn *net.UDPConn, out chan<- delayed, fromClient bool) {
	defer r.wg.Done()
	defer close(out)
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if fromClient {
			r.mu.Lock()
			r.client = from
			drop := false
			if ssrc, ok := rtpSSRC(buf[:n]); ok && n > 500 { // video: audio packets are small
				seq := binary.BigEndian.Uint16(buf[2:4])
				s := r.seen[ssrc]
				if s == nil {
					s = map[uint16]bool{}
					r.seen[ssrc] = s
				}
				if s[seq] {
					r.retransmits++
				} else {
					s[seq] = true
					r.originals++
					if r.originals%50 == 0 {
						r.dropped++
						drop = true
					}
				}
			}
			r.mu.Unlock()
			if drop {
				continue
			}
		}
		select {
		case out <- delayed{due: time.Now().Add(r.delay), data: append([]byte(nil), buf[:n]...)}:
		default: // the queue is full: lost, like a full router buffer
		}
	}
}

func (r *distantRelay) write(in <-chan delayed, send func([]byte)) {
	defer r.wg.Done()
	for d := range in {
		time.Sleep(time.Until(d.due))
		send(d.data)
	}
}

// A broadcaster far away (150 ms each way) loses a video packet now and
// then on its way to the server: the server asks for it again (NACK) and
// the retransmission, which arrives some 300 ms and hundreds of packets
// after the original, is accepted and forwarded, so a viewer misses
// nothing.
func TestUpstreamLoss_DistantBroadcastersRetransmissionsReachViewers(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of media")
	}
	n := startNode(t, nil)

	// The broadcaster: Pion with its default interceptors (a NACK
	// responder), on 127.0.0.1 only, publishing over WHIP through the relay.
	pc := testutil.LoopbackPeer(t, testutil.PeerOptions{})
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "cam", "far")
	tr, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	go func() { // reading RTCP runs the NACK responder; it ends with pc
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Sender().Read(buf); err != nil {
				return
			}
		}
	}()
	var relay *distantRelay
	connectBehindRelay(t, n, pc, "/whip/far", n.token("far", "far", true, false), func(server *net.UDPAddr) int {
		relay = startDistantRelay(t, server, 150*time.Millisecond)
		return relay.port()
	})
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		// VP8 keyframes of ~8 KB (7 packets) at 50 fps: ~350 packets/s.
		frame := append([]byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, make([]byte, 8000)...)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = video.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond})
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	testutil.Eventually(t, "broadcast published", func() bool { r := n.rooms.Room("far"); return r != nil && len(r.Tracks()) == 1 })

	// The viewer is near (plain loopback) and has a browser's SRTP replay
	// window (1,024 packets), so what it misses is what the server missed.
	vme := &webrtc.MediaEngine{}
	if err := vme.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	vse := webrtc.SettingEngine{}
	vse.SetIncludeLoopbackCandidate(true)
	vse.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	vse.SetSRTPReplayProtectionWindow(1024)
	vpc, err := webrtc.NewAPI(webrtc.WithMediaEngine(vme), webrtc.WithSettingEngine(vse)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vpc.Close() })
	if _, err := vpc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	rec := &extSeqs{}
	vpc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
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
	wc := &whipClient{pc: vpc}
	if resp := wc.post(t, n.base+"/whep/far", n.token("far", "near-viewer", false, true)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, b)
	}
	testutil.Eventually(t, "the viewer receives", func() bool { mu.Lock(); defer mu.Unlock(); return len(rec.got) > 100 })

	time.Sleep(6 * time.Second)
	mu.Lock()
	upTo := rec.max
	mu.Unlock()
	time.Sleep(1500 * time.Millisecond) // repairs take a round trip and more

	mu.Lock()
	missing, span := rec.missing(upTo)
	mu.Unlock()
	relay.mu.Lock()
	dropped, retransmits := relay.dropped, relay.retransmits
	relay.mu.Unlock()
	st := n.engine.Stats()
	t.Logf("the relay dropped %d video packets on their way to the server and passed %d retransmissions; the viewer misses %d of %d; server: %d NACKs from viewers, %d PLIs sent",
		dropped, retransmits, missing, span, st.NACKsReceived, st.PLIsSent)
	if dropped < 10 || retransmits == 0 {
		t.Fatalf("the relay dropped %d packets and saw %d retransmissions: the test did not test", dropped, retransmits)
	}
	if missing != 0 {
		t.Errorf("the viewer misses %d of %d video packets: the broadcaster's retransmissions did not get through", missing, span)
	}
}
