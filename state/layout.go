package state

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The layout: how customers map to the small Redis keys that hold them
// (buckets), the <prefix>layout key that records it, and the server's
// listpack limits, which decide whether those small keys stay compact.
//
// Redis stores a small hash or sorted set as one listpack: a few bytes per
// entry instead of a dict entry, a key and an object per member (about 250
// bytes per 138-byte record as a key of its own, about 170 in a bucket of
// 60; about 110 bytes per sorted-set member, about 25 in a small bucket;
// docs/architecture.md). So the records (multi-key mode), the band index
// and the schedule group customers into Buckets buckets by a hash of the
// id, and every instance sharing a prefix must agree on that number: it is
// written to <prefix>layout by the first store that checks it, and a store
// configured otherwise refuses to start (CheckLayout).

// DefaultBuckets is the default number of buckets: about 60 customers per
// bucket at 1M customers, within Redis's default of 128 entries per
// listpack up to about 1.5M (see docs/architecture.md for other sizes).
const DefaultBuckets = 16384

// MaxBuckets bounds Config.Buckets.
const MaxBuckets = 1 << 22

// Bucket returns the bucket of a customer: FNV-1a of the id modulo the
// number of buckets. Its schedule shard is the bucket modulo Shards, so a
// bucket's customers share a shard.
func (s *Redis) Bucket(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id)) //nolint:errcheck // hash writes cannot fail
	return int(h.Sum32() % uint32(s.cfg.Buckets))
}

// Buckets returns the number of buckets.
func (s *Redis) Buckets() int { return s.cfg.Buckets }

// LayoutKey is the key that records the layout every instance sharing the
// prefix uses.
func (s *Redis) LayoutKey() string { return s.cfg.Prefix + "layout" }

// layoutValue is what LayoutKey holds for this store's configuration.
func (s *Redis) layoutValue() string {
	return "buckets=" + strconv.Itoa(s.cfg.Buckets) + " shards=" + strconv.Itoa(s.cfg.Shards)
}

// ErrLegacyLayout reports a Redis holding state written by a version of
// healthscore before the bucketed layout (band index in <prefix>band:red,
// yellow and green), which this version does not read.
var ErrLegacyLayout = errors.New("this Redis holds customer state in the layout of healthscore before 2026-12")

// Listpack is what the server says about its listpack limits, and whether
// they keep the buckets compact.
type Listpack struct {
	HashEntries, HashValue int // hash-max-listpack-entries, -value
	ZsetEntries, ZsetValue int // zset-max-listpack-entries, -value
	// Advice says what to set where the limits make buckets grow out of
	// listpacks ("" when they fit).
	Advice string
}

// Record values are 100-300 bytes; a bucket of records stays a listpack only
// when every value fits hash-max-listpack-value.
const (
	wantHashValue = 512
	// wantEntries is the fill a bucket should stay below: twice the mean
	// at the configured number of customers per bucket leaves room for
	// the uneven ones.
	wantEntries = 128
)

// CheckLayout records this store's layout in LayoutKey, or checks it
// against the one recorded there, and refuses a Redis holding state in the
// earlier layout (ErrLegacyLayout). It then reads the server's listpack
// limits (CONFIG GET; a server that refuses CONFIG gives Listpack{} and no
// error) so the caller can warn when buckets would not stay compact.
func (s *Redis) CheckLayout(ctx context.Context) (Listpack, error) {
	want := s.layoutValue()
	got, err := s.c.Get(ctx, s.LayoutKey()).Result()
	switch {
	case err == nil && got != want:
		return Listpack{}, fmt.Errorf("the Redis state under prefix %q was written with %q (%s), not %q: start every instance with the same --state-buckets", s.cfg.Prefix, got, s.LayoutKey(), want)
	case err != nil && !errors.Is(err, redis.Nil):
		return Listpack{}, fmt.Errorf("cannot read the state layout (%s): %w", s.LayoutKey(), err)
	case err != nil:
		n, err := s.legacyBandMembers(ctx)
		if err != nil {
			return Listpack{}, fmt.Errorf("cannot check for state in an earlier layout: %w", err)
		}
		if n > 0 {
			return Listpack{}, fmt.Errorf("%w (found %sband:red, yellow or green): rebuild it by consuming the input topics from the start under a new --redis-prefix (docs/production-redis.md, Server settings)", ErrLegacyLayout, s.cfg.Prefix)
		}
		if err := s.c.SetArgs(ctx, s.LayoutKey(), want, redis.SetArgs{Mode: "NX"}).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return Listpack{}, fmt.Errorf("cannot record the state layout (%s): %w", s.LayoutKey(), err)
		}
		// Another instance may have recorded its own meanwhile.
		return s.CheckLayout(ctx)
	}
	return s.listpack(ctx), nil
}

// legacyBandMembers returns the number of members of the earlier layout's
// band index, the sorted sets <prefix>band:red, yellow and green: ZCARD,
// one key per command (Cluster-safe: the three are in different slots),
// and a command the documented ACL rule grants (for the overrides).
func (s *Redis) legacyBandMembers(ctx context.Context) (int64, error) {
	cmds := make([]*redis.IntCmd, len(Bands))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, b := range Bands {
			cmds[i] = p.ZCard(ctx, s.cfg.Prefix+"band:"+b)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// listpack reads the listpack limits and says what to change.
func (s *Redis) listpack(ctx context.Context) Listpack {
	m, err := s.c.ConfigGet(ctx, "*-max-listpack-*").Result()
	if err != nil {
		return Listpack{}
	}
	num := func(k string) int { n, _ := strconv.Atoi(m[k]); return n }
	lp := Listpack{
		HashEntries: num("hash-max-listpack-entries"), HashValue: num("hash-max-listpack-value"),
		ZsetEntries: num("zset-max-listpack-entries"), ZsetValue: num("zset-max-listpack-value"),
	}
	var advice []string
	if !s.cfg.SingleKey && lp.HashValue < wantHashValue {
		advice = append(advice, "hash-max-listpack-value "+strconv.Itoa(wantHashValue)+" (records are larger than "+strconv.Itoa(lp.HashValue)+" bytes)")
	}
	if lp.HashEntries < wantEntries {
		advice = append(advice, "hash-max-listpack-entries "+strconv.Itoa(wantEntries))
	}
	if lp.ZsetEntries < wantEntries {
		advice = append(advice, "zset-max-listpack-entries "+strconv.Itoa(wantEntries))
	}
	if len(advice) > 0 {
		lp.Advice = "set " + strings.Join(advice, ", ") + " in redis.conf, or buckets use several times the memory (docs/production-redis.md)"
	}
	return lp
}
