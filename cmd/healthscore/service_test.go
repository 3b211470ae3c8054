package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthscore/healthscore/internal/redisproc"
	"github.com/healthscore/healthscore/state"
)

// TestResolveCommitDelay: "auto" waits only where waiting makes writes
// durable, read from a real redis-server's settings; explicit values pass
// through; a Redis that does not answer CONFIG GET gets the safe 2 s.
func TestResolveCommitDelay(t *testing.T) {
	ctx := context.Background()
	log := zap.NewNop()
	for flag, want := range map[string]time.Duration{"2s": 2 * time.Second, "500ms": 500 * time.Millisecond, "-1s": -time.Second, "0s": -1} {
		if got, err := resolveCommitDelay(ctx, flag, nil, log); err != nil || got != want {
			t.Errorf("--commit-delay %s: %v, %v; want %v", flag, got, err, want)
		}
	}
	if _, err := resolveCommitDelay(ctx, "soon", nil, log); err == nil {
		t.Error("--commit-delay soon accepted")
	}

	mr := miniredis.RunT(t) // no CONFIG command
	mc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer mc.Close()
	if got, err := resolveCommitDelay(ctx, "auto", newStore(t, mc), log); err != nil || got != 2*time.Second {
		t.Errorf("auto without CONFIG: %v, %v; want 2s", got, err)
	}

	c := startRedisServer(t)
	s := newStore(t, c)
	for _, tc := range []struct {
		appendonly, fsync string
		want              time.Duration
	}{
		{"no", "everysec", -1},
		{"yes", "everysec", 2 * time.Second},
		{"yes", "always", -1},
		{"yes", "no", 2 * time.Second},
	} {
		if err := c.ConfigSet(ctx, "appendfsync", tc.fsync).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.ConfigSet(ctx, "appendonly", tc.appendonly).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := resolveCommitDelay(ctx, "auto", s, log); err != nil || got != tc.want {
			t.Errorf("auto with appendonly %s, appendfsync %s: %v, %v; want %v", tc.appendonly, tc.fsync, got, err, tc.want)
		}
	}
}

// startRedisServer starts a redis-server with extra arguments for the test
// and returns a client of it (skipped without one, unless
// HEALTHSCORE_REQUIRE_REDIS=1).
func startRedisServer(t *testing.T, extra ...string) *redis.Client {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("HEALTHSCORE_REQUIRE_REDIS") == "1" {
			t.Fatal(err)
		}
		t.Skip("redis-server not installed")
	}
	dir, err := os.MkdirTemp("/tmp", "hscd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd, sock, err := redisproc.Command(dir, append([]string{"--save", "", "--appendonly", "no"}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := redisproc.Client(sock)
	t.Cleanup(func() { c.Close() })
	if err := redisproc.WaitReady(context.Background(), c, 10*time.Second, func() bool { return false }); err != nil {
		t.Fatal(err)
	}
	return c
}

func newStore(t *testing.T, c *redis.Client) *state.Redis {
	t.Helper()
	s, err := state.NewRedis(c, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSetButEmpty: a flag counts as set when given on the command line or
// when its environment variable exists, even empty; set but empty is an
// error naming where it came from; unset is fine (embedded).
func TestSetButEmpty(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		args    []string
		wantErr string // "" : valid
		set     bool   // brokers set
	}{
		{},
		{env: map[string]string{"HEALTHSCORE_BROKERS": ""}, wantErr: "HEALTHSCORE_BROKERS is set but empty", set: true},
		{env: map[string]string{"HEALTHSCORE_BROKERS": " , "}, wantErr: "HEALTHSCORE_BROKERS is set but empty", set: true},
		{env: map[string]string{"HEALTHSCORE_BROKERS": "k:9092"}, args: []string{"--brokers", ""}, wantErr: "--brokers is set but empty", set: true},
		{env: map[string]string{"HEALTHSCORE_BROKERS": ""}, args: []string{"--brokers", "k:9092"}, set: true},
		{env: map[string]string{"HEALTHSCORE_REDIS_URL": ""}, wantErr: "HEALTHSCORE_REDIS_URL is set but empty"},
		{args: []string{"--redis="}, wantErr: "--redis is set but empty"},
		{args: []string{"--brokers", "k:9092", "--demo"}, wantErr: "pass --demo-allow-external", set: true},
		{args: []string{"--brokers", "k:9092", "--demo", "--demo-allow-external"}, set: true},
		{args: []string{"--demo"}},
		{args: []string{"--http-tls-cert", "c.pem"}, wantErr: "--http-tls-cert and --http-tls-key go together"},
		{args: []string{"--liveness-timeout", "0s"}, wantErr: "--liveness-timeout must be positive"},
		{args: []string{"--producer-compression", "gzip"}, wantErr: `--producer-compression must be one of none, snappy, lz4, zstd, got "gzip"`},
		{env: map[string]string{"HEALTHSCORE_PRODUCER_COMPRESSION": "LZ4"}, wantErr: `got "LZ4"`},
		{args: []string{"--producer-compression", "zstd"}},
		// Checked at once, not after waiting for Kafka (and not retried).
		{args: []string{"--commit-delay", "bogus"}, wantErr: `--commit-delay "bogus"`},
		{args: []string{"--redis-wait-replicas", "some"}, wantErr: `--redis-wait-replicas "some"`},
		{args: []string{"--redis", "redis://r:6379", "--redis-cluster", "a:7000"}, wantErr: "exclude each other"},
		{args: []string{"--redis-sentinel", "s:26379"}, wantErr: "--redis-sentinel-master"},
	} {
		for _, n := range []string{"HEALTHSCORE_BROKERS", "HEALTHSCORE_REDIS_URL", "HEALTHSCORE_PRODUCER_COMPRESSION"} {
			t.Setenv(n, "")
			os.Unsetenv(n) // t.Setenv restores it at the end
		}
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		f, err := parseServiceFlags(tc.args, io.Discard)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v %v: %v", tc.env, tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v %v: %v; want %q", tc.env, tc.args, err, tc.wantErr)
		case err == nil && f.env.isSet("brokers") != tc.set:
			t.Errorf("%v %v: brokers set = %v, want %v", tc.env, tc.args, f.env.isSet("brokers"), tc.set)
		}
	}
	t.Setenv("HEALTHSCORE_REDIS_URL", "redis://r:6379")
	f, err := parseServiceFlags(nil, io.Discard)
	if err != nil || !f.env.isSet("brokers", "redis") || f.env.isSet("brokers") {
		t.Errorf("isSet over several flags: %v", err)
	}
}

