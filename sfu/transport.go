package sfu

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Transports: how a viewer's or broadcaster's media reaches the node, by
// the ICE pair selected when its connection came up.
//
//   - udp: a host, server-reflexive or peer-reflexive pair over UDP;
//   - tcp: ICE-TCP (the node's passive TCP candidates);
//   - turn_udp, turn_tcp, turn_tls: through a TURN relay, named by how the
//     client reaches the relay. The node sees its peer as the relay's
//     address; the embedded TURN server says which of its allocations that
//     address is and over what the client holds it (SetTURNRelays). A relay
//     the node does not run (coturn, turn.external_urls) shows only as a
//     remote candidate of type relay: the client's leg is not visible, and
//     it counts as turn_udp.
//
// A connection counts from the moment it is up to its close: a WHEP viewer
// handed over from Pion (handoff.go) keeps its transport; a parked one
// (park.go) counts once it comes back and connects.
const (
	TransportUDP     = "udp"
	TransportTCP     = "tcp"
	TransportTURNUDP = "turn_udp"
	TransportTURNTCP = "turn_tcp"
	TransportTURNTLS = "turn_tls"
)

// The transports' indexes in transportGauges.
const (
	idxUDP = iota
	idxTCP
	idxTURNUDP
	idxTURNTCP
	idxTURNTLS
)

// transportNames are the transports by their index in transportGauges.
var transportNames = [...]string{idxUDP: TransportUDP, idxTCP: TransportTCP, idxTURNUDP: TransportTURNUDP, idxTURNTCP: TransportTURNTCP, idxTURNTLS: TransportTURNTLS}

// transportGauges count live connections by role and transport, and hold
// the ICE-TCP checks of the /check page. A connection is counted once,
// when it comes up: nothing here is on the packet path.
type transportGauges struct {
	viewers, publishers [len(transportNames)]atomic.Int64
	// turn names the client's leg of an embedded TURN allocation by its
	// relay address: "udp", "tcp", "tls", or "" when it is none.
	turn atomic.Pointer[func(netip.AddrPort) string]
	// checks are the /check page's ICE-TCP checks running (CheckTCP).
	checks tcpChecks
}

// SetTURNRelays tells the engine how to recognise the embedded TURN
// server's relay addresses: lookup returns "udp", "tcp" or "tls" for the
// relay address of a live allocation (how its client reaches the TURN
// server), "" for any other address. The node calls it once the TURN
// server runs; without it a relayed peer is seen only by its candidate
// type.
func (e *Engine) SetTURNRelays(lookup func(netip.AddrPort) string) {
	if lookup == nil {
		e.transports.turn.Store(nil)
		return
	}
	e.transports.turn.Store(&lookup)
}

// TURNHandOff is the embedded TURN server's side of the in-process
// hand-off: the lean write path gives it the datagrams for its relays
// instead of sending them through the kernel (sfu/turn/handoff.go says
// why that keeps the relay closed to everyone else).
type TURNHandOff interface {
	// IsRelay reports whether dst is the relay address of a live
	// allocation of the server.
	IsRelay(dst netip.AddrPort) bool
	// HandOff delivers p, sent from the media address from, to the relay
	// at dst, as if its socket had received it; false if dst is no relay.
	// p is copied.
	HandOff(dst, from netip.AddrPort, p []byte) bool
}

// SetTURNHandOff has the engine's media sockets hand the datagrams for t's
// relays over in the process; nil sends them through the network again.
// The node calls it once the TURN server runs.
func (e *Engine) SetTURNHandOff(t TURNHandOff) {
	for _, s := range e.socks {
		if t == nil {
			s.handOff.Store(nil)
		} else {
			s.handOff.Store(&t)
		}
	}
}

// connTransport is one connection's place in the transport gauges: the
// index it counts under plus one, 0 while it is not counted, -1 once it
// closed (a late "connected" cannot count it again).
type connTransport struct {
	at atomic.Int32
}

// count counts the connection under the transport of pc's selected pair,
// in gauges (the engine's viewers or publishers), unless it counts
// already or has closed.
func (c *connTransport) count(e *Engine, gauges *[len(transportNames)]atomic.Int64, pc *webrtc.PeerConnection) {
	if pc == nil || c.at.Load() != 0 {
		return
	}
	i := e.transportOf(selectedPair(pc))
	if i < 0 || !c.at.CompareAndSwap(0, int32(i)+1) {
		return
	}
	gauges[i].Add(1)
}

