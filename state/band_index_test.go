package state_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/healthscore/healthscore/state"
)

// bandModel is what the band index must say after a sequence of saves:
// each customer's version, score and band, as the compare-and-sets decide.
type bandModel struct {
	version map[string]uint64
	rec     map[string]state.Record
}

// apply is the compare-and-set of w on the model; it reports whether w
// applies.
func (m *bandModel) apply(w state.Write) bool {
	if m.version[w.ID] != w.Expected {
		return false
	}
	m.version[w.ID]++
	m.rec[w.ID] = w.Rec
	return true
}

// members returns the model's members of band, lowest score first (ties
// by id).
func (m *bandModel) members(band string) []state.Member {
	var out []state.Member
	for id, r := range m.rec {
		if r.Band == band {
			out = append(out, state.Member{ID: id, Score: r.Score})
		}
	}
	slices.SortFunc(out, func(a, b state.Member) int {
		return cmp.Or(cmp.Compare(a.Score, b.Score), strings.Compare(a.ID, b.ID))
	})
	return out
}

// TestBandIndexProperty: after any sequence of batches of saves (band
// moves, saves within a band, leaving every band, lost compare-and-sets
// and replays of applied writes), over many buckets or few, in both modes:
// Band lists exactly the members whose record is in the band, lowest score
// first, up to the limit; BandIDs lists each of them once; BandCounts is
// exact; and the earlier layout's key names are never written.
func TestBandIndexProperty(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		c := newClient()
		ctx := t.Context()
		iter := 0
		rapid.Check(t, func(rt *rapid.T) {
			iter++
			icfg := cfg
			icfg.Prefix = fmt.Sprintf("%sp%d:", cfg.Prefix, iter)
			// 1040 buckets: two HKEYS round trips per listing, mostly one
			// customer per bucket; 16: many customers per bucket.
			icfg.Buckets = rapid.SampledFrom([]int{16, 1040}).Draw(rt, "buckets")
			s, err := state.NewRedis(c, icfg)
			if err != nil {
				rt.Fatal(err)
			}
			sess, err := s.Bind(ctx)
			if err != nil {
				rt.Fatal(err)
			}
			m := &bandModel{version: map[string]uint64{}, rec: map[string]state.Record{}}
			var history []state.Write // applied writes, to replay
			ids := rapid.IntRange(1, 60).Draw(rt, "customers")
			for range rapid.IntRange(1, 4).Draw(rt, "batches") {
				ws := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) state.Write {
					if len(history) > 0 && rapid.IntRange(0, 5).Draw(rt, "replay") == 0 {
						return rapid.SampledFrom(history).Draw(rt, "replayed")
					}
					id := fmt.Sprintf("c%02d", rapid.IntRange(0, ids-1).Draw(rt, "id"))
					expected := m.version[id]
					if rapid.IntRange(0, 5).Draw(rt, "stale") == 0 {
						expected += uint64(rapid.IntRange(1, 2).Draw(rt, "off"))
					}
					return state.Write{ID: id, Expected: expected, Rec: state.Record{
						Score: float64(rapid.IntRange(0, 20).Draw(rt, "score")), // ties likely
						Band:  rapid.SampledFrom([]string{state.BandNone, state.BandRed, state.BandYellow, state.BandGreen}).Draw(rt, "band"),
					}}
				}), 1, 30).Draw(rt, "writes")
				// The model decides in order (a write may depend on an
				// earlier one of the same batch), before Save touches ws.
				want := make([]bool, len(ws))
				for i, w := range ws {
					want[i] = m.apply(w)
				}
				got, err := appliedOf(sess.Save(ctx, slices.Clone(ws)))
				if err != nil {
					rt.Fatal(err)
				}
				if !slices.Equal(got, want) {
					rt.Fatalf("applied %v, want %v", got, want)
				}
				for i, w := range ws {
					if want[i] {
						history = append(history, w)
					}
				}
				checkBandIndex(ctx, rt, c, s, icfg.Prefix, m)
			}
		})
	})
}

