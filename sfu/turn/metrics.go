package turn

import "github.com/prometheus/client_golang/prometheus"

// Reasons a request or a datagram is refused, the values of
// halo_turn_refusals_total's reason label.
const (
	// ReasonBadCredentials: a forged or malformed username or password.
	ReasonBadCredentials = "bad_credentials"
	// ReasonExpired: an Allocate with a credential past its expiry.
	ReasonExpired = "expired"
	// ReasonQuotaIdentity: the identity has turn.max_allocations_per_identity.
	ReasonQuotaIdentity = "quota_identity"
	// ReasonQuotaIP: the client IP has turn.max_allocations_per_ip.
	ReasonQuotaIP = "quota_ip"
	// ReasonPeerLoopback: a peer on loopback other than the node's media address.
	ReasonPeerLoopback = "peer_loopback"
	// ReasonPeerPrivate: a peer in a private range (10/8, 172.16/12, 192.168/16, fc00::/7).
	ReasonPeerPrivate = "peer_private"
	// ReasonPeerLinkLocal: a link-local peer (169.254/16, fe80::/10).
	ReasonPeerLinkLocal = "peer_link_local"
	// ReasonPeerMetadata: the cloud metadata address 169.254.169.254.
	ReasonPeerMetadata = "peer_metadata"
	// ReasonPeerOther: any other address that is not the node's.
	ReasonPeerOther = "peer_other"
	// ReasonPeerPort: the node's IP, but not its media port.
	ReasonPeerPort = "peer_port"
	// ReasonInbound: a datagram reaching a relay port from anyone but the node.
	ReasonInbound = "inbound_not_node"
	// ReasonBandwidth: a datagram over the allocation's turn.max_bitrate.
	ReasonBandwidth = "bandwidth"
	// ReasonTCPRelay: an Allocate asking for a TCP relay (RFC 6062).
	ReasonTCPRelay = "tcp_relay"
	// ReasonAcceptFailed: a TCP or TLS connection not accepted because the
	// process is out of file descriptors (it accepts again after a pause).
	ReasonAcceptFailed = "accept_failed"
	// ReasonQueueFull: a datagram for a client dropped because the
	// allocation's queue toward pion (512 datagrams) was full: the client's
	// connection to the TURN server does not keep up (handoff.go).
	ReasonQueueFull = "queue_full"
)

// metrics are the server's Prometheus series. Counters are updated on the
// packet path with atomics only.
type metrics struct {
	allocations []prometheus.Collector // one GaugeFunc per transport
	created     prometheus.Counter
	refusals    *prometheus.CounterVec
	reasons     map[string]prometheus.Counter // refusals' children, resolved once
	toPeer      prometheus.Counter
	fromPeer    prometheus.Counter
	relayed     *prometheus.CounterVec
}

// Transports a client reaches the TURN server over, the values of
// halo_turn_allocations' transport label.
var transports = []string{"udp", "tcp", "tls"}

func newMetrics(live func(transport string) float64) *metrics {
	m := &metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "halo_turn_allocations_total", Help: "TURN allocations made by the embedded TURN server.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "halo_turn_refusals_total",
			Help: "TURN requests and relayed datagrams refused, by reason (credentials, quota, a peer that is not this node, bandwidth).",
		}, []string{"reason"}),
		reasons: map[string]prometheus.Counter{},
	}
	relayed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "halo_turn_relayed_bytes_total", Help: "Bytes relayed by the embedded TURN server, by direction (to_peer: from clients to this node's media port).",
	}, []string{"direction"})
	m.toPeer, m.fromPeer = relayed.WithLabelValues("to_peer"), relayed.WithLabelValues("from_peer")
	for _, r := range []string{ReasonBadCredentials, ReasonExpired, ReasonQuotaIdentity, ReasonQuotaIP,
		ReasonPeerLoopback, ReasonPeerPrivate, ReasonPeerLinkLocal, ReasonPeerMetadata, ReasonPeerOther,
		ReasonPeerPort, ReasonInbound, ReasonBandwidth, ReasonTCPRelay, ReasonAcceptFailed, ReasonQueueFull} {
		m.reasons[r] = m.refusals.WithLabelValues(r)
	}
	m.relayed = relayed
	for _, tr := range transports {
		m.allocations = append(m.allocations, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "halo_turn_allocations",
			Help:        "TURN allocations alive on the embedded TURN server, by the transport the client reaches it over (tls: TLS or the load balancer's TCP on turn.tls_port).",
			ConstLabels: prometheus.Labels{"transport": tr},
		}, func() float64 { return live(tr) }))
	}
	return m
}

// refused counts one refusal.
func (m *metrics) refused(reason string) { m.reasons[reason].Inc() }

// collectors are what RegisterMetrics registers.
func (m *metrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{m.created, m.refusals, m.relayed}, m.allocations...)
}
