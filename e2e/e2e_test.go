// Package e2e holds end-to-end tests that run the real healthscore binary
// against a Kafka-compatible broker (in-process kfake, or HEALTHSCORE_TEST_BROKERS)
// and a real redis-server (or HEALTHSCORE_TEST_REDIS), with real independent
// clients producing to it.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/httpapi"
	"github.com/healthscore/healthscore/internal/openapitest"
	"github.com/healthscore/healthscore/internal/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := testenv.RunWithRedis(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds cmd/healthscore once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "hs-e2e")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "healthscore")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, "../cmd/healthscore").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// redisURL returns a URL for the test Redis.
func redisURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv(testenv.EnvRedisURL); u != "" {
		return u
	}
	o := testenv.RedisOptions(t)
	if o.Network == "unix" {
		return "unix://" + o.Addr
	}
	return "redis://" + o.Addr
}

// service is a running healthscore process.
type service struct {
	cmd    *exec.Cmd
	http   string       // base URL
	client *http.Client // checks every exchange against the OpenAPI document
	logs   *lockedBuffer
	done   chan error
}

var (
	apiOnce sync.Once
	apiV    *openapitest.Validator
	apiErr  error
)

// apiClient returns an HTTP client that checks every request and response
// against the service's OpenAPI document (httpapi/openapi.yaml) and fails
// t on a mismatch: every call of this suite to the HTTP API goes through
// one, so the document cannot drift from what the binary serves.
func apiClient(t *testing.T) *http.Client {
	t.Helper()
	apiOnce.Do(func() {
		doc, err := httpapi.OpenAPI()
		if err != nil {
			apiErr = err
			return
		}
		apiV, apiErr = openapitest.New(doc)
	})
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	return apiV.Client(t)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startService runs `healthscore run` with args and waits for its HTTP
// listener. The process is stopped with SIGTERM at cleanup, and its logs are
// printed if the test failed.
func startService(t *testing.T, args ...string) *service {
	t.Helper()
	return startServiceEnv(t, nil, args...)
}

// startServiceEnv is startService with extra environment variables
// ("NAME=value") on top of this process's.
func startServiceEnv(t *testing.T, env []string, args ...string) *service {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"run", "--http", "127.0.0.1:0", "--log-level", "debug"}, args...)...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &service{cmd: cmd, client: apiClient(t), logs: &lockedBuffer{}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			var l struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "HTTP listening" {
				addr <- l.Addr
			}
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("healthscore logs:\n%s", s.logs.String())
		}
	})
	select {
	case a := <-addr:
		s.http = "http://" + a
	case err := <-s.done:
		s.done <- err
		t.Fatalf("healthscore exited before listening: %v\n%s", err, s.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("healthscore did not start listening in 60 s\n%s", s.logs.String())
	}
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *service) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("healthscore exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("healthscore did not stop within 60 s of SIGINT")
	}
}

func (s *service) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := s.client.Get(s.http + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// waitCommitted waits until the group has committed every record of topic.
// opts are more client options (TLS, SASL).
func waitCommitted(t *testing.T, brokers []string, group, topic string, timeout time.Duration, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			committed, err := adm.FetchOffsets(ctx, group)
			if err == nil {
				behind := int64(0)
				ends.Each(func(o kadm.ListedOffset) {
					c, ok := committed.Lookup(topic, o.Partition)
					switch {
					case !ok:
						behind += o.Offset
					case c.At < o.Offset:
						behind += o.Offset - c.At
					}
				})
				if behind == 0 {
					return
				}
				if ctx.Err() != nil {
					t.Fatalf("group %s still %d records behind on %s", group, behind, topic)
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for group %s to commit %s: %v", group, topic, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readAll reads every record of topic, from start to the current end. opts
// are more client options (TLS, SASL).
func readAll(t *testing.T, brokers []string, topic string, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cl.AddConsumeTopics(topic)
	var recs []*kgo.Record
	for int64(len(recs)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(recs), want, topic, ctx.Err())
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}
