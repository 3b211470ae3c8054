package state_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/state"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithRedis(m)) }

// backend gives a test a fresh key space on some Redis: a factory of new
// clients to it and the key prefix to use.
type backend struct {
	name string
	open func(t *testing.T) (newClient func() *redis.Client, prefix string)
}

var backends = []backend{
	{"redis-server", func(t *testing.T) (func() *redis.Client, string) {
		_, prefix := testenv.Redis(t) // skips or fails without a server; deletes prefix* at the end
		opts := testenv.RedisOptions(t)
		return func() *redis.Client {
			c := redis.NewClient(opts)
			t.Cleanup(func() { _ = c.Close() })
			return c
		}, prefix
	}},
	{"miniredis", func(t *testing.T) (func() *redis.Client, string) {
		m := miniredis.RunT(t)
		return func() *redis.Client {
			c := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}, state.DefaultPrefix
	}},
}

// forEachBackend runs test as a parallel subtest per backend and store mode
// (multi-key scripts, and single-key commands as on a cluster); cfg holds
// the key prefix and the mode.
func forEachBackend(t *testing.T, test func(t *testing.T, newClient func() *redis.Client, cfg state.Config)) {
	for _, b := range backends {
		for _, singleKey := range []bool{false, true} {
			name := b.name
			if singleKey {
				name += "/single-key"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				newClient, prefix := b.open(t)
				// Band counts summed at every call: the tests check them after each save.
				test(t, newClient, state.Config{Prefix: prefix, SingleKey: singleKey, BandCountsMaxAge: -1})
			})
		}
	}
}

