package turn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	pturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const testSecret = "turn-test-0123456789abcdef0123456789abcdef"

// mediaIP stands for the node's media address in these tests: on loopback
// but not 127.0.0.1, so that 127.0.0.1 (where Redis and the rest of the
// machine listen) is a different, refused, peer.
var mediaIP = netip.MustParseAddr("127.0.0.2")

// rig is a TURN server relaying to one real UDP socket, the node's media
// port, with a second socket on another port of the same IP.
type rig struct {
	t     *testing.T
	s     *Server
	media *net.UDPConn // the node's media port: the only allowed peer
	other *net.UDPConn // another port of the node's IP
	reg   *prometheus.Registry
}

func newRig(t *testing.T, mutate func(*Options)) *rig {
	t.Helper()
	media := listenUDP(t, mediaIP)
	other := listenUDP(t, mediaIP)
	o := Options{
		ListenIP: "127.0.0.1", RelayIP: mediaIP, Secret: testSecret,
		Peers:          []netip.AddrPort{media.LocalAddr().(*net.UDPAddr).AddrPort()},
		MaxPerIdentity: 16, MaxPerIP: 128,
		Log: slog.New(slog.DiscardHandler),
	}
	if mutate != nil {
		mutate(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	reg := prometheus.NewRegistry()
	if err := s.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, s: s, media: media, other: other, reg: reg}
}

func listenUDP(t *testing.T, ip netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// creds are valid use-auth-secret credentials for identity, as signalling
// issues them.
func creds(secret, identity string, expiry time.Time) (string, string) {
	u := strconv.FormatInt(expiry.Unix(), 10) + ":" + identity
	return u, Password(secret, u)
}

// client is a pion/turn client over UDP to the rig's server.
func (r *rig) client(user, pass string) *pturn.Client {
	r.t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	return r.clientOver(conn, r.s.UDPAddr().String(), user, pass)
}

func (r *rig) clientOver(conn net.PacketConn, server, user, pass string) *pturn.Client {
	r.t.Helper()
	c, err := pturn.NewClient(&pturn.ClientConfig{
		TURNServerAddr: server, STUNServerAddr: server, Conn: conn,
		Username: user, Password: pass, Realm: Realm, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close(); _ = conn.Close() })
	return c
}

// allocate allocates with a deadline so a refused request fails the test
// quickly instead of retrying; the allocation is closed at the test's end.
func allocate(t *testing.T, c *pturn.Client) (net.PacketConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	relay, err := c.AllocateWithContext(ctx)
	if err == nil {
		t.Cleanup(func() { _ = relay.Close() })
	}
	return relay, err
}

// refusals reads halo_turn_refusals_total{reason}.
func (r *rig) refusals(reason string) float64 {
	r.t.Helper()
	return r.metric("halo_turn_refusals_total", "reason", reason)
}

func (r *rig) metric(name, label, value string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || hasLabel(m, label, value) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// readWithin reads one datagram from c, or returns nil after d.
func readWithin(c net.PacketConn, d time.Duration) ([]byte, net.Addr) {
	buf := make([]byte, 1600)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		return nil, nil
	}
	return buf[:n], from
}

// writeCert writes a self-signed certificate for 127.0.0.1 named cn to
// dir/cert.pem and dir/key.pem.
func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Written aside and renamed in, as certbot and cert-manager do.
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{certFile, "CERTIFICATE", der}, {keyFile, "EC PRIVATE KEY", kder}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// allocConfig is what pion asks the relay generator for.
func allocConfig(network string) pturn.AllocateListenerConfig {
	return pturn.AllocateListenerConfig{Network: network, UserID: "test", Realm: Realm}
}
