package turn

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	pturn "github.com/pion/turn/v5"
)

func TestRelay_ReachesTheNodesMediaPortAndNothingElse(t *testing.T) {
	r := newRig(t, nil)
	c := r.client(creds(testSecret, "alice", time.Now().Add(time.Hour)))
	relay, err := allocate(t, c)
	if err != nil {
		t.Fatalf("allocate with valid credentials: %v", err)
	}
	defer relay.Close()

	// Another port of the node's IP first: the permission (per IP) is
	// granted, the datagram is not relayed.
	if _, err := relay.WriteTo([]byte("to-other-port"), r.other.LocalAddr()); err != nil {
		t.Fatalf("write toward another port: %v", err)
	}
	if _, err := relay.WriteTo([]byte("to-media"), r.media.LocalAddr()); err != nil {
		t.Fatalf("write toward the media port: %v", err)
	}
	got, from := readWithin(r.media, 5*time.Second)
	if !bytes.Equal(got, []byte("to-media")) {
		t.Fatalf("media port got %q, want to-media", got)
	}
	if got, _ := readWithin(r.other, 300*time.Millisecond); got != nil {
		t.Fatalf("another port of the node received %q through the relay", got)
	}
	if n := r.refusals(ReasonPeerPort); n < 1 {
		t.Fatalf("refusals{reason=peer_port} = %v, want >= 1", n)
	}

	// Back: the node's media port answers the relay; another port of the
	// same IP sending to the relay address is not passed on.
	if _, err := r.other.WriteTo([]byte("from-other-port"), from); err != nil {
		t.Fatal(err)
	}
	if _, err := r.media.WriteTo([]byte("from-media"), from); err != nil {
		t.Fatal(err)
	}
	got, src := readWithin(relay, 5*time.Second)
	if !bytes.Equal(got, []byte("from-media")) || src.String() != r.media.LocalAddr().String() {
		t.Fatalf("client got %q from %v, want from-media from %v", got, src, r.media.LocalAddr())
	}
	testutil.Eventually(t, "inbound refusal counted", func() bool { return r.refusals(ReasonInbound) >= 1 })
	if b := r.metric("halo_turn_relayed_bytes_total", "direction", "to_peer"); b != float64(len("to-media")) {
		t.Fatalf("relayed bytes to_peer = %v, want %d", b, len("to-media"))
	}
	if n := r.metric("halo_turn_allocations", "transport", "udp"); n != 1 {
		t.Fatalf("halo_turn_allocations{transport=udp} = %v, want 1", n)
	}
}

func TestPermission_RefusedTowardAnythingButTheNode(t *testing.T) {
	r := newRig(t, nil)
	c := r.client(creds(testSecret, "mallory", time.Now().Add(time.Hour)))
	relay, err := allocate(t, c)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	defer relay.Close()
	// A UDP service on 127.0.0.1 of this machine, as Redis or a metrics
	// endpoint would be.
	local := listenUDP(t, netip.MustParseAddr("127.0.0.1"))
	for _, tt := range []struct {
		peer, reason string
	}{
		{"127.0.0.1:6379", ReasonPeerLoopback},
		{local.LocalAddr().String(), ReasonPeerLoopback},
		{"10.0.0.1:80", ReasonPeerPrivate},
		{"192.168.1.1:53", ReasonPeerPrivate},
		{"172.16.0.1:8080", ReasonPeerPrivate},
		{"169.254.169.254:80", ReasonPeerMetadata},
		{"169.254.1.1:80", ReasonPeerLinkLocal},
		{"8.8.8.8:53", ReasonPeerOther},
	} {
		before := r.refusals(tt.reason)
		peer, _ := net.ResolveUDPAddr("udp", tt.peer)
		if err := c.CreatePermission(peer); err == nil {
			t.Errorf("CreatePermission(%s) succeeded, want a refusal", tt.peer)
		}
		if _, err := relay.WriteTo([]byte("probe"), peer); err == nil {
			t.Errorf("WriteTo(%s) through the relay succeeded, want an error", tt.peer)
		}
		if after := r.refusals(tt.reason); after <= before {
			t.Errorf("%s: refusals{reason=%s} stayed %v", tt.peer, tt.reason, after)
		}
	}
	if got, _ := readWithin(local, 300*time.Millisecond); got != nil {
		t.Fatalf("a service on 127.0.0.1 received %q through the relay", got)
	}
	// A TCP relay (RFC 6062 CONNECT to any port) is not offered.
	tc, err := net.Dial("tcp", r.s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	ct := r.clientOver(pturn.NewSTUNConn(tc), tc.RemoteAddr().String(), c.Username().String(), Password(testSecret, c.Username().String()))
	if _, err := ct.AllocateTCP(); err == nil {
		t.Fatal("a TCP allocation was granted")
	}
	if r.refusals(ReasonTCPRelay) < 1 {
		t.Fatal("refusals{reason=tcp_relay} not counted")
	}
}

func TestAuth_ExpiredForgedAndMalformedCredentialsAreRefused(t *testing.T) {
	r := newRig(t, nil)
	expiredU, expiredP := creds(testSecret, "alice", time.Now().Add(-time.Minute))
	forgedU, forgedP := creds("another-secret-0123456789abcdef0123456789", "alice", time.Now().Add(time.Hour))
	validU, _ := creds(testSecret, "alice", time.Now().Add(time.Hour))
	for _, tt := range []struct {
		name, user, pass, reason string
	}{
		{"expired", expiredU, expiredP, ReasonExpired},
		{"made with another secret", forgedU, forgedP, ReasonBadCredentials},
		{"valid username, wrong password", validU, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", ReasonBadCredentials},
		{"no expiry", "alice", Password(testSecret, "alice"), ReasonBadCredentials},
		{"expiry not a number", "soon:alice", Password(testSecret, "soon:alice"), ReasonBadCredentials},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := r.refusals(tt.reason)
			c := r.client(tt.user, tt.pass)
			if relay, err := allocate(t, c); err == nil {
				relay.Close()
				t.Fatal("allocation granted")
			}
			if after := r.refusals(tt.reason); after <= before {
				t.Fatalf("refusals{reason=%s} stayed %v", tt.reason, after)
			}
		})
	}
	if n := r.s.Allocations(); n != 0 {
		t.Fatalf("%d allocations alive after refused requests", n)
	}
}