func newStore(t *testing.T, c redis.UniversalClient, cfg state.Config) *state.Redis {
	t.Helper()
	s, err := state.NewRedis(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawRecord reads a customer's stored record value where RecordKey names
// it: an HGET of its bucket's field, or a GET in single-key mode.
func rawRecord(t *testing.T, c redis.Cmdable, s *state.Redis, id string) ([]byte, error) {
	t.Helper()
	key, field := s.RecordKey(id)
	if field == "" {
		return c.Get(t.Context(), key).Bytes()
	}
	return c.HGet(t.Context(), key, field).Bytes()
}

// setRawRecord stores v as a customer's record value where RecordKey
// names it.
func setRawRecord(t *testing.T, c redis.Cmdable, s *state.Redis, id string, v []byte) {
	t.Helper()
	key, field := s.RecordKey(id)
	var err error
	if field == "" {
		err = c.Set(t.Context(), key, v, 0).Err()
	} else {
		err = c.HSet(t.Context(), key, field, v).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// roundTrips counts commands and pipelines sent, each one round trip.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

func counter(t *testing.T, r state.Record) uint64 {
	t.Helper()
	if len(r.Data) == 0 {
		return 0
	}
	if len(r.Data) != 8 {
		t.Fatalf("bad counter data %x", r.Data)
	}
	return binary.BigEndian.Uint64(r.Data)
}

// appliedOf is a Save's Applied, for tests that only check those.
func appliedOf(s state.Saved, err error) ([]bool, error) { return s.Applied, err }

// bind opens a session on s (unbound on miniredis, which has no run_id).
func bind(t *testing.T, s *state.Redis) state.Bound {
	t.Helper()
	b, err := s.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSave(t *testing.T, s *state.Redis, ws ...state.Write) []bool {
	t.Helper()
	applied, err := appliedOf(bind(t, s).Save(t.Context(), ws))
	if err != nil {
		t.Fatal(err)
	}
	return applied
}

func TestNewRedisConfig(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := state.NewRedis(nil, state.Config{}); err == nil {
		t.Error("nil client accepted")
	}
	for _, cfg := range []state.Config{{Prefix: "a{b"}, {Prefix: "}"}, {IndexPasses: -1}} {
		if _, err := state.NewRedis(c, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	s, err := state.NewRedis(c, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	key, field := s.RecordKey("cust-1")
	if want := "hs:c:" + strconv.Itoa(s.Bucket("cust-1")); key != want || field != "cust-1" {
		t.Errorf("RecordKey = %q, %q; want %q, %q", key, field, want, "cust-1")
	}
	single, err := state.NewRedis(c, state.Config{SingleKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if key, field := single.RecordKey("cust-1"); key != "hs:c:{cust-1}" || field != "" {
		t.Errorf("single-key RecordKey = %q, %q", key, field)
	}
	if got := s.BandKey(state.BandRed, 5); got != "hs:band:red:5" {
		t.Errorf("BandKey = %q", got)
	}
	if got := s.BandCountKey(); got != "hs:bandcount" {
		t.Errorf("BandCountKey = %q", got)
	}
}

func TestSaveRejectsBadWrites(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	defer c.Close()
	s := newStore(t, c, state.Config{})
	for name, w := range map[string]state.Write{
		"empty id":     {},
		"unknown band": {ID: "a", Rec: state.Record{Band: "blue"}},
	} {
		if _, err := s.BindTo("").Save(t.Context(), []state.Write{w}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		s := newStore(t, newClient(), cfg)
		recs, err := s.Load(t.Context(), []string{"nope", "", "{x}"})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if r.Version != 0 || r.Offsets != nil || r.Data != nil || r.Band != "" || r.Score != 0 {
				t.Errorf("record %d = %+v, want zero", i, r)
			}
		}
		if r, err := s.Get(t.Context(), "nope"); err != nil || r.Version != 0 {
			t.Errorf("Get = %+v, %v", r, err)
		}
		if recs, err := s.Load(t.Context(), nil); err != nil || len(recs) != 0 {
			t.Errorf("Load(nil) = %v, %v", recs, err)
		}
	})
}

func TestSaveLoadRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		c := newClient()
		s := newStore(t, c, cfg)
		rec := state.Record{
			Version: 99, // ignored
			Offsets: map[state.Partition]int64{{Topic: "events", Partition: 2}: 41, {Topic: "events", Partition: 0}: 7},
			Score:   0.25,
			Band:    state.BandRed,
			Data:    []byte("scorer state"),
		}
		if applied := mustSave(t, s, state.Write{ID: "c1", Rec: rec}); !applied[0] {
			t.Fatal("first save not applied")
		}
		got, err := s.Get(t.Context(), "c1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 1 || got.Score != 0.25 || got.Band != state.BandRed || string(got.Data) != "scorer state" ||
			len(got.Offsets) != 2 || got.Offsets[state.Partition{Topic: "events", Partition: 2}] != 41 {
			t.Fatalf("Get = %+v", got)
		}
		// Single-key mode: one key per customer, hash-tagged; ids with
		// braces too. Else a field of the customer's bucket hash, and no
		// key of its own.
		mustSave(t, s, state.Write{ID: "a}b{c", Rec: state.Record{Band: state.BandGreen}})
		for _, id := range []string{"c1", "a}b{c"} {
			own, err := c.Exists(t.Context(), cfg.Prefix+"c:{"+id+"}").Result()
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.SingleKey {
				bucket := cfg.Prefix + "c:" + strconv.Itoa(s.Bucket(id))
				if n, err := c.HExists(t.Context(), bucket, id).Result(); err != nil || !n || own != 0 {
					t.Errorf("record of %q: field of %s %v (%v), key of its own %d", id, bucket, n, err, own)
				}
				if v, err := rawRecord(t, c, s, id); err != nil || len(v) == 0 {
					t.Errorf("HGET of %q: %q, %v", id, v, err)
				}
			} else if own != 1 {
				t.Errorf("key of %q: exists=%d", id, own)
			}
		}
		if r, err := s.Get(t.Context(), "a}b{c"); err != nil || r.Version != 1 || r.Band != state.BandGreen {
			t.Errorf("Get(a}b{c) = %+v, %v", r, err)
		}
	})
}

func TestCompareAndSet(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		a := newStore(t, newClient(), cfg)
		b := newStore(t, newClient(), cfg)
		ctx := t.Context()

		// Both writers load the missing record (version 0).
		ra, _ := a.Get(ctx, "c")
		rb, _ := b.Get(ctx, "c")
		if got := mustSave(t, a, state.Write{ID: "c", Expected: ra.Version, Rec: state.Record{Data: []byte("a")}}); !got[0] {
			t.Fatal("writer a: not applied")
		}
		if got := mustSave(t, b, state.Write{ID: "c", Expected: rb.Version, Rec: state.Record{Data: []byte("b")}}); got[0] {
			t.Fatal("writer b: applied over a's write")
		}
		// b reloads and wins the next round.
		rb, _ = b.Get(ctx, "c")
		if rb.Version != 1 || string(rb.Data) != "a" {
			t.Fatalf("after conflict: %+v", rb)
		}
		if got := mustSave(t, b, state.Write{ID: "c", Expected: rb.Version, Rec: state.Record{Data: []byte("b")}}); !got[0] {
			t.Fatal("writer b retry: not applied")
		}
		// a's stale version and a replay of an old write are rejected.
		if got := mustSave(t, a, state.Write{ID: "c", Expected: 1, Rec: state.Record{Data: []byte("a2")}}); got[0] {
			t.Fatal("stale write applied")
		}
		// A non-zero expectation on a missing key conflicts.
		if got := mustSave(t, a, state.Write{ID: "other", Expected: 3}); got[0] {
			t.Fatal("write to missing key with Expected=3 applied")
		}
		// The same id twice in one batch: the first applies, the second conflicts.
		got := mustSave(t, a,
			state.Write{ID: "c", Expected: 2, Rec: state.Record{Data: []byte("x")}},
			state.Write{ID: "c", Expected: 2, Rec: state.Record{Data: []byte("y")}})
		if !slices.Equal(got, []bool{true, false}) {
			t.Fatalf("duplicate id batch: applied=%v", got)
		}
		if r, _ := a.Get(ctx, "c"); r.Version != 3 || string(r.Data) != "x" {
			t.Fatalf("final = %+v", r)
		}
	})
}

func TestRacingWriters(t *testing.T) {
	const writers, increments = 8, 25
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		var conflicts atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			// Under this much contention a writer may chase newer versions
			// for many passes; let it, so the index must converge exactly.
			s, err := state.NewRedis(newClient(), state.Config{Prefix: cfg.Prefix, SingleKey: cfg.SingleKey, IndexPasses: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				ctx := t.Context()
				for i := 0; i < increments; {
					r, err := s.Get(ctx, "hot")
					if err != nil {
						errs <- err
						return
					}
					n := uint64(0)
					if len(r.Data) == 8 {
						n = binary.BigEndian.Uint64(r.Data)
					}
					band := state.Bands[(w+i)%3]
					applied, err := appliedOf(bind(t, s).Save(ctx, []state.Write{{ID: "hot", Expected: r.Version, Rec: state.Record{
						Score: float64(n), Band: band, Data: binary.BigEndian.AppendUint64(nil, n+1),
					}}}))
					if err != nil {
						errs <- err
						return
					}
					if applied[0] {
						i++
					} else {
						conflicts.Add(1)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		s := newStore(t, newClient(), cfg)
		r, err := s.Get(t.Context(), "hot")
		if err != nil {
			t.Fatal(err)
		}
		if got := counter(t, r); got != writers*increments || r.Version != writers*increments {
			t.Fatalf("counter=%d version=%d, want %d (lost updates)", got, r.Version, writers*increments)
		}
		t.Logf("%d conflicts", conflicts.Load())
		// The index agrees with the record: exactly one band lists it.
		for _, b := range state.Bands {
			ms, err := s.Band(t.Context(), b, 10)
			if err != nil {
				t.Fatal(err)
			}
			if want := b == r.Band; (len(ms) == 1) != want {
				t.Errorf("band %s members %v; record band %s", b, ms, r.Band)
			}
		}
	})
}

func TestBatchRoundTrips(t *testing.T) {
	const n = 1000
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		c := newClient()
		rt := &roundTrips{}
		c.AddHook(rt)
		s := newStore(t, c, cfg)
		ctx := t.Context()
		ids := make([]string, n)
		ws := make([]state.Write, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("cust-%04d", i)
			ws[i] = state.Write{ID: ids[i], Rec: state.Record{Score: float64(i), Band: state.Bands[i%3],
				Offsets: map[state.Partition]int64{{Topic: "events", Partition: int32(i % 7)}: int64(i)}}}
		}
		b := bind(t, s)
		if _, err := b.Save(ctx, ws[:1]); err != nil { // loads the script
			t.Fatal(err)
		}

		rt.n.Store(0)
		applied, err := appliedOf(b.Save(ctx, ws))
		if err != nil {
			t.Fatal(err)
		}
		for i, ok := range applied {
			if ok != (i > 0) {
				t.Fatalf("write %d applied=%v", i, ok)
			}
		}
		want := int64(1) // compare-and-sets and index in scripts
		if cfg.SingleKey {
			want = 3 // compare-and-sets, index, re-read
		}
		if got := rt.n.Load(); got != want {
			t.Errorf("Save of %d new records took %d round trips, want %d", n-1, got, want)
		}

		rt.n.Store(0)
		applied, err = appliedOf(b.Save(ctx, ws)) // all conflict: Expected 0, stored 1
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(applied, true) {
			t.Fatal("conflicting write applied")
		}
		if got := rt.n.Load(); got != 1 {
			t.Errorf("Save of %d conflicting records took %d round trips, want 1", n, got)
		}

		rt.n.Store(0)
		recs, err := s.Load(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if got := rt.n.Load(); got != 1 {
			t.Errorf("Load of %d ids took %d round trips, want 1", n, got)
		}
		for i, r := range recs {
			if r.Version != 1 || r.Score != float64(i) || r.Offsets[state.Partition{Topic: "events", Partition: int32(i % 7)}] != int64(i) {
				t.Fatalf("record %d = %+v", i, r)
			}
		}

		// Through the session, the server check rides in the same
		// pipeline: still one round trip.
		rt.n.Store(0)
		bound, err := b.Load(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if got := rt.n.Load(); got != 1 {
			t.Errorf("session Load of %d ids took %d round trips, want 1", n, got)
		}
		if !slices.EqualFunc(bound, recs, func(x, y state.Record) bool { return x.Version == y.Version && x.Score == y.Score }) {
			t.Error("session Load differs from Load")
		}
	})
}

func TestBandIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		c := newClient()
		s := newStore(t, c, cfg)
		ctx := t.Context()
		save := func(id string, expected uint64, score float64, band string) {
			t.Helper()
			mustSaveBand(t, s, id, expected, score, band)
		}
		save("r1", 0, 0.30, state.BandRed)
		save("r2", 0, 0.10, state.BandRed)
		save("r3", 0, 0.20, state.BandRed)
		save("g1", 0, 0.90, state.BandGreen)
		save("n1", 0, 0.50, state.BandNone)

		want := func(band string, limit int, ids ...string) {
			t.Helper()
			ms, err := s.Band(ctx, band, limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.ID)
			}
			if !slices.Equal(got, ids) {
				t.Fatalf("Band(%s, %d) = %v, want %v", band, limit, ms, ids)
			}
		}
		want(state.BandRed, 10, "r2", "r3", "r1")
		want(state.BandRed, 2, "r2", "r3")
		want(state.BandGreen, 10, "g1")
		want(state.BandYellow, 10)

		// Moving a customer removes it from its old band; leaving all bands too.
		save("r2", 1, 0.60, state.BandYellow)
		save("g1", 1, 0.50, state.BandNone)
		want(state.BandRed, 10, "r3", "r1")
		want(state.BandYellow, 10, "r2")
		want(state.BandGreen, 10)

		// Stale index entries (as after a crash between save and index
		// update) are filtered, and the limit is still filled.
		for _, id := range []string{"r2", "ghost", "n1"} {
			if err := c.HSet(ctx, s.BandKey(state.BandRed, s.Bucket(id)), id, "").Err(); err != nil {
				t.Fatal(err)
			}
		}
		want(state.BandRed, 1, "r3")
		want(state.BandRed, 2, "r3", "r1")
		want(state.BandRed, 10, "r3", "r1")

		// Scores are the records'.
		ms, err := s.Band(ctx, state.BandRed, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 || ms[0].ID != "r3" || ms[0].Score != 0.20 || ms[1].ID != "r1" || ms[1].Score != 0.30 {
			t.Fatalf("Band(red) = %v", ms)
		}

		if _, err := s.Band(ctx, "", 10); err == nil {
			t.Error("empty band accepted")
		}
		if _, err := s.Band(ctx, state.BandRed, 0); err == nil {
			t.Error("limit 0 accepted")
		}
	})
}

// TestBandIndexOnBandChange: with the multi-key script a save within the
// customer's band leaves the index alone (an entry removed behind its back
// stays removed) and a band change moves it; in single-key mode every save
// rewrites the entry (see Redis.index), so it comes back. Either way the
// listing is ordered by the records' current scores.
func TestBandIndexOnBandChange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		c := newClient()
		s := newStore(t, c, cfg)
		ctx := t.Context()
		save := func(id string, expected uint64, score float64, band string) {
			t.Helper()
			mustSaveBand(t, s, id, expected, score, band)
		}
		indexed := func(band, id string) bool {
			t.Helper()
			ok, err := c.HExists(ctx, s.BandKey(band, s.Bucket(id)), id).Result()
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		save("a", 0, 10, state.BandRed)
		save("b", 0, 30, state.BandRed)
		if !indexed(state.BandRed, "a") {
			t.Fatal("a not in the red index")
		}
		if err := c.HDel(ctx, s.BandKey(state.BandRed, s.Bucket("a")), "a").Err(); err != nil {
			t.Fatal(err)
		}
		save("a", 1, 35, state.BandRed) // still red, now above b
		if got := indexed(state.BandRed, "a"); got != cfg.SingleKey {
			t.Fatalf("a in the red index after a save within red: %v, want %v", got, cfg.SingleKey)
		}
		if !cfg.SingleKey {
			// Put it back as it was (the count never saw it go).
			if err := c.HSet(ctx, s.BandKey(state.BandRed, s.Bucket("a")), "a", "").Err(); err != nil {
				t.Fatal(err)
			}
		}
		ms, err := s.Band(ctx, state.BandRed, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 || ms[0].ID != "b" || ms[0].Score != 30 || ms[1].ID != "a" || ms[1].Score != 35 {
			t.Fatalf("Band(red, 10) = %v, want b 30, a 35", ms)
		}
		if ms, err := s.Band(ctx, state.BandRed, 1); err != nil || len(ms) != 1 || ms[0].ID != "b" {
			t.Fatalf("Band(red, 1) = %v, %v; want b", ms, err)
		}
		if ms, err := s.BandWhere(ctx, state.BandRed, 1, func(m state.Member) bool { return m.ID == "a" }); err != nil || len(ms) != 1 || ms[0].ID != "a" {
			t.Fatalf("BandWhere(red, 1, a) = %v, %v; want a", ms, err)
		}
		// A band change moves the member and gives it its new entry score;
		// leaving every band removes it.
		save("a", 2, 50, state.BandYellow)
		if indexed(state.BandRed, "a") {
			t.Fatal("a still in the red index after moving to yellow")
		}
		if !indexed(state.BandYellow, "a") {
			t.Fatal("a not in the yellow index after moving to it")
		}
		save("a", 3, 55, state.BandNone)
		counts, err := s.BandCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[state.BandRed] != 1 || counts[state.BandYellow] != 0 || counts[state.BandGreen] != 0 {
			t.Fatalf("band counts %v, want red 1 (b)", counts)
		}
		// A customer whose record has a band but no entry yet (none, then a band)
		// is added.
		save("a", 4, 80, state.BandGreen)
		if !indexed(state.BandGreen, "a") {
			t.Fatal("a not in the green index")
		}
	})
}

// TestBandListingPaged: a band of several pages of candidates is listed
// whole and in the records' order (not the order of the first saves), with
// a limit smaller and larger than one page; BandIDs lists each member once.
func TestBandListingPaged(t *testing.T) {
	const n, page = 300, 50
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		s := newStore(t, newClient(), cfg)
		ctx := t.Context()
		ws := make([]state.Write, n)
		for i := range ws {
			// First scores ascend with i, in runs of 100 equal ones; the
			// second save reverses the order within the band.
			ws[i] = state.Write{ID: fmt.Sprintf("m%04d", i), Rec: state.Record{Score: float64(i / 100), Band: state.BandYellow}}
		}
		mustSave(t, s, ws...)
		for i := range ws {
			ws[i].Expected = 1
			ws[i].Rec.Score = float64(2*n - i)
		}
		mustSave(t, s, ws...)
		ids, err := s.BandIDs(ctx, state.BandYellow)
		slices.Sort(ids)
		if err != nil || len(slices.Compact(ids)) != n {
			t.Fatalf("BandIDs(yellow): %d distinct ids of %d, want %d, %v", len(slices.Compact(ids)), len(ids), n, err)
		}
		for _, limit := range []int{7, 2 * page, n + 10} {
			ms, err := s.BandPaged(ctx, state.BandYellow, limit, page)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != min(limit, n) {
				t.Fatalf("Band(yellow, %d): %d members, want %d", limit, len(ms), min(limit, n))
			}
			for k, m := range ms {
				if want := fmt.Sprintf("m%04d", n-1-k); m.ID != want || m.Score != float64(n+1+k) {
					t.Fatalf("Band(yellow, %d)[%d] = %s %v, want %s %v", limit, k, m.ID, m.Score, want, float64(n+1+k))
				}
			}
		}
	})
}

// beforeIndex runs fn once, just before the first pipeline that writes the
// band index (i.e. after the compare-and-set of the same Save).
type beforeIndex struct {
	once sync.Once
	fn   func()
}

func (h *beforeIndex) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *beforeIndex) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *beforeIndex) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && (strings.EqualFold(cmds[0].Name(), "hset") || strings.EqualFold(cmds[0].Name(), "hdel")) {
			h.once.Do(h.fn)
		}
		return next(ctx, cmds)
	}
}

