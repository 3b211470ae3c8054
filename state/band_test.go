package state_test

import (
	"fmt"
	"testing"

	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/state"
)

// BenchmarkBandListing lists the 100 lowest of a band of 100,000 members,
// and of 100 (every bucket's hash read, nearly all empty), on redis-server:
// Band reads every bucket of the band and every member's record (records of
// 200 bytes of scorer state here), so this is its cost per listing at those
// band sizes with the default number of buckets.
func BenchmarkBandListing(b *testing.B) {
	data := make([]byte, 200)
	for _, bc := range []struct {
		members   int
		singleKey bool
	}{{100_000, false}, {100_000, true}, {100, false}, {100, true}} {
		b.Run(fmt.Sprintf("members=%d/single-key=%v", bc.members, bc.singleKey), func(b *testing.B) {
			s := benchStore(b, bc.singleKey, bc.members, func(i int) state.Record {
				return state.Record{Score: float64(i % 997), Band: state.BandRed, Data: data}
			})
			for b.Loop() {
				ms, err := s.Band(b.Context(), state.BandRed, 100)
				if err != nil {
					b.Fatal(err)
				}
				if len(ms) != 100 || ms[0].Score != 0 {
					b.Fatalf("Band(red, 100): %d members, first %v", len(ms), ms[0])
				}
			}
		})
	}
}

// BenchmarkBandCounts reads the band counts of 100,000 indexed customers:
// one HMGET in the default mode, an HLEN of every bucket's hash of every
// band in single-key mode.
func BenchmarkBandCounts(b *testing.B) {
	const members = 100_000
	for _, singleKey := range []bool{false, true} {
		b.Run(fmt.Sprintf("single-key=%v", singleKey), func(b *testing.B) {
			s := benchStore(b, singleKey, members, func(i int) state.Record {
				return state.Record{Band: state.Bands[i%len(state.Bands)]}
			})
			for b.Loop() {
				counts, err := s.BandCounts(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if counts[state.BandRed]+counts[state.BandYellow]+counts[state.BandGreen] != members {
					b.Fatalf("BandCounts() = %v, want %d in all", counts, members)
				}
			}
		})
	}
}

// benchStore returns a store on redis-server holding n customers c000000,
// c000001, ..., customer i's record rec(i).
func benchStore(b *testing.B, singleKey bool, n int, rec func(i int) state.Record) *state.Redis {
	b.Helper()
	c, prefix := testenv.Redis(b)
	s, err := state.NewRedis(c, state.Config{Prefix: prefix, SingleKey: singleKey})
	if err != nil {
		b.Fatal(err)
	}
	sess, err := s.Bind(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < n; start += 10_000 {
		ws := make([]state.Write, min(10_000, n-start))
		for i := range ws {
			ws[i] = state.Write{ID: fmt.Sprintf("c%06d", start+i), Rec: rec(start + i)}
		}
		if _, err := sess.Save(b.Context(), ws); err != nil {
			b.Fatal(err)
		}
	}
	return s
}
