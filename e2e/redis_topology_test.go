//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/state"
)

var topologyTopics = map[string]int32{"customer-events": 4, "customer-health": 2, "customer-health-alerts": 2, "customer-events-dlq": 1}

// aclRule is the Redis ACL rule docs/production-redis.md documents for the
// service's user (key prefix hs:), without the user name and password.
// TestRedisTLSAndACLUser proves it sufficient (the whole pipeline runs
// under it) and not broader than needed (every command it grants was used;
// others are refused).
const aclRule = "~hs:* resetchannels -@all " +
	"+get +set +del +incr +getrange +setrange +hset +hget +hdel +hkeys +hlen +hmget +hincrby " +
	"+zadd +zrem +zrange +zrangebyscore +zscore +zcard +zcount +zremrangebyscore " +
	"+eval +evalsha +script|load +info +ping +wait"

// aclClusterRule is what Redis Cluster needs on top of aclRule: the
// client's view of the slots (CLUSTER SLOTS) and of the commands (COMMAND;
// without it go-redis logs a NOPERM on every refresh).
// TestRedisClusterNodeRestartLosesNothing runs under both.
const aclClusterRule = "+cluster|slots +command"

// aclUsedCommands are the commands aclRule grants, which INFO commandstats
// must show as called; except PING and INFO, which the test calls itself
// (the service calls them for /readyz and the run_id); HDEL, which removes
// an outbox only when it outlives its batch (a crash or a racing writer:
// state.TestCallOutbox covers it) and a customer
// moving from one band to another (state.TestBandIndexOnBandChange); HLEN,
// which only single-key mode (Redis Cluster) uses, to count the band index
// (TestRedisClusterNodeRestartLosesNothing reads those counts under this
// rule); and ZREM, which runs only when a schedule entry is dropped or an
// override expires. None of these is this run's data sure to bring.
func aclUsedCommands() []string {
	var out []string
	for _, f := range strings.Fields(aclRule) {
		if c, ok := strings.CutPrefix(f, "+"); ok && c != "info" && c != "ping" && c != "hdel" && c != "hlen" && c != "zrem" {
			out = append(out, c)
		}
	}
	return out
}

