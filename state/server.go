package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Server identity: the run_id a session is bound to (ServerID), and the
// persistence settings the service checks at start.

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
	if id := infoField(info, "run_id"); id != "" {
		return id, nil
	}
	return "", fmt.Errorf("cannot read the Redis server id: %w: no run_id in INFO server", ErrNoServerID)
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

// infoField returns the value of name in an INFO reply ("" if absent).
func infoField(info, name string) string {
	for line := range strings.Lines(info) { // no copy of the reply's lines
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name); ok && strings.HasPrefix(v, ":") {
			return v[1:]
		}
	}
	return ""
}
