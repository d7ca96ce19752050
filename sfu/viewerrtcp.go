package sfu

import (
	"io"
	"slices"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/packetio"
	"github.com/pion/webrtc/v4"
)

// A viewer's feedback without goroutines of its own. Pion hands each
// incoming RTCP packet, decrypted and split, to a read buffer per SSRC it
// is about, and a reader per RTP sender would drain those buffers: two
// goroutines and two buffers per viewer that wake for every NACK. A viewer
// connection on the lean path instead gets read buffers (SettingEngine's
// BufferFactory) that handle each packet as Pion's SRTCP session writes
// it, on that session's goroutine: its down-tracks' NACKs, picture losses
// and receiver reports, each handled by the down-track it is about.

// viewerAPI builds the API of one lean viewer connection: no interceptors,
// and RTCP handled as it arrives by s.
//
// With estimate the connection negotiates transport-cc: every packet
// carries a transport-wide sequence number and the viewer's feedback
// reaches its estimator (bwe.go).
//
// ufrag and pwd, when given, are the ICE credentials the connection
// answers with (a parked connection coming back, park.go).
func (e *Engine) viewerAPI(s *Subscriber, estimate bool, ufrag, pwd string) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return nil, err
	}
	if estimate {
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, k)
			if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, k); err != nil {
				return nil, err
			}
		}
	}
	se := e.subSE
	se.DisableMediaEngineCopy(true) // the media engine is this connection's own
	if ufrag != "" {
		se.SetICECredentials(ufrag, pwd)
	}
	se.BufferFactory = func(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
		if kind == packetio.RTCPBufferPacket {
			return &rtcpSink{s: s, ssrc: ssrc, closed: make(chan struct{})}
		}
		// A viewer sends no media: a few packets are kept for whoever
		// reads them (Pion's default buffer holds 1 MB).
		return &smallBuffer{pkts: make(chan []byte, 8), closed: make(chan struct{})}
	}
	// An empty registry: without one Pion adds its default interceptors.
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(se)), nil
}

// rtcpSink is the read buffer of one SSRC's RTCP: writes are handled at
// once; nothing reads it.
type rtcpSink struct {
	s      *Subscriber
	ssrc   uint32
	once   sync.Once
	closed chan struct{}
}

func (b *rtcpSink) Write(p []byte) (int, error) {
	pkts, err := rtcp.Unmarshal(p)
	if err != nil {
		return len(p), nil
	}
	// Pion writes a compound packet to the buffer of every SSRC it names.
	b.s.handleRTCPFor(b.ssrc, pkts, time.Now())
	if !b.s.rtcpSeen.Load() {
		b.s.rtcpSeen.Store(true)
	}
	return len(p), nil
}

// handleRTCP handles a compound packet of the viewer's feedback (a
// handed-over connection's, handoff.go) as Pion's SRTCP session does: once
// for each SSRC it names.
func (s *Subscriber) handleRTCP(pkts []rtcp.Packet, now time.Time) {
	var buf [8]uint32
	seen := buf[:0]
	for _, pkt := range pkts {
		for _, ssrc := range pkt.DestinationSSRC() {
			if !slices.Contains(seen, ssrc) {
				seen = append(seen, ssrc)
				s.handleRTCPFor(ssrc, pkts, now)
			}
		}
	}
}

// handleRTCPFor handles the parts of a compound packet about ssrc: the
// down-track sending it takes its NACKs, picture losses and reports, the
// estimator the transport-wide feedback naming it (so a compound is fed
// to the estimator once, whatever else it names).
func (s *Subscriber) handleRTCPFor(ssrc uint32, pkts []rtcp.Packet, now time.Time) {
	if d := s.bySSRC(ssrc); d != nil {
		dispatchViewerRTCP(d, ssrc, pkts, now)
	}
	if bw := s.bwe; bw != nil {
		for _, pkt := range pkts {
			if cc, ok := pkt.(*rtcp.TransportLayerCC); ok && cc.MediaSSRC == ssrc {
				_ = bw.est.WriteRTCP([]rtcp.Packet{pkt}, nil)
			}
		}
	}
}