// TestHelp: `healthscore --help`, `-h` and `help` list the commands; -h on
// every command exits 0 with its usage.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var out, errb strings.Builder
		if code := run(args, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "healthscore dev-broker") {
			t.Errorf("%v: exit %d, %q", args, code, out.String())
		}
	}
	for cmd, want := range map[string]string{"run": "Usage: healthscore [run]", "score": "Usage: healthscore score", "model": "healthscore model show",
		"model check": "healthscore model check FILE", "model diff": "healthscore model diff",
		"dev-broker": "Usage: healthscore dev-broker", "bench": "Usage: healthscore bench",
		"backtest": "Usage: healthscore backtest", "fit": "healthscore fit", "convert": "Usage: healthscore convert csv",
		"convert csv": "Usage: healthscore convert csv", "simulate": "Usage: healthscore simulate"} {
		var out, errb strings.Builder
		code := run(append(strings.Fields(cmd), "-h"), strings.NewReader(""), &out, &errb)
		if code != 0 || !strings.Contains(out.String()+errb.String(), want) {
			t.Errorf("%s -h: exit %d, %q %q", cmd, code, out.String(), errb.String())
		}
	}
	var out, errb strings.Builder
	if code := run([]string{"run", "--no-such-flag"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Errorf("run --no-such-flag: exit %d, want 2", code)
	}
}

// TestWaitFor: a dependency that fails is retried, the probes see why,
// and a cancelled wait returns at once.
func TestWaitFor(t *testing.T) {
	var d dependency
	calls := 0
	err := waitFor(context.Background(), &d, "Kafka at k:9092", zap.NewNop(), func(context.Context) error {
		calls++
		if calls < 3 {
			if e := d.err(); calls > 1 && (e == nil || e.Error() != "waiting for Kafka at k:9092: connection refused") {
				t.Errorf("while waiting: %v", e)
			}
			return errors.New("connection refused")
		}
		return nil
	})
	if err != nil || calls != 3 || d.err() != nil {
		t.Errorf("waitFor: %v after %d calls, then %v", err, calls, d.err())
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for d.err() == nil || !strings.Contains(d.err().Error(), "down") {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	err = waitFor(ctx, &d, "Redis", zap.NewNop(), func(context.Context) error { return errors.New("down") })
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Errorf("cancelled wait: %v after %s", err, time.Since(start))
	}
}

// TestBuildInfo: healthscore_build_info is 1 with the Go version.
func TestBuildInfo(t *testing.T) {
	mfs, err := newRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "healthscore_build_info" {
			continue
		}
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.GetGauge().GetValue() != 1 || labels["goversion"] != runtime.Version() || labels["version"] == "" {
			t.Errorf("healthscore_build_info %v = %v", labels, m.GetGauge().GetValue())
		}
		return
	}
	t.Error("no healthscore_build_info")
}

// TestCheckLayoutAtStart: the start warns, naming the setting, when the
// server's listpack limits would make the buckets large; says it cannot
// tell where CONFIG is refused; and stops on another bucket count.
func TestCheckLayoutAtStart(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t) // no CONFIG command
	mc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer mc.Close()
	core, logs := observer.New(zap.InfoLevel)
	if err := checkLayout(ctx, newStore(t, mc), zap.New(core)); err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessageSnippet("cannot read the Redis listpack limits").Len() != 1 {
		t.Errorf("without CONFIG: logs %v, want one saying the limits are unknown", logs.All())
	}
	other, err := state.NewRedis(mc, state.Config{Buckets: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLayout(ctx, other, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--state-buckets") {
		t.Errorf("another bucket count: %v, want an error naming --state-buckets", err)
	}

	c := startRedisServer(t, "--hash-max-listpack-value", "64")
	core, logs = observer.New(zap.InfoLevel)
	if err := checkLayout(ctx, newStore(t, c), zap.New(core)); err != nil {
		t.Fatal(err)
	}
	if w := logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet("hash-max-listpack-value 512"); w.Len() != 1 {
		t.Errorf("at hash-max-listpack-value 64: logs %v, want one warning naming hash-max-listpack-value 512", logs.All())
	}
}
