package state_test

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/state"
)

func day(d int64) state.Day {
	return state.Day{Day: d, Score: float64(d%100) + 0.25, Min: float64(d % 100), Band: state.Bands[d%3]}
}

func days(ds ...int64) []state.Day {
	out := make([]state.Day, len(ds))
	for i, d := range ds {
		out[i] = day(d)
	}
	return out
}

func dayNumbers(h state.History) []int64 {
	var out []int64
	for _, d := range h.Days {
		out = append(out, d.Day)
	}
	return out
}

// changesBytes is the stored size of changes(from, to).
func changesBytes(from, to int) []byte {
	var b []byte
	for _, c := range changes(from, to) {
		b = append(append(b, 0, byte(len(c))), c...)
	}
	return b
}

func changes(from, to int) [][]byte {
	var out [][]byte
	for i := from; i <= to; i++ {
		out = append(out, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	return out
}

// History is appended by the save script only when the compare-and-set
// applies, padded over gaps, trimmed to the window, never duplicated, and
// read back (record, days and changes) in one round trip.
func TestHistoryWrittenWithRecord(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		cfg.HistoryDays = 5
		c := newClient()
		s := newStore(t, c, cfg)
		ctx := t.Context()
		const id = "acme"
		rt := &roundTrips{}
		c2 := newClient()
		c2.AddHook(rt)
		reader := newStore(t, c2, cfg)
		if _, _, err := reader.GetWithHistory(ctx, id); err != nil { // connects
			t.Fatal(err)
		}
		get := func() (state.Record, state.History) {
			t.Helper()
			rt.n.Store(0)
			rec, h, err := reader.GetWithHistory(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if rt.n.Load() != 1 {
				t.Fatalf("GetWithHistory took %d round trips, want 1", rt.n.Load())
			}
			return rec, h
		}
		save := func(expected uint64, ds []state.Day, cs [][]byte) bool {
			t.Helper()
			return mustSave(t, s, state.Write{ID: id, Expected: expected, Rec: state.Record{Score: 50, Band: state.BandYellow}, Days: ds, Changes: cs})[0]
		}
		checkDays := func(what string, want ...int64) {
			t.Helper()
			_, h := get()
			if fmt.Sprint(dayNumbers(h)) != fmt.Sprint(want) {
				t.Fatalf("%s: days %v, want %v", what, dayNumbers(h), want)
			}
			for _, d := range h.Days {
				if d != day(d.Day) {
					t.Fatalf("%s: day %+v, want %+v", what, d, day(d.Day))
				}
			}
		}
		if rec, h := get(); rec.Version != 0 || len(h.Days) != 0 || len(h.Changes) != 0 {
			t.Fatalf("missing customer: %+v %+v", rec, h)
		}
		if !save(0, days(20010, 20011), changes(1, 1)) {
			t.Fatal("first save not applied")
		}
		checkDays("first save", 20010, 20011)
		// A stale write (the version moved on) appends nothing.
		if save(0, days(20012), changes(2, 2)) {
			t.Fatal("stale save applied")
		}
		checkDays("stale save", 20010, 20011)
		if _, h := get(); len(h.Changes) != 1 || string(h.Changes[0]) != `{"n":1}` {
			t.Fatalf("changes after a stale save: %q", h.Changes)
		}
		// A gap is stored as days with no score, which are not read back.
		save(1, days(20012, 20014), changes(2, 7))
		checkDays("gap", 20010, 20011, 20012, 20014)
		// Over the window: trimmed to its last 5 days (20011..20015).
		save(2, days(20015), changes(8, 13))
		checkDays("trim", 20011, 20012, 20014, 20015)
		if n := c.StrLen(ctx, s.HistoryKey(id)).Val(); n != 6+5*4+int64(len(changesBytes(4, 13))) {
			t.Fatalf("history is %d bytes after the trim, want 6 + 5 days × 4 + the 10 framed changes", n)
		}
		if _, h := get(); len(h.Changes) != state.MaxChanges || string(h.Changes[0]) != `{"n":13}` || string(h.Changes[9]) != `{"n":4}` {
			t.Fatalf("changes: %q", h.Changes)
		}
		// Days already stored are not appended again.
		save(3, days(20015, 20016), nil)
		checkDays("overlap", 20012, 20014, 20015, 20016)
		// A gap wider than the window starts afresh.
		save(4, days(20030), nil)
		checkDays("restart", 20030)
		// Two writes of one customer in one call apply in order.
		applied := mustSave(t, s,
			state.Write{ID: id, Expected: 5, Rec: state.Record{Band: state.BandRed}, Days: days(20031)},
			state.Write{ID: id, Expected: 6, Rec: state.Record{Band: state.BandRed}, Days: days(20032)})
		if !applied[0] || !applied[1] {
			t.Fatalf("applied %v", applied)
		}
		checkDays("two writes", 20030, 20031, 20032)
		// Keys share the record's hash tag (one cluster slot).
		if k, want := s.HistoryKey(id), "{"+id+"}"; !containsTag(k, want) {
			t.Fatalf("key %q lacks the hash tag %s", k, want)
		}
		hs, err := s.Histories(ctx, []string{id, "nobody"})
		if err != nil || len(hs) != 2 || len(hs[0].Days) != 3 || len(hs[1].Days) != 0 || hs[0].Changes != nil {
			t.Fatalf("Histories: %+v %v", hs, err)
		}
	})
}

func containsTag(k, tag string) bool {
	for i := 0; i+len(tag) <= len(k); i++ {
		if k[i:i+len(tag)] == tag {
			return true
		}
	}
	return false
}

// With HistoryDays 0 the save writes no history key, whatever the writes
// carry.
func TestHistoryOff(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		c := newClient()
		s := newStore(t, c, cfg)
		ctx := t.Context()
		if !mustSave(t, s, state.Write{ID: "acme", Rec: state.Record{Band: state.BandGreen}, Days: days(20010), Changes: changes(1, 1)})[0] {
			t.Fatal("not applied")
		}
		if n := c.Exists(ctx, s.HistoryKey("acme")).Val(); n != 0 {
			t.Fatalf("%d history keys written with history off", n)
		}
		keys, err := c.Keys(ctx, cfg.Prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := s.RecordKey("acme")
		for _, k := range keys {
			if k != rec && k != s.BandKey(state.BandGreen, s.Bucket("acme")) && k != s.BandCountKey() {
				t.Fatalf("unexpected key %q with history off", k)
			}
		}
	})
}

func TestHistoryRejectsBadDays(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	defer c.Close()
	s := newStore(t, c, state.Config{HistoryDays: 10})
	for _, ds := range [][]state.Day{
		{day(5), day(4)},
		{{Day: 1, Score: 101, Band: state.BandRed}},
		{{Day: 1, Score: 50, Min: -1, Band: state.BandRed}},
		{{Day: 1, Score: 50, Band: state.BandNone}},
		{day(1), day(1 + state.MaxHistoryDays)},
	} {
		if _, err := s.BindTo("").Save(t.Context(), []state.Write{{ID: "a", Days: ds}}); err == nil {
			t.Errorf("days %+v accepted", ds)
		}
	}
	if _, err := s.BindTo("").Save(t.Context(), []state.Write{{ID: "a", Changes: [][]byte{{}}}}); err == nil {
		t.Error("empty change accepted")
	}
	if _, err := state.NewRedis(c, state.Config{HistoryDays: state.MaxHistoryDays + 1}); err == nil {
		t.Error("HistoryDays over the maximum accepted")
	}
}
