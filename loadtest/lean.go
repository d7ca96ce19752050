package loadtest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
	"golang.org/x/net/ipv4"
)

// A lean viewer receives media without Pion's PeerConnection read path:
// one UDP socket per viewer, read on ONE goroutine with recvmmsg (a burst
// of a frame's packets costs one system call), SRTP decrypted in place and
// measured on that goroutine. Pion's path costs three goroutine hand-offs
// per packet (ICE candidate reader, DTLS/SRTP mux, SRTP session, track
// reader) and one recvmsg each. What the server sees stays a real client:
// ICE connectivity checks and answers (pion/stun), a DTLS handshake
// (pion/dtls) whose keys drive the SRTP contexts (pion/srtp), receiver
// reports echoing the server's sender reports and NACKs (Pion's
// interceptors, fed inline), and transport-cc feedback every 100 ms
// (Pion's recorder).
type leanPeer struct {
	v           *Viewer
	sock        *net.UDPConn
	batch       *ipv4.PacketConn
	local       leanLocal
	tieBreaker  uint64
	controlling bool // we offered (WHEP): we nominate

	mu        sync.Mutex
	remote    *leanRemote
	payloads  map[uint8]leanPayload // replaced, never mutated, under mu
	tccID     uint8
	cands     []netip.AddrPort
	dtlsStart bool
	closed    bool
	pending   map[[stun.TransactionIDSize]byte]netip.AddrPort

	peer      atomic.Pointer[netip.AddrPort] // selected pair's remote address
	connected chan struct{}                  // closed once the peer is known
	dtlsIn    chan []byte
	dtlsConn  *dtls.Conn
	decrypt   atomic.Pointer[srtp.Context] // reader goroutine only
	early     [][]byte                     // SRTP that came before the keys; reader goroutine only
	encMu     sync.Mutex
	encrypt   *srtp.Context // RTCP out, under encMu

	chain    interceptor.Interceptor
	rtcpIn   interceptor.RTCPReader
	recMu    sync.Mutex
	recorder *twcc.Recorder
	streams  map[uint32]*leanStream // reader goroutine only
	hdr      rtp.Header             // the packet being read; reader goroutine only

	// dropEvery, set by a test before media flows, drops every n-th RTP
	// packet as it arrives (a lossy link), before decryption.
	dropEvery atomic.Int64
	rtpSeen   int64
	// link, when set before media flows (ViewerConfig.LinkKbps), drops the
	// RTP packets beyond its rate.
	link *linkBucket

	stop chan struct{}
	wg   sync.WaitGroup
}

// leanStream is one SSRC the server sends.
type leanStream struct {
	r     *trackReader
	rtpIn interceptor.RTPReader
	cur   int // length of the packet being read through rtpIn
	attrs interceptor.Attributes
	hdr   *rtp.Header // the header in attrs, updated for every packet
	tccID uint8
}

var leanCert = sync.OnceValues(func() (tls.Certificate, error) { return selfsign.GenerateSelfSigned() })

// leanInterceptors builds the feedback chain of one lean viewer: the NACK
// generator and receiver reports, as a browser sends.
func leanInterceptors() (interceptor.Interceptor, error) {
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	ir.Add(gen)
	ir.Add(rr)
	return ir.Build("")
}

