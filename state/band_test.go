package state_test

import (
	"fmt"
	"testing"

	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/state"
)

// BenchmarkBandListing lists the 100 lowest of a 100,000-member band on
// redis-server: Band reads every member's record (records of 200 bytes of
// scorer state here), so this is its cost per listing at that band size.
func BenchmarkBandListing(b *testing.B) {
	const members, dataLen = 100_000, 200
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
			data := make([]byte, dataLen)
			for start := 0; start < members; start += 10_000 {
				ws := make([]state.Write, 10_000)
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
