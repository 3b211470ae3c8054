package state_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/healthscore/healthscore/state"
	"github.com/redis/go-redis/v9"
)

// TestBucketCompareAndSet is a property test of the compare-and-set with
// many customers per bucket (16 buckets, 96 customers): two writers
// (stores) save random sets of customers, several per call and several
// per bucket, each with the versions it last saw, so that one often writes
// on a stale base. Every save must apply exactly when the writer's
// expected version is the stored one (a model of the stored versions says
// which), a conflict must leave the record as it was, and at the end every
// record holds the last applied write. Some records are several KB, larger
// than hash-max-listpack-value, which turns their bucket into a hashtable
// without changing any of this.
func TestBucketCompareAndSet(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		cfg.Buckets = 16
		writers := []*state.Redis{newStore(t, newClient(), cfg), newStore(t, newClient(), cfg)}
		ids := make([]string, 96)
		for i := range ids {
			ids[i] = fmt.Sprintf("cust-%d", i)
		}
		rng := rand.New(rand.NewPCG(14, 4))
		stored := make(map[string]uint64) // the model: stored version per id
		data := make(map[string][]byte)   // the last applied write's Data
		known := []map[string]uint64{{}, {}}
		for round := range 120 {
			w := round % 2
			if rng.IntN(5) == 0 { // the writer catches up
				recs := mustLoad(t, writers[w], ids...)
				for i, id := range ids {
					known[w][id] = recs[i].Version
				}
			}
			var ws []state.Write
			seen := map[string]bool{}
			for range 1 + rng.IntN(40) {
				id := ids[rng.IntN(len(ids))]
				if seen[id] {
					continue // once per call: the model compares each with the stored version
				}
				seen[id] = true
				d := fmt.Appendf(nil, "w%d r%d %s ", w, round, id)
				if rng.IntN(10) == 0 {
					d = append(d, bytes.Repeat([]byte("x"), 3000+rng.IntN(3000))...) // > 512 bytes
				}
				ws = append(ws, state.Write{ID: id, Expected: known[w][id], NoPrevOutbox: true,
					Rec: state.Record{Score: float64(round), Band: state.BandGreen, Data: d}})
			}
			applied := mustSave(t, writers[w], ws...)
			for i, wr := range ws {
				want := wr.Expected == stored[wr.ID]
				if applied[i] != want {
					t.Fatalf("round %d: save of %s expecting version %d (stored %d): applied %v, want %v",
						round, wr.ID, wr.Expected, stored[wr.ID], applied[i], want)
				}
				if want {
					stored[wr.ID]++
					data[wr.ID] = wr.Rec.Data
					known[w][wr.ID] = stored[wr.ID]
				}
			}
		}
		for _, s := range writers {
			recs, err := s.Load(t.Context(), ids)
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				if recs[i].Version != stored[id] || !bytes.Equal(recs[i].Data, data[id]) {
					t.Fatalf("%s: version %d data %.40q…, want %d %.40q…", id, recs[i].Version, recs[i].Data, stored[id], data[id])
				}
			}
		}
	})
}

// TestBucketLargeRecord: a record of several KB in a bucket with small
// ones (larger than hash-max-listpack-value: the bucket becomes a
// hashtable) round-trips, and its compare-and-set, and its neighbours',
// stay exact.
func TestBucketLargeRecord(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		cfg.Buckets = 16
		c := newClient()
		s := newStore(t, c, cfg)
		ctx := t.Context()
		// Customers of one bucket.
		var ids []string
		for i := 0; len(ids) < 4; i++ {
			if id := fmt.Sprint("c", i); s.Bucket(id) == 0 {
				ids = append(ids, id)
			}
		}
		small := func(v string) state.Record { return state.Record{Band: state.BandRed, Data: []byte(v)} }
		for _, id := range ids[1:] {
			mustSave(t, s, state.Write{ID: id, Rec: small(id)})
		}
		encoding := func() string {
			key, _ := s.RecordKey(ids[0])
			enc, err := c.ObjectEncoding(ctx, key).Result()
			if err != nil {
				return "" // miniredis has no OBJECT ENCODING
			}
			return enc
		}
		if e := encoding(); e != "" && e != "listpack" && !cfg.SingleKey {
			t.Fatalf("bucket of small records is a %s, want a listpack", e)
		}
		big := []byte(strings.Repeat("large scorer state ", 400)) // 7.6 KB
		if !mustSave(t, s, state.Write{ID: ids[0], Rec: state.Record{Band: state.BandRed, Data: big}})[0] {
			t.Fatal("first save of the large record not applied")
		}
		if e := encoding(); e != "" && e != "hashtable" && !cfg.SingleKey {
			t.Fatalf("bucket holding a %d-byte record is a %s, want a hashtable", len(big), e)
		}
		recs := mustLoad(t, s, ids...)
		if recs[0].Version != 1 || !bytes.Equal(recs[0].Data, big) {
			t.Fatalf("large record read back as version %d, %d bytes", recs[0].Version, len(recs[0].Data))
		}
		for i, id := range ids[1:] {
			if r := recs[i+1]; r.Version != 1 || string(r.Data) != id {
				t.Fatalf("%s beside the large record: %+v", id, r)
			}
		}
		// A stale write of the large one and of a neighbour conflict; the
		// current ones apply.
		applied := mustSave(t, s,
			state.Write{ID: ids[0], Expected: 0, Rec: small("stale")},
			state.Write{ID: ids[1], Expected: 0, Rec: small("stale")},
			state.Write{ID: ids[0], Expected: 1, Rec: state.Record{Band: state.BandRed, Data: append(big, '!')}},
			state.Write{ID: ids[2], Expected: 1, Rec: small("next")},
		)
		if fmt.Sprint(applied) != "[false false true true]" {
			t.Fatalf("applied %v, want [false false true true]", applied)
		}
		recs = mustLoad(t, s, ids...)
		if recs[0].Version != 2 || !bytes.Equal(recs[0].Data, append(big, '!')) ||
			recs[1].Version != 1 || string(recs[1].Data) != ids[1] ||
			recs[2].Version != 2 || string(recs[2].Data) != "next" {
			t.Fatalf("after the compare-and-sets: %d %d %q, %d %q", recs[0].Version, recs[1].Version, recs[1].Data, recs[2].Version, recs[2].Data)
		}
	})
}
