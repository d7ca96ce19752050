package loadtest

import (
	"fmt"
	"net"
	"net/url"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Codecs the clients negotiate. Payload types are the browser-usual ones; the
// server's offer decides on the subscriber connection anyway.
var (
	vp8Codec = webrtc.RTPCodecCapability{
		MimeType:  webrtc.MimeTypeVP8,
		ClockRate: 90000,
		RTCPFeedback: []webrtc.RTCPFeedback{
			{Type: "goog-remb"},
			{Type: "ccm", Parameter: "fir"},
			{Type: "nack"},
			{Type: "nack", Parameter: "pli"},
		},
	}
	h264Codec = webrtc.RTPCodecCapability{
		MimeType:     webrtc.MimeTypeH264,
		ClockRate:    90000,
		SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
		RTCPFeedback: vp8Codec.RTCPFeedback,
	}
	opusCodec = webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeOpus,
		ClockRate:   48000,
		Channels:    2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	}
)

// newAPI builds the Pion API of one client object: VP8 and Opus, the default
// interceptors (NACK generator and responder, RTCP reports, TWCC), loopback
// candidates included (the server may listen on lo only, as in tests run in
// an empty network namespace) and mDNS off (no multicast needed or wanted).
// simulcast adds the MID and RID header extensions a simulcast sender
// needs.
func newAPI(simulcast bool, codec string) (*webrtc.API, error) {
	m, err := newMediaEngine(codec)
	if err != nil {
		return nil, err
	}
	if simulcast {
		for _, uri := range []string{sdp.SDESMidURI, sdp.SDESRTPStreamIDURI} {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
				return nil, fmt.Errorf("loadtest: simulcast header extensions: %w", err)
			}
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("loadtest: interceptors: %w", err)
	}
	return buildAPI(m, ir, false), nil
}

// newMediaEngine registers Opus and the video codec ("vp8", "h264", or ""
// for both, VP8 first: a viewer takes either).
func newMediaEngine(codec string) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	if codec != CodecH264 {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: vp8Codec, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("loadtest: register VP8: %w", err)
		}
	}
	if codec != CodecVP8 {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: h264Codec, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("loadtest: register H.264: %w", err)
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opusCodec, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("loadtest: register Opus: %w", err)
	}
	return m, nil
}

// viewerAPI is the one Pion API of every viewer in the process (an API is
// safe to share: each peer connection copies the media engine and builds
// its own interceptor chain). A viewer only receives, so its chain holds
// what a receiving browser sends back and nothing else: the NACK generator,
// receiver reports and transport-cc feedback. Left out: the NACK responder
// and sender reports (it sends no media) and the stats interceptor (a
// per-packet cost whose figures the viewer measures itself).
//
// loopbackOnly makes ICE gather on loopback addresses only: a viewer of a
// server on this machine's loopback (see loopbackTarget) needs no candidate
// on other addresses, and each costs a socket, a receive goroutine and
// connectivity checks. There is one API for each setting.
func viewerAPI(loopbackOnly bool) (*webrtc.API, error) {
	viewerAPIs.mu.Lock()
	defer viewerAPIs.mu.Unlock()
	if api := viewerAPIs.api[loopbackOnly]; api != nil {
		return api, nil
	}
	api, err := newViewerAPI(loopbackOnly)
	if err != nil {
		return nil, err
	}
	viewerAPIs.api[loopbackOnly] = api
	return api, nil
}

var viewerAPIs = struct {
	mu  sync.Mutex
	api map[bool]*webrtc.API // by loopbackOnly
}{api: map[bool]*webrtc.API{}}

// loopbackTarget reports whether every address the host of rawURL resolves
// to is a loopback address (127.0.0.1, ::1, localhost).
func loopbackTarget(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		return false
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

func newViewerAPI(loopbackOnly bool, setup ...func(*webrtc.SettingEngine)) (*webrtc.API, error) {
	m, err := newMediaEngine("")
	if err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, fmt.Errorf("loadtest: nack generator: %w", err)
	}
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	ir.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, fmt.Errorf("loadtest: receiver reports: %w", err)
	}
	ir.Add(rr)
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, fmt.Errorf("loadtest: header extensions: %w", err)
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return nil, fmt.Errorf("loadtest: transport-cc extension: %w", err)
		}
	}
	tw, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("loadtest: transport-cc feedback: %w", err)
	}
	ir.Add(tw)
	return buildAPI(m, ir, loopbackOnly, setup...), nil
}

func buildAPI(m *webrtc.MediaEngine, ir *interceptor.Registry, loopbackOnly bool, setup ...func(*webrtc.SettingEngine)) *webrtc.API {
	se := webrtc.SettingEngine{}
	for _, f := range setup {
		f(&se)
	}
	if loopbackOnly {
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A browser's SRTP replay window (libwebrtc keeps 1,024 packets): with
	// Pion's 64, a retransmission that comes a round trip late at a few
	// Mbit/s is rejected, and the load test would report loss a browser
	// would not see.
	se.SetSRTPReplayProtectionWindow(1024)
	return webrtc.NewAPI(
		webrtc.WithMediaEngine(m),
		webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se),
	)
}

// remoteCandidates adds the server's trickled candidates to a peer
// connection, holding those that arrive before the remote description.
type remoteCandidates struct {
	pc      *webrtc.PeerConnection
	mu      sync.Mutex
	ready   bool
	pending []webrtc.ICECandidateInit
}

// add adds c now, or queues it until flush when the remote description is not
// set yet. A nil candidate (end of candidates) is ignored.
func (r *remoteCandidates) add(c *webrtc.ICECandidateInit) error {
	if c == nil || c.Candidate == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ready {
		r.pending = append(r.pending, *c)
		return nil
	}
	return r.pc.AddICECandidate(*c)
}

// flush marks the remote description as set and adds the queued candidates.
// Call it after each successful SetRemoteDescription.
func (r *remoteCandidates) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = true
	var first error
	for _, c := range r.pending {
		if err := r.pc.AddICECandidate(c); err != nil && first == nil {
			first = fmt.Errorf("loadtest: add remote candidate: %w", err)
		}
	}
	r.pending = nil
	return first
}

// localCandidates sends the client's own candidates as trickle messages,
// holding them until open: the server must have our SDP before it can use
// them (after the publish request, or after our answer).
type localCandidates struct {
	conn   *Conn
	target string
	mu     sync.Mutex
	open   bool
	held   []*webrtc.ICECandidateInit
}

// onCandidate is the PeerConnection's OnICECandidate handler; nil means
// gathering is complete and is sent as a null candidate.
func (l *localCandidates) onCandidate(c *webrtc.ICECandidate) {
	var init *webrtc.ICECandidateInit
	if c != nil {
		ci := c.ToJSON()
		init = &ci
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.open {
		l.held = append(l.held, init)
		return
	}
	l.send(init)
}

// release sends the held candidates and every later one at once.
func (l *localCandidates) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open {
		return
	}
	l.open = true
	for _, c := range l.held {
		l.send(c)
	}
	l.held = nil
}

func (l *localCandidates) send(c *webrtc.ICECandidateInit) {
	// Errors mean the socket is gone; the session fails in other ways.
	_, _ = l.conn.Send(TypeTrickle, Trickle{Target: l.target, Candidate: c})
}