// checkBandIndex compares s's band index with the model.
func checkBandIndex(ctx context.Context, rt *rapid.T, c *redis.Client, s *state.Redis, prefix string, m *bandModel) {
	counts, err := s.BandCounts(ctx)
	if err != nil {
		rt.Fatal(err)
	}
	for _, band := range state.Bands {
		want := m.members(band)
		if counts[band] != int64(len(want)) {
			rt.Fatalf("BandCounts()[%s] = %d, want %d (counts %v)", band, counts[band], len(want), counts)
		}
		limit := rapid.IntRange(1, len(want)+2).Draw(rt, "limit")
		ms, err := s.Band(ctx, band, limit)
		if err != nil {
			rt.Fatal(err)
		}
		if w := want[:min(limit, len(want))]; !slices.EqualFunc(ms, w, func(a, b state.Member) bool { return a.ID == b.ID && a.Score == b.Score }) {
			rt.Fatalf("Band(%s, %d) = %v, want %v", band, limit, ms, w)
		}
		ids, err := s.BandIDs(ctx, band)
		if err != nil {
			rt.Fatal(err)
		}
		slices.Sort(ids)
		wantIDs := make([]string, len(want))
		for i, mb := range want {
			wantIDs[i] = mb.ID
		}
		slices.Sort(wantIDs)
		if !slices.Equal(ids, wantIDs) {
			rt.Fatalf("BandIDs(%s) = %v, want %v", band, ids, wantIDs)
		}
	}
	if n, err := c.Exists(ctx, prefix+"band:red", prefix+"band:yellow", prefix+"band:green").Result(); err != nil || n != 0 {
		rt.Fatalf("%d keys of the earlier layout written (%v)", n, err)
	}
}

// TestBandCountsExact: the counts follow band moves, first bands and
// leaving every band, and neither a lost compare-and-set nor the replay of
// an applied write changes them (the save script counts only what its
// HDEL and HSET changed, on applied writes).
func TestBandCountsExact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		s := newStore(t, newClient(), cfg)
		ctx := t.Context()
		wantCounts := func(red, yellow, green int64) {
			t.Helper()
			got, err := s.BandCounts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]int64{state.BandRed: red, state.BandYellow: yellow, state.BandGreen: green}; !maps.Equal(got, want) {
				t.Fatalf("BandCounts() = %v, want %v", got, want)
			}
		}
		wantCounts(0, 0, 0)
		w := func(id string, expected uint64, band string) state.Write {
			return state.Write{ID: id, Expected: expected, Rec: state.Record{Score: 1, Band: band}}
		}
		applied := mustSave(t, s, w("a", 0, state.BandRed), w("b", 0, state.BandRed), w("c", 0, state.BandNone), w("a", 1, state.BandYellow))
		if !slices.Equal(applied, []bool{true, true, true, true}) {
			t.Fatalf("applied %v", applied)
		}
		wantCounts(1, 1, 0)
		// Lost compare-and-sets: a stale version, and the replay of an
		// applied write (a band change that already happened).
		if applied := mustSave(t, s, w("b", 0, state.BandGreen), w("a", 1, state.BandYellow), w("a", 0, state.BandRed)); slices.Contains(applied, true) {
			t.Fatalf("stale writes applied: %v", applied)
		}
		wantCounts(1, 1, 0)
		// Within a band, out of every band, into a band from none.
		mustSave(t, s, w("b", 1, state.BandRed), w("a", 2, state.BandNone), w("c", 1, state.BandGreen))
		wantCounts(1, 0, 1)
	})
}

// beforeHKeys runs fn once, just before the second pipeline of HKEYS (a
// listing has read the first round trip's buckets, not yet the others).
type beforeHKeys struct {
	mu sync.Mutex
	n  int
	fn func()
}

func (h *beforeHKeys) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *beforeHKeys) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *beforeHKeys) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && strings.EqualFold(cmds[0].Name(), "hkeys") {
			h.mu.Lock()
			h.n++
			run := h.n == 2
			h.mu.Unlock()
			if run {
				h.fn()
			}
		}
		return next(ctx, cmds)
	}
}