func TestIndexRepairAfterRacingWriter(t *testing.T) {
	for _, passes := range []int{0, 1} {
		t.Run(fmt.Sprintf("passes=%d", passes), func(t *testing.T) { testIndexRepair(t, passes) })
	}
}

func testIndexRepair(t *testing.T, passes int) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := t.Context()
		slow := newClient()
		fast := newStore(t, newClient(), state.Config{Prefix: cfg.Prefix, SingleKey: true})
		// The slow writer saves version 1 (red); before it writes the index,
		// the fast writer saves version 2 (green) and indexes it. The slow
		// writer's index write then puts the customer back in red, and its
		// re-read must repair that.
		slow.AddHook(&beforeIndex{fn: func() {
			if _, err := bind(t, fast).Save(ctx, []state.Write{{ID: "c", Expected: 1, Rec: state.Record{Score: 0.9, Band: state.BandGreen}}}); err != nil {
				t.Error(err)
			}
		}})
		s, err := state.NewRedis(slow, state.Config{Prefix: cfg.Prefix, SingleKey: true, IndexPasses: passes})
		if err != nil {
			t.Fatal(err)
		}
		applied, err := appliedOf(bind(t, s).Save(ctx, []state.Write{{ID: "c", Rec: state.Record{Score: 0.1, Band: state.BandRed}}}))
		if len(applied) != 1 || !applied[0] {
			t.Fatalf("slow save: applied=%v, err=%v", applied, err)
		}
		if passes == 1 {
			// One pass only: the slow writer cannot repair and says so.
			if !errors.Is(err, state.ErrIndex) {
				t.Fatalf("err = %v, want ErrIndex", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		raw := newClient()
		for band, want := range map[string]bool{state.BandRed: false, state.BandYellow: false, state.BandGreen: true} {
			got, err := raw.HExists(ctx, s.BandKey(band, s.Bucket("c")), "c").Result()
			if err != nil || got != want {
				t.Errorf("index %s has c: %v, want %v (err %v)", band, got, want, err)
			}
		}
	})
}

