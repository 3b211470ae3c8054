package state_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/state"
)

// cacheStore is a store with the record cache on a real redis-server (the
// cache binds entries to a run_id, which miniredis has not), with a count
// of its round trips.
func cacheStore(t *testing.T, cfg state.Config) (*state.Redis, *redis.Client, *roundTrips, string) {
	t.Helper()
	newClient, prefix := backends[0].open(t)
	c := newClient()
	rt := &roundTrips{}
	c.AddHook(rt)
	cfg.Prefix = prefix
	s := newStore(t, c, cfg)
	id, err := s.ServerID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s, c, rt, id
}

// TestCacheServesOwnSaves: a record saved on a server is loaded again from
// the cache without a round trip by loads bound to that server, with its
// outbox until cleared; loads bound to another server, or unbound, read
// Redis.
func TestCacheServesOwnSaves(t *testing.T) {
	s, _, rt, server := cacheStore(t, state.Config{Cache: 100})
	ctx := t.Context()
	rec := state.Record{Offsets: map[state.Partition]int64{{Topic: "events", Partition: 3}: 41}, Score: 30, Band: state.BandRed, Data: []byte("st"), Pending: []byte("outbox")}
	ws := []state.Write{{ID: "a", Rec: rec}}
	if applied, err := appliedOf(s.BindTo(server).Save(ctx, ws)); err != nil || !applied[0] {
		t.Fatalf("save: %v %v", applied, err)
	}
	before := rt.n.Load()
	got, err := s.BindTo(server).Load(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load() - before; n != 0 {
		t.Fatalf("load of a record saved here took %d round trips, want 0", n)
	}
	if got[0].Version != 1 || got[0].Offsets[state.Partition{Topic: "events", Partition: 3}] != 41 || string(got[0].Data) != "st" || string(got[0].Pending) != "outbox" {
		t.Fatalf("cached record %+v", got[0])
	}
	if err := s.BindTo(server).ClearOutboxes(ctx, []state.Outbox{ws[0].Saved()}); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.BindTo(server).Load(ctx, []string{"a"}); got[0].Pending != nil || got[0].Version != 1 {
		t.Fatalf("after the clear: pending %q version %d", got[0].Pending, got[0].Version)
	}
	if hits, misses := s.CacheStats(); hits != 2 || misses != 0 {
		t.Fatalf("cache stats %d hits %d misses, want 2 and 0", hits, misses)
	}

	// A session bound to another server reads Redis and refuses what it
	// read; an unbound load reads the record, then the outbox key it
	// names (cleared).
	if got, err := s.BindTo("another").Load(ctx, []string{"a"}); !errors.Is(err, state.ErrServerChanged) {
		t.Fatalf("load bound to another server: %+v %v; want ErrServerChanged", got, err)
	}
	before = rt.n.Load()
	if got, err := s.Load(ctx, []string{"a"}); err != nil || got[0].Version != 1 || got[0].Pending != nil {
		t.Fatalf("unbound load: %+v %v", got, err)
	}
	if n := rt.n.Load() - before; n != 2 {
		t.Fatalf("unbound load took %d round trips, want 2 (from Redis)", n)
	}
}

// TestCacheStaleEntryIsNeverSaved: when another writer (another instance,
// here a second store) saves a customer, the cached record is stale; the
// save based on it is refused by the compare-and-set and drops the entry,
// and the next load reads the other writer's record.
func TestCacheStaleEntryIsNeverSaved(t *testing.T) {
	s, c, _, server := cacheStore(t, state.Config{Cache: 100})
	ctx := t.Context()
	other := newStore(t, c, state.Config{Prefix: strings.TrimSuffix(s.LayoutKey(), "layout")})
	rec := state.Record{Score: 30, Band: state.BandRed, Data: []byte("mine")}
	if applied, err := appliedOf(s.BindTo(server).Save(ctx, []state.Write{{ID: "a", Rec: rec}})); err != nil || !applied[0] {
		t.Fatalf("save: %v %v", applied, err)
	}
	theirs := rec
	theirs.Data = []byte("theirs")
	if applied, err := appliedOf(other.BindTo(server).Save(ctx, []state.Write{{ID: "a", Expected: 1, Rec: theirs}})); err != nil || !applied[0] {
		t.Fatalf("other writer: %v %v", applied, err)
	}
	stale, _ := s.BindTo(server).Load(ctx, []string{"a"})
	if stale[0].Version != 1 || string(stale[0].Data) != "mine" {
		t.Fatalf("want the stale cached record (version 1), got %+v", stale[0])
	}
	rec.Data = []byte("mine, on a stale base")
	if applied, err := appliedOf(s.BindTo(server).Save(ctx, []state.Write{{ID: "a", Expected: stale[0].Version, Rec: rec}})); err != nil || applied[0] {
		t.Fatalf("a save based on the stale cached record: applied %v, %v; want refused", applied, err)
	}
	fresh, _ := s.BindTo(server).Load(ctx, []string{"a"})
	if fresh[0].Version != 2 || string(fresh[0].Data) != "theirs" {
		t.Fatalf("after the refused save: %+v, want the other writer's version 2", fresh[0])
	}
}

// TestCacheNewServerStartsEmpty: entries saved on one server are not served
// to loads bound to another (Redis restarted, and may have lost them), even
// after saves on the new server.
func TestCacheNewServerStartsEmpty(t *testing.T) {
	s, c, rt, server := cacheStore(t, state.Config{Cache: 100})
	ctx := t.Context()
	rec := state.Record{Score: 30, Band: state.BandRed, Data: []byte("v1")}
	if applied, err := appliedOf(s.BindTo(server).Save(ctx, []state.Write{{ID: "a", Rec: rec}, {ID: "b", Rec: rec}})); err != nil || !applied[0] || !applied[1] {
		t.Fatalf("save: %v %v", applied, err)
	}
	// "Restart": the records are lost, and the store saves on a server
	// with another run_id (the save script checks the real run_id, so
	// the test drives the cache through a save that is refused there).
	for _, id := range []string{"a", "b"} {
		key, field := s.RecordKey(id)
		if err := c.HDel(ctx, key, field).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.BindTo("restarted").Save(ctx, []state.Write{{ID: "b", Expected: 1, Rec: rec}}); err == nil {
		t.Fatal("a save bound to another run_id applied")
	}
	before := rt.n.Load()
	got, err := s.BindTo(server).Load(ctx, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Version != 0 || got[1].Version != 0 || rt.n.Load() == before {
		t.Fatalf("loads after a save on another server: versions %d %d (want 0 0, from Redis)", got[0].Version, got[1].Version)
	}
}

// TestCacheLimit: the cache holds at most about Cache entries; the others
// are loaded from Redis.
func TestCacheLimit(t *testing.T) {
	s, _, _, server := cacheStore(t, state.Config{Cache: 64})
	ctx := t.Context()
	var ws []state.Write
	var ids []string
	for i := range 1000 {
		id := fmt.Sprintf("c%04d", i)
		ids = append(ids, id)
		ws = append(ws, state.Write{ID: id, Rec: state.Record{Score: float64(i % 100), Band: state.BandGreen, Data: []byte(id)}})
	}
	if _, err := s.BindTo(server).Save(ctx, ws); err != nil {
		t.Fatal(err)
	}
	got, err := s.BindTo(server).Load(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r.Version != 1 || string(r.Data) != ids[i] {
			t.Fatalf("%s: %+v", ids[i], r)
		}
	}
	hits, misses := s.CacheStats()
	if hits == 0 || hits > 64 || hits+misses != 1000 {
		t.Fatalf("%d hits and %d misses for 1000 loads with a cache of 64", hits, misses)
	}
}

// TestCacheOffInSingleKeyMode: single-key (cluster) saves are not bound to a
// server, so the store keeps no cache.
func TestCacheOffInSingleKeyMode(t *testing.T) {
	s, _, rt, server := cacheStore(t, state.Config{Cache: 100, SingleKey: true})
	ctx := context.Background()
	if _, err := s.BindTo(server).Save(ctx, []state.Write{{ID: "a", Rec: state.Record{Band: state.BandRed}}}); err != nil {
		t.Fatal(err)
	}
	before := rt.n.Load()
	if _, err := s.BindTo(server).Load(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if rt.n.Load() == before {
		t.Fatal("single-key mode served a load from a cache")
	}
}
