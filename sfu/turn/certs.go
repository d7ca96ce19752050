package turn

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certs serves the TLS certificate from cert_file and key_file, read again
// at a handshake after either file's modification time or size changed:
// a renewed certificate (certbot, cert-manager) is used without a restart.
// A renewal that cannot be read keeps the previous certificate and logs.
type certs struct {
	certFile, keyFile string
	log               *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	certStat fileStamp
	keyStat  fileStamp
}

// fileStamp is what tells that a file changed.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// newCerts loads the certificate once: a node does not start with a
// certificate it cannot read.
func newCerts(certFile, keyFile string, log *slog.Logger) (*certs, error) {
	c := &certs{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := c.get(nil); err != nil {
		return nil, err
	}
	return c, nil
}

// get is tls.Config.GetCertificate.
func (c *certs) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, cerr := stamp(c.certFile)
	ks, kerr := stamp(c.keyFile)
	if c.cert != nil && (cerr != nil || kerr != nil || (cs == c.certStat && ks == c.keyStat)) {
		return c.cert, nil // unchanged, or being replaced right now
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		err = fmt.Errorf("turn: certificate %s, key %s: %w", c.certFile, c.keyFile, err)
		if c.cert == nil {
			return nil, err
		}
		c.log.Warn("turn: renewed certificate unreadable, keeping the previous one", "err", err)
		c.certStat, c.keyStat = cs, ks // not again at every handshake
		return c.cert, nil
	}
	if c.cert != nil {
		c.log.Info("turn: certificate reloaded", "cert_file", c.certFile)
	}
	c.cert, c.certStat, c.keyStat = &pair, cs, ks
	return c.cert, nil
}
