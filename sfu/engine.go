package sfu

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Engine is the process's media plane: the Pion APIs built once, the one UDP
// port every peer shares, the fan-out workers, and the counters.
type Engine struct {
	pubAPI     *webrtc.API
	bweMode    string      // sfu.bandwidth_estimation: which viewer connections are estimated (bwe.go)
	handoff    bool        // WHEP viewers' connections are taken over from Pion once up (handoff.go)
	relayInAPI *webrtc.API // the edge side of relays: not on the UDP mux (relay.go)
	udp        net.PacketConn
	udpMux     ice.UDPMux
	udpAddrs   []net.Addr
	socks      []*mediaSocket       // the UDP mux's sockets, which viewers' media is written to (lean.go)
	subSE      webrtc.SettingEngine // what each lean viewer connection's API is built from (viewerrtcp.go)
	tcp        net.Listener
	tcpMux     ice.TCPMux
	fan        *fanout
	log        *slog.Logger
	lf         logging.LoggerFactory
	logLimit   *logLimiter // Pion's records' rate limit (loglimit.go)

	// Bandwidth estimation toward viewers (bwe.go).
	bweMu sync.Mutex
	bwes  map[*viewerBWE]struct{}

	cacheSize   int
	keyframeGap time.Duration
	nackBudget  int   // bytes per second per viewer; 0 is unlimited
	maxLag      int64 // sfu.max_lag in nanoseconds: a forwarder further behind skips ahead (lag.go); 0 is no bound
	lag         lagHistogram
	fwdHook     func() // tests: called before each packet a forwarder takes; set before any track starts
	stats       counters
	q           quality // viewers' reports, ICE failures, freezes (quality.go)
	sr          senderReports
	handedOff   handedOffSet // viewer connections served without Pion (handoff.go)

	transports transportGauges // connections by transport (transport.go)

	// Parked WHEP connections (park.go): the certificate viewers are
	// answered with, and the goroutines bringing connections back.
	certMu    sync.Mutex
	cert      *webrtc.Certificate
	certAt    time.Time
	unparking sync.WaitGroup
}

type counters struct {
	packetsForwarded, bytesForwarded atomic.Uint64
	nacksReceived, nacksAnswered     atomic.Uint64
	nacksIgnored, nacksDropped       atomic.Uint64
	plisSent, replays                atomic.Uint64
	plisReceived, plisFromCache      atomic.Uint64
	plisIgnored, forwarderSkipped    atomic.Uint64
	forwarderSkips                   atomic.Uint64 // viewers skipped ahead by a forwarder past max_lag (lag.go)
	replaysGivenUp                   atomic.Uint64 // of those, joiners whose replay did not reach live within max_lag
	writeErrors                      atomic.Uint64
	relaysIn, relaysOut              atomic.Int64 // relay connections
	relayTracksIn, relayTracksOut    atomic.Int64
	relayPacketsIn, relayBytesIn     atomic.Uint64
	relayPacketsOut, relayBytesOut   atomic.Uint64
	tracks, downTracks               atomic.Int64
	publishers, subscribers          atomic.Int64
	layerSwitches                    atomic.Uint64
	directPackets, sendCalls         atomic.Uint64 // the lean path (lean.go)
	handedOver                       atomic.Uint64 // viewer connections taken over from Pion (handoff.go)
	unparked                         atomic.Uint64 // parked connections brought back by their first check (park.go)
	pathMoves, pathUnanswered        atomic.Uint64 // handed-over pairs moved; nominated addresses that never answered our check (pathcheck.go)
	pathRefused                      atomic.Uint64 // nominations not checked: too many checks in flight
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	PacketsForwarded uint64 // RTP packets written to viewers (replays and retransmissions included)
	BytesForwarded   uint64
	NACKsReceived    uint64 // sequence numbers viewers reported lost
	NACKsAnswered    uint64 // of those, resent from the shared cache
	NACKsIgnored     uint64 // not resent: duplicate, too early, gone from the cache
	NACKsDropped     uint64 // not resent: over the viewer's retransmission budget
	PLIsReceived     uint64 // picture losses viewers reported
	PLIsFromCache    uint64 // of those, answered by replaying the cached picture
	PLIsIgnored      uint64 // of those, ignored (the viewer had a replay within 500 ms)
	ForwarderSkipped uint64 // packets a forwarder that fell too far behind skipped
	ForwarderSkips   uint64 // viewers skipped ahead to the newest picture by a forwarder more than sfu.max_lag behind
	ReplaysGivenUp   uint64 // of ForwarderSkips, joiners whose replay of the cached picture had not reached live within sfu.max_lag
	WriteErrors      uint64 // writes to viewers that failed (a closed connection)
	PLIsSent         uint64 // keyframe requests sent to publishers
	Replays          uint64 // late joiners started from the cached keyframe
	Tracks           int64  // published tracks being read
	DownTracks       int64  // bound viewer copies of tracks
	Publishers       int64
	Subscribers      int64
	RelaysIn         int64  // relay connections pulling tracks from origins
	RelaysOut        int64  // relay connections feeding edge nodes
	RelayTracksIn    int64  // tracks received from origin nodes
	RelayTracksOut   int64  // track copies sent to edge nodes
	RelayPacketsIn   uint64 // RTP packets received over relays
	RelayBytesIn     uint64
	RelayPacketsOut  uint64 // RTP packets sent over relays (also in PacketsForwarded)
	RelayBytesOut    uint64
	LayerSwitches    uint64 // viewers moved to another simulcast layer at its keyframe
	DirectPackets    uint64 // of PacketsForwarded, written on the lean path (encrypted and sent by the engine, not Pion)
	SendCalls        uint64 // sendmmsg calls of the lean path's batches
	HandedOver       uint64 // viewer connections the engine took over from Pion (handoff.go)
	Parked           int64  // WHEP connections answered and parked until their first check (park.go)
	Unparked         uint64 // parked connections brought back by their first check
	PathMoves        uint64 // handed-over viewers' pairs moved to a nominated address that answered our check
	PathUnanswered   uint64 // nominated addresses that did not answer our check: no media went there
	PathRefused      uint64 // nominations not checked because the connection had too many checks in flight
}

