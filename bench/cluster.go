package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// cluster runs the pipeline over the preloaded events against a local
// Redis Cluster of cfg.ClusterNodes primaries (redis-server in cluster
// mode on loopback TCP, without persistence like the single server), with
// a fresh group, and measures the wall time from starting the processes
// until the group's committed offsets reach the preload's end offsets on
// every partition. The events produced after the preload (rate search,
// latency, memory) are not waited for.
func (r *run) cluster(ctx context.Context) error {
	cfg := r.cfg
	nodes, stop, err := r.startCluster(ctx, cfg.ClusterNodes)
	if err != nil {
		return err
	}
	defer stop()
	cl, err := r.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	group := "hsbench-" + r.id + "-cluster"
	total := int64(cfg.Events)
	b := newBar(cfg.Progress, cfg.Terminal, "cluster", total)
	start := time.Now()
	nodesCPU := r.clusterCPU()
	insts, stopInsts, err := r.startInstances(ctx, group, "--redis-cluster", strings.Join(nodes, ","), "--redis-prefix", r.prefix)
	defer stopInsts()
	if err != nil {
		b.finish()
		return err
	}
	err = r.waitCount(ctx, total, b, insts, func(ctx context.Context) (int64, error) {
		return r.committedPreload(ctx, adm, group)
	})
	el := time.Since(start)
	b.finish()
	if err != nil {
		return err
	}
	r.res.ClusterNodes = len(nodes)
	r.res.ClusterRedisMicrosPerEvent = float64(r.clusterCPU()-nodesCPU) / float64(time.Microsecond) / float64(total)
	if cs, err := clusterCommandStats(ctx, nodes); err != nil {
		r.note("%v", err)
	} else {
		r.res.ClusterRedisCommands = cs
	}
	r.res.ClusterSeconds = el.Seconds()
	r.res.ClusterEventsPerS = float64(total) / el.Seconds()
	if r.res.PipelineEventsPerS > 0 {
		r.res.ClusterOverSingle = r.res.ClusterEventsPerS / r.res.PipelineEventsPerS
	}
	return nil
}

// clusterCPU is the CPU time the cluster's nodes used so far, together.
func (r *run) clusterCPU() time.Duration {
	var t time.Duration
	for _, p := range r.clusterProcs {
		t += cpuTime(p.cmd.Process.Pid)
	}
	return t
}

// clusterCommandStats sums INFO commandstats over the cluster's nodes (the
// phase's own; the nodes are new), busiest first: with the pipeline's
// per-call figures it shows what single-key mode and the binding's INFO
// calls cost there.
func clusterCommandStats(ctx context.Context, nodes []string) ([]string, error) {
	sum := map[string]cmdStat{}
	for _, addr := range nodes {
		c := redis.NewClient(&redis.Options{Addr: addr})
		info, err := c.Info(ctx, "commandstats").Result()
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read INFO commandstats of cluster node %s: %w", addr, err)
		}
		parseCommandStats(info, sum)
	}
	return formatCommandStats(sum), nil
}

// committedPreload returns how many of the preloaded records group has
// committed: the sum over the partitions of its committed offset, capped at
// the partition's end offset after the preload.
func (r *run) committedPreload(ctx context.Context, adm *kadm.Client, group string) (int64, error) {
	offs, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0, nil // not joined yet
	}
	if err != nil {
		return 0, fmt.Errorf("cannot fetch committed offsets of %s: %w", group, err)
	}
	var n int64
	for p, end := range r.preloadEnds {
		if o, ok := offs.Lookup(r.topics.events, p); ok && o.Err == nil && o.At > 0 {
			n += min(o.At, end)
		}
	}
	return n, nil
}

// startCluster starts n redis-server processes in cluster mode on loopback
// ports, assigns the slots evenly, introduces the nodes to each other and
// waits until every node reports cluster_state:ok. It returns their
// addresses and a function that stops them.
func (r *run) startCluster(ctx context.Context, n int) (addrs []string, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, nil, fmt.Errorf("redis-server not found in PATH (Debian: apt-get install redis-server): %w", err)
	}
	var procs []*proc
	var busPorts []int
	stopAll := func() {
		for _, p := range procs {
			_ = p.stop(10 * time.Second)
		}
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	for i := range n {
		port, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		busPort, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		dir := filepath.Join(r.env.dir, "cluster"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("cannot create cluster node dir: %w", err)
		}
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(busPort),
			"--bind", "127.0.0.1", "--dir", dir, "--daemonize", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
			"--save", "", "--appendonly", "no")
		p, err := startProc(fmt.Sprintf("redis cluster node %d", i), cmd, filepath.Join(dir, "redis.log"))
		if err != nil {
			return nil, nil, err
		}
		procs = append(procs, p)
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		busPorts = append(busPorts, busPort)
	}
	clients := make([]*redis.Client, n)
	for i, a := range addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: a})
		defer clients[i].Close()
	}
	for i, c := range clients {
		if err := waitPing(ctx, c, procs[i]); err != nil {
			return nil, nil, err
		}
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			return nil, nil, fmt.Errorf("cannot assign slots %d-%d to cluster node %d: %w", lo, hi, i, err)
		}
		if i > 0 {
			// The bus port is not port+10000 (that may exceed 65535), so
			// MEET names it.
			host, port, _ := net.SplitHostPort(addrs[0])
			if err := c.Do(ctx, "CLUSTER", "MEET", host, port, busPorts[0]).Err(); err != nil {
				return nil, nil, fmt.Errorf("cannot introduce cluster node %d: %w", i, err)
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				ok = false
				break
			}
		}
		if ok {
			fmt.Fprintf(r.cfg.Log, "Redis Cluster of %d nodes on %s\n", n, strings.Join(addrs, ","))
			r.clusterProcs = procs
			return addrs, stopAll, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("the Redis Cluster did not report cluster_state:ok on every node within 30 s:\n%s", procs[0].tail())
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitPing waits until c answers PING, or p exits.
func waitPing(ctx context.Context, c *redis.Client, p *proc) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited:\n%s", p.name, p.tail())
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer PING after 10 s: %w", p.name, err)
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
