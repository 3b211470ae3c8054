// Package credfiles owns what the service's Kafka and Redis clients share
// about credentials given as files: a client TLS configuration from PEM
// files (CA, client certificate and key), and a password or token read from
// a file. Errors name the flag and the file, never what the file holds.
//
// Non-goals: flag parsing (cmd/healthscore), SASL or Redis authentication
// (internal/kafkasec, internal/redisconf), server-side TLS.
package credfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TLS names the files and settings of a TLS client. Flag is the prefix of
// the flags they came from (e.g. "--kafka-tls"), for error messages: the CA
// is Flag+"-ca", the certificate Flag+"-cert", the key Flag+"-key".
type TLS struct {
	Flag               string
	CAFile             string // PEM CAs that sign the server certificate; empty: the system's
	CertFile, KeyFile  string // PEM client certificate and key; empty: none
	ServerName         string // name verified in the server certificate; empty: the dialled host
	InsecureSkipVerify bool   // the caller logs it loudly
}

// ClientConfig reads the files and returns the client TLS configuration
// (TLS 1.2 at least).
func (t TLS) ClientConfig() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // explicit, documented, logged opt-in
	}
	if t.CAFile != "" {
		pem, err := readFile(t.CAFile, t.Flag+"-ca")
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s-ca %s holds no PEM certificate", t.Flag, t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// LoadX509KeyPair's errors name files and PEM blocks, never
			// key material.
			return nil, fmt.Errorf("cannot load %s-cert %s and %s-key %s: %w", t.Flag, t.CertFile, t.Flag, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// ReadSecret returns the contents of the file named by flag, without
// trailing line breaks. An empty file is an error: a secret mounted from a
// missing key must not quietly mean "no password".
func ReadSecret(path, flag string) (string, error) {
	b, err := readFile(path, flag)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("%s %s is empty", flag, path)
	}
	return s, nil
}

// readFile reads path, with an error that names flag and path once.
func readFile(path, flag string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return nil, fmt.Errorf("cannot read %s %s: %w", flag, path, err)
	}
	return b, nil
}
