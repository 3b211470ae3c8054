package state

import (
	"context"
	"fmt"
)

// BandCounts returns the number of entries in each band's index (ZCARD, one
// pipelined round trip). The index is derived and can briefly hold a stale
// entry after a crash between the state write and the index update, so the
// counts are for dashboards, not for decisions.
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
