package credfiles

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "credfiles test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
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
	write(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	write(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	tc, err := TLS{Flag: "--x-tls", CAFile: cert, CertFile: cert, KeyFile: key, ServerName: "broker-1"}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "broker-1" || tc.InsecureSkipVerify || tc.MinVersion == 0 {
		t.Errorf("config = %+v", tc)
	}
	none, err := TLS{Flag: "--x-tls"}.ClientConfig()
	if err != nil || none.RootCAs != nil || len(none.Certificates) != 0 {
		t.Errorf("no files: %+v, %v; want the system roots and no client certificate", none, err)
	}

	notPEM := filepath.Join(dir, "not.pem")
	write(t, notPEM, "secret-looking content")
	for _, tc := range []struct {
		cfg  TLS
		want string
	}{
		{TLS{Flag: "--x-tls", CAFile: filepath.Join(dir, "missing")}, "cannot read --x-tls-ca " + filepath.Join(dir, "missing") + ": no such file"},
		{TLS{Flag: "--x-tls", CAFile: notPEM}, "--x-tls-ca " + notPEM + " holds no PEM certificate"},
		{TLS{Flag: "--x-tls", CertFile: notPEM, KeyFile: notPEM}, "cannot load --x-tls-cert " + notPEM},
		{TLS{Flag: "--x-tls", CertFile: cert}, "cannot load --x-tls-cert"},
	} {
		_, err := tc.cfg.ClientConfig()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-looking") {
			t.Errorf("the error shows the file's contents: %v", err)
		}
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	write(t, pw, "s3cret: with spaces \r\n\n")
	if got, err := ReadSecret(pw, "--pw-file"); err != nil || got != "s3cret: with spaces " {
		t.Errorf("ReadSecret = %q, %v; want the contents without the trailing line breaks", got, err)
	}
	empty := filepath.Join(dir, "empty")
	write(t, empty, " \n")
	missing := filepath.Join(dir, "missing")
	for path, want := range map[string]string{
		empty:   "--pw-file " + empty + " is empty",
		missing: "cannot read --pw-file " + missing + ": no such file or directory",
	} {
		if _, err := ReadSecret(path, "--pw-file"); err == nil || err.Error() != want {
			t.Errorf("ReadSecret(%s): %v, want %q", path, err, want)
		}
	}
}
