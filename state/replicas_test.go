package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

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
	server, n, err := auto.WaitReplicas(ctx, -1)
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
	_, n, err = one.WaitReplicas(ctx, -1)
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

// TestSaveSeesReplicas: a bound save on a single server reports the
// replicas connected right after its writes (none here), and with that
// count "auto" waits without a round trip: the same call on a store whose
// client can no longer reach Redis still succeeds. A count it was not
// given (-1) is read from the server, which then fails. An unbound save
// (miniredis: no run_id) reads no count.
func TestSaveSeesReplicas(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	s, err := state.NewRedis(rdb, state.Config{Prefix: prefix, WaitReplicas: state.AutoReplicas})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := bind(t, s).Save(ctx, []state.Write{{ID: "a", Rec: state.Record{Band: state.BandGreen, Score: 90}}})
	if err != nil || len(saved.Applied) != 1 || !saved.Applied[0] || saved.Replicas != 0 {
		t.Fatalf("save on a primary without replicas: %+v, %v; want applied, 0 replicas", saved, err)
	}

	gone := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer gone.Close()
	cut, err := state.NewRedis(gone, state.Config{Prefix: prefix, WaitReplicas: state.AutoReplicas})
	if err != nil {
		t.Fatal(err)
	}
	if server, n, err := cut.WaitReplicas(ctx, saved.Replicas); err != nil || n != 0 || server != "" {
		t.Errorf("auto wait told of no replica: server %q, replicas %d, err %v; want no round trip", server, n, err)
	}
	if _, _, err := cut.WaitReplicas(ctx, -1); err == nil {
		t.Error("auto wait with no count did not ask the (unreachable) server")
	}

	m := miniredis.RunT(t)
	mc := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer mc.Close()
	mini, err := state.NewRedis(mc, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	saved, err = bind(t, mini).Save(ctx, []state.Write{{ID: "a", Rec: state.Record{Band: state.BandGreen, Score: 90}}})
	if err != nil || !saved.Applied[0] || saved.Replicas != -1 {
		t.Errorf("unbound save: %+v, %v; want applied, replicas -1 (not read)", saved, err)
	}
}