// TestRedisTLSAndACLUser runs the whole pipeline against Debian's
// redis-server over TLS (client certificate required) with a replica, as
// an ACL user holding exactly aclRule: events in, outputs out, states equal
// to the offline fold, band listing, sweeper, the run_id check and WAIT on
// the replica. Then commands outside the rule are refused.
func TestRedisTLSAndACLUser(t *testing.T) {
	bin := redisBinary(t, "redis-server")
	certs := makeCerts(t)
	const hsPassword = "hs-Secret-4711"
	tlsConf := fmt.Sprintf("port 0\ntls-port %%d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients yes\ntls-replication yes\n"+
		"repl-diskless-sync-delay 0\nsave \"\"\nappendonly no\nuser default off\nuser admin on >admin-pw ~* &* +@all\n", certs.serverCert, certs.serverKey, certs.ca)
	pPort, rPort := freePort(t), freePort(t)
	primary := startRedisNode(t, bin, pPort, fmt.Sprintf(tlsConf, pPort)+
		"user replicator on >repl-pw +psync +replconf +ping\n"+
		"user healthscore on >"+hsPassword+" "+aclRule+"\n", "Ready to accept connections")
	startRedisNode(t, bin, rPort, fmt.Sprintf(tlsConf, rPort)+
		fmt.Sprintf("replicaof 127.0.0.1 %d\nmasteruser replicator\nmasterauth repl-pw\n", pPort), "MASTER <-> REPLICA sync: Finished with success")

	tc := clientTLS(t, certs)
	admin := redis.NewClient(&redis.Options{Addr: primary.addr(), Username: "admin", Password: "admin-pw", TLSConfig: tc})
	defer admin.Close()
	ctx := context.Background()
	waitFor(t, 15*time.Second, "the replica online", func() bool {
		info, _ := admin.Info(ctx, "replication").Result()
		return strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	})
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	pwFile := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pwFile, []byte(hsPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, brokers := testenv.KafkaCluster(t, topologyTopics) // in-process even with HEALTHSCORE_TEST_BROKERS: the tests use the default topic names
	group := "acl-" + testenv.KeyPrefix(t)
	svc := startService(t, "--brokers", strings.Join(brokers, ","), "--group", group, "--max-batch", "200",
		"--redis", "rediss://127.0.0.1:"+strconv.Itoa(pPort), "--redis-user", "healthscore", "--redis-password-file", pwFile,
		"--redis-tls-ca", certs.ca, "--redis-tls-cert", certs.clientCert, "--redis-tls-key", certs.clientKey,
		"--sweep-interval", "200ms")
	lines := eventLog(rand.New(rand.NewPCG(12, 1)), 40, 1500, time.Now())
	produceLines(t, brokers, lines)
	waitCommitted(t, brokers, group, "customer-events", 2*time.Minute)

	hs := redis.NewClient(&redis.Options{Addr: primary.addr(), Username: "healthscore", Password: hsPassword, TLSConfig: tc})
	defer hs.Close()
	store, err := state.NewRedis(hs, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	recs := checkAgainstOffline(t, store, lines)
	checkAlerts(t, brokers, recs)
	var red struct {
		Customers []struct {
			CustomerID string `json:"customer_id"`
		} `json:"customers"`
	}
	if code := svc.getJSON(t, "/v1/customers?band=red&limit=1000", &red); code != 200 || len(red.Customers) == 0 {
		t.Errorf("band listing: status %d, %d customers", code, len(red.Customers))
	}
	if code := svc.getJSON(t, "/readyz", nil); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	if v := svc.metric(t, "healthscore_redis_replicas"); v != 1 {
		t.Errorf("healthscore_redis_replicas = %v, want 1 (auto: the connected replica)", v)
	}
	if v := svc.metric(t, "healthscore_redis_wait_seconds_count"); v < 1 {
		t.Errorf("healthscore_redis_wait_seconds_count = %v: no WAIT before the commits", v)
	} else {
		t.Logf("%v waits for the replica, %.2f ms on average", v, 1000*svc.metric(t, "healthscore_redis_wait_seconds_sum")/v)
	}
	if v := svc.metric(t, "healthscore_customers"); v < 1 {
		t.Errorf("healthscore_customers = %v: the band collector failed", v)
	}
	// The sweeper claims and releases due customers (the events are days
	// old, so their scores decay): wait until it has rescored some.
	waitFor(t, 30*time.Second, "the sweeper to claim and release due customers", func() bool { return sweepRan(ctx, admin) })
	logs := svc.logs.String()
	if !strings.Contains(logs, "commit delay 2s: the Redis persistence settings are unknown") {
		t.Error("CONFIG GET is outside the rule: the commit delay must fall back to 2s, and say so")
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "commit delay 2s") {
			continue // CONFIG GET refused, as it should be
		}
		for _, bad := range []string{"NOPERM", "pipeline step failed", hsPassword} {
			if strings.Contains(line, bad) {
				t.Errorf("service log line contains %q: %s", bad, line)
			}
		}
	}

	// Sufficient and not broader than needed: every command of the rule
	// was called (commandstats count calls inside scripts too) …
	stats, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range aclUsedCommands() {
		if !strings.Contains(stats, "cmdstat_"+c+":calls=") {
			t.Errorf("the rule grants %s but the pipeline never called it", c)
		}
	}
	// … and everything else is refused.
	for name, cmd := range map[string]func() error{
		"FLUSHALL":              func() error { return hs.FlushAll(ctx).Err() },
		"CONFIG SET":            func() error { return hs.ConfigSet(ctx, "appendonly", "no").Err() },
		"CONFIG GET":            func() error { return hs.ConfigGet(ctx, "appendonly").Err() },
		"KEYS":                  func() error { return hs.Keys(ctx, "*").Err() },
		"GET outside hs:":       func() error { return hs.Get(ctx, "other:key").Err() },
		"SET outside hs:":       func() error { return hs.Set(ctx, "other:key", "x", 0).Err() },
		"script outside hs:":    func() error { return hs.Eval(ctx, "return redis.call('SET', 'other:key', 'x')", nil).Err() },
		"PUBLISH":               func() error { return hs.Publish(ctx, "hs:chan", "x").Err() },
		"ACL SETUSER":           func() error { return hs.Do(ctx, "ACL", "SETUSER", "healthscore", "+@all").Err() },
		"SHUTDOWN":              func() error { return hs.Shutdown(ctx).Err() },
		"REPLICAOF":             func() error { return hs.Do(ctx, "REPLICAOF", "NO", "ONE").Err() },
		"LPUSH (other command)": func() error { return hs.LPush(ctx, "hs:l", "v").Err() },
	} {
		// Scripts report a key outside the rule in their own words.
		if err := cmd(); err == nil || !strings.Contains(err.Error(), "NOPERM") && !strings.Contains(err.Error(), "can't access at least one of the keys") {
			t.Errorf("%s under the service's user: %v; want NOPERM", name, err)
		}
	}
	if err := hs.Set(ctx, "hs:acl-check", "x", 0).Err(); err != nil {
		t.Errorf("SET under hs: refused: %v", err)
	}
}

// sweepRan reports whether the sweeper claimed (ZRANGEBYSCORE in the claim
// script) and released (ZSCORE in the release script) customers.
func sweepRan(ctx context.Context, admin *redis.Client) bool {
	stats, _ := admin.Info(ctx, "commandstats").Result()
	return strings.Contains(stats, "cmdstat_zrangebyscore:calls=") && strings.Contains(stats, "cmdstat_zscore:calls=")
}

func clientTLS(t *testing.T, certs testCerts) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(certs.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(certs.clientCert, certs.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startCluster starts n redis-server processes in cluster mode with AOF
// (appendfsync everysec), assigns the slots evenly, introduces the nodes to
// each other and waits until every node reports cluster_state:ok.
func startCluster(t *testing.T, bin string, n int, extraConf string) []*redisNode {
	t.Helper()
	var nodes []*redisNode
	for range n {
		p := freePort(t)
		nodes = append(nodes, startRedisNode(t, bin, p, fmt.Sprintf("port %d\ncluster-enabled yes\ncluster-config-file nodes.conf\n"+
			"cluster-node-timeout 2000\nappendonly yes\nappendfsync everysec\nsave \"\"\nrepl-diskless-sync-delay 0\n%s\n", p, extraConf), "Ready to accept connections"))
	}
	ctx := context.Background()
	for i, nd := range nodes {
		c := redis.NewClient(&redis.Options{Addr: nd.addr()})
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE %d %d: %v", lo, hi, err)
		}
		if i > 0 {
			if err := c.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(nodes[0].port)).Err(); err != nil {
				t.Fatalf("CLUSTER MEET: %v", err)
			}
		}
		c.Close()
	}
	waitClusterOK(t, nodes)
	return nodes
}

func waitClusterOK(t *testing.T, nodes []*redisNode) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, 30*time.Second, "cluster_state:ok on every node", func() bool {
		for _, nd := range nodes {
			c := redis.NewClient(&redis.Options{Addr: nd.addr()})
			info, err := c.ClusterInfo(ctx).Result()
			c.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(nodes))) {
				return false
			}
		}
		return true
	})
}