// move counts a connection that counts already under the transport of its
// new selected pair p: an ICE restart, or a browser that moved from a relay
// to a direct path. One not counted yet (not connected) or closed is left.
func (c *connTransport) move(e *Engine, gauges *[len(transportNames)]atomic.Int64, p *webrtc.ICECandidatePair) {
	i := e.transportOf(p)
	if i < 0 {
		return
	}
	for {
		cur := c.at.Load()
		if cur <= 0 || cur == int32(i)+1 {
			return
		}
		if c.at.CompareAndSwap(cur, int32(i)+1) {
			gauges[cur-1].Add(-1)
			gauges[i].Add(1)
			return
		}
	}
}

// release stops counting the connection, for good.
func (c *connTransport) release(gauges *[len(transportNames)]atomic.Int64) {
	if i := c.at.Swap(-1); i > 0 {
		gauges[i-1].Add(-1)
	}
}

// name is the transport the connection counts under, "" if none.
func (c *connTransport) name() string {
	if i := c.at.Load(); i > 0 {
		return transportNames[i-1]
	}
	return ""
}

// selectedPair is pc's selected ICE pair, or nil.
func selectedPair(pc *webrtc.PeerConnection) *webrtc.ICECandidatePair {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return nil
	}
	p, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil {
		return nil
	}
	return p
}

// transportOf is the index in transportNames of a selected pair's
// transport, or -1 when there is no pair.
func (e *Engine) transportOf(p *webrtc.ICECandidatePair) int {
	if p == nil || p.Local == nil || p.Remote == nil {
		return -1
	}
	if p.Local.Typ == webrtc.ICECandidateTypeRelay {
		return idxTURNUDP // the node's own leg through a relay: not how the node is set up, but say so
	}
	if p.Local.Protocol == webrtc.ICEProtocolTCP {
		return idxTCP
	}
	if f := e.transports.turn.Load(); f != nil {
		if ip, err := netip.ParseAddr(p.Remote.Address); err == nil {
			switch (*f)(netip.AddrPortFrom(ip.Unmap(), p.Remote.Port)) {
			case "udp":
				return idxTURNUDP
			case "tcp":
				return idxTURNTCP
			case "tls":
				return idxTURNTLS
			}
		}
	}
	if p.Remote.Typ == webrtc.ICECandidateTypeRelay {
		return idxTURNUDP // another TURN server's relay: the client's leg is not visible
	}
	return idxUDP
}

// Transport is the transport of the viewer's connection (udp, tcp,
// turn_udp, turn_tcp, turn_tls) once it is up, "" before.
func (s *Subscriber) Transport() string { return s.transport.name() }

// Transport is the transport of the broadcaster's connection once it is
// up, "" before.
func (p *Publisher) Transport() string { return p.transport.name() }

// registerTransportMetrics registers halo_viewer_transport and
// halo_publisher_transport.
func registerTransportMetrics(reg prometheus.Registerer, e *Engine) {
	reg.MustRegister(&transportCollector{e: e,
		viewers: prometheus.NewDesc("halo_viewer_transport",
			"Viewer connections up, by the transport of their selected ICE pair: udp, tcp (ICE-TCP), turn_udp, turn_tcp, turn_tls (through a TURN relay, by how the viewer reaches it; an external TURN's relay counts as turn_udp). Relays between nodes are not counted.",
			[]string{"type"}, nil),
		publishers: prometheus.NewDesc("halo_publisher_transport",
			"Broadcaster connections up, by the transport of their selected ICE pair (as halo_viewer_transport).",
			[]string{"type"}, nil),
	})
}

// transportCollector reports the transport gauges, every type always.
type transportCollector struct {
	e                   *Engine
	viewers, publishers *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *transportCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.viewers
	ch <- c.publishers
}

// Collect implements prometheus.Collector.
func (c *transportCollector) Collect(ch chan<- prometheus.Metric) {
	g := &c.e.transports
	for i, name := range transportNames {
		ch <- prometheus.MustNewConstMetric(c.viewers, prometheus.GaugeValue, float64(g.viewers[i].Load()), name)
		ch <- prometheus.MustNewConstMetric(c.publishers, prometheus.GaugeValue, float64(g.publishers[i].Load()), name)
	}
}

// The /check page's ICE-TCP check: the page offers a data channel, the
// node answers with its ICE-TCP candidates alone, and the connection
// echoes what the page sends. It works only if the browser reaches the
// node's ICE-TCP port (sfu.tcp_port): the page learns whether ICE-TCP
// works from its network, with a round trip and an upload figure.

