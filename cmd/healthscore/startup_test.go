package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthscore/healthscore/httpapi"
	"github.com/healthscore/healthscore/internal/openapitest"
	"github.com/healthscore/healthscore/scorer"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool trusting the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "healthscore test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// TestHTTPListeners: with --http-tls-*, --admin-http and --api-token-file,
// the API is served over TLS and needs the token, the probes and metrics
// are on the admin listener only, and the probes answer while the service
// is still waiting for Kafka.
func TestHTTPListeners(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("t0ken-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := parseServiceFlags([]string{"--http", "127.0.0.1:0", "--admin-http", "127.0.0.1:0", "--http-tls-cert", certFile,
		"--http-tls-key", keyFile, "--api-token-file", tokenFile, "--pprof"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	st := newStartup(scorer.DefaultModel())
	stop, _, err := startHTTP(t.Context(), f, st, newRegistry(), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addr := func(msg string) string {
		for _, e := range logs.FilterMessage(msg).All() {
			return e.ContextMap()["addr"].(string)
		}
		t.Fatalf("no %q log", msg)
		return ""
	}
	api, admin := "https://"+addr("HTTP listening"), "http://"+addr("admin HTTP listening")
	// Both clients check every exchange against the OpenAPI document.
	doc, err := httpapi.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := openapitest.New(doc)
	if err != nil {
		t.Fatal(err)
	}
	tlsClient := &http.Client{Transport: spec.Transport(t, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})}
	plainClient := spec.Client(t)
	get := func(c *http.Client, url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		c          *http.Client
		url, token string
		code       int
		body       string
	}{
		{tlsClient, api + "/v1/customers/c1", "", 401, "bearer token is required"},
		{tlsClient, api + "/v1/customers/c1", "t0ken-value", 503, "Redis is not connected yet"},
		{tlsClient, api + "/metrics", "", 404, "docs/api.md"},
		{tlsClient, api + "/readyz", "", 404, "docs/api.md"},
		{plainClient, admin + "/readyz", "", 503, `"kafka":"connecting to Kafka"`},
		{plainClient, admin + "/livez", "", 200, `"status":"ok"`},
		{plainClient, admin + "/metrics", "", 200, "healthscore_ready 0"},
		{plainClient, admin + "/debug/pprof/", "", 200, "goroutine"},
		{plainClient, admin + "/v1/customers/c1", "t0ken-value", 404, "no route"},
	} {
		if code, body := get(tc.c, tc.url, tc.token); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("GET %s: %d %.200s; want %d with %q", tc.url, code, body, tc.code, tc.body)
		}
	}
	if _, err := http.Get("http://" + strings.TrimPrefix(api, "https://") + "/v1/customers/c1"); err == nil {
		// A plain HTTP request to a TLS listener gets a 400 from net/http, not
		// an error; make sure it is not served.
		code, _ := get(http.DefaultClient, "http://"+strings.TrimPrefix(api, "https://")+"/v1/customers/c1", "t0ken-value")
		if code != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %d", code)
		}
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message+strings.Join(mapValues(e.ContextMap()), " "), "t0ken") {
			t.Errorf("the API token was logged: %s", e.Message)
		}
	}
}

func mapValues(m map[string]any) []string {
	var out []string
	for _, v := range m {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
