package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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
// connected to the primary at the time of each wait (connected_slaves in
// INFO).
const AutoReplicas = -1

// DefaultWaitTimeout is the default Config.WaitTimeout.
const DefaultWaitTimeout = time.Second

// ErrReplicasBehind reports a WAIT that ended before enough replicas
// acknowledged the writes; nothing may be committed on the strength of it.
var ErrReplicasBehind = errors.New("not enough replicas acknowledged the writes in time")

// WaitKey is the counter that WaitReplicas increments on a single primary:
// WAIT waits for the connection's own last write, so each wait writes once
// on its connection, and replication is in order, so reaching that write
// means reaching every write the primary acknowledged before it. On Redis
// Cluster each primary gets its own counter, <prefix>wait:{tag}, with a
// hash tag that maps to one of its slots.
func (s *Redis) WaitKey() string { return s.cfg.Prefix + "wait" }

// WaitReplicas waits until every write acknowledged before the call reached
// Config.WaitReplicas replicas (AutoReplicas: as many as are connected now)
// of its primary, within Config.WaitTimeout. It returns the id of the
// server it waited on, read after the wait on the same connection (as
// ServerID: on Redis Cluster the run_ids of every primary, each of which is
// waited for; "" when it made no round trip, see seen), and the number of
// replicas it waited for (on a cluster, the sum over the primaries; 0: none
// to wait for, and nothing was written). A wait that times out short of
// that number fails with ErrReplicasBehind.
//
// seen, when not negative, is how many replicas a single primary had
// connected right after the writes to wait for (Saved.Replicas, read by
// the save on the session's server): with AutoReplicas those are the
// replicas waited for, so when it is 0 WaitReplicas returns at once,
// without a round trip; otherwise the wait skips its INFO. A negative seen
// (unknown; ignored on Redis Cluster) reads connected_slaves first.
func (s *Redis) WaitReplicas(ctx context.Context, seen int) (server string, replicas int, err error) {
	switch c := s.c.(type) {
	case *redis.Client:
		return s.waitOn(ctx, c, s.WaitKey(), seen)
	case *redis.ClusterClient:
		return s.waitCluster(ctx, c)
	}
	return "", 0, fmt.Errorf("cannot wait for replicas: unsupported client %T", s.c)
}

// waitOn waits on one primary, incrementing key (which must be served by
// that primary; "": it serves no slot and holds nothing to wait for); seen
// is as in WaitReplicas.
func (s *Redis) waitOn(ctx context.Context, c *redis.Client, key string, seen int) (server string, replicas int, err error) {
	want := s.cfg.WaitReplicas
	known := want == AutoReplicas && seen >= 0 && key != ""
	if known && seen == 0 {
		return "", 0, nil
	}
	conn := c.Conn() // WAIT covers the writes of its own connection
	defer conn.Close()
	if known {
		want = seen
	} else {
		// The default sections hold both run_id and connected_slaves;
		// several section names in one INFO need Redis 7.
		info, err := conn.Info(ctx).Result()
		if err != nil {
			return "", 0, fmt.Errorf("cannot read the Redis replication state: %w", err)
		}
		server = infoField(info, "run_id")
		if want == AutoReplicas {
			if want, err = strconv.Atoi(infoField(info, "connected_slaves")); err != nil {
				return "", 0, fmt.Errorf("cannot read the Redis replication state: no connected_slaves in INFO")
			}
		}
	}
	if want <= 0 || key == "" {
		return server, 0, nil
	}
	if err := conn.Incr(ctx, key).Err(); err != nil {
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

// waitCluster waits on every primary of a cluster at once.
func (s *Redis) waitCluster(ctx context.Context, cc *redis.ClusterClient) (string, int, error) {
	// CLUSTER SLOTS, not CLUSTER SHARDS: go-redis builds its node clients
	// from CLUSTER SLOTS, so the addresses match theirs (and the ACL rule
	// grants it already).
	//lint:ignore SA1019 see above
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return "", 0, fmt.Errorf("cannot wait for replicas: cannot read the cluster slots: %w", err)
	}
	keys := make(map[string]string) // primary address → its wait key
	for _, r := range slots {
		if len(r.Nodes) > 0 && keys[r.Nodes[0].Addr] == "" {
			keys[r.Nodes[0].Addr] = s.cfg.Prefix + "wait:{" + tagForSlots(r.Start, r.End) + "}"
		}
	}
	var mu sync.Mutex
	var ids []string
	total := 0
	err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		id, n, err := s.waitOn(ctx, c, keys[c.Options().Addr], -1)
		if err != nil {
			return fmt.Errorf("primary %s: %w", c.Options().Addr, err)
		}
		mu.Lock()
		ids = append(ids, id)
		total += n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return "", total, err
	}
	slices.Sort(ids)
	return strings.Join(ids, ","), total, nil
}

// tagForSlots returns a short hash tag whose Redis Cluster slot is in
// [start, end].
func tagForSlots(start, end int) string {
	for i := 0; ; i++ {
		tag := strconv.Itoa(i)
		if sl := int(crc16(tag) % 16384); sl >= start && sl <= end {
			return tag
		}
	}
}

// crc16 is the CRC-16/XMODEM checksum that Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