// TestRedisClusterNodeRestartLosesNothing runs the service on a local
// three-primary Redis Cluster (single-key mode, chosen automatically for
// the cluster client) and SIGKILLs a primary mid-stream; it restarts from
// its AOF. Every event must be applied exactly once (states equal to the
// offline fold), outputs produced and alerts consistent; the restart must
// have been caught by the run_id check (a rewind).
func TestRedisClusterNodeRestartLosesNothing(t *testing.T) {
	bin := redisBinary(t, "redis-server")
	const hsPassword = "hs-Cluster-0815"
	nodes := startCluster(t, bin, 3, "user healthscore on >"+hsPassword+" "+aclRule+" "+aclClusterRule)
	addrs := make([]string, len(nodes))
	for i, nd := range nodes {
		addrs[i] = nd.addr()
	}
	_, brokers := testenv.KafkaCluster(t, topologyTopics) // in-process even with HEALTHSCORE_TEST_BROKERS: the tests use the default topic names
	group := "cluster-" + testenv.KeyPrefix(t)
	svc := startService(t, "--brokers", strings.Join(brokers, ","), "--group", group, "--max-batch", "100",
		"--redis-cluster", strings.Join(addrs, ","), "--redis-user", "healthscore", "--redis-password", hsPassword,
		"--band-counts-max-age", "0s") // the counts are checked right after the run
	// HTTP listens before Redis is connected: wait for the client's line.
	waitFor(t, 30*time.Second, "the service logs a cluster topology", func() bool {
		return strings.Contains(svc.logs.String(), `"topology":"cluster"`)
	})
	lines := eventLog(rand.New(rand.NewPCG(21, 2)), 60, 3000, time.Now())
	half := len(lines) / 2
	produceLines(t, brokers, lines[:half])
	waitFor(t, 30*time.Second, "events applied", func() bool { return svc.metric(t, `healthscore_events_total{result="applied"}`) > 0 })

	// Kill a primary with batches in flight, produce the rest while it is
	// down, and bring it back from its AOF.
	nodes[1].kill()
	produceLines(t, brokers, lines[half:])
	waitFor(t, 30*time.Second, "the pipeline to notice the dead node", func() bool {
		return svc.metric(t, "healthscore_batch_retries_total") > 0 || svc.metric(t, "healthscore_redis_restart_rewinds_total") > 0
	})
	nodes[1].start()
	waitClusterOK(t, nodes)
	waitCommitted(t, brokers, group, "customer-events", 2*time.Minute)

	for _, line := range strings.Split(svc.logs.String(), "\n") {
		if strings.Contains(line, "NOPERM") && !strings.Contains(line, "commit delay 2s") {
			t.Errorf("the ACL rule refused a command on the cluster: %s", line)
		}
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	store, err := state.NewRedis(cc, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	recs := checkAgainstOffline(t, store, lines)
	checkAlerts(t, brokers, recs)
	if n := len(readAll(t, brokers, "customer-health")); n == 0 {
		t.Error("no score changes produced")
	}
	if v := svc.metric(t, "healthscore_redis_restart_rewinds_total"); v < 1 {
		t.Errorf("healthscore_redis_restart_rewinds_total = %v: the node restart went unnoticed", v)
	}
	var red struct {
		Customers []struct {
			CustomerID string `json:"customer_id"`
		} `json:"customers"`
	}
	nRed := 0
	for _, r := range recs {
		if r.Band == state.BandRed {
			nRed++
		}
	}
	if code := svc.getJSON(t, "/v1/customers?band=red&limit=1000", &red); code != 200 || len(red.Customers) != nRed {
		t.Errorf("band listing: status %d, %d customers; %d records are red", code, len(red.Customers), nRed)
	}
	for _, c := range red.Customers { // history keys share the record's slot
		checkHistoryEndsRed(t, svc, c.CustomerID)
	}
	if v := svc.metric(t, "healthscore_customers"); v < float64(len(recs)) {
		t.Errorf("healthscore_customers = %v, want ≥ %d (band index on the cluster)", v, len(recs))
	}
	// The sweeper claims due customers on the cluster (the events are days
	// old, so scores decay and customers fall due).
	waitFor(t, 20*time.Second, "the sweeper to rescore due customers", func() bool {
		return strings.Contains(svc.logs.String(), `"msg":"swept due customers"`)
	})
}

// TestSentinelFailoverLosesNothing runs the service through Sentinel
// against a primary with one replica and makes the worst failover: the
// replica stalls (SIGSTOP) and loses its link while the primary takes more
// writes, then the primary is SIGKILLed and Sentinel promotes the stale
// replica. With --redis-wait-replicas 1, nothing written after the stall
// may be committed or published (WAIT times out and is retried); after the
// failover the new primary's run_id makes the service rewind to the
// committed offsets and apply those records again. Every event must be
// applied exactly once (final states equal the offline fold) and no alert
// may be missing. The old primary then comes back as a replica. With
// --redis-wait-replicas 0 the same run loses events.
func TestSentinelFailoverLosesNothing(t *testing.T) {
	bin := redisBinary(t, "redis-server")
	sentinelBin := redisBinary(t, "redis-sentinel")
	pPort, rPort, sPort := freePort(t), freePort(t), freePort(t)
	primary := startRedisNode(t, bin, pPort, fmt.Sprintf("port %d\nsave \"\"\nappendonly no\nrepl-diskless-sync-delay 0\n", pPort), "Ready to accept connections")
	replica := startRedisNode(t, bin, rPort, fmt.Sprintf("port %d\nsave \"\"\nappendonly no\nreplicaof 127.0.0.1 %d\n", rPort, pPort),
		"MASTER <-> REPLICA sync: Finished with success")
	sentinel := startRedisNode(t, sentinelBin, sPort, fmt.Sprintf("port %d\nsentinel monitor hs 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds hs 3000\nsentinel failover-timeout hs 10000\n", sPort, pPort), "+monitor master")
	sentinel.waitLog("+slave", 0, 20*time.Second)

	_, brokers := testenv.KafkaCluster(t, topologyTopics) // in-process even with HEALTHSCORE_TEST_BROKERS: the tests use the default topic names
	group := "sentinel-" + testenv.KeyPrefix(t)
	svc := startService(t, "--brokers", strings.Join(brokers, ","), "--group", group, "--max-batch", "100",
		"--redis-sentinel", sentinel.addr(), "--redis-sentinel-master", "hs",
		"--redis-wait-replicas", "1", "--redis-wait-timeout", "200ms")
	lines := eventLog(rand.New(rand.NewPCG(33, 3)), 60, 3000, time.Now())
	third := len(lines) / 3
	produceLines(t, brokers, lines[:third])
	waitCommitted(t, brokers, group, "customer-events", time.Minute)
	if v := svc.metric(t, "healthscore_redis_replicas"); v != 1 {
		t.Errorf("healthscore_redis_replicas = %v, want 1", v)
	}
	if v := svc.metric(t, "healthscore_redis_wait_seconds_count"); v < 1 {
		t.Errorf("healthscore_redis_wait_seconds_count = %v: no WAIT", v)
	}
	committedBefore := testenv.Committed(t, brokers, group)

	// The replica stalls and its link drops: what the primary takes now
	// reaches no replica.
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: primary.addr()})
	defer admin.Close()
	if err := replica.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	produceLines(t, brokers, lines[third:2*third])
	waitFor(t, 30*time.Second, "the stalled writes", func() bool {
		return svc.metric(t, `healthscore_batch_retries_total{step="replicas"}`) > 2 || testenv.Committed(t, brokers, group) > committedBefore
	})
	// (/readyz is not checked here: other steps that succeed meanwhile,
	// such as the sweeper's, set readiness again; that is the runtime
	// part's to settle.)
	if n := testenv.Committed(t, brokers, group); n != committedBefore {
		t.Errorf("%d offsets committed while no replica had their writes", n-committedBefore)
	}

	// The primary dies; the stale replica comes back and is promoted.
	primary.kill()
	if err := replica.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // the rest of the stream, during the failover
		defer close(done)
		rest := lines[2*third:]
		for i := 0; i < len(rest); i += 200 {
			produceLines(t, brokers, rest[i:min(i+200, len(rest))])
			time.Sleep(100 * time.Millisecond)
		}
	}()
	sentinel.waitLog("+switch-master", 0, 30*time.Second)
	// The old primary comes back (a process manager restarts it) and
	// Sentinel makes it a replica of the new one: with one replica
	// required, commits resume only then.
	primary.start()
	sentinel.waitLog("+convert-to-slave", 0, 30*time.Second)
	<-done
	waitCommitted(t, brokers, group, "customer-events", 2*time.Minute)

	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "hs", SentinelAddrs: []string{sentinel.addr()}})
	defer fc.Close()
	store, err := state.NewRedis(fc, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	recs := checkAgainstOffline(t, store, lines)
	checkAlerts(t, brokers, recs)
	if v := svc.metric(t, "healthscore_redis_restart_rewinds_total"); v < 1 {
		t.Errorf("healthscore_redis_restart_rewinds_total = %v: the failover went unnoticed", v)
	}
}

