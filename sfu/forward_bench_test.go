package sfu

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// srtpUDPWriter stands in for Pion's per-viewer write path: its own SRTP
// context (AES-128-GCM, as negotiated with browsers) and a send on the shared
// UDP socket, like the UDP mux. The receiving socket is never read, so the
// benchmark measures only the sending side.
type srtpUDPWriter struct {
	mu   sync.Mutex
	ctx  *srtp.Context
	conn *net.UDPConn
	to   netip.AddrPort
	buf  []byte
	out  []byte
}

func newSRTPUDPWriter(tb testing.TB, conn *net.UDPConn, to netip.AddrPort) *srtpUDPWriter {
	key, salt := make([]byte, 16), make([]byte, 12)
	_, _ = rand.Read(key)
	_, _ = rand.Read(salt)
	ctx, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		tb.Fatal(err)
	}
	return &srtpUDPWriter{ctx: ctx, conn: conn, to: to, buf: make([]byte, 1500), out: make([]byte, 1600)}
}

func (w *srtpUDPWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := h.MarshalTo(w.buf)
	if err != nil {
		return 0, err
	}
	n += copy(w.buf[n:], payload)
	out, err := w.ctx.EncryptRTP(w.out[:0], w.buf[:n], h)
	if err != nil {
		return 0, err
	}
	return w.conn.WriteToUDPAddrPort(out, w.to)
}

func (w *srtpUDPWriter) Write(b []byte) (int, error) { return 0, nil }

type fanoutRig struct {
	track   *Track
	writers []*srtpUDPWriter
	close   func()
}

// newFanoutRig builds a video track with n bound down-tracks, each writing
// through its own SRTP context to a UDP sink on loopback: one sendto per
// packet (a stand-in for Pion's write chain without its overhead), or with
// lean, the engine's own path (lean.go) with batched sends.
func newFanoutRig(b *testing.B, n int, lean bool) *fanoutRig { return newFanoutRigSinks(b, n, lean, 1) }

// newFanoutRigSinks spreads the viewers over sinks receiving sockets.
// sinks < 0 is one socket and no fan-out workers.
func newFanoutRigSinks(b *testing.B, n int, lean bool, sinks int) *fanoutRig {
	e := &Engine{log: slog.Default(), cacheSize: 2048, keyframeGap: time.Second, maxLag: int64(500 * time.Millisecond)}
	if w := runtime.GOMAXPROCS(0); w > 1 && sinks > 0 {
		e.fan = newFanout(w - 1)
	}
	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = send.SetWriteBuffer(8 << 20)
	tos := startSinks(b, max(sinks, 1))
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	t := newTrackFor(e, TrackInfo{ID: "t", StreamID: "p", Kind: webrtc.RTPCodecTypeVideo, MimeType: codec.MimeType}, codec, 1, nil)
	rig := &fanoutRig{track: t}
	sock := newMediaSocket(send)
	for i := range n {
		to := tos[i%len(tos)]
		path := &leanPath{sock: sock, addr: net.UDPAddrFromAddrPort(to), ap: to}
		w := newSRTPUDPWriter(b, send, to)
		rig.writers = append(rig.writers, w)
		d := newDownTrack(t)
		if lean {
			key, salt := make([]byte, 16), make([]byte, 12)
			_, _ = rand.Read(key)
			_, _ = rand.Read(salt)
			d.link = &leanLink{}
			d.link.keys.Store(&leanKeys{profile: srtp.ProtectionProfileAeadAes128Gcm, key: key, salt: salt})
			d.link.path.Store(path)
		}
		d.bind.Store(&binding{ssrc: uint32(1000 + i), pt: 96, writer: w})
		t.addDown(d)
	}
	rig.close = func() {
		if e.fan != nil {
			e.fan.close()
		}
		_ = send.Close()
	}
	return rig
}

// vp8Packet is a 1200-byte VP8 RTP packet; key marks a keyframe start.
func vp8Packet(seq uint16, ts uint32, key bool) []byte {
	h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 1}
	payload := make([]byte, 1188)
	payload[0] = 0x10 // S=1, PID=0
	if !key {
		payload[1] = 0x01 // P=1: inter frame
	}
	pkt, _ := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	return pkt
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkForward measures the SFU's packet path for a 1 -> N fan-out: the
// reader's cache write and keyframe check, the down-tracks' rewrite, SRTP
// encryption and the UDP send, spread over the fan-out workers. cpu-ns/pkt
// is process CPU time per packet forwarded to one viewer; compare it with
// BenchmarkFloor, the same SRTP + send done bare.
func BenchmarkForward(b *testing.B) {
	for _, c := range []struct {
		name  string
		n     int
		lean  bool
		sinks int
	}{
		{"sendto/viewers=1", 1, false, 1}, {"sendto/viewers=10", 10, false, 1}, {"sendto/viewers=200", 200, false, 1},
		{"lean/viewers=1", 1, true, 1}, {"lean/viewers=10", 10, true, 1}, {"lean/viewers=50", 50, true, 1},
		{"lean/viewers=200", 200, true, 1}, {"lean/viewers=1000", 1000, true, 1},
		// The same fan-out into one socket per viewer, each read by a
		// goroutine that sleeps between packets: the kernel now wakes a
		// reader for (nearly) every packet, and the sender pays for it.
		{"sendto/viewers=200/sockets=200", 200, false, 200}, {"lean/viewers=200/sockets=200", 200, true, 200},
		// One track's 1000 viewers written by its forwarder alone (no
		// fan-out workers), against lean/viewers=1000 split over both cores.
		{"lean/viewers=1000/serial", 1000, true, -1},
	} {
		n := c.n
		b.Run(c.name, func(b *testing.B) {
			rig := newFanoutRigSinks(b, n, c.lean, c.sinks)
			defer rig.close()
			t := rig.track
			pkts := make([][]byte, 64)
			for i := range pkts {
				pkts[i] = vp8Packet(uint16(i), uint32(i/8)*3000, i == 0)
			}
			var h rtp.Header
			// Start every down-track on the keyframe (a replay round),
			// then one live round so that every writer has its batch.
			t.ingest(pkts[0], &h)
			t.pump()
			binary.BigEndian.PutUint16(pkts[1][2:], 1)
			t.ingest(pkts[1], &h)
			t.pump()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, fwd0 := cpuTime(), t.engine.stats.packetsForwarded.Load()
			for i := range b.N {
				pkt := pkts[1+i%63]
				binary.BigEndian.PutUint16(pkt[2:], uint16(i+2))
				t.ingest(pkt, &h)
				t.pump()
			}
			b.StopTimer()
			fwd := t.engine.stats.packetsForwarded.Load() - fwd0
			if fwd != uint64(b.N*n) {
				b.Fatalf("forwarded %d packets, want %d", fwd, b.N*n)
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(fwd), "cpu-ns/pkt")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkFloor is the per-packet floor of any SFU on this machine: marshal,
// SRTP-encrypt (AES-128-GCM) and send one 1200-byte packet to one viewer (a
// reading process on loopback).
func BenchmarkFloor(b *testing.B) {
	send, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer send.Close()
	w := newSRTPUDPWriter(b, send, startSink(b))
	pkt := vp8Packet(1, 1, false)
	var h rtp.Header
	hl, _ := h.Unmarshal(pkt)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		h.SequenceNumber = uint16(i)
		if _, err := w.WriteRTP(&h, pkt[hl:]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/pkt")
}
