package state_test

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/internal/redisproc"
	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/state"
)

// restartableRedis runs a private redis-server (no persistence) in a temp
// dir; restart kills it and starts another on the same socket, which comes
// back empty and with a new run_id, as after a power loss.
type restartableRedis struct {
	t    *testing.T
	dir  string
	sock string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRestartableRedis(t *testing.T) *restartableRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv(testenv.EnvRequireRedis) == "1" {
			t.Fatal(err)
		}
		t.Skip("redis-server not in PATH")
	}
	dir, err := os.MkdirTemp("/tmp", "hsrs") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	r := &restartableRedis{t: t, dir: dir}
	t.Cleanup(func() {
		r.stop()
		_ = os.RemoveAll(dir)
	})
	r.start()
	return r
}

func (r *restartableRedis) start() {
	r.t.Helper()
	cmd, sock, err := redisproc.Command(r.dir, "--save", "", "--appendonly", "no")
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.sock, r.done = cmd, sock, done
	c := redisproc.Client(sock)
	defer c.Close()
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	if err := redisproc.WaitReady(r.t.Context(), c, 20*time.Second, exited); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
}

func (r *restartableRedis) stop() {
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		<-r.done
		r.cmd = nil
	}
}

// TestSessionRefusesAfterRestart: a session opened before Redis restarted
// refuses every operation on the restarted server with ErrServerChanged and
// writes nothing, in both modes and with the record cache on; a session
// opened after the restart works. The client reconnects by itself (the
// options of `healthscore run`), so without the binding each of these would
// silently run on the new, empty server.
func TestSessionRefusesAfterRestart(t *testing.T) {
	for _, singleKey := range []bool{false, true} {
		name := "multi-key"
		if singleKey {
			name = "single-key"
		}
		t.Run(name, func(t *testing.T) {
			r := startRestartableRedis(t)
			c := redis.NewClient(&redis.Options{Network: "unix", Addr: r.sock})
			t.Cleanup(func() { _ = c.Close() })
			s := newStore(t, c, state.Config{SingleKey: singleKey, Cache: 100})
			ctx := t.Context()
			old := bind(t, s)
			if old.Server() == "" {
				t.Fatal("session on redis-server has no server id")
			}
			rec := state.Record{Score: 10, Band: state.BandRed, Pending: []byte("outbox")}
			if applied, err := appliedOf(old.Save(ctx, []state.Write{{ID: "a", Rec: rec}, {ID: "b", Rec: rec}})); err != nil || !applied[0] || !applied[1] {
				t.Fatalf("save before the restart: %v %v", applied, err)
			}

			r.stop()
			r.start()

			// "c" is not in the record cache: the load reads Redis.
			if recs, err := old.Load(ctx, []string{"c"}); !errors.Is(err, state.ErrServerChanged) {
				t.Errorf("load through the old session: %+v %v; want ErrServerChanged", recs, err)
			}
			if applied, err := appliedOf(old.Save(ctx, []state.Write{{ID: "a", Rec: rec}})); !errors.Is(err, state.ErrServerChanged) {
				t.Errorf("save through the old session: %v %v; want ErrServerChanged", applied, err)
			}
			if err := old.ClearOutboxes(ctx, []state.Outbox{{ID: "b", Version: 1}}); !errors.Is(err, state.ErrServerChanged) {
				t.Errorf("clear through the old session: %v; want ErrServerChanged", err)
			}
			if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Fatalf("the restarted server holds %d keys (%v): a refused operation wrote", n, err)
			}

			fresh := bind(t, s)
			if fresh.Server() == old.Server() {
				t.Fatalf("server id %s unchanged by the restart", fresh.Server())
			}
			ws := []state.Write{{ID: "a", Rec: rec}}
			if applied, err := appliedOf(fresh.Save(ctx, ws)); err != nil || !applied[0] {
				t.Fatalf("save through a new session: %v %v", applied, err)
			}
			if err := fresh.ClearOutboxes(ctx, []state.Outbox{ws[0].Saved()}); err != nil {
				t.Fatalf("clear through a new session: %v", err)
			}
			got, err := fresh.Load(ctx, []string{"a", "b"})
			if err != nil || got[0].Version != 1 || got[0].Pending != nil || got[1].Version != 0 {
				t.Fatalf("load through a new session: %+v %v", got, err)
			}
		})
	}
}
