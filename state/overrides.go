package state

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Overrides: the customers with a manual override and their expiry.

// OverridesKey is the sorted set of customers with a manual override
// (member = customer id, score = expiry Unix ms; +inf without expiry).
func (s *Redis) OverridesKey() string { return s.cfg.Prefix + "overrides" }

// TrackOverrides records the expiry of each customer's current override
// (Due.At, Unix ms; 0 for none) in one round trip.
func (s *Redis) TrackOverrides(ctx context.Context, ds []Due) error {
	if len(ds) == 0 {
		return nil
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range ds {
			score := math.Inf(1)
			if d.At > 0 {
				score = float64(d.At)
			}
			p.ZAdd(ctx, s.OverridesKey(), redis.Z{Score: score, Member: d.ID})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot track overrides: %w", err)
	}
	return nil
}

// ActiveOverrides drops expired entries and counts the overrides active at
// nowMs (one round trip).
func (s *Redis) ActiveOverrides(ctx context.Context, nowMs int64) (int64, error) {
	var n *redis.IntCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, s.OverridesKey(), "-inf", "("+strconv.FormatInt(nowMs, 10))
		n = p.ZCard(ctx, s.OverridesKey())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cannot count overrides: %w", err)
	}
	return n.Val(), nil
}