func TestQuota_AllocationsBeyondTheCapsAreRefused(t *testing.T) {
	r := newRig(t, func(o *Options) { o.MaxPerIdentity, o.MaxPerIP = 2, 3 })
	grant := func(identity string) (net.PacketConn, error) {
		return allocate(t, r.client(creds(testSecret, identity, time.Now().Add(time.Hour))))
	}
	a1, err := grant("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := grant("alice"); err != nil {
		t.Fatal(err)
	}
	if relay, err := grant("alice"); err == nil {
		relay.Close()
		t.Fatal("alice's third allocation was granted (cap 2 per identity)")
	}
	if r.refusals(ReasonQuotaIdentity) < 1 {
		t.Fatal("refusals{reason=quota_identity} not counted")
	}
	if _, err := grant("bob"); err != nil {
		t.Fatalf("bob's first allocation: %v", err)
	}
	if relay, err := grant("carol"); err == nil {
		relay.Close()
		t.Fatal("a fourth allocation from one IP was granted (cap 3 per IP)")
	}
	if r.refusals(ReasonQuotaIP) < 1 {
		t.Fatal("refusals{reason=quota_ip} not counted")
	}
	// Closing an allocation gives its place back.
	_ = a1.Close()
	testutil.Eventually(t, "allocation released", func() bool { return r.s.Allocations() == 2 })
	if _, err := grant("carol"); err != nil {
		t.Fatalf("allocation after one was released: %v", err)
	}
}

