package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/internal/redisproc"
)

// Environment variables read by this package.
const (
	EnvRedisURL     = "HEALTHSCORE_TEST_REDIS"
	EnvRequireRedis = "HEALTHSCORE_REQUIRE_REDIS"
)

const (
	redisStartTimeout = 10 * time.Second
	redisStopTimeout  = 5 * time.Second
)

// server is the package-wide Redis used by the tests of one test binary.
var server struct {
	mu      sync.Mutex
	inMain  bool           // RunWithRedis is active
	started bool           // start was attempted (result below)
	opts    *redis.Options // nil if unavailable
	skip    string         // reason to skip when opts is nil and err is nil
	err     error          // start failure
	proc    *exec.Cmd      // nil when external
	exited  chan struct{}  // closed when proc has exited
	dir     string         // temp dir of the started server
}

// RunWithRedis runs the tests of m and stops the redis-server that [Redis]
// may have started for them. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.RunWithRedis(m)) }
//
// The server is started lazily by the first test that needs it, so
// `go test -run` selections without Redis tests never start one.
func RunWithRedis(m *testing.M) int {
	server.mu.Lock()
	server.inMain = true
	server.mu.Unlock()
	code := m.Run()
	if err := stopRedis(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// RedisOptions returns client options for the package's Redis server,
// starting it if needed. It skips the test when no server can be had, or
// fails it when HEALTHSCORE_REQUIRE_REDIS=1. Callers that use these options
// directly must isolate their keys themselves, e.g. with [KeyPrefix].
func RedisOptions(tb testing.TB) *redis.Options {
	tb.Helper()
	server.mu.Lock()
	defer server.mu.Unlock()
	if !server.started {
		server.started = true
		server.opts, server.skip, server.err = startRedis()
	}
	switch {
	case server.err != nil:
		tb.Fatalf("testenv: %v", server.err)
	case server.opts == nil && os.Getenv(EnvRequireRedis) == "1":
		tb.Fatalf("testenv: %s, and %s=1 requires Redis", server.skip, EnvRequireRedis)
	case server.opts == nil:
		tb.Skipf("testenv: %s (set %s=1 to make this a failure)", server.skip, EnvRequireRedis)
	}
	o := *server.opts
	return &o
}

// Redis returns a new client of the package's Redis server and a key prefix
// unique to this call (e.g. "t-3f9a1c2b:"). The test must keep its keys under
// the prefix; they are deleted and the client closed when the test ends.
// Tests using different prefixes may run in parallel.
func Redis(tb testing.TB) (*redis.Client, string) {
	tb.Helper()
	c := redis.NewClient(RedisOptions(tb))
	prefix := KeyPrefix(tb)
	tb.Cleanup(func() {
		// A fresh context: the test's context is already canceled here.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := deletePrefix(ctx, c, prefix); err != nil {
			tb.Errorf("testenv: cannot delete keys under %q: %v", prefix, err)
		}
		if err := c.Close(); err != nil {
			tb.Errorf("testenv: cannot close redis client: %v", err)
		}
	})
	return c, prefix
}

// KeyPrefix returns a random key prefix, unique per call, that contains no
// hash-tag braces and no glob metacharacters.
func KeyPrefix(tb testing.TB) string {
	tb.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("testenv: cannot make key prefix: %v", err)
	}
	return "t-" + hex.EncodeToString(b[:]) + ":"
}

func deletePrefix(ctx context.Context, c *redis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := c.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) > 0 {
		return c.Unlink(ctx, keys...).Err()
	}
	return nil
}

// startRedis returns options of an external server (HEALTHSCORE_TEST_REDIS)
// or of a newly started redis-server; a skip reason when none is available.
// server.mu is held.
func startRedis() (*redis.Options, string, error) {
	if url := os.Getenv(EnvRedisURL); url != "" {
		o, err := redis.ParseURL(url)
		if err != nil {
			return nil, "", fmt.Errorf("cannot parse %s: %w", EnvRedisURL, err)
		}
		if err := waitPing(o, redisStartTimeout, nil); err != nil {
			return nil, "", fmt.Errorf("cannot reach redis at %s=%s: %w", EnvRedisURL, url, err)
		}
		return o, "", nil
	}
	if !server.inMain {
		return nil, "", errors.New("the package's TestMain must call testenv.RunWithRedis to use a local redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, "redis-server not found in PATH (install redis-server or set " + EnvRedisURL + ")", nil
	}
	// Unix socket paths are limited to ~100 bytes: keep the dir short.
	dir, err := os.MkdirTemp("/tmp", "hsr")
	if err != nil {
		return nil, "", fmt.Errorf("cannot create redis dir: %w", err)
	}
	logFile := filepath.Join(dir, "redis.log")
	cmd, sock, err := redisproc.Command(dir, "--save", "", "--appendonly", "no",
		"--pidfile", filepath.Join(dir, "redis.pid"), "--logfile", logFile)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("cannot start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	server.proc, server.exited, server.dir = cmd, exited, dir
	o := &redis.Options{Network: "unix", Addr: sock}
	if err := waitPing(o, redisStartTimeout, exited); err != nil {
		log, _ := os.ReadFile(logFile)
		_ = stopLocked()
		return nil, "", fmt.Errorf("redis-server did not answer PING: %w\n--- redis.log ---\n%s", err, strings.TrimSpace(string(log)))
	}
	return o, "", nil
}

// waitPing waits until the server of o answers PING (see
// redisproc.WaitReady); exited, when not nil, is closed when the process is
// gone.
func waitPing(o *redis.Options, timeout time.Duration, exited <-chan struct{}) error {
	c := redis.NewClient(o)
	defer c.Close()
	var gone func() bool
	if exited != nil {
		gone = func() bool {
			select {
			case <-exited:
				return true
			default:
				return false
			}
		}
	}
	return redisproc.WaitReady(context.Background(), c, timeout, gone)
}

func stopRedis() error {
	server.mu.Lock()
	defer server.mu.Unlock()
	return stopLocked()
}

// stopLocked terminates the started server and removes its dir. server.mu is held.
func stopLocked() error {
	cmd, exited, dir := server.proc, server.exited, server.dir
	server.proc, server.exited, server.dir = nil, nil, ""
	if cmd == nil {
		return nil
	}
	var errs []error
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(redisStopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		errs = append(errs, errors.New("redis-server ignored SIGTERM; killed"))
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("cannot remove %s: %w", dir, err))
	}
	return errors.Join(errs...)
}