// newLeanPeer opens the viewer's socket: on 127.0.0.1 for a loopback
// target (its address goes in the SDP), else on every address (the server
// learns ours from our connectivity checks).
func newLeanPeer(v *Viewer, loopback, controlling bool) (*leanPeer, error) {
	cert, err := leanCert()
	if err != nil {
		return nil, fmt.Errorf("loadtest: lean viewer certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("loadtest: lean viewer certificate: %w", err)
	}
	fp, err := fingerprint.Fingerprint(leaf, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loadtest: lean viewer fingerprint: %w", err)
	}
	laddr := &net.UDPAddr{}
	if loopback {
		laddr.IP = net.IPv4(127, 0, 0, 1)
	}
	sock, err := net.ListenUDP("udp4", laddr)
	if err != nil {
		return nil, fmt.Errorf("loadtest: lean viewer socket: %w", err)
	}
	_ = sock.SetReadBuffer(1 << 20)
	chain, err := leanInterceptors()
	if err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("loadtest: lean viewer interceptors: %w", err)
	}
	p := &leanPeer{
		v: v, sock: sock, batch: ipv4.NewPacketConn(sock), controlling: controlling,
		local:     leanLocal{ufrag: randomICE(16), pwd: randomICE(32), fingerprint: fp, setup: "active"},
		pending:   map[[stun.TransactionIDSize]byte]netip.AddrPort{},
		connected: make(chan struct{}),
		dtlsIn:    make(chan []byte, 64),
		chain:     chain,
		streams:   map[uint32]*leanStream{},
		stop:      make(chan struct{}),
		recorder:  twcc.NewRecorder(randomUint32()),
	}
	var tb [8]byte
	_, _ = rand.Read(tb[:])
	p.tieBreaker = binary.BigEndian.Uint64(tb[:])
	if controlling {
		p.local.setup = "actpass"
	}
	if loopback {
		port := sock.LocalAddr().(*net.UDPAddr).Port
		p.local.candidate = "1 1 udp 2130706431 127.0.0.1 " + strconv.Itoa(port) + " typ host"
	}
	p.rtcpIn = chain.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return len(b), a, nil
	}))
	chain.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		return p.writeRTCP(pkts)
	}))
	p.wg.Add(2)
	go p.readLoop()
	go p.tickLoop()
	return p, nil
}

func randomICE(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

func randomUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// answer applies an offer of the server and returns our answer; a
// renegotiation keeps the transport and takes the new sections.
func (p *leanPeer) answer(offer string) (string, error) {
	r, err := parseLeanRemote(offer)
	if err != nil {
		return "", err
	}
	p.setRemote(r)
	local := p.local
	if r.setup == "active" { // the server takes the DTLS client's part
		local.setup = "passive"
	}
	return leanAnswer(r, local), nil
}

// offer returns the offer of a WHEP viewer.
func (p *leanPeer) offer(audio bool) string { return leanOffer(audio, p.local) }

// setAnswer applies the WHEP server's answer.
func (p *leanPeer) setAnswer(answer string) error {
	r, err := parseLeanRemote(answer)
	if err != nil {
		return err
	}
	p.setRemote(r)
	return nil
}

func (p *leanPeer) setRemote(r *leanRemote) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.remote == nil || p.remote.ufrag != r.ufrag {
		p.remote = r
	}
	payloads := map[uint8]leanPayload{}
	for pt, pl := range p.payloads {
		payloads[pt] = pl
	}
	for pt, pl := range r.payloads {
		payloads[pt] = pl
	}
	p.payloads = payloads
	if r.tccID != 0 {
		p.tccID = r.tccID
	}
	for _, c := range r.candidates {
		p.addCandidateLocked(c)
	}
}

// addCandidate adds a trickled candidate of the server.
func (p *leanPeer) addCandidate(c string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addCandidateLocked(c)
}

func (p *leanPeer) addCandidateLocked(c string) {
	f := strings.Fields(strings.TrimPrefix(c, "candidate:"))
	if len(f) < 6 || !strings.EqualFold(f[2], "udp") {
		return
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(f[4], f[5]))
	if err != nil || !ap.Addr().Is4() {
		return
	}
	for _, have := range p.cands {
		if have == ap {
			return
		}
	}
	p.cands = append(p.cands, ap)
}

// tickLoop sends connectivity checks until a pair works, then transport-cc
// feedback every 100 ms and consent checks every 5 s.
func (p *leanPeer) tickLoop() {
	defer p.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		if p.peer.Load() == nil || (p.controlling && !p.nominated()) {
			p.check()
			continue
		}
		if n%100 == 0 && p.controlling {
			// Consent checks every 5 s on the pair in use, as a browser
			// sends them (RFC 7675).
			p.checkTo(*p.peer.Load())
		}
		if n%2 == 0 {
			p.recMu.Lock()
			pkts := p.recorder.BuildFeedbackPacket()
			p.recMu.Unlock()
			if len(pkts) > 0 {
				_, _ = p.writeRTCP(pkts)
			}
		}
	}
}

func (p *leanPeer) nominated() bool {
	select {
	case <-p.connected:
		return true
	default:
		return false
	}
}

// check sends a binding request to every candidate of the server.
func (p *leanPeer) check() {
	p.mu.Lock()
	cands := p.cands
	p.mu.Unlock()
	for _, c := range cands {
		p.checkTo(c)
	}
}