// NewEngine builds the Pion APIs from cfg and opens the shared UDP (and
// optional TCP) port. cfg is taken as it is (config.Default holds the
// defaults) and checked with its own Validate.
func NewEngine(cfg config.SFUConfig, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	e := &Engine{log: log.With("component", "sfu"), cacheSize: cfg.PacketCache, keyframeGap: cfg.KeyframeInterval, nackBudget: cfg.NACKBudget, maxLag: int64(cfg.MaxLag)}

	lf := newPionLoggerFactory(e.log)
	e.lf, e.logLimit = lf, lf.lim
	e.bwes = map[*viewerBWE]struct{}{}
	// One view of the host's interfaces for every connection: Pion's ICE
	// agent would otherwise read them (netlink) for each new peer, a cost
	// and garbage per join that the shared UDP port makes pointless.
	rn, err := newRecordingNet(&e.handedOff)
	if err != nil {
		return nil, fmt.Errorf("sfu: network: %w", err)
	}
	if cfg.UDPAddress == "" {
		// One socket per local address on the same port: a socket on the
		// unspecified address cannot tell which address a peer reached.
		opts := []ice.UDPMuxFromPortOption{
			ice.UDPMuxFromPortWithLogger(lf.NewLogger("udpmux")),
			ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4, ice.NetworkTypeUDP6),
			ice.UDPMuxFromPortWithReadBufferSize(4 << 20),
			ice.UDPMuxFromPortWithWriteBufferSize(4 << 20),
		}
		if cfg.IncludeLoopback {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		opts = append(opts, ice.UDPMuxFromPortWithNet(rn))
		mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort, opts...)
		if err != nil {
			return nil, fmt.Errorf("sfu: listen on UDP port %d: %w", cfg.UDPPort, err)
		}
		e.udpMux = mux
		e.udpAddrs = mux.GetListenAddresses()
		e.socks = rn.socks
	} else {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(cfg.UDPAddress, strconv.Itoa(cfg.UDPPort)))
		if err != nil {
			return nil, fmt.Errorf("sfu: listen on UDP %s port %d: %w", cfg.UDPAddress, cfg.UDPPort, err)
		}
		muxed := udp
		if c, ok := udp.(*net.UDPConn); ok {
			// As the every-address path asks: the kernel default (~208 KiB)
			// drops a publisher's burst while the node is busy.
			_ = c.SetReadBuffer(4 << 20)
			_ = c.SetWriteBuffer(4 << 20)
			s := newMediaSocket(c)
			e.socks = []*mediaSocket{s}
			muxed = &muxConn{UDPConn: c, sock: s, set: &e.handedOff}
		}
		e.udp = udp
		e.udpMux = webrtc.NewICEUDPMux(lf.NewLogger("udpmux"), muxed)
		e.udpAddrs = []net.Addr{udp.LocalAddr()}
	}

	se := sessionSettings(lf, cfg.IncludeLoopback)
	se.SetNet(rn)
	se.SetICEUDPMux(e.udpMux)
	if cfg.TCPPort > 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(cfg.UDPAddress, strconv.Itoa(cfg.TCPPort)))
		if err != nil {
			_ = e.udpMux.Close()
			return nil, fmt.Errorf("sfu: listen on TCP port %d: %w", cfg.TCPPort, err)
		}
		e.tcp = l
		// Each ICE-TCP connection gets a bounded write buffer: a viewer that
		// stops reading fills it, and then writes to it fail instead of
		// blocking the track's forwarder (Pion's default is 4 MB each, a
		// memory cost an attacker could multiply).
		e.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:        &parkingListener{Listener: l, set: &e.handedOff.parked},
			Logger:          lf.NewLogger("tcpmux"),
			ReadBufferSize:  64,
			WriteBufferSize: tcpWriteBuffer,
		})
		se.SetICETCPMux(e.tcpMux)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	if len(cfg.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(cfg.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}

	e.subSE = se
	if e.pubAPI, err = newPublisherAPI(se, lf); err != nil {
		e.Close()
		return nil, err
	}
	// An edge's relay connections get UDP sockets of their own: between two
	// nodes that each have one muxed port, a second connection would share
	// the first's address pair, and the origin's mux, which tells
	// connections apart by the peer's address once ICE is up, would hand
	// its packets to the first. Each relay therefore has its own local port
	// (outgoing: the edge sends the first checks, so a stateful firewall in
	// front of it lets the answers in).
	rse := sessionSettings(lf, cfg.IncludeLoopback)
	rse.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if cfg.UDPAddress != "" {
		only := net.ParseIP(cfg.UDPAddress)
		rse.SetIPFilter(func(ip net.IP) bool { return only == nil || only.IsUnspecified() || ip.Equal(only) })
	}
	// The edge is the relay's DTLS server (the origin answers as the
	// client). Its HelloVerifyRequest (a cookie round trip, RFC 6347
	// section 4.2.1) guards a server against ClientHellos from spoofed
	// addresses; here DTLS only starts on the pair ICE checked with the
	// credentials the authenticated relay request exchanged, the peer is
	// another node of the cluster, and the connection takes one handshake.
	// Without it the relay is up one round trip sooner: 360 ms to an origin
	// 180 ms away (docs/benchmarks.md, section 9).
	rse.SetDTLSInsecureSkipHelloVerify(true)
	// A relay asked for while the path to its origin is down keeps checking
	// its pairs as a trunk does (relay_trunk_api.go): when the path comes
	// back, it connects at the next check.
	rse.SetICEMaxBindingRequests(trunkBindingRequests)
	if e.relayInAPI, err = newPublisherAPI(rse, lf); err != nil {
		e.Close()
		return nil, err
	}
	e.bweMode = cfg.BandwidthEstimation
	e.handoff = !cfg.PionViewers
	pionDTLS.usable(e.log) // says at start-up, not at the first viewer, if Pion's layout changed (dtlskeys.go)
	e.handedOff.setDefaults()
	workers := cfg.FanoutWorkers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if workers > 1 {
		// The reader writes one chunk itself, so workers-1 helpers.
		e.fan = newFanout(workers - 1)
	}
	e.startQuality()
	e.startSenderReports()
	return e, nil
}