// Bounds of the ICE-TCP checks: a check lives at most checkTCPLife, and at
// most maxTCPChecks run at once on a node (each is a Pion connection).
const (
	checkTCPLife = 20 * time.Second
	maxTCPChecks = 16
)

// Errors of CheckTCP.
var (
	// ErrNoTCP: the node has no ICE-TCP port (sfu.tcp_port is 0).
	ErrNoTCP = errors.New("sfu: ICE-TCP is off on this node")
	// ErrTooManyChecks: maxTCPChecks are running.
	ErrTooManyChecks = errors.New("sfu: too many connection checks at once")
)

// tcpChecks are the ICE-TCP checks running.
type tcpChecks struct {
	mu     sync.Mutex
	live   map[*webrtc.PeerConnection]*time.Timer
	closed bool
}

// TCPOffered reports whether the node offers ICE-TCP (sfu.tcp_port).
func (e *Engine) TCPOffered() bool { return e.tcpMux != nil }

// CheckTCP answers the check page's offer (a data channel) with a
// connection that offers only the node's ICE-TCP candidates; the offer's
// own UDP candidates are set aside, so no pair over UDP can form. Over the
// data channel the connection echoes text messages, counts binary ones
// ("count" answers "count <bytes>"), and closes on "done", when the page
// goes, or after checkTCPLife. CloseChecks ends those still running.
func (e *Engine) CheckTCP(ctx context.Context, offer string) (string, error) {
	if e.tcpMux == nil {
		return "", ErrNoTCP
	}
	pc, err := e.pubAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", fmt.Errorf("sfu: check connection: %w", err)
	}
	if !e.transports.checks.add(pc, checkTCPLife) {
		_ = pc.Close()
		return "", ErrTooManyChecks
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateDisconnected {
			go e.transports.checks.end(pc) // not on Pion's goroutine that reports the state
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		var got int64
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			switch {
			case !m.IsString:
				got += int64(len(m.Data))
			case string(m.Data) == "count":
				_ = dc.SendText("count " + strconv.FormatInt(got, 10))
			case string(m.Data) == "done":
				go e.transports.checks.end(pc) // not on the SCTP reader that runs this callback
			case len(m.Data) <= 64:
				_ = dc.Send(m.Data)
			}
		})
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: OnlyTCPCandidates(offer)}); err != nil {
		e.transports.checks.end(pc)
		return "", fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	answer, err := localAnswer(ctx, pc, true)
	if err != nil {
		e.transports.checks.end(pc)
		return "", err
	}
	return OnlyTCPCandidates(answer), nil
}

// CloseChecks ends the ICE-TCP checks still running; none starts after.
// The node calls it before it closes the engine.
func (e *Engine) CloseChecks() {
	e.transports.checks.mu.Lock()
	e.transports.checks.closed = true
	live := e.transports.checks.live
	e.transports.checks.live = nil
	e.transports.checks.mu.Unlock()
	for pc, t := range live {
		t.Stop()
		_ = pc.Close()
	}
}

// add keeps pc among the running checks, closed after life; false when
// there are too many or the engine is closing.
func (c *tcpChecks) add(pc *webrtc.PeerConnection, life time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.live) >= maxTCPChecks {
		return false
	}
	if c.live == nil {
		c.live = map[*webrtc.PeerConnection]*time.Timer{}
	}
	c.live[pc] = time.AfterFunc(life, func() { c.end(pc) })
	return true
}

// end closes the check pc, once.
func (c *tcpChecks) end(pc *webrtc.PeerConnection) {
	c.mu.Lock()
	t, ok := c.live[pc]
	delete(c.live, pc)
	c.mu.Unlock()
	if ok {
		t.Stop()
		_ = pc.Close()
	}
}

// OnlyTCPCandidates is sdp without its ICE candidates over anything but
// TCP: the a=candidate lines whose transport field is not "tcp" are
// dropped, every other line is kept as it is.
func OnlyTCPCandidates(sdp string) string {
	var b strings.Builder
	b.Grow(len(sdp))
	for rest := sdp; rest != ""; {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = ""
		}
		if c, ok := strings.CutPrefix(line, "a=candidate:"); ok {
			// foundation component transport priority address port typ ...
			f := strings.Fields(c)
			if len(f) < 3 || !strings.EqualFold(f[2], "tcp") {
				continue
			}
		}
		b.WriteString(line)
	}
	return b.String()
}