// checkTo sends a binding request to one candidate of the server.
func (p *leanPeer) checkTo(c netip.AddrPort) {
	p.mu.Lock()
	r := p.remote
	p.mu.Unlock()
	if r == nil {
		return
	}
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(r.ufrag + ":" + p.local.ufrag), ice.PriorityAttr(2130706431)}
	if p.controlling {
		setters = append(setters, ice.AttrControlling(p.tieBreaker), ice.UseCandidate())
	} else {
		setters = append(setters, ice.AttrControlled(p.tieBreaker))
	}
	setters = append(setters, stun.NewShortTermIntegrity(r.pwd), stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		return
	}
	p.mu.Lock()
	if len(p.pending) > 256 {
		clear(p.pending)
	}
	p.pending[m.TransactionID] = c
	p.mu.Unlock()
	_, _ = p.sock.WriteToUDPAddrPort(m.Raw, c)
}

// readLoop is the viewer's one receive goroutine.
func (p *leanPeer) readLoop() {
	defer p.wg.Done()
	const batch = 16
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, readBufferSize)}
	}
	for {
		n, err := p.batch.ReadBatch(msgs, 0)
		if err != nil {
			return
		}
		for i := range msgs[:n] {
			m := &msgs[i]
			from, ok := m.Addr.(*net.UDPAddr)
			if !ok || m.N == 0 {
				continue
			}
			p.handle(m.Buffers[0][:m.N], from.AddrPort())
		}
	}
}

func (p *leanPeer) handle(b []byte, from netip.AddrPort) {
	switch c := b[0]; {
	case c < 4:
		p.handleSTUN(b, from)
	case c >= 20 && c < 64:
		select {
		case p.dtlsIn <- bytes.Clone(b):
		default:
		}
	case c >= 128 && c < 192 && len(b) >= 2:
		ctx := p.decrypt.Load()
		if ctx == nil {
			// The handshake goroutine has not set the keys up yet: the
			// server may already send media right behind its last DTLS
			// flight (often a late joiner's cached keyframe). Keep it.
			if len(p.early) < maxEarlySRTP {
				p.early = append(p.early, bytes.Clone(b))
			}
			return
		}
		if early := p.early; len(early) > 0 {
			p.early = nil
			for _, e := range early {
				p.handleSRTP(ctx, e)
			}
		}
		p.handleSRTP(ctx, b)
	}
}

// maxEarlySRTP is how many packets that arrive before the keys are kept.
const maxEarlySRTP = 256

// handleSRTP handles one SRTP or SRTCP packet (reader goroutine).
func (p *leanPeer) handleSRTP(ctx *srtp.Context, b []byte) {
	if b[1] >= 192 && b[1] <= 223 {
		p.handleRTCP(ctx, b)
		return
	}
	if d := p.dropEvery.Load(); d > 0 {
		if p.rtpSeen++; p.rtpSeen%d == 0 {
			return
		}
	}
	if p.link != nil && !p.link.admit(len(b), time.Now()) {
		return
	}
	p.handleRTP(ctx, b)
}

func (p *leanPeer) handleSTUN(b []byte, from netip.AddrPort) {
	m := &stun.Message{Raw: b}
	if err := m.Decode(); err != nil {
		return
	}
	switch m.Type {
	case stun.BindingRequest:
		var user stun.Username
		if user.GetFrom(m) != nil || !strings.HasPrefix(user.String(), p.local.ufrag+":") {
			return
		}
		if stun.NewShortTermIntegrity(p.local.pwd).Check(m) != nil {
			return
		}
		resp, err := stun.Build(m, stun.BindingSuccess,
			&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
			stun.NewShortTermIntegrity(p.local.pwd), stun.Fingerprint)
		if err != nil {
			return
		}
		_, _ = p.sock.WriteToUDPAddrPort(resp.Raw, from)
		if !p.controlling && m.Contains(stun.AttrUseCandidate) {
			p.selectPeer(from)
		}
	case stun.BindingSuccess:
		p.mu.Lock()
		to, ok := p.pending[m.TransactionID]
		p.mu.Unlock()
		if ok && to == from {
			p.selectPeer(from)
		}
	}
}

