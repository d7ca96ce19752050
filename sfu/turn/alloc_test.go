package turn

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// The relay socket's packet path (what every relayed datagram goes
// through: the peer check, the bandwidth cap, the counters) allocates
// nothing, either way.
func TestRelayConn_PacketPathDoesNotAllocate(t *testing.T) {
	media := listenUDP(t, mediaIP)
	mediaAP := media.LocalAddr().(*net.UDPAddr).AddrPort()
	s := &Server{peers: newPeers([]netip.AddrPort{mediaAP}, nil), relayIP: mediaIP,
		metrics: newMetrics(func(string) float64 { return 0 }), opts: Options{MaxBitrate: 1 << 30}}
	pc, _, err := relays{s}.AllocatePacketConn(allocConfig("udp4"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	rc := pc.(*relayConn)
	payload := make([]byte, 1200)
	to := media.LocalAddr()

	if n := testing.AllocsPerRun(200, func() {
		if _, err := rc.WriteTo(payload, to); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("WriteTo: %v allocations per packet", n)
	}

	relayAP := rc.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 1600)
	_ = rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n := testing.AllocsPerRun(200, func() {
		if _, err := media.WriteToUDPAddrPort(payload, relayAP); err != nil {
			t.Fatal(err)
		}
		if _, _, err := rc.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("ReadFrom: %v allocations per packet", n)
	}
}
