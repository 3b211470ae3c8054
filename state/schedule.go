package state

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The schedule holds, for customers whose score will need publishing with
// no new event (decay crossing a band or moving decay_step points), the
// instant that happens. It is sharded over sorted sets <prefix>due:{N}
// (member = customer id, score = due Unix ms); every command touches one
// shard, so it is Redis Cluster safe. A customer is always in the same
// shard.
//
// Due times may be earlier than necessary (a harmless wake-up: the sweeper
// evaluates, publishes nothing and reschedules), never later: event batches
// only move a due time earlier (ZADD LT), and the sweeper, which holds a
// claim, sets it exactly unless an event batch moved it meanwhile.

// DefaultShards is the number of schedule shards.
const DefaultShards = 16

// Due is one schedule entry.
type Due struct {
	ID string
	At int64 // Unix ms
}

// Shard returns the schedule shard of a customer: its bucket modulo the
// number of shards.
func (s *Redis) Shard(id string) int { return s.Bucket(id) % s.cfg.Shards }

// Shards returns the number of schedule shards.
func (s *Redis) Shards() int { return s.cfg.Shards }

// DueKey returns the Redis key of a schedule shard.
func (s *Redis) DueKey(shard int) string {
	return s.cfg.Prefix + "due:{" + strconv.Itoa(shard) + "}"
}

// ScheduleEarlier sets each customer's due time, unless it already has an
// earlier one (one pipelined round trip of one ZADD LT per shard touched).
func (s *Redis) ScheduleEarlier(ctx context.Context, ds []Due) error {
	if len(ds) == 0 {
		return nil
	}
	byShard := make([][]redis.Z, s.cfg.Shards)
	for _, d := range ds {
		k := s.Shard(d.ID)
		byShard[k] = append(byShard[k], redis.Z{Score: float64(d.At), Member: d.ID})
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, zs := range byShard {
			for start := 0; start < len(zs); start += batchChunk {
				p.ZAddLT(ctx, s.DueKey(k), zs[start:min(start+batchChunk, len(zs))]...)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot schedule customers: %w", err)
	}
	return nil
}

// claimScript takes up to ARGV[3] members due at or before ARGV[1] and moves
// them to ARGV[2] (the claim's expiry), returning them. A claimed customer
// whose sweeper dies is claimed again when the lease ends.
var claimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
end
return ids
`)

// Claim takes up to limit customers of a shard due at or before nowMs, and
// leases them until leaseUntilMs.
func (s *Redis) Claim(ctx context.Context, shard int, nowMs, leaseUntilMs int64, limit int) ([]string, error) {
	ids, err := claimScript.Run(ctx, s.c, []string{s.DueKey(shard)}, nowMs, leaseUntilMs, limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("cannot claim due customers of shard %d: %w", shard, err)
	}
	return ids, nil
}

// releaseScript sets a claimed member's due time to ARGV[2] (or removes it
// when ARGV[2] is "-") only if its score is still the claim's ARGV[1]: an
// event batch that moved it earlier meanwhile wins.
var releaseScript = redis.NewScript(`
local cur = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not cur or tonumber(cur) ~= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '-' then
  redis.call('ZREM', KEYS[1], ARGV[3])
else
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
end
return 1
`)

// Release ends claims taken at leaseUntilMs: each customer is rescheduled to
// its At, or unscheduled when At is 0 (one pipelined round trip).
func (s *Redis) Release(ctx context.Context, leaseUntilMs int64, ds []Due) error {
	if len(ds) == 0 {
		return nil
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, d := range ds {
			at := "-"
			if d.At > 0 {
				at = strconv.FormatInt(d.At, 10)
			}
			releaseScript.EvalSha(ctx, p, []string{s.DueKey(s.Shard(d.ID))}, leaseUntilMs, at, d.ID)
		}
		return nil
	})
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := releaseScript.Load(ctx, s.c).Err(); err != nil {
			return fmt.Errorf("cannot load release script: %w", err)
		}
		return s.Release(ctx, leaseUntilMs, ds)
	}
	if err != nil {
		return fmt.Errorf("cannot reschedule customers: %w", err)
	}
	return nil
}

// DueStats returns how many customers are due at or before nowMs and the
// oldest due time (0 when none), over all shards (one round trip).
func (s *Redis) DueStats(ctx context.Context, nowMs int64) (due int64, oldestMs int64, err error) {
	counts := make([]*redis.IntCmd, s.cfg.Shards)
	firsts := make([]*redis.ZSliceCmd, s.cfg.Shards)
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range s.cfg.Shards {
			counts[i] = p.ZCount(ctx, s.DueKey(i), "-inf", strconv.FormatInt(nowMs, 10))
			firsts[i] = p.ZRangeWithScores(ctx, s.DueKey(i), 0, 0)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read the schedule: %w", err)
	}
	for i := range s.cfg.Shards {
		due += counts[i].Val()
		if z := firsts[i].Val(); len(z) == 1 && (oldestMs == 0 || int64(z[0].Score) < oldestMs) {
			oldestMs = int64(z[0].Score)
		}
	}
	return due, oldestMs, nil
}

// DueBefore returns the customers due at or before untilMs, soonest first
// (ties by id), at most limit of them, and whether more are due in that
// window (one pipelined round trip over the shards, each read up to
// limit+1 entries). A customer whose score, receiving no event, will need
// publishing at some instant is due at or before that instant (see
// ScheduleEarlier), so this lists every customer whose band can change by
// untilMs; a claimed customer is listed at its lease's expiry.
func (s *Redis) DueBefore(ctx context.Context, untilMs int64, limit int) (ds []Due, more bool, err error) {
	if limit <= 0 {
		return nil, false, fmt.Errorf("cannot read the schedule: limit must be positive, got %d", limit)
	}
	cmds := make([]*redis.ZSliceCmd, s.cfg.Shards)
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range s.cfg.Shards {
			cmds[i] = p.ZRangeByScoreWithScores(ctx, s.DueKey(i), &redis.ZRangeBy{
				Min: "-inf", Max: strconv.FormatInt(untilMs, 10), Count: int64(limit) + 1})
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("cannot read the schedule: %w", err)
	}
	for _, c := range cmds {
		for _, z := range c.Val() {
			id, _ := z.Member.(string)
			ds = append(ds, Due{ID: id, At: int64(z.Score)})
		}
	}
	// Each shard gave its limit+1 soonest: a shard's unread entries come
	// after limit+1 of its own, so the first limit here are the first
	// limit overall.
	slices.SortFunc(ds, func(a, b Due) int {
		if a.At != b.At {
			return cmp.Compare(a.At, b.At)
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(ds) > limit {
		return ds[:limit:limit], true, nil
	}
	return ds, false, nil
}

// Read returns the records of ids in one round trip, without their outboxes
// (Pending stays empty): for readers such as the HTTP API. Missing ids get
// the zero Record.
func (s *Redis) Read(ctx context.Context, ids []string) ([]Record, error) {
	recs, err := s.load(ctx, ids, false, "")
	if err != nil {
		return nil, fmt.Errorf("cannot read records: %w", err)
	}
	return recs, nil
}
