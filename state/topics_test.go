package state_test

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/state"
)

func offsets(kv ...any) map[state.Partition]int64 {
	m := map[state.Partition]int64{}
	for i := 0; i < len(kv); i += 3 {
		m[state.Partition{Topic: kv[i].(string), Partition: int32(kv[i+1].(int))}] = int64(kv[i+2].(int))
	}
	return m
}

func mustLoad(t *testing.T, s *state.Redis, ids ...string) []state.Record {
	t.Helper()
	recs, err := bind(t, s).Load(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// checkTopicHash checks that the topic list holds exactly names, each once.
func checkTopicHash(t *testing.T, c redis.UniversalClient, s *state.Redis, names ...string) {
	t.Helper()
	v, err := c.Get(t.Context(), s.TopicsKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for v != "" {
		n, rest, _ := strings.Cut(v, ":")
		l, err := strconv.Atoi(n)
		if err != nil || l > len(rest) {
			t.Fatalf("bad topic list at %q", v)
		}
		got, v = append(got, rest[:l]), rest[l:]
	}
	slices.Sort(got)
	names = slices.Clone(names)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("topic list %q, want %q", got, names)
	}
}

// TestTopicIDs: records name their topics by ids from the shared hash, so
// the stored value holds no topic name; another process (store) resolves
// them, reloading its table for ids interned elsewhere since; a record in
// the named layout of earlier versions is read and rewritten with ids at
// its next save; processes interning topics concurrently agree.
func TestTopicIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		if cfg.SingleKey {
			t.Skip("single-key mode keeps topic names (TestSingleKeyKeepsTopicNames)")
		}
		ctx := t.Context()
		c := newClient()
		s1, s2 := newStore(t, c, cfg), newStore(t, newClient(), cfg)
		a := offsets("events", 0, 5, "events", 7, 1<<40, "billing", 3, 7)
		mustSave(t, s1, state.Write{ID: "a", Rec: state.Record{Offsets: a, Data: []byte("x")}})
		raw, err := rawRecord(t, c, s1, "a")
		if err != nil || strings.Contains(string(raw), "events") || strings.Contains(string(raw), "billing") {
			t.Fatalf("stored value %q (%v) names its topics", raw, err)
		}
		checkTopicHash(t, c, s1, "events", "billing")
		if got := mustLoad(t, s2, "a")[0]; !maps.Equal(got.Offsets, a) {
			t.Fatalf("another process reads %v, want %v", got.Offsets, a)
		}
		b := offsets("third", 1, 9)
		mustSave(t, s2, state.Write{ID: "b", Rec: state.Record{Offsets: b}})
		if got := mustLoad(t, s1, "b")[0]; !maps.Equal(got.Offsets, b) { // s1 reloads its table
			t.Fatalf("first process reads %v, want %v", got.Offsets, b)
		}
		if got, err := s1.Get(ctx, "b"); err != nil || !maps.Equal(got.Offsets, b) {
			t.Fatalf("unbound read: %v %v", got.Offsets, err)
		}

		legacy := offsets("legacy", 2, 4, "events", 0, 1)
		v, err := state.EncodeNamed(state.Record{Version: 1, Offsets: legacy, Score: 50, Band: state.BandYellow})
		if err != nil {
			t.Fatal(err)
		}
		setRawRecord(t, c, s1, "c", v)
		if got := mustLoad(t, s1, "c")[0]; got.Version != 1 || !maps.Equal(got.Offsets, legacy) {
			t.Fatalf("named record: %+v", got)
		}
		mustSave(t, s1, state.Write{ID: "c", Expected: 1, Rec: state.Record{Offsets: legacy, Score: 50, Band: state.BandYellow}})
		if raw, err := rawRecord(t, c, s1, "c"); err != nil || len(raw) >= len(v) || strings.Contains(string(raw), "legacy") {
			t.Fatalf("rewritten named record: %q (%v), was %d bytes", raw, err, len(v))
		}
		if got := mustLoad(t, s2, "c")[0]; got.Version != 2 || !maps.Equal(got.Offsets, legacy) {
			t.Fatalf("rewritten named record reads %+v", got)
		}

		// Concurrent processes interning topics, some shared.
		var wg sync.WaitGroup
		stores := make([]*state.Redis, 6)
		errs := make([]error, len(stores))
		for i := range stores {
			stores[i] = newStore(t, newClient(), cfg)
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := state.Record{Offsets: offsets(fmt.Sprint("own", i), 0, i, "shared", 0, i, fmt.Sprint("pair", i/2), 1, i)}
				_, errs[i] = bind(t, stores[i]).Save(ctx, []state.Write{{ID: fmt.Sprint("p", i), Rec: rec}})
			}()
		}
		wg.Wait()
		names := []string{"events", "billing", "third", "legacy", "shared"}
		for i := range stores {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			names = append(names, fmt.Sprint("own", i))
			if i%2 == 0 {
				names = append(names, fmt.Sprint("pair", i/2))
			}
		}
		checkTopicHash(t, c, s1, names...)
		for i := range stores {
			want := offsets(fmt.Sprint("own", i), 0, i, "shared", 0, i, fmt.Sprint("pair", i/2), 1, i)
			for _, s := range []*state.Redis{s1, stores[(i+1)%len(stores)]} {
				if got := mustLoad(t, s, fmt.Sprint("p", i))[0]; !maps.Equal(got.Offsets, want) {
					t.Fatalf("record of process %d reads %v, want %v", i, got.Offsets, want)
				}
			}
		}
	})
}