// sessionSettings are what every connection of the engine shares, those
// on the media port and an edge's relay connections alike: Pion's logs
// through lf, loopback candidates when asked (dev mode, tests), ICE
// timeouts, no mDNS, the SRTP profiles in order and the replay window.
func sessionSettings(lf logging.LoggerFactory, includeLoopback bool) webrtc.SettingEngine {
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetIncludeLoopbackCandidate(includeLoopback)
	// Notice a vanished peer within ~15 s (Pion's default is 30 s): until
	// then its down-tracks are still encrypted and sent into the void.
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// AES-GCM first: in Pion it is several times cheaper per packet than
	// AES-CM with HMAC-SHA1, and every browser supports it.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	// A publisher's retransmission arrives an RTT (and a NACK interval)
	// after the original, on the media SSRC (there is no RTX): with Pion's
	// default SRTP replay window of 64 packets it is discarded as too old
	// whenever more than 64 newer packets came first (2.5 Mbit/s and a
	// 250 ms RTT), and the loss reaches every viewer. libwebrtc keeps
	// 1,024 packets for the same reason.
	se.SetSRTPReplayProtectionWindow(srtpReplayWindow)
	return se
}

// srtpReplayWindow is how many packets older than the newest an incoming
// SRTP packet may be and still be accepted.
const srtpReplayWindow = 1024