// selectPeer takes the first working pair and starts DTLS on it.
func (p *leanPeer) selectPeer(addr netip.AddrPort) {
	if !p.peer.CompareAndSwap(nil, &addr) {
		return
	}
	close(p.connected)
	p.v.connectedAt.CompareAndSwap(0, int64(max(time.Since(p.v.epoch), 1)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.dtlsStart {
		return
	}
	p.dtlsStart = true
	p.wg.Add(1)
	go p.handshake(p.remote)
}

// handshake runs DTLS (client unless the server's answer took the active
// role) and sets up the SRTP contexts from its keys.
func (p *leanPeer) handshake(r *leanRemote) {
	defer p.wg.Done()
	cert, _ := leanCert()
	conn := &leanDTLSConn{p: p}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("no certificate")
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		fp, err := fingerprint.Fingerprint(c, crypto.SHA256)
		if err != nil || !strings.EqualFold(fp, r.fingerprint) {
			return errors.New("certificate does not match the SDP fingerprint")
		}
		return nil
	}
	opts := []dtls.Option{
		dtls.WithCertificates(cert),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(verify),
		dtls.WithFlightInterval(200 * time.Millisecond),
	}
	isClient := r.setup != "active"
	var dc *dtls.Conn
	var err error
	if isClient {
		co := make([]dtls.ClientOption, 0, len(opts))
		for _, o := range opts {
			co = append(co, o)
		}
		dc, err = dtls.ClientWithOptions(conn, conn.RemoteAddr(), co...)
	} else {
		so := make([]dtls.ServerOption, 0, len(opts)+1)
		for _, o := range opts {
			so = append(so, o)
		}
		so = append(so, dtls.WithClientAuth(dtls.RequireAnyClientCert))
		dc, err = dtls.ServerWithOptions(conn, conn.RemoteAddr(), so...)
	}
	if err != nil {
		return
	}
	p.mu.Lock()
	p.dtlsConn = dc
	closed := p.closed
	p.mu.Unlock()
	if closed {
		_ = dc.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	p.wg.Add(1)
	go func() { // Close ends a handshake in progress
		defer p.wg.Done()
		select {
		case <-p.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	err = dc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		return
	}
	state, ok := dc.ConnectionState()
	profile, okp := dc.SelectedSRTPProtectionProfile()
	if !ok || !okp {
		return
	}
	cfg := srtp.Config{}
	switch profile {
	case dtls.SRTP_AEAD_AES_128_GCM:
		cfg.Profile = srtp.ProtectionProfileAeadAes128Gcm
	default:
		cfg.Profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, isClient); err != nil {
		return
	}
	dec, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile,
		srtp.SRTPReplayProtection(1024), srtp.SRTCPReplayProtection(1024))
	if err != nil {
		return
	}
	enc, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cfg.Profile)
	if err != nil {
		return
	}
	p.encMu.Lock()
	p.encrypt = enc
	p.encMu.Unlock()
	p.decrypt.Store(dec)
}

// handleRTP decrypts b in place and measures it.
func (p *leanPeer) handleRTP(ctx *srtp.Context, b []byte) {
	h := &p.hdr
	out, err := ctx.DecryptRTP(b, b, h)
	if err != nil {
		return
	}
	s := p.streams[h.SSRC]
	if s == nil {
		if s = p.newStream(h); s == nil {
			return
		}
	}
	s.cur = len(out)
	// The interceptors find the packet's header in the stream's one
	// attributes map (stored there by the first packet, updated in place
	// after): no map and no header allocated per packet.
	if s.hdr == nil {
		if s.hdr, err = s.attrs.GetRTPHeader(out); err != nil {
			s.hdr = nil
			return
		}
	} else {
		ext := s.hdr.Extensions
		*s.hdr = *h
		s.hdr.Extensions = append(ext[:0], h.Extensions...)
	}
	_, _, _ = s.rtpIn.Read(out, s.attrs)
	if s.tccID != 0 {
		if ext := h.GetExtension(s.tccID); ext != nil {
			var tcc rtp.TransportCCExtension
			if tcc.Unmarshal(ext) == nil {
				p.recMu.Lock()
				p.recorder.Record(h.SSRC, tcc.TransportSequence, time.Now().UnixMicro())
				p.recMu.Unlock()
			}
		}
	}
	s.r.handle(out)
}

// newStream starts measuring a new SSRC of a negotiated payload type.
func (p *leanPeer) newStream(h *rtp.Header) *leanStream {
	p.mu.Lock()
	pl, ok := p.payloads[h.PayloadType]
	tccID := p.tccID
	p.mu.Unlock()
	if !ok || len(p.streams) > 64 {
		return nil
	}
	v := p.v
	v.mu.Lock()
	firstVideo := pl.video && v.videoOpened == 0
	if pl.video {
		v.videoOpened++
	}
	v.mu.Unlock()
	if firstVideo {
		v.videoSSRC.Store(h.SSRC)
	}
	s := &leanStream{
		r:     &trackReader{v: v, video: pl.video, firstVideo: firstVideo, h264: pl.h264, clockRate: pl.clock},
		attrs: interceptor.Attributes{},
		tccID: tccID,
	}
	info := &interceptor.StreamInfo{SSRC: h.SSRC, PayloadType: h.PayloadType, ClockRate: pl.clock}
	if pl.nack {
		info.RTCPFeedback = []interceptor.RTCPFeedback{{Type: "nack"}}
	}
	s.rtpIn = p.chain.BindRemoteStream(info, interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return s.cur, a, nil
	}))
	p.streams[h.SSRC] = s
	return s
}

