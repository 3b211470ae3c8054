package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

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
	defer os.RemoveAll(dir)
	cmd, sock, err := redisproc.Command(dir, "--save", "", "--appendonly", "no")
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c := redisproc.Client(sock)
	defer c.Close()
	if err := redisproc.WaitReady(ctx, c, 10*time.Second, func() bool { return false }); err != nil {
		t.Fatal(err)
	}
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

func newStore(t *testing.T, c *redis.Client) *state.Redis {
	t.Helper()
	s, err := state.NewRedis(c, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