func TestRelay_BandwidthCapDropsTheExcess(t *testing.T) {
	const bitrate = 160_000 // 20 kB/s, burst 64 KiB
	r := newRig(t, func(o *Options) { o.MaxBitrate = bitrate })
	c := r.client(creds(testSecret, "alice", time.Now().Add(time.Hour)))
	relay, err := allocate(t, c)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	start := time.Now()
	payload := make([]byte, 1000)
	for range 400 { // 400 kB, far over the burst
		if _, err := relay.WriteTo(payload, r.media.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, "bandwidth refusals counted", func() bool { return r.refusals(ReasonBandwidth) > 0 })
	elapsed := time.Since(start)
	got := r.metric("halo_turn_relayed_bytes_total", "direction", "to_peer")
	// What may pass: the burst plus the rate over the whole send.
	limit := float64(64<<10) + float64(bitrate)/8*elapsed.Seconds() + 1000
	if got == 0 || got > limit {
		t.Fatalf("relayed %v bytes of 400000 in %v, want 0 < n <= %v", got, elapsed, limit)
	}
}

func TestTCPAndTLS_RelayToTheMediaPortAndReloadTheCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, "first")
	r := newRig(t, func(o *Options) { o.TLS, o.CertFile, o.KeyFile = true, certFile, keyFile })
	user, pass := creds(testSecret, "alice", time.Now().Add(time.Hour))

	dialTLS := func() (*tls.Conn, string) {
		conn, err := tls.Dial("tcp", r.s.TLSAddr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a self-signed test certificate
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		return conn, conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	for name, dial := range map[string]func() net.Conn{
		"tcp": func() net.Conn {
			c, err := net.Dial("tcp", r.s.TCPAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		"tls": func() net.Conn { c, _ := dialTLS(); return c },
	} {
		t.Run(name, func(t *testing.T) {
			conn := dial()
			c := r.clientOver(pturn.NewSTUNConn(conn), conn.RemoteAddr().String(), user, pass)
			relay, err := allocate(t, c)
			if err != nil {
				t.Fatalf("allocate over %s: %v", name, err)
			}
			defer relay.Close()
			if _, err := relay.WriteTo([]byte("over-"+name), r.media.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if got, _ := readWithin(r.media, 5*time.Second); string(got) != "over-"+name {
				t.Fatalf("media port got %q", got)
			}
			if n := r.metric("halo_turn_allocations", "transport", name); n != 1 {
				t.Fatalf("halo_turn_allocations{transport=%s} = %v, want 1", name, n)
			}
		})
	}

	conn, cn := dialTLS()
	_ = conn.Close()
	if cn != "first" {
		t.Fatalf("certificate %q, want first", cn)
	}
	// Renewed on disk: the next handshake presents it, no restart.
	time.Sleep(10 * time.Millisecond) // a later modification time on coarse clocks
	writeCert(t, dir, "renewed")
	conn, cn = dialTLS()
	_ = conn.Close()
	if cn != "renewed" {
		t.Fatalf("after renewal the certificate is %q, want renewed", cn)
	}
	// A broken renewal keeps the certificate that works.
	if err := writeFile(certFile, "not a certificate"); err != nil {
		t.Fatal(err)
	}
	conn, cn = dialTLS()
	_ = conn.Close()
	if cn != "renewed" {
		t.Fatalf("after a broken renewal the certificate is %q, want renewed", cn)
	}
}

func TestExternalTLS_ServesPlainTCPOnTheTLSPort(t *testing.T) {
	r := newRig(t, func(o *Options) { o.TLS, o.ExternalTLS = true, true })
	user, pass := creds(testSecret, "alice", time.Now().Add(time.Hour))
	conn, err := net.Dial("tcp", r.s.TLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := r.clientOver(pturn.NewSTUNConn(conn), conn.RemoteAddr().String(), user, pass)
	relay, err := allocate(t, c)
	if err != nil {
		t.Fatalf("allocate over the load balancer's plain TCP: %v", err)
	}
	defer relay.Close()
}

func TestNew_RefusesWhatCannotWork(t *testing.T) {
	peers := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:7882")}
	for name, o := range map[string]Options{
		"no secret":        {RelayIP: mediaIP, Peers: peers},
		"no relay ip":      {Secret: testSecret, Peers: peers},
		"no peers":         {Secret: testSecret, RelayIP: mediaIP},
		"unreadable certs": {Secret: testSecret, RelayIP: mediaIP, Peers: peers, ListenIP: "127.0.0.1", TLS: true, CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"},
	} {
		if s, err := New(o); err == nil {
			_ = s.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// Two allocations of one identity reach each other's relay (the /check
// page's two connections do): it leads nowhere but back into this server.
// Another identity cannot send into them, even with a permission for the
// relay IP (a browser viewer has one: the relay IP is the media IP), and a
// port of the relay IP that is no live relay stays refused.
func TestRelay_ReachesAnotherAllocationOfTheSameIdentityOnly(t *testing.T) {
	r := newRig(t, nil)
	ca, cb := r.client(creds(testSecret, "check:1.2.3.4", time.Now().Add(time.Hour))), r.client(creds(testSecret, "check:1.2.3.4", time.Now().Add(time.Hour)))
	a, err := allocate(t, ca)
	if err != nil {
		t.Fatal(err)
	}
	b, err := allocate(t, cb)
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := allocate(t, r.client(creds(testSecret, "mallory", time.Now().Add(time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	// Both hold a permission for the relay IP, as a browser viewer does for
	// the media IP.
	for _, c := range []*pturn.Client{ca, cb} {
		if err := c.CreatePermission(net.UDPAddrFromAddrPort(netip.AddrPortFrom(mediaIP, 1))); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct {
		from, to net.PacketConn
		what     string
	}{{mallory, a, "mallory-to-a"}, {b, a, "b-to-a"}, {a, b, "a-to-b"}} {
		if _, err := m.from.WriteTo([]byte(m.what), m.to.LocalAddr()); err != nil {
			t.Fatalf("%s: %v", m.what, err)
		}
	}
	got, from := readWithin(b, 5*time.Second)
	if string(got) != "a-to-b" || from.String() != a.LocalAddr().String() {
		t.Fatalf("b got %q from %v, want a-to-b from %v", got, from, a.LocalAddr())
	}
	got, _ = readWithin(a, 5*time.Second)
	if string(got) != "b-to-a" {
		t.Fatalf("a got %q, want b-to-a (mallory's datagram, sent before it, must not arrive)", got)
	}
	if r.refusals(ReasonPeerPort) < 1 {
		t.Fatal("mallory's datagram into another identity's relay was not counted as refused")
	}
	closed := a.LocalAddr().String()
	_ = a.Close()
	testutil.Eventually(t, "a's allocation gone", func() bool { return r.s.Allocations() == 2 })
	before := r.refusals(ReasonPeerPort)
	dead, _ := net.ResolveUDPAddr("udp", closed)
	if _, err := b.WriteTo([]byte("to-closed"), dead); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "a closed relay's address refused", func() bool { return r.refusals(ReasonPeerPort) > before })
}

// A client cannot hold the TCP port's connections: beyond the per-IP cap a
// connection is closed at once, and a silent one after the idle time.
func TestTCP_ConnectionsCappedPerIPAndSilentOnesClosed(t *testing.T) {
	r := newRig(t, func(o *Options) { o.MaxPerIP, o.TCPIdle = 2, 300*time.Millisecond })
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", r.s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	testutil.Eventually(t, "the third connection refused", func() bool { return r.refusals(ReasonQuotaIP) >= 1 })
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(testutil.Wait))
		if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
			t.Fatalf("connection %d: read %d bytes, %v; want it closed by the server", i, n, err)
		}
	}
	// Their places are free again.
	testutil.Eventually(t, "the IP's connections forgotten", func() bool {
		r.s.tcp.mu.Lock()
		defer r.s.tcp.mu.Unlock()
		return len(r.s.tcp.ips) == 0 && len(r.s.tcp.conns) == 0
	})
}

// A node behind a 1:1 NAT announces its public IP (sfu.nat_1to1_ips), and
// that is the address a client's permission names: the relay reaches the
// media port through the local address behind it, not out to the NAT and
// back, and what the media port answers reaches the client as from the
// public address.
func TestRelay_ReachesThePublicMediaAddressThroughTheLocalOne(t *testing.T) {
	public := netip.MustParseAddr("127.0.0.5") // nothing listens there
	r := newRig(t, func(o *Options) { o.NAT1To1 = []netip.Addr{public} })
	c := r.client(creds(testSecret, "alice", time.Now().Add(time.Hour)))
	relay, err := allocate(t, c)
	if err != nil {
		t.Fatal(err)
	}
	mediaPort := r.media.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	publicMedia := net.UDPAddrFromAddrPort(netip.AddrPortFrom(public, mediaPort))
	if _, err := relay.WriteTo([]byte("to-public"), publicMedia); err != nil {
		t.Fatal(err)
	}
	got, from := readWithin(r.media, 5*time.Second)
	if string(got) != "to-public" {
		t.Fatalf("the media port got %q, want to-public", got)
	}
	if _, err := r.media.WriteTo([]byte("answer"), from); err != nil {
		t.Fatal(err)
	}
	got, src := readWithin(relay, 5*time.Second)
	if string(got) != "answer" || src.String() != publicMedia.String() {
		t.Fatalf("client got %q from %v, want answer from %v", got, src, publicMedia)
	}
	// Another port of the public IP is no media address.
	before := r.refusals(ReasonPeerPort)
	if _, err := relay.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(public, mediaPort+1))); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "another port of the public IP refused", func() bool { return r.refusals(ReasonPeerPort) > before })
}

// A credential's expiry bounds when it can open an allocation, not how long
// an allocation opened in time lives: past the expiry its permissions and
// data go on (a long watch is not cut), and nobody can open a new one
// with it.
func TestAuth_ExpiredCredentialKeepsItsAllocationButOpensNoOther(t *testing.T) {
	r := newRig(t, nil)
	expiry := time.Now().Add(2 * time.Second)
	user, pass := creds(testSecret, "alice", expiry)
	c := r.client(user, pass)
	relay, err := allocate(t, c)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(expiry.Truncate(time.Second).Add(1500 * time.Millisecond))) // past the expiry's second
	if err := c.CreatePermission(r.media.LocalAddr()); err != nil {
		t.Fatalf("a permission on the allocation opened in time, after the expiry: %v", err)
	}
	if _, err := relay.WriteTo([]byte("after-expiry"), r.media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got, _ := readWithin(r.media, 5*time.Second); string(got) != "after-expiry" {
		t.Fatalf("media port got %q after the expiry, want after-expiry", got)
	}
	before := r.refusals(ReasonExpired)
	if other, err := allocate(t, r.client(user, pass)); err == nil {
		_ = other.Close()
		t.Fatal("a new allocation with an expired credential was granted")
	}
	if r.refusals(ReasonExpired) <= before {
		t.Fatal("refusals{reason=expired} not counted")
	}
}