// handleRTCP decrypts the server's RTCP and hands it to the receiver
// report interceptor (its sender reports make our reports carry LSR/DLSR).
func (p *leanPeer) handleRTCP(ctx *srtp.Context, b []byte) {
	out, err := ctx.DecryptRTCP(b, b, nil)
	if err != nil {
		return
	}
	_, _, _ = p.rtcpIn.Read(out, nil)
}

// writeRTCP encrypts and sends our feedback to the selected pair.
func (p *leanPeer) writeRTCP(pkts []rtcp.Packet) (int, error) {
	peer := p.peer.Load()
	if peer == nil {
		return 0, errors.New("loadtest: lean viewer not connected")
	}
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		return 0, err
	}
	p.encMu.Lock()
	enc := p.encrypt
	var out []byte
	if enc != nil {
		out, err = enc.EncryptRTCP(nil, raw, nil)
	}
	p.encMu.Unlock()
	if enc == nil {
		return 0, errors.New("loadtest: lean viewer: no SRTP yet")
	}
	if err != nil {
		return 0, err
	}
	return p.sock.WriteToUDPAddrPort(out, *peer)
}

// Close ends the transport and waits for its goroutines.
func (p *leanPeer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	dc := p.dtlsConn
	close(p.stop)
	p.mu.Unlock()
	if dc != nil {
		_ = dc.Close()
	}
	err := p.sock.Close()
	_ = p.chain.Close()
	p.wg.Wait()
	return err
}

// leanDTLSConn is the packet conn DTLS runs over: records the read loop
// routed to it in, writes to the selected pair out.
type leanDTLSConn struct {
	p        *leanPeer
	deadline atomic.Pointer[time.Time]
}

func (c *leanDTLSConn) ReadFrom(b []byte) (int, net.Addr, error) {
	var timer <-chan time.Time
	if d := c.deadline.Load(); d != nil && !d.IsZero() {
		t := time.NewTimer(time.Until(*d))
		defer t.Stop()
		timer = t.C
	}
	select {
	case rec := <-c.p.dtlsIn:
		return copy(b, rec), c.RemoteAddr(), nil
	case <-c.p.stop:
		return 0, nil, net.ErrClosed
	case <-timer:
		return 0, nil, timeoutError{}
	}
}

func (c *leanDTLSConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	peer := c.p.peer.Load()
	if peer == nil {
		return 0, errors.New("loadtest: lean viewer not connected")
	}
	return c.p.sock.WriteToUDPAddrPort(b, *peer)
}

func (c *leanDTLSConn) RemoteAddr() net.Addr {
	if peer := c.p.peer.Load(); peer != nil {
		return net.UDPAddrFromAddrPort(*peer)
	}
	return &net.UDPAddr{}
}

func (c *leanDTLSConn) Close() error                  { return nil }
func (c *leanDTLSConn) LocalAddr() net.Addr           { return c.p.sock.LocalAddr() }
func (c *leanDTLSConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }
func (c *leanDTLSConn) SetReadDeadline(t time.Time) error {
	c.deadline.Store(&t)
	return nil
}
func (c *leanDTLSConn) SetWriteDeadline(time.Time) error { return nil }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
