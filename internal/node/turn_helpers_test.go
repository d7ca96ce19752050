package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
	dto "github.com/prometheus/client_model/go"
)

const turnTestSecret = "turn-e2e-0123456789abcdef0123456789abcdef"

// turnNode starts a node with the embedded TURN server on free loopback
// ports: UDP and TCP, and TLS with a self-signed certificate for
// 127.0.0.1 made for the test.
func turnNode(t *testing.T, mutate func(*config.Config)) *testNode {
	t.Helper()
	certFile, keyFile := selfSignedCert(t)
	return startNode(t, func(c *config.Config) {
		c.Turn.Enabled, c.Turn.Secret = true, turnTestSecret
		c.Turn.Port, c.Turn.TLSPort = testutil.FreePort(t), testutil.FreePort(t)
		c.Turn.CertFile, c.Turn.KeyFile = certFile, keyFile
		if mutate != nil {
			mutate(c)
		}
	})
}

// selfSignedCert writes a certificate for 127.0.0.1 and localhost, and its
// key, to the test's directory.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "halo turn test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
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
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "turn.pem"), filepath.Join(dir, "turn.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

var turnLinkRE = regexp.MustCompile(`^<([^>]+)>; rel="ice-server"; username="([^"]*)"; credential="([^"]*)"`)

// linkICEServers asks the node for its ICE servers as a WHEP client does
// (RFC 9725 section 4.6: OPTIONS with the token) and returns the TURN ones
// whose URL starts with prefix, with their credentials.
func linkICEServers(t *testing.T, n *testNode, room, token, prefix string) []webrtc.ICEServer {
	t.Helper()
	resp := doHTTP(t, "OPTIONS", n.base+"/whep/"+room, token, "", "", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("OPTIONS /whep/%s: %d", room, resp.StatusCode)
	}
	var out []webrtc.ICEServer
	for _, v := range resp.Header.Values("Link") {
		m := turnLinkRE.FindStringSubmatch(v)
		if m == nil || !strings.HasPrefix(m[1], prefix) {
			continue
		}
		out = append(out, webrtc.ICEServer{URLs: []string{m[1]}, Username: m[2], Credential: m[3], CredentialType: webrtc.ICECredentialTypePassword})
	}
	if len(out) == 0 {
		t.Fatalf("no TURN Link header starting %q in %v", prefix, resp.Header.Values("Link"))
	}
	return out
}

// gauge reads a series of the node's registry: the sum over its label sets
// that have label=value ("" for any).
func (n *testNode) gauge(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := n.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !metricHas(m, label, value) {
				continue
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func metricHas(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