// TestSaveAfterScriptFlush: a server that lost its scripts (a restart, a
// failover, SCRIPT FLUSH) gets them loaded again and every write applies
// exactly once.
func TestSaveAfterScriptFlush(t *testing.T) {
	var flushing sync.Mutex // the redis-server subtests share one server's scripts
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		flushing.Lock()
		defer flushing.Unlock()
		c := newClient()
		s := newStore(t, c, cfg)
		ctx := t.Context()
		ws := make([]state.Write, 600) // more than one multi-key chunk
		for i := range ws {
			ws[i] = state.Write{ID: fmt.Sprintf("f%03d", i), Rec: state.Record{Score: float64(i), Band: state.BandYellow}}
		}
		mustSave(t, s, ws[0])
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		applied := mustSave(t, s, ws[1:]...)
		if slices.Contains(applied, false) {
			t.Fatal("a write after SCRIPT FLUSH was not applied")
		}
		recs, err := s.Load(ctx, []string{"f000", "f001", "f599"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Version != 1 {
				t.Fatalf("version %d, want 1 (applied exactly once)", r.Version)
			}
		}
		counts, err := s.BandCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[state.BandYellow] != 600 {
			t.Fatalf("yellow index has %d members, want 600", counts[state.BandYellow])
		}
		// The outbox clear after a flush too (its own script).
		ob := []state.Write{{ID: "f000", Expected: 1, Rec: state.Record{Band: state.BandYellow, Pending: []byte("o")}}}
		mustSave(t, s, ob...)
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := bind(t, s).ClearOutboxes(ctx, []state.Outbox{ob[0].Saved()}); err != nil {
			t.Fatalf("clear after SCRIPT FLUSH: %v", err)
		}
		if r, _ := s.Get(ctx, "f000"); r.Pending != nil {
			t.Fatalf("outbox %q left after a clear that followed SCRIPT FLUSH", r.Pending)
		}
	})
}

