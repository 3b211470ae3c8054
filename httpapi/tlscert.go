package httpapi

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// CertFiles is a TLS certificate and key read from PEM files, and read again
// when either file changes (checked at most once per CheckInterval), so that
// a renewed certificate (cert-manager, a rotated Secret) is served without a
// restart. A pair that becomes unreadable or mismatched keeps the previous
// one, and is logged.
type CertFiles struct {
	certFile, keyFile string
	log               *zap.Logger
	now               func() time.Time
	every             time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of both files
	checked time.Time
}

// NewCertFiles loads the pair; an unreadable or invalid pair is an error.
func NewCertFiles(certFile, keyFile string, log *zap.Logger) (*CertFiles, error) {
	if log == nil {
		return nil, errors.New("cannot load the TLS certificate: no Logger")
	}
	c := &CertFiles{certFile: certFile, keyFile: keyFile, log: log, now: time.Now, every: CheckInterval}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CertFiles) stampNow() string {
	s := ""
	for _, f := range []string{c.certFile, c.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return s
}

func (c *CertFiles) load() error {
	stamp := c.stampNow()
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("cannot load the TLS certificate and key: %w", err)
	}
	c.cert, c.stamp = &cert, stamp
	return nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= c.every {
		c.checked = now
		if c.stampNow() != c.stamp {
			if err := c.load(); err != nil {
				c.stamp = c.stampNow() // do not retry a bad pair on every handshake
				c.log.Warn("keeping the previous TLS certificate", zap.Error(err))
			} else {
				c.log.Info("TLS certificate files changed: serving the new certificate", zap.String("cert", c.certFile))
			}
		}
	}
	return c.cert, nil
}