// tcpWriteBuffer bounds what is queued for one ICE-TCP connection: about
// 1.5 s of a 2.5 Mbit/s broadcast.
const tcpWriteBuffer = 512 << 10

// newPublisherAPI builds the API for connections on which clients send media.
// Interceptors: NACK generator (ask the publisher to resend what the SFU
// lost, so the shared cache is whole), receiver reports, and TWCC feedback so
// the publisher's congestion control can ramp up to its target bitrate.
// Interceptors log through lf, as the rest of Pion does.
func newPublisherAPI(se webrtc.SettingEngine, lf logging.LoggerFactory) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return nil, err
	}
	// Simulcast: layers are told apart by RID (and their repair streams by
	// repaired RID), sections by MID, in RTP header extensions.
	for _, ext := range []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{
		{sdp.SDESMidURI, webrtc.RTPCodecTypeVideo}, {sdp.SDESMidURI, webrtc.RTPCodecTypeAudio},
		{sdp.SDESRTPStreamIDURI, webrtc.RTPCodecTypeVideo}, {sdp.SDESRepairRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
	} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: ext.uri}, ext.kind); err != nil {
			return nil, err
		}
	}
	reg := &interceptor.Registry{}
	reg.Add(headerOnceFactory{}) // first: innermost (attrs.go)
	gen, err := nack.NewGeneratorInterceptor(nack.WithGeneratorLoggerFactory(lf))
	if err != nil {
		return nil, err
	}
	reg.Add(gen)
	recv, err := report.NewReceiverInterceptor(report.WithReceiverLoggerFactory(lf))
	if err != nil {
		return nil, err
	}
	reg.Add(recv)
	if err := webrtc.ConfigureTWCCSenderWithOptions(me, reg, twcc.WithLoggerFactory(lf)); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// UDPAddrs returns the addresses of the shared media port.
func (e *Engine) UDPAddrs() []net.Addr { return e.udpAddrs }

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	return Stats{
		PacketsForwarded: s.packetsForwarded.Load(),
		BytesForwarded:   s.bytesForwarded.Load(),
		NACKsReceived:    s.nacksReceived.Load(),
		NACKsAnswered:    s.nacksAnswered.Load(),
		NACKsIgnored:     s.nacksIgnored.Load(),
		NACKsDropped:     s.nacksDropped.Load(),
		PLIsReceived:     s.plisReceived.Load(),
		PLIsFromCache:    s.plisFromCache.Load(),
		PLIsIgnored:      s.plisIgnored.Load(),
		ForwarderSkipped: s.forwarderSkipped.Load(),
		ForwarderSkips:   s.forwarderSkips.Load(),
		WriteErrors:      s.writeErrors.Load(),
		LayerSwitches:    s.layerSwitches.Load(),
		DirectPackets:    s.directPackets.Load(),
		SendCalls:        s.sendCalls.Load(),
		HandedOver:       s.handedOver.Load(),
		ReplaysGivenUp:   s.replaysGivenUp.Load(),
		Parked:           int64(e.handedOff.parked.n.Load()),
		Unparked:         s.unparked.Load(),
		PathMoves:        s.pathMoves.Load(),
		PathUnanswered:   s.pathUnanswered.Load(),
		PathRefused:      s.pathRefused.Load(),
		RelaysIn:         s.relaysIn.Load(),
		RelaysOut:        s.relaysOut.Load(),
		RelayTracksIn:    s.relayTracksIn.Load(),
		RelayTracksOut:   s.relayTracksOut.Load(),
		RelayPacketsIn:   s.relayPacketsIn.Load(),
		RelayBytesIn:     s.relayBytesIn.Load(),
		RelayPacketsOut:  s.relayPacketsOut.Load(),
		RelayBytesOut:    s.relayBytesOut.Load(),
		PLIsSent:         s.plisSent.Load(),
		Replays:          s.replays.Load(),
		Tracks:           s.tracks.Load(),
		DownTracks:       s.downTracks.Load(),
		Publishers:       s.publishers.Load(),
		Subscribers:      s.subscribers.Load(),
	}
}

// Close releases the ports and stops the workers. Every session must be
// closed first.
func (e *Engine) Close() {
	e.unparking.Wait()
	if e.udpMux != nil {
		_ = e.udpMux.Close()
	}
	if e.udp != nil {
		_ = e.udp.Close()
	}
	if e.tcpMux != nil {
		_ = e.tcpMux.Close()
	}
	if e.tcp != nil {
		_ = e.tcp.Close()
	}
	if e.fan != nil {
		e.fan.close()
		e.fan = nil
	}
	e.stopQuality()
	e.stopSenderReports()
}