// TestSessionBoundToServer: a save or clear through a session bound to
// another server's run_id (as after a restart) writes nothing and says so;
// bound to the server's own run_id it applies, in both modes; a
// comma-separated set of run_ids that holds the server's (Redis Cluster:
// every primary's) is the server's own.
func TestSessionBoundToServer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		s := newStore(t, newClient(), cfg)
		ctx := t.Context()
		id, err := s.ServerID(ctx)
		if err != nil {
			t.Skipf("no run_id on this backend: %v", err)
		}
		w := state.Write{ID: "srv", Rec: state.Record{Score: 10, Band: state.BandRed}}
		applied, err := appliedOf(s.BindTo("0123456789abcdef0123456789abcdef01234567").Save(ctx, []state.Write{w}))
		if !errors.Is(err, state.ErrServerChanged) {
			t.Fatalf("save bound to another run_id: %v, %v; want ErrServerChanged", applied, err)
		}
		if r, _ := s.Get(ctx, "srv"); r.Version != 0 {
			t.Fatalf("save bound to another run_id wrote version %d", r.Version)
		}
		if counts, _ := s.BandCounts(ctx); counts[state.BandRed] != 0 {
			t.Fatal("save bound to another run_id moved the band index")
		}
		w.Rec.Pending = []byte("outbox")
		if cfg.SingleKey {
			id = "0123456789abcdef0123456789abcdef01234567," + id // as ServerID on a cluster
		}
		ws := []state.Write{w}
		if applied, err := appliedOf(s.BindTo(id).Save(ctx, ws)); err != nil || !applied[0] {
			t.Fatalf("save bound to the server's run_id: %v, %v", applied, err)
		}
		ob := []state.Outbox{ws[0].Saved()}
		if err := s.BindTo("0123456789abcdef0123456789abcdef01234567").ClearOutboxes(ctx, ob); !errors.Is(err, state.ErrServerChanged) {
			t.Fatalf("clear bound to another run_id: %v; want ErrServerChanged", err)
		}
		if r, _ := s.Get(ctx, "srv"); string(r.Pending) != "outbox" {
			t.Fatalf("clear bound to another run_id deleted the outbox: pending %q", r.Pending)
		}
		if err := s.BindTo(id).ClearOutboxes(ctx, ob); err != nil {
			t.Fatalf("clear bound to the server's run_id: %v", err)
		}
		if r, _ := s.Get(ctx, "srv"); r.Pending != nil {
			t.Fatalf("clear bound to the server's run_id left pending %q", r.Pending)
		}
	})
}

// mustSaveBand saves a record with only a score and band, and fails unless
// the write applied.
func mustSaveBand(t *testing.T, s *state.Redis, id string, expected uint64, score float64, band string) {
	t.Helper()
	if got := mustSave(t, s, state.Write{ID: id, Expected: expected, Rec: state.Record{Score: score, Band: band}}); !got[0] {
		t.Fatalf("save %s not applied", id)
	}
}