// TestClusterServerIDCoversEveryPrimary: on Redis Cluster, INFO answers for
// whichever node the client picks, so a run_id read through the cluster
// client changes from call to call. The store's server id is the set of
// every primary's run_id instead: stable while the cluster is, changed by a
// primary's restart, and a save bound to the old set is refused on the
// restarted node (and only there).
func TestClusterServerIDCoversEveryPrimary(t *testing.T) {
	bin := redisBinary(t, "redis-server")
	nodes := startCluster(t, bin, 3, "")
	addrs := make([]string, len(nodes))
	for i, nd := range nodes {
		addrs[i] = nd.addr()
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	store, err := state.NewRedis(cc, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seen := map[string]bool{}
	for range 10 {
		info, err := cc.Info(ctx, "server").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
				seen[v] = true
			}
		}
	}
	t.Logf("INFO through the cluster client answered with %d different run_ids in 10 calls", len(seen))
	sess, err := store.Bind(ctx) // bound to the cluster as it is now
	if err != nil {
		t.Fatal(err)
	}
	id := sess.Server()
	if n := len(strings.Split(id, ",")); n != 3 {
		t.Fatalf("server id %q has %d run_ids, want one per primary", id, n)
	}
	for range 5 {
		if again, _ := store.ServerID(ctx); again != id {
			t.Fatalf("server id changed without a restart: %q, then %q", id, again)
		}
	}
	// WAIT on a cluster waits on every primary: with a replica behind
	// the first one only, auto waits for that one, and a fixed 1 times out
	// on the others.
	rp := freePort(t)
	replica := startRedisNode(t, bin, rp, fmt.Sprintf("port %d\ncluster-enabled yes\ncluster-config-file nodes.conf\n"+
		"cluster-node-timeout 2000\nsave \"\"\n", rp), "Ready to accept connections")
	rc := redis.NewClient(&redis.Options{Addr: replica.addr()})
	defer rc.Close()
	if err := rc.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(nodes[0].port)).Err(); err != nil {
		t.Fatal(err)
	}
	n0 := redis.NewClient(&redis.Options{Addr: nodes[0].addr()})
	defer n0.Close()
	n0ID, err := n0.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the replica to know its primary", func() bool {
		return rc.ClusterReplicate(ctx, n0ID).Err() == nil
	})
	waitFor(t, 20*time.Second, "the replica to attach", func() bool {
		info, _ := n0.Info(ctx, "replication").Result()
		return strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	})
	all := append(append([]*redisNode(nil), nodes...), replica)
	waitClusterOK(t, all)
	auto, err := state.NewRedis(cc, state.Config{WaitReplicas: state.AutoReplicas})
	if err != nil {
		t.Fatal(err)
	}
	if server, n, err := auto.WaitReplicas(ctx, -1); err != nil || n != 1 || server != id {
		t.Errorf("auto WAIT on the cluster: server %q, replicas %d, err %v; want %q, 1, nil", server, n, err, id)
	}
	one, err := state.NewRedis(cc, state.Config{WaitReplicas: 1, WaitTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := one.WaitReplicas(ctx, -1); !errors.Is(err, state.ErrReplicasBehind) {
		t.Errorf("WAIT 1 on primaries without a replica: %v; want ErrReplicasBehind", err)
	}

	// One customer per node (by hash slot), each saved bound to the set.
	custs := map[int]string{}
	for i := 0; len(custs) < 3; i++ {
		c := fmt.Sprintf("c%d", i)
		key, _ := store.RecordKey(c)
		slot, err := cc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		node := 0 // as startCluster assigns the slots
		for i := range 3 {
			if int(slot) >= i*16384/3 {
				node = i
			}
		}
		if _, ok := custs[node]; !ok {
			custs[node] = c
		}
	}
	for _, c := range custs {
		if ok, err := sess.Save(ctx, []state.Write{{ID: c, Rec: state.Record{Band: state.BandGreen, Score: 90}}}); err != nil || !ok.Applied[0] {
			t.Fatalf("save of %s bound to the cluster's id: %v, %v", c, ok, err)
		}
	}

	nodes[1].kill()
	nodes[1].start()
	waitClusterOK(t, all)
	var after string
	waitFor(t, 20*time.Second, "a new server id", func() bool {
		after, err = store.ServerID(ctx)
		return err == nil && after != id
	})
	if n := len(strings.Split(after, ",")); n != 3 {
		t.Fatalf("server id after the restart %q has %d run_ids", after, n)
	}
	for node, c := range custs {
		_, err := sess.Save(ctx, []state.Write{{ID: c, Expected: 1, Rec: state.Record{Band: state.BandGreen, Score: 80}}})
		if node == 1 && !errors.Is(err, state.ErrServerChanged) {
			t.Errorf("save on the restarted node bound to the old id: %v; want ErrServerChanged", err)
		}
		if node != 1 && err != nil {
			t.Errorf("save on an unchanged node bound to the old id: %v", err)
		}
	}
	// A load through the old session is refused wherever it reads: the
	// cluster's id changed.
	for _, c := range custs {
		if _, err := sess.Load(ctx, []string{c}); !errors.Is(err, state.ErrServerChanged) {
			t.Errorf("load of %s through the session bound to the old id: %v; want ErrServerChanged", c, err)
		}
	}
}

// TestAutoWaitTakesTheSavesReplicas: with --redis-wait-replicas auto a
// save reports the replicas connected to the primary right after its
// writes, and the wait before publishing takes that count instead of
// asking again: with the replica online the wait reaches it (WAIT 1);
// with the replica stalled and its link cut, the save sees none and the
// wait returns at once, without a round trip (as auto always did when no
// replica was connected).
func TestAutoWaitTakesTheSavesReplicas(t *testing.T) {
	bin := redisBinary(t, "redis-server")
	pPort, rPort := freePort(t), freePort(t)
	primary := startRedisNode(t, bin, pPort, fmt.Sprintf("port %d\nsave \"\"\nappendonly no\nrepl-diskless-sync-delay 0\n", pPort), "Ready to accept connections")
	replica := startRedisNode(t, bin, rPort, fmt.Sprintf("port %d\nsave \"\"\nappendonly no\nreplicaof 127.0.0.1 %d\n", rPort, pPort),
		"MASTER <-> REPLICA sync: Finished with success")
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: primary.addr()})
	defer rdb.Close()
	waitFor(t, 15*time.Second, "the replica online", func() bool {
		info, _ := rdb.Info(ctx, "replication").Result()
		return strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	})
	store, err := state.NewRedis(rdb, state.Config{WaitReplicas: state.AutoReplicas, WaitTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := store.Bind(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec := state.Record{Band: state.BandGreen, Score: 90}
	saved, err := sess.Save(ctx, []state.Write{{ID: "a", Rec: rec}})
	if err != nil || !saved.Applied[0] || saved.Replicas != 1 {
		t.Fatalf("save with one replica online: %+v, %v; want applied, 1 replica", saved, err)
	}
	if server, n, err := store.WaitReplicas(ctx, saved.Replicas); err != nil || n != 1 || server != sess.Server() {
		t.Errorf("wait for the save's replica: server %q, replicas %d, err %v; want %q, 1, nil", server, n, err, sess.Server())
	}

	if err := replica.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = replica.cmd.Process.Signal(syscall.SIGCONT) }()
	if err := rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	saved, err = sess.Save(ctx, []state.Write{{ID: "a", Expected: 1, Rec: rec}})
	if err != nil || !saved.Applied[0] || saved.Replicas != 0 {
		t.Fatalf("save with the replica's link cut: %+v, %v; want applied, 0 replicas", saved, err)
	}
	start := time.Now()
	if server, n, err := store.WaitReplicas(ctx, saved.Replicas); err != nil || n != 0 || server != "" {
		t.Errorf("wait with no replica connected: server %q, replicas %d, err %v; want none waited for, nothing read", server, n, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the wait took %s with no replica to wait for", d)
	}
}