// TestBandListingDuringMoves: saves that move every member out of the band
// and back while a listing runs (after it read some buckets, before the
// others) neither repeat nor lose a member: each customer's entry lives in
// its one bucket, which the listing reads once.
func TestBandListingDuringMoves(t *testing.T) {
	const n = 400
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := t.Context()
		writer := newStore(t, newClient(), cfg)
		ws := make([]state.Write, n)
		for i := range ws {
			ws[i] = state.Write{ID: fmt.Sprintf("m%03d", i), Rec: state.Record{Score: float64(i), Band: state.BandRed}}
		}
		mustSave(t, writer, ws...)
		version := uint64(1)
		move := func() {
			for _, band := range []string{state.BandYellow, state.BandRed} {
				for i := range ws {
					ws[i].Expected, ws[i].Rec.Band = version, band
				}
				if applied, err := appliedOf(bind(t, writer).Save(ctx, ws)); err != nil || slices.Contains(applied, false) {
					t.Errorf("moving saves: %v, %v", applied, err)
				}
				version++
			}
		}
		for _, list := range []string{"Band", "BandIDs"} {
			t.Run(list, func(t *testing.T) {
				c := newClient()
				h := &beforeHKeys{fn: move}
				c.AddHook(h)
				reader := newStore(t, c, cfg)
				var ids []string
				if list == "Band" {
					ms, err := reader.Band(ctx, state.BandRed, n+10)
					if err != nil {
						t.Fatal(err)
					}
					for k, m := range ms {
						if m.Score != float64(k) {
							t.Fatalf("Band(red)[%d] = %v, want score %d", k, m, k)
						}
						ids = append(ids, m.ID)
					}
				} else {
					var err error
					if ids, err = reader.BandIDs(ctx, state.BandRed); err != nil {
						t.Fatal(err)
					}
				}
				if h.n < 2 {
					t.Fatalf("%s ran %d HKEYS round trips: the saves did not run during it", list, h.n)
				}
				slices.Sort(ids)
				if len(ids) != n || len(slices.Compact(ids)) != n {
					t.Fatalf("%s(red) listed %d ids, %d distinct; want %d once each", list, len(ids), len(slices.Compact(ids)), n)
				}
			})
		}
	})
}

// TestBandCountsCachedInSingleKeyMode: single-key mode sums every bucket's
// hash to count a band, so it serves that sum for up to BandCountsMaxAge:
// a second call within it sends nothing to Redis and returns the counts
// as they were; with a negative age every call sums afresh.
func TestBandCountsCachedInSingleKeyMode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		if !cfg.SingleKey {
			t.Skip("multi-key mode reads exact counts with one HMGET")
		}
		ctx := context.Background()
		c := newClient()
		rt := &roundTrips{}
		c.AddHook(rt)
		cfg.BandCountsMaxAge = time.Hour
		cfg.Buckets = 64
		s := newStore(t, c, cfg)
		mustSaveBand(t, s, "a", 0, 20, state.BandRed)
		first, err := s.BandCounts(ctx)
		if err != nil || first[state.BandRed] != 1 {
			t.Fatalf("counts %v, %v; want one red", first, err)
		}
		mustSaveBand(t, s, "b", 0, 25, state.BandRed)
		before := rt.n.Load()
		again, err := s.BandCounts(ctx)
		if err != nil || again[state.BandRed] != 1 || rt.n.Load() != before {
			t.Fatalf("within the max age: counts %v, %v, %d round trips; want the cached one red and none", again, err, rt.n.Load()-before)
		}
		fresh := cfg
		fresh.BandCountsMaxAge = -1
		now, err := newStore(t, c, fresh).BandCounts(ctx)
		if err != nil || now[state.BandRed] != 2 {
			t.Fatalf("without a max age: counts %v, %v; want two red", now, err)
		}
	})
}
