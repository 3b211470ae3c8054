package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replicas: a primary acknowledges a write before its replicas have it, so
// a failover (Sentinel promoting a replica) loses the writes the replica had
// not received. WaitReplicas lets the consumer commit offsets only after the
// writes reached the replicas (WAIT), so that such a loss only ever affects
// records whose offsets are not committed: they are redelivered and applied
// again, as after a restart (the new primary has another run_id).

// AutoReplicas, as Config.WaitReplicas, waits for as many replicas as are
// connected to the primary at the time of each wait (INFO replication).
const AutoReplicas = -1

// DefaultWaitTimeout is the default Config.WaitTimeout.
const DefaultWaitTimeout = time.Second

// ErrReplicasBehind reports a WAIT that ended before enough replicas
// acknowledged the writes; nothing may be committed on the strength of it.
var ErrReplicasBehind = errors.New("not enough replicas acknowledged the writes in time")

// WaitKey is the counter that WaitReplicas increments: WAIT waits for the
// connection's own last write, so each wait writes once on its connection,
// and replication is in order, so reaching that write means reaching every
// write the primary acknowledged before it.
func (s *Redis) WaitKey() string { return s.cfg.Prefix + "wait" }

// WaitReplicas waits until every write the primary acknowledged before the
// call reached Config.WaitReplicas replicas (AutoReplicas: as many as are
// connected now), within Config.WaitTimeout. It returns the run_id of the
// server it waited on (read after the wait, on the same connection) and the
// number of replicas it waited for (0: none to wait for; nothing was
// written). A wait that times out short of that number fails with
// ErrReplicasBehind. It needs a single-server or Sentinel client: Redis
// Cluster has one primary per shard.
func (s *Redis) WaitReplicas(ctx context.Context) (server string, replicas int, err error) {
	rc, ok := s.c.(*redis.Client)
	if !ok {
		return "", 0, errors.New("cannot wait for replicas: WAIT needs a single-server or Sentinel client, not Redis Cluster")
	}
	conn := rc.Conn() // WAIT covers the writes of its own connection
	defer conn.Close()
	info, err := conn.Info(ctx, "server", "replication").Result()
	if err != nil {
		return "", 0, fmt.Errorf("cannot read the Redis replication state: %w", err)
	}
	server = infoField(info, "run_id")
	want := s.cfg.WaitReplicas
	if want == AutoReplicas {
		if want, err = strconv.Atoi(infoField(info, "connected_slaves")); err != nil {
			return "", 0, fmt.Errorf("cannot read the Redis replication state: no connected_slaves in INFO replication")
		}
	}
	if want <= 0 {
		return server, 0, nil
	}
	if err := conn.Incr(ctx, s.WaitKey()).Err(); err != nil {
		return "", want, fmt.Errorf("cannot wait for replicas: %w", err)
	}
	n, err := conn.Wait(ctx, want, s.cfg.WaitTimeout).Result()
	if err != nil {
		return "", want, fmt.Errorf("cannot wait for replicas: %w", err)
	}
	if int(n) < want {
		return "", want, fmt.Errorf("cannot wait for replicas: %d of %d acknowledged within %s: %w", n, want, s.cfg.WaitTimeout, ErrReplicasBehind)
	}
	after, err := conn.Info(ctx, "server").Result()
	if err != nil {
		return "", want, fmt.Errorf("cannot read the Redis server id after WAIT: %w", err)
	}
	return infoField(after, "run_id"), want, nil
}

// infoField returns the value of name in an INFO reply ("" if absent).
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
