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
	const dataLen = 200
	for _, bc := range []struct {
		members   int
		singleKey bool
	}{{100_000, false}, {100_000, true}, {100, false}, {100, true}} {
		members, singleKey := bc.members, bc.singleKey
		b.Run(fmt.Sprintf("members=%d/single-key=%v", members, singleKey), func(b *testing.B) {
			c, prefix := testenv.Redis(b)
			s, err := state.NewRedis(c, state.Config{Prefix: prefix, SingleKey: singleKey})
			if err != nil {
				b.Fatal(err)
			}
			ctx := b.Context()
			sess, err := s.Bind(ctx)
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, dataLen)
			for start := 0; start < members; start += 10_000 {
				ws := make([]state.Write, min(10_000, members))
				for i := range ws {
					ws[i] = state.Write{ID: fmt.Sprintf("c%06d", start+i), Rec: state.Record{Score: float64((start + i) % 997), Band: state.BandRed, Data: data}}
				}
				if _, err := sess.Save(ctx, ws); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				ms, err := s.Band(ctx, state.BandRed, 100)
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
			c, prefix := testenv.Redis(b)
			s, err := state.NewRedis(c, state.Config{Prefix: prefix, SingleKey: singleKey})
			if err != nil {
				b.Fatal(err)
			}
			ctx := b.Context()
			sess, err := s.Bind(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for start := 0; start < members; start += 10_000 {
				ws := make([]state.Write, 10_000)
				for i := range ws {
					ws[i] = state.Write{ID: fmt.Sprintf("c%06d", start+i), Rec: state.Record{Band: state.Bands[(start+i)%3]}}
				}
				if _, err := sess.Save(ctx, ws); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				counts, err := s.BandCounts(ctx)
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
