package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/state"
)

// TestWaitReplicasWithoutReplicas: on a primary with no replica, "auto"
// waits for none (and writes nothing), while a fixed number times out with
// ErrReplicasBehind after the WAIT timeout: nothing may be committed then.
func TestWaitReplicasWithoutReplicas(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	want, err := state.NewRedis(rdb, state.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	id, err := want.ServerID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	auto, err := state.NewRedis(rdb, state.Config{Prefix: prefix, WaitReplicas: state.AutoReplicas})
	if err != nil {
		t.Fatal(err)
	}
	server, n, err := auto.WaitReplicas(ctx)
	if err != nil || n != 0 || server != id {
		t.Errorf("auto: server %q, replicas %d, err %v; want %q, 0, nil", server, n, err, id)
	}
	if v := rdb.Exists(ctx, auto.WaitKey()).Val(); v != 0 {
		t.Errorf("auto with no replica wrote %s", auto.WaitKey())
	}

	one, err := state.NewRedis(rdb, state.Config{Prefix: prefix, WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, n, err = one.WaitReplicas(ctx)
	if !errors.Is(err, state.ErrReplicasBehind) || n != 1 {
		t.Errorf("one replica wanted, none there: replicas %d, err %v; want ErrReplicasBehind", n, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("WAIT returned after %s, before its 50ms timeout", d)
	}
	if _, err := state.NewRedis(rdb, state.Config{Prefix: prefix, WaitReplicas: -2}); err == nil {
		t.Error("WaitReplicas -2 accepted")
	}
}
