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
