//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// This file holds what the Redis topology tests share: redis-server and
// redis-sentinel processes on loopback TCP ports in temp dirs, test
// certificates, and the checks of a finished run against the offline fold.

// redisBinary returns the path of a Redis binary (redis-server or
// redis-sentinel), skipping the test when it is absent unless
// HEALTHSCORE_REQUIRE_REDIS=1.
func redisBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(testenv.EnvRequireRedis) == "1" {
			t.Fatalf("%s is not installed (Debian: apt-get install redis-server redis-sentinel)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// redisNode is a redis-server (or redis-sentinel) process in its own dir,
// on a loopback port. It is killed when the test ends.
type redisNode struct {
	t     *testing.T
	bin   string
	dir   string
	port  int
	args  []string
	ready string // log line that says it is up
	cmd   *exec.Cmd
	done  chan struct{}
}

func (n *redisNode) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

func (n *redisNode) logPath() string { return filepath.Join(n.dir, "redis.log") }

// startRedisNode starts bin with a config file holding conf (plus dir,
// logfile and no daemonizing) and waits until its log says ready.
func startRedisNode(t *testing.T, bin string, port int, conf, ready string) *redisNode {
	t.Helper()
	dir, err := os.MkdirTemp("", "hsn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &redisNode{t: t, bin: bin, dir: dir, port: port, ready: ready}
	full := fmt.Sprintf("daemonize no\ndir %s\nlogfile %s\nbind 127.0.0.1\n%s\n", dir, n.logPath(), conf)
	if err := os.WriteFile(filepath.Join(dir, "redis.conf"), []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	n.args = []string{filepath.Join(dir, "redis.conf")}
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			b, _ := os.ReadFile(n.logPath())
			t.Logf("--- %s log (port %d) ---\n%s", filepath.Base(bin), port, lastLines(string(b), 40))
		}
	})
	n.start()
	return n
}

func (n *redisNode) start() {
	n.t.Helper()
	from := int64(0)
	if fi, err := os.Stat(n.logPath()); err == nil {
		from = fi.Size()
	}
	n.cmd = exec.Command(n.bin, n.args...)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(n.cmd, n.done)
	n.waitLog(n.ready, from, 15*time.Second)
}

// waitLog waits until the log, from byte offset from, holds s.
func (n *redisNode) waitLog(s string, from int64, timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(n.logPath())
		if int64(len(b)) > from && bytes.Contains(b[from:], []byte(s)) {
			return
		}
		select {
		case <-n.done:
			n.t.Fatalf("%s on port %d exited before logging %q:\n%s", n.bin, n.port, s, lastLines(string(b), 30))
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s on port %d did not log %q in %s:\n%s", n.bin, n.port, s, timeout, lastLines(string(b), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs the process and waits for it.
func (n *redisNode) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Kill()
	<-n.done
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// testCerts are a CA and a server and a client certificate signed by it,
// written as PEM files into a temp dir.
type testCerts struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func makeCerts(t *testing.T) testCerts {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "healthscore test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage ...x509.ExtKeyUsage) ([]byte, []byte) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der, kd
	}
	// Redis also presents its server certificate as a client (replication),
	// so it gets both usages.
	sDER, sKey := leaf(2, "redis", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	cDER, cKey := leaf(3, "healthscore", x509.ExtKeyUsageClientAuth)
	return testCerts{
		ca:         write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", sDER),
		serverKey:  write("server-key.pem", "EC PRIVATE KEY", sKey),
		clientCert: write("client.pem", "CERTIFICATE", cDER),
		clientKey:  write("client-key.pem", "EC PRIVATE KEY", cKey),
	}
}

// produceLines sends lines keyed by customer.
func produceLines(t *testing.T, brokers []string, lines [][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("customer-events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(lines))
	for i, l := range lines {
		var ev testEvent
		_ = json.Unmarshal(l, &ev)
		recs[i] = &kgo.Record{Key: []byte(ev.CustomerID), Value: l}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// checkAgainstOffline compares every customer's state in the store with the
// offline fold of lines: the same number of events applied (fewer: lost;
// more: applied twice) and the same score at the last event.
func checkAgainstOffline(t *testing.T, store *state.Redis, lines [][]byte) map[string]state.Record {
	t.Helper()
	m := scorer.DefaultModel()
	res, err := offline.Fold([]offline.Input{{Name: "events", R: bytes.NewReader(bytes.Join(lines, []byte("\n")))}}, offline.Options{Model: m})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.States) < 10 {
		t.Fatalf("offline fold has %d customers", len(res.States))
	}
	ctx := context.Background()
	recs := map[string]state.Record{}
	lost, twice := 0, 0
	for id, want := range res.States {
		rec, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		recs[id] = rec
		got, err := m.DecodeState(rec.Data)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		switch {
		case got.Events < want.Events:
			lost += int(want.Events - got.Events)
			t.Errorf("%s: %d events applied, offline %d: lost", id, got.Events, want.Events)
		case got.Events > want.Events:
			twice += int(got.Events - want.Events)
			t.Errorf("%s: %d events applied, offline %d: applied twice", id, got.Events, want.Events)
		}
		gs, ws := m.Evaluate(got, res.At).Score, m.Evaluate(want, res.At).Score
		if d := gs - ws; d > 1e-9*max(1, ws) || d < -1e-9*max(1, ws) {
			t.Errorf("%s: score %v, offline %v", id, gs, ws)
		}
	}
	t.Logf("%d customers, %d events applied offline; lost %d, applied twice %d", len(res.States), res.Applied, lost, twice)
	return recs
}

// checkAlerts reads the alert topic, de-duplicated by CloudEvents id: per
// customer the alerts must alternate health.low / health.recovered starting
// with health.low, and the last must match the final band (red ⇔ last is
// health.low); otherwise an alert was lost.
func checkAlerts(t *testing.T, brokers []string, recs map[string]state.Record) {
	t.Helper()
	seen := map[string]bool{}
	byCustomer := map[string][]string{}
	for _, r := range readAll(t, brokers, "customer-health-alerts") {
		var ce struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal(r.Value, &ce); err != nil {
			t.Fatalf("alert %s: %v", r.Value, err)
		}
		if seen[ce.ID] {
			continue
		}
		seen[ce.ID] = true
		byCustomer[ce.Subject] = append(byCustomer[ce.Subject], ce.Type) // one partition per customer: in order
	}
	red := 0
	for id, rec := range recs {
		as := byCustomer[id]
		for i, a := range as {
			want := alerts.TypeLow
			if i%2 == 1 {
				want = alerts.TypeRecovered
			}
			if a != want {
				t.Errorf("%s: alert %d is %s, want %s (alerts %v)", id, i, a, want, as)
				break
			}
		}
		endsLow := len(as) > 0 && as[len(as)-1] == alerts.TypeLow
		if rec.Band == state.BandRed {
			red++
		}
		if (rec.Band == state.BandRed) != endsLow {
			t.Errorf("%s: band %s but alerts %v: an alert is missing", id, rec.Band, as)
		}
	}
	if red == 0 {
		t.Error("no customer ended red: the events should make some red")
	}
	t.Logf("%d unique alerts, %d customers end red", len(seen), red)
}

// metric returns the sum of the samples of name on the service's /metrics
// (-1 when absent).
func (s *service) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := s.client.Get(s.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum, found := 0.0, false
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}