// TestTopicIDsMissingHash: records whose topic ids are missing from the
// hash (it was deleted, or not restored with them) are reported corrupt,
// never read with guessed topics.
func TestTopicIDsMissingHash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		if cfg.SingleKey {
			t.Skip("single-key mode keeps topic names (TestSingleKeyKeepsTopicNames)")
		}
		c := newClient()
		s := newStore(t, c, cfg)
		mustSave(t, s, state.Write{ID: "a", Rec: state.Record{Offsets: offsets("events", 0, 5)}})
		if err := c.Del(t.Context(), s.TopicsKey()).Err(); err != nil {
			t.Fatal(err)
		}
		fresh := newStore(t, newClient(), cfg)
		if recs, err := bind(t, fresh).Load(t.Context(), []string{"a"}); err == nil || !strings.Contains(err.Error(), "corrupt record: unknown topic id 1") {
			t.Fatalf("load without the hash: %+v %v", recs, err)
		}
		if _, err := fresh.Get(t.Context(), "a"); err == nil || !strings.Contains(err.Error(), "unknown topic id") {
			t.Fatalf("get without the hash: %v", err)
		}
	})
}

// TestTopicIDsAfterRestart: a server that restarts empty (or fails over
// to a replica that lost the last writes) may assign the ids a process
// cached to other topics. The process's table belongs to the server it
// was read from, so a session on the new server never writes an id from
// before the restart: here "second" takes id 1 on the new server, and
// "first", which had id 1 before, is stored as id 2.
func TestTopicIDsAfterRestart(t *testing.T) {
	for _, singleKey := range []bool{false} { // single-key mode interns nothing (TestSingleKeyKeepsTopicNames)
		t.Run(fmt.Sprint("single-key=", singleKey), func(t *testing.T) {
			r := startRestartableRedis(t)
			c := redis.NewClient(&redis.Options{Network: "unix", Addr: r.sock})
			t.Cleanup(func() { _ = c.Close() })
			s := newStore(t, c, state.Config{SingleKey: singleKey, Cache: 100})
			first := offsets("first", 0, 10)
			mustSave(t, s, state.Write{ID: "a", Rec: state.Record{Offsets: first}})

			r.stop()
			r.start()

			second := offsets("second", 0, 20)
			other := newStore(t, c, state.Config{SingleKey: singleKey})
			mustSave(t, other, state.Write{ID: "b", Rec: state.Record{Offsets: second}})
			mustSave(t, s, state.Write{ID: "a", Rec: state.Record{Offsets: first}})
			if v, err := c.Get(t.Context(), s.TopicsKey()).Result(); err != nil || v != "6:second5:first" {
				t.Fatalf("topic list %q (%v), want second (id 1) and first (id 2)", v, err)
			}
			for _, st := range []*state.Redis{s, other, newStore(t, c, state.Config{SingleKey: singleKey})} {
				recs := mustLoad(t, st, "a", "b")
				if !maps.Equal(recs[0].Offsets, first) || !maps.Equal(recs[1].Offsets, second) {
					t.Fatalf("after the restart: %v and %v, want %v and %v", recs[0].Offsets, recs[1].Offsets, first, second)
				}
			}
		})
	}
}

// TestSingleKeyKeepsTopicNames: on Redis Cluster (single-key mode) the
// topic list would live on one shard and the records on all, so records
// keep their topics' names and the list is never written (topics.go).
func TestSingleKeyKeepsTopicNames(t *testing.T) {
	r := startRestartableRedis(t)
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: r.sock})
	t.Cleanup(func() { _ = c.Close() })
	s := newStore(t, c, state.Config{SingleKey: true})
	first := offsets("first", 0, 10)
	mustSave(t, s, state.Write{ID: "a", Rec: state.Record{Offsets: first}})
	if n, err := c.Exists(t.Context(), s.TopicsKey()).Result(); err != nil || n != 0 {
		t.Fatalf("single-key mode wrote the topic list (exists %d, %v)", n, err)
	}
	raw, err := rawRecord(t, c, s, "a")
	if err != nil || !bytes.Contains(raw, []byte("first")) {
		t.Fatalf("the record does not name its topic: %q (%v)", raw, err)
	}
	if recs := mustLoad(t, s, "a"); !maps.Equal(recs[0].Offsets, first) {
		t.Fatalf("loaded %v, want %v", recs[0].Offsets, first)
	}
}
