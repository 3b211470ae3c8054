package state

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

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

// ErrNoServerID reports a server that answers but has no run_id to give
// (the embedded miniredis, which does not support INFO server): restarts
// cannot be detected there.
var ErrNoServerID = errors.New("the Redis server has no run_id")

// ServerID returns the Redis server's run_id, which changes when the server
// restarts. A restart may have lost the writes that were not yet persisted
// (AOF everysec), so a consumer that sees a new id must not commit offsets
// past writes made before it. A server that does not support INFO server
// (an error reply saying so), or answers without a run_id, gives an error
// wrapping ErrNoServerID; any other error (Redis unreachable, NOAUTH…)
// means the id is unknown for now.
//
// On Redis Cluster (a *redis.ClusterClient) INFO answers for one node,
// whichever the client picks, so the id is the run_ids of every primary,
// sorted and comma separated: it changes when any primary restarts or is
// replaced (a replica promoted, a shard added), and the save scripts accept
// it on each primary whose run_id it holds.
func (s *Redis) ServerID(ctx context.Context) (string, error) {
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		return clusterID(ctx, cc)
	}
	info, err := s.c.Info(ctx, "server").Result()
	var reply redis.Error
	if errors.As(err, &reply) && (strings.Contains(err.Error(), "not supported") || strings.HasPrefix(err.Error(), "ERR unknown command")) {
		return "", fmt.Errorf("cannot read the Redis server id: %w: %w", ErrNoServerID, err)
	}
	if err != nil {
		return "", fmt.Errorf("cannot read the Redis server id: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("cannot read the Redis server id: %w: no run_id in INFO server", ErrNoServerID)
}

// Persistence is what a Redis server says about its durability.
type Persistence struct {
	AppendOnly  bool   // AOF enabled
	AppendFsync string // always, everysec or no
}

// Persistence reads the server's AOF settings (CONFIG GET appendonly and
// appendfsync). It fails where CONFIG is disabled or renamed.
func (s *Redis) Persistence(ctx context.Context) (Persistence, error) {
	m, err := s.c.ConfigGet(ctx, "append*").Result()
	if err != nil {
		return Persistence{}, fmt.Errorf("cannot read the Redis persistence settings: %w", err)
	}
	ao, ok1 := m["appendonly"]
	fs, ok2 := m["appendfsync"]
	if !ok1 || !ok2 {
		return Persistence{}, errors.New("cannot read the Redis persistence settings: CONFIG GET returned no appendonly or appendfsync")
	}
	return Persistence{AppendOnly: ao == "yes", AppendFsync: fs}, nil
}

// clusterID is ServerID on Redis Cluster: the run_ids of every primary.
func clusterID(ctx context.Context, cc *redis.ClusterClient) (string, error) {
	var mu sync.Mutex
	var ids []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		id := infoField(info, "run_id")
		if id == "" {
			return errors.New("no run_id in INFO server")
		}
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("cannot read the Redis server ids of the cluster primaries: %w", err)
	}
	if len(ids) == 0 {
		return "", errors.New("cannot read the Redis server ids of the cluster primaries: no primary known")
	}
	slices.Sort(ids)
	return strings.Join(ids, ","), nil
}