func (b *rtcpSink) Read([]byte) (int, error) {
	<-b.closed
	return 0, io.EOF
}

func (b *rtcpSink) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// dispatchViewerRTCP hands a viewer's feedback about ssrc, the SSRC of
// down-track d, to d: NACKs are answered from the shared cache within the
// viewer's budget, picture loss from the cached picture (or becomes a
// merged, rate-limited keyframe request to the publisher), receiver
// reports give the viewer's RTT and quality. Parts about other SSRCs are
// left to their own down-tracks.
func dispatchViewerRTCP(d *DownTrack, ssrc uint32, pkts []rtcp.Packet, now time.Time) {
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerNack:
			if p.MediaSSRC == ssrc {
				d.handleNACK(p)
			}
		case *rtcp.PictureLossIndication:
			if p.MediaSSRC == ssrc {
				d.handlePLI()
			}
		case *rtcp.FullIntraRequest:
			for _, f := range p.FIR {
				if f.SSRC == ssrc {
					d.handlePLI()
					break
				}
			}
		case *rtcp.ReceiverReport:
			for _, r := range p.Reports {
				if r.SSRC == ssrc {
					d.handleReceiverReport(r, now)
				}
			}
		}
	}
}

// bySSRC returns the connection's down-track sending ssrc.
func (s *Subscriber) bySSRC(ssrc uint32) *DownTrack {
	s.ssrcMu.RLock()
	defer s.ssrcMu.RUnlock()
	return s.ssrcs[ssrc]
}

func (s *Subscriber) bindSSRC(ssrc uint32, d *DownTrack) {
	s.ssrcMu.Lock()
	defer s.ssrcMu.Unlock()
	if s.ssrcs == nil {
		s.ssrcs = map[uint32]*DownTrack{}
	}
	s.ssrcs[ssrc] = d
}

func (s *Subscriber) unbindSSRC(ssrc uint32, d *DownTrack) {
	s.ssrcMu.Lock()
	defer s.ssrcMu.Unlock()
	if s.ssrcs[ssrc] == d {
		delete(s.ssrcs, ssrc)
	}
}

// smallBuffer is a read buffer of a few packets; beyond them, writes are
// dropped.
type smallBuffer struct {
	pkts   chan []byte
	once   sync.Once
	closed chan struct{}
}

func (b *smallBuffer) Write(p []byte) (int, error) {
	select {
	case b.pkts <- append([]byte(nil), p...):
	default:
	}
	return len(p), nil
}

func (b *smallBuffer) Read(p []byte) (int, error) {
	select {
	case pkt := <-b.pkts:
		if len(pkt) > len(p) {
			return 0, io.ErrShortBuffer
		}
		return copy(p, pkt), nil
	case <-b.closed:
		return 0, io.EOF
	}
}

func (b *smallBuffer) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// Pion opens a sender's RTCP read stream when the sender first reads
// RTCP or writes RTP through Pion; a lean viewer does neither, and RTCP
// for a stream that is not open is taken for an undeclared one (handled
// all the same, but logged as unexpected). So the connection opens them:
// every negotiated sender's once the connection is up, before packets take
// the lean path, and a sender negotiated later as soon as its negotiation
// is applied.

// onConnected runs when the connection is up: SRTP has started.
func (s *Subscriber) onConnected() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.connected = true
	pc := s.pc
	s.openRTCPLocked()
	s.mu.Unlock()
	if s.link != nil && pc != nil {
		s.link.start(pc.SCTP().Transport(), s.e)
	}
	s.connectedAt.Store(monoNow())
}

// openRTCPLocked opens the RTCP read streams of the negotiated senders
// that have none yet. s.mu is held; it does not wait once the connection
// is up (a sender not yet negotiated answers at once that it is not).
func (s *Subscriber) openRTCPLocked() {
	if !s.connected {
		return
	}
	for _, sub := range s.subs {
		if !sub.rtcpOpen && sub.sender != nil && sub.sender.SetReadDeadline(time.Time{}) == nil {
			sub.rtcpOpen = true
		}
	}
}
