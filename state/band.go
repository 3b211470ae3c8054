package state

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The band index: sorted sets <prefix>band:red|yellow|green, kept by the
// multi-key save script, or after the records in single-key mode (index),
// and listed by Band re-checked against the records.

// index moves the applied writes' customers to their new band, then re-reads
// their records and repeats for any that another writer saved meanwhile, so
// that the last index write for a customer is always for its latest record.
func (s *Redis) index(ctx context.Context, ws []Write, applied []bool) error {
	type entry struct {
		id      string
		version uint64
		band    string
		score   float64
	}
	var todo []entry
	for i, w := range ws {
		if applied[i] && !w.SkipIndex {
			todo = append(todo, entry{w.ID, w.Expected + 1, w.Rec.Band, w.Rec.Score})
		}
	}
	for pass := 0; len(todo) > 0; pass++ {
		if pass == s.cfg.IndexPasses {
			return fmt.Errorf("%d customers still changing after %d passes", len(todo), pass)
		}
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, e := range todo {
				for _, b := range Bands {
					if b == e.band {
						p.ZAdd(ctx, s.BandKey(b), redis.Z{Score: e.score, Member: e.id})
					} else {
						p.ZRem(ctx, s.BandKey(b), e.id)
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		ids := make([]string, len(todo))
		for i, e := range todo {
			ids[i] = e.id
		}
		recs, err := s.load(ctx, ids, false, "")
		if err != nil {
			return err
		}
		var next []entry
		seen := map[string]bool{}
		for i, e := range todo {
			if r := recs[i]; r.Version != e.version && !seen[e.id] {
				seen[e.id] = true
				next = append(next, entry{e.id, r.Version, r.Band, r.Score})
			}
		}
		todo = next
	}
	return nil
}

// Band lists members of a band, lowest score first, at most limit. It pages through the band's sorted set and keeps
// only candidates whose record is still in the band, reporting the record's
// score; the result is sorted by that score.
func (s *Redis) Band(ctx context.Context, band string, limit int) ([]Member, error) {
	if !slices.Contains(Bands, band) {
		return nil, fmt.Errorf("cannot list band %q: unknown band", band)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("cannot list band %q: limit must be positive, got %d", band, limit)
	}
	var out []Member
	seen := map[string]bool{}
	for start := int64(0); len(out) < limit; start += int64(limit) {
		ids, err := s.c.ZRange(ctx, s.BandKey(band), start, start+int64(limit)-1).Result()
		if err != nil {
			return nil, fmt.Errorf("cannot list band %q: %w", band, err)
		}
		if len(ids) == 0 {
			break
		}
		recs, err := s.load(ctx, ids, false, "")
		if err != nil {
			return nil, fmt.Errorf("cannot list band %q: %w", band, err)
		}
		for i, r := range recs {
			if r.Band == band && !seen[ids[i]] && len(out) < limit {
				seen[ids[i]] = true
				out = append(out, Member{ID: ids[i], Score: r.Score, Data: r.Data})
			}
		}
		if len(ids) < limit {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b Member) int {
		if a.Score != b.Score {
			if a.Score < b.Score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// BandCounts returns the number of entries in each band's index (ZCARD, one
// pipelined round trip). In the default mode the save script keeps the
// index exact; in single-key mode it is derived and can briefly hold a stale
// entry after a crash between the state write and the index update. Either
// way the counts are for dashboards, not for decisions.
func (s *Redis) BandCounts(ctx context.Context) (map[string]int64, error) {
	pipe := s.c.Pipeline()
	cmds := make([]interface{ Val() int64 }, len(Bands))
	for i, b := range Bands {
		cmds[i] = pipe.ZCard(ctx, s.BandKey(b))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("cannot count band members: %w", err)
	}
	out := make(map[string]int64, len(Bands))
	for i, b := range Bands {
		out[b] = cmds[i].Val()
	}
	return out, nil
}

// BandIDs returns every customer id in a band's index, in score order (one
// ZRANGE per 10,000 entries). Use it for whole-index passes such as
// rescoring after a model reload; the ids are not re-checked against the
// records.
func (s *Redis) BandIDs(ctx context.Context, band string) ([]string, error) {
	var out []string
	const page = 10000
	for start := int64(0); ; start += page {
		ids, err := s.c.ZRange(ctx, s.BandKey(band), start, start+page-1).Result()
		if err != nil {
			return nil, fmt.Errorf("cannot list band %q: %w", band, err)
		}
		out = append(out, ids...)
		if len(ids) < page {
			return out, nil
		}
	}
}
