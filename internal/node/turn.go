package node

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/sfu"
	"github.com/halobuzz/live/sfu/turn"
	"github.com/prometheus/client_golang/prometheus"
)

// startTURN starts the embedded TURN server when turn.enabled is set and
// returns what stops it (a no-op when it is off). It relays only to the
// media engine's own UDP addresses, and to the NAT 1:1 IPs on the media
// port through them.
func startTURN(cfg *config.Config, engine *sfu.Engine, reg prometheus.Registerer, log *slog.Logger) (func(), error) {
	t := cfg.Turn
	if !t.Enabled {
		return func() {}, nil
	}
	peers, relayIP, err := turnPeers(cfg, engine.UDPAddrs())
	if err != nil {
		return nil, err
	}
	tlsOn := t.TLSPort != 0 && (t.ExternalTLS || t.CertFile != "")
	if t.TLSPort != 0 && !tlsOn {
		log.Warn("turn: no turn.cert_file/key_file in dev mode, TURN over TLS is off")
	}
	s, err := turn.New(turn.Options{
		ListenIP: cfg.SFU.UDPAddress, Port: t.Port, TLS: tlsOn, TLSPort: t.TLSPort,
		CertFile: t.CertFile, KeyFile: t.KeyFile, ExternalTLS: t.ExternalTLS,
		RelayIP: relayIP, Peers: peers, NAT1To1: natIPs(cfg.SFU.NAT1To1IPs), Secret: cfg.TURNSecret(),
		AllocationLifetime: t.AllocationLifetime,
		MaxPerIdentity:     t.MaxAllocationsPerIdentity, MaxPerIP: t.MaxAllocationsPerIP,
		MaxBitrate: t.MaxBitrate, Log: log,
	})
	if err != nil {
		return nil, err
	}
	if err := s.RegisterMetrics(reg); err != nil {
		_ = s.Close()
		return nil, err
	}
	engine.SetTURNRelays(s.RelayTransport) // halo_viewer_transport's turn_* (sfu/transport.go)
	engine.SetTURNHandOff(s)               // relayed viewers' media handed to the relays in the process (sfu/turn/handoff.go)
	return func() { engine.SetTURNHandOff(nil); engine.SetTURNRelays(nil); _ = s.Close() }, nil
}

// natIPs are sfu.nat_1to1_ips (validated by config) as addresses.
func natIPs(ips []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// turnPeers are the media addresses a relay may reach, and the relay IP:
// turn.relay_ip, else sfu.udp_address, else the first media address not on
// loopback (loopback only when there is nothing else, as in dev mode).
func turnPeers(cfg *config.Config, media []net.Addr) ([]netip.AddrPort, netip.Addr, error) {
	var peers []netip.AddrPort
	for _, a := range media {
		ua, ok := a.(*net.UDPAddr)
		if !ok {
			continue
		}
		ap := ua.AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		peers = append(peers, ap)
	}
	if len(peers) == 0 {
		return nil, netip.Addr{}, fmt.Errorf("turn: the media engine has no UDP address to relay to")
	}
	pick := cfg.Turn.RelayIP
	if pick == "" {
		pick = cfg.SFU.UDPAddress
	}
	if pick != "" {
		ip, err := netip.ParseAddr(pick)
		if err != nil {
			return nil, netip.Addr{}, fmt.Errorf("turn: relay IP %q: %w", pick, err)
		}
		return peers, ip.Unmap(), nil
	}
	relay := peers[0].Addr()
	for _, p := range peers {
		if !p.Addr().IsLoopback() && p.Addr().Is4() && !p.Addr().IsUnspecified() {
			return peers, p.Addr(), nil
		}
	}
	return peers, relay, nil
}

// turnInfo is what PrintInfo and PrintDevInfo say about TURN and the
// connection check page at base: the ports to open when the embedded
// server runs.
func (n *Node) turnInfo(base string) string {
	t := n.cfg.Turn
	out := ""
	if t.Enabled {
		tls := "off"
		if t.TLSPort != 0 && (t.ExternalTLS || t.CertFile != "") {
			tls = fmt.Sprintf("TCP %d", t.TLSPort)
			if t.ExternalTLS {
				tls += " (TLS terminated in front)"
			}
		}
		out += fmt.Sprintf("  TURN:        UDP+TCP %d, TLS %s\n", t.Port, tls)
	} else if len(t.ExternalURLs) > 0 {
		out += fmt.Sprintf("  TURN:        external %v\n", t.ExternalURLs)
	}
	return out + fmt.Sprintf("  check:       %s/check (what works from a user's network)\n", base)
}
