package sfu

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// BenchmarkPionIngest is the whole packet path of a node with a real
// publisher: a Pion peer in another process (the test binary re-executed)
// sends VP8 over loopback; the engine receives it through Pion (ICE, the
// DTLS/SRTP demultiplexer, SRTP decryption, the track's reader), forwards
// it and writes it on the lean path to N viewers (a sink process reads
// them). One op is one packet from the publisher; cpu-ns/pkt is this
// process's CPU per packet written to a viewer; allocs/op counts this
// process's allocations per incoming packet, Pion's receive path included.
func BenchmarkPionIngest(b *testing.B) {
	for _, c := range []struct{ n, gapUS int }{{1, 100}, {50, 1000}} {
		n := c.n
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			e := newLoopbackEngine(b)
			pub := startPionPublisher(b)
			arrived := make(chan *Track, 1)
			p, err := e.NewPublisher("p_1", PublisherEvents{OnTrack: func(t *Track) { arrived <- t }})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			answer, err := p.HandleOffer(ctx, pub.offer, nil, true)
			if err != nil {
				b.Fatal(err)
			}
			pub.send("answer " + base64.StdEncoding.EncodeToString([]byte(answer)))
			pub.send("send 1 0") // the keyframe that starts every viewer
			var t *Track
			select {
			case t = <-arrived:
			case <-ctx.Done():
				b.Fatal("no track from the publisher")
			}
			addSinkViewers(b, t, n)
			pub.send("send 1 0") // they start on the cached keyframe
			waitForwarded(b, e, uint64(2*n), n)

			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			cpu0, fwd0 := cpuTime(), e.Stats().PacketsForwarded
			b.ResetTimer()
			pub.send(fmt.Sprintf("send %d %d", b.N, c.gapUS))
			waitForwarded(b, e, fwd0+uint64(b.N*n), n)
			b.StopTimer()
			cpu := cpuTime() - cpu0
			runtime.ReadMemStats(&m1)
			fwd := e.Stats().PacketsForwarded - fwd0
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(fwd), "cpu-ns/pkt")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "allocs/pkt")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// addSinkViewers binds n lean down-tracks of t that write to a sink process.
func addSinkViewers(b *testing.B, t *Track, n int) {
	to := startSink(b)
	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = send.Close() })
	_ = send.SetWriteBuffer(8 << 20)
	path := &leanPath{sock: newMediaSocket(send), addr: net.UDPAddrFromAddrPort(to), ap: to}
	for i := range n {
		key, salt := make([]byte, 16), make([]byte, 12)
		d := newDownTrack(t)
		d.link = &leanLink{}
		d.link.keys.Store(&leanKeys{profile: srtp.ProtectionProfileAeadAes128Gcm, key: key, salt: salt})
		d.link.path.Store(path)
		d.bind.Store(&binding{ssrc: uint32(1000 + i), pt: 96, writer: &recordingWriter{}})
		t.addDown(d)
		b.Cleanup(func() { t.removeDown(d) })
	}
}

// waitForwarded waits until the engine forwarded total packets; a packet
// lost on loopback (n viewers each) would stall it, so it gives up after a
// quiet second.
func waitForwarded(b *testing.B, e *Engine, total uint64, n int) {
	last, since := e.Stats().PacketsForwarded, time.Now()
	for {
		f := e.Stats().PacketsForwarded
		if f >= total {
			return
		}
		if f != last {
			last, since = f, time.Now()
		} else if time.Since(since) > time.Second {
			b.Fatalf("forwarded %d of %d packets (%d viewers): packets lost on loopback", f, total, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type pionPublisher struct {
	offer string
	in    *bufio.Writer
	stdin interface{ Close() error }
}

func (p *pionPublisher) send(line string) {
	_, _ = p.in.WriteString(line + "\n")
	_ = p.in.Flush()
}

// startPionPublisher runs the publisher process and reads its offer.
func startPionPublisher(b *testing.B) *pionPublisher {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^$")
	cmd.Env = append(os.Environ(), "HALO_PION_PUBLISHER=1")
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &pionPublisher{in: bufio.NewWriter(stdin), stdin: stdin}
	b.Cleanup(func() {
		p.send("quit")
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	sdp, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(line), "offer "))
	if err != nil {
		b.Fatalf("publisher: %q", line)
	}
	p.offer = string(sdp)
	return p
}

// runPionPublisher is the publisher process: a plain Pion peer (no
// interceptors) sending a VP8 track. It offers on stdout and obeys stdin:
// "answer <base64 SDP>", "send <n> <gap in us>" (n packets, the first one
// of all a keyframe), "quit".
func runPionPublisher() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "publisher:", err)
		os.Exit(1)
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		fail(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		fail(err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", "p")
	if err != nil {
		fail(err)
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		fail(err)
	}
	go func() { // drain the server's RTCP
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		fail(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		fail(err)
	}
	<-gathered
	fmt.Println("offer " + base64.StdEncoding.EncodeToString([]byte(pc.LocalDescription().SDP)))
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	var seq uint16
	payload := make([]byte, 1188)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "answer":
			sdp, err := base64.StdEncoding.DecodeString(f[1])
			if err != nil {
				fail(err)
			}
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(sdp)}); err != nil {
				fail(err)
			}
			for pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
				time.Sleep(5 * time.Millisecond)
			}
		case "send":
			n, _ := strconv.Atoi(f[1])
			gap, _ := strconv.Atoi(f[2])
			start := time.Now()
			for i := range n {
				seq++
				payload[0] = 0x10
				payload[1] = 0x01
				if seq == 1 {
					payload[1] = 0
				}
				binary.BigEndian.PutUint16(payload[2:], seq)
				h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq/8) * 3000, Marker: seq%8 == 0}
				if err := track.WriteRTP(&rtp.Packet{Header: h, Payload: payload}); err != nil {
					fail(err)
				}
				if d := time.Until(start.Add(time.Duration(i+1) * time.Duration(gap) * time.Microsecond)); d > 0 {
					time.Sleep(d)
				}
			}
		case "quit":
			_ = pc.Close()
			os.Exit(0)
		}
	}
	_ = pc.Close()
}
