package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healthscore/healthscore/internal/redisproc"
	"github.com/healthscore/healthscore/internal/testenv"
)

// Startup: what `healthscore run` does when Kafka or Redis are unset, set
// but empty, or not there yet; healthscore_ready equals /readyz in every
// state.

// freePort returns a loopback port nothing listens on (now).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// get returns the status and body of GET path.
func (s *service) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := s.client.Get(s.http + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// readyGauge reads healthscore_ready from /metrics.
func (s *service) readyGauge(t *testing.T) float64 {
	t.Helper()
	_, body := s.get(t, "/metrics")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "healthscore_ready "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatal("no healthscore_ready in /metrics")
	return -1
}

// waitReadyz polls /readyz until it answers status with a body containing
// want, then checks that healthscore_ready agrees.
func (s *service) waitReadyz(t *testing.T, status int, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := s.get(t, "/readyz")
		if code == status && strings.Contains(body, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s; want %d with %q", code, body, status, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	want1 := 0.0
	if status == http.StatusOK {
		want1 = 1
	}
	if g := s.readyGauge(t); g != want1 {
		t.Errorf("healthscore_ready = %v while /readyz answers %d", g, status)
	}
	if code, body := s.get(t, "/livez"); code != http.StatusOK {
		t.Errorf("/livez: %d %s", code, body)
	}
}

// TestStartupEmbedded: with --brokers and --redis unset (flag and env),
// the embedded broker and Redis start and the service becomes ready.
func TestStartupEmbedded(t *testing.T) {
	s := startServiceEnv(t, withoutEnv("HEALTHSCORE_BROKERS", "HEALTHSCORE_REDIS_URL"), "--broker-port", "0")
	s.waitReadyz(t, http.StatusOK, `"kafka":"ok: member of group healthscore, 8 partitions assigned"`)
	if !strings.Contains(s.logs.String(), "started an embedded in-memory Kafka-compatible broker") {
		t.Error("the embedded broker was not announced")
	}
	// The page, the document and the data endpoints answer as the OpenAPI
	// document says (s.get checks every exchange), even with no customer.
	for path, want := range map[string]string{
		"/":                               "",
		"/ui/":                            `<script type="module" src="app.js"></script>`,
		"/ui/app.js":                      "getJSON",
		"/openapi.json":                   `"openapi": "3.0.3"`,
		"/v1/model":                       `"name":"b2b-saas"`,
		"/v1/forecast?band=red":           `"customers":[]`,
		"/v1/customers?band=red":          `"customers":[]`,
		"/v1/customers/nobody":            `has no applied events`,
		"/v1/customers/nobody/history":    `has no applied event`,
		"/v1/customers?band=purple":       "band must be red, yellow or green",
		"/v1/forecast?band=red&within=1w": "must be a whole number of hours or days",
	} {
		if _, body := s.get(t, path); !strings.Contains(body, want) {
			t.Errorf("GET %s: %s; want %q", path, body, want)
		}
	}
	_, metrics := s.get(t, "/metrics")
	for _, want := range []string{`healthscore_model_info{name="b2b-saas",version="`, `healthscore_build_info{goversion="go`,
		`healthscore_dead_letters_total{reason="time_skew"} 0`, `healthscore_consumer_lag_seconds{partition="0",topic="customer-events"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// withoutEnv returns this process's environment without the named
// variables (for exec.Cmd.Env, which then replaces it).
func withoutEnv(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || name == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// TestStartupSetButEmpty: an empty HEALTHSCORE_BROKERS or
// HEALTHSCORE_REDIS_URL (a missing Secret key) stops the start with a
// message naming it, instead of starting an embedded one.
func TestStartupSetButEmpty(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{env: []string{"HEALTHSCORE_BROKERS="}, want: "HEALTHSCORE_BROKERS is set but empty"},
		{env: []string{"HEALTHSCORE_REDIS_URL="}, want: "HEALTHSCORE_REDIS_URL is set but empty"},
		{args: []string{"--brokers", " "}, want: "--brokers is set but empty"},
		{env: []string{"HEALTHSCORE_BROKERS=127.0.0.1:1"}, args: []string{"--demo"}, want: "pass --demo-allow-external"},
	} {
		cmd := exec.Command(binary(t), append([]string{"run", "--http", "127.0.0.1:0"}, tc.args...)...)
		cmd.Env = append(withoutEnv("HEALTHSCORE_BROKERS", "HEALTHSCORE_REDIS_URL"), tc.env...)
		out, err := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		if err == nil || code == 0 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v %v: exit %d, %s; want a failure saying %q", tc.env, tc.args, code, out, tc.want)
		}
		if strings.Contains(string(out), "HTTP listening") {
			t.Errorf("%v %v: started serving before failing", tc.env, tc.args)
		}
	}
}

// TestStartupBrokerDown: with the broker not there yet, the service keeps
// trying (ready 0, /readyz says why, /livez 200) and becomes ready once a
// broker listens on the port, without any probe needed for the gauge.
func TestStartupBrokerDown(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s := startServiceEnv(t, withoutEnv("HEALTHSCORE_REDIS_URL"), "--brokers", addr)
	s.waitReadyz(t, http.StatusServiceUnavailable, `"kafka":"waiting for Kafka at `+addr+`: `)

	broker := exec.Command(binary(t), "dev-broker", "--port", strconv.Itoa(port), "--partitions", "2")
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = broker.Process.Signal(os.Interrupt); _ = broker.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for s.readyGauge(t) != 1 { // the periodic evaluation, no /readyz call
		if time.Now().After(deadline) {
			t.Fatal("healthscore_ready did not become 1 after the broker started")
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.waitReadyz(t, http.StatusOK, `"kafka":"ok: member of group healthscore, 2 partitions assigned"`)
	s.stop(t) // before the broker
}

// TestStartupStopWhileWaiting: SIGTERM while waiting for the broker stops
// the process at once, with exit status 0.
func TestStartupStopWhileWaiting(t *testing.T) {
	s := startServiceEnv(t, withoutEnv("HEALTHSCORE_REDIS_URL"), "--brokers", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	s.waitReadyz(t, http.StatusServiceUnavailable, "waiting for Kafka")
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("exit after SIGTERM while waiting: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %s to stop", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop within 10 s of SIGTERM")
	}
	if !strings.Contains(s.logs.String(), "shutdown requested while starting") {
		t.Error("no log line for the stop while starting")
	}
}

// TestStartupRedisDown: with redis-server not there yet, the service waits
// for it (ready 0 with the reason), and becomes ready once it starts.
func TestStartupRedisDown(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv(testenv.EnvRequireRedis) == "1" {
			t.Fatal(err)
		}
		t.Skip("redis-server not installed")
	}
	dir, err := os.MkdirTemp("/tmp", "hsrd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rs, sock, err := redisproc.Command(dir, "--save", "", "--appendonly", "no")
	if err != nil {
		t.Fatal(err)
	}
	s := startServiceEnv(t, withoutEnv("HEALTHSCORE_BROKERS"), "--broker-port", "0", "--redis", "unix://"+sock)
	s.waitReadyz(t, http.StatusServiceUnavailable, `"redis":"waiting for Redis at unix://`+sock)

	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rs.Process.Kill(); _ = rs.Wait() }()
	c := redisproc.Client(sock)
	defer c.Close()
	if err := redisproc.WaitReady(context.Background(), c, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	s.waitReadyz(t, http.StatusOK, `"redis":"ok"`)
	s.stop(t) // before redis-server
}
