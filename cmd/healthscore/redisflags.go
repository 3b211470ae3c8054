package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/healthscore/healthscore/internal/redisconf"
	"github.com/healthscore/healthscore/state"
)

// redisFlags are the --redis-* connection flags beyond --redis (the URL,
// serviceFlags.redisURL); see docs/production-redis.md.
type redisFlags struct {
	conn              redisconf.Config
	cluster, sentinel string
	waitReplicas      string
	waitTimeout       time.Duration
}

// registerRedisFlags registers the Redis topology, authentication, TLS and
// replica-wait flags, each with its environment twin.
func registerRedisFlags(e *envFlags, r *redisFlags) {
	e.str(&r.cluster, "redis-cluster", "HEALTHSCORE_REDIS_CLUSTER", "", "Redis Cluster seed addresses host:port, comma separated (instead of --redis)")
	e.str(&r.sentinel, "redis-sentinel", "HEALTHSCORE_REDIS_SENTINEL", "", "Sentinel addresses host:port, comma separated (instead of --redis; with --redis-sentinel-master)")
	e.str(&r.conn.SentinelMaster, "redis-sentinel-master", "HEALTHSCORE_REDIS_SENTINEL_MASTER", "", "name of the primary the Sentinels monitor")
	e.secret(&r.conn.SentinelPassword, "redis-sentinel-password", "HEALTHSCORE_REDIS_SENTINEL_PASSWORD", "password of the Sentinels themselves, if they require one (prefer --redis-sentinel-password-file)")
	e.str(&r.conn.SentinelPasswordFile, "redis-sentinel-password-file", "HEALTHSCORE_REDIS_SENTINEL_PASSWORD_FILE", "", "file holding the Sentinels' password")
	e.str(&r.conn.User, "redis-user", "HEALTHSCORE_REDIS_USER", "", "Redis ACL user (empty: the default user)")
	e.secret(&r.conn.Password, "redis-password", "HEALTHSCORE_REDIS_PASSWORD", "Redis password (prefer --redis-password-file)")
	e.str(&r.conn.PasswordFile, "redis-password-file", "HEALTHSCORE_REDIS_PASSWORD_FILE", "", "file holding the Redis password")
	e.bool(&r.conn.TLS, "redis-tls", "HEALTHSCORE_REDIS_TLS", "connect to Redis over TLS (a rediss:// URL does too)")
	e.str(&r.conn.TLSCA, "redis-tls-ca", "HEALTHSCORE_REDIS_TLS_CA", "", "PEM file of the CAs that sign the Redis server certificate (default: the system's)")
	e.str(&r.conn.TLSCert, "redis-tls-cert", "HEALTHSCORE_REDIS_TLS_CERT", "", "PEM client certificate for Redis (with --redis-tls-key)")
	e.str(&r.conn.TLSKey, "redis-tls-key", "HEALTHSCORE_REDIS_TLS_KEY", "", "PEM private key of --redis-tls-cert")
	e.str(&r.conn.TLSServerName, "redis-tls-server-name", "HEALTHSCORE_REDIS_TLS_SERVER_NAME", "", "name to verify in the Redis server certificate (default: the host)")
	e.bool(&r.conn.TLSInsecureSkipVerify, "redis-tls-insecure-skip-verify", "HEALTHSCORE_REDIS_TLS_INSECURE_SKIP_VERIFY", "do not verify the Redis server certificate (testing only; logged)")
	e.str(&r.waitReplicas, "redis-wait-replicas", "HEALTHSCORE_REDIS_WAIT_REPLICAS", "auto", "before publishing outputs and committing offsets, wait (WAIT) until the writes reached this many replicas: auto (the replicas connected to the primary; on Redis Cluster, to each primary), 0 (never) or N")
	e.dur(&r.waitTimeout, "redis-wait-timeout", "HEALTHSCORE_REDIS_WAIT_TIMEOUT", state.DefaultWaitTimeout, "longest WAIT for replicas; when it passes, offsets are not committed and the wait is tried again")
}

// config returns the connection settings, with url from --redis.
func (r *redisFlags) config(url string) redisconf.Config {
	c := r.conn
	c.URL = url
	c.ClusterAddrs = splitList(r.cluster)
	c.SentinelAddrs = splitList(r.sentinel)
	return c
}

// replicas parses --redis-wait-replicas into state.Config.WaitReplicas.
func (r *redisFlags) replicas() (int, error) {
	v := strings.TrimSpace(r.waitReplicas)
	if v == "auto" {
		return state.AutoReplicas, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--redis-wait-replicas %q: want auto, 0 or a number of replicas", r.waitReplicas)
	}
	if r.waitTimeout <= 0 {
		return 0, fmt.Errorf("--redis-wait-timeout %s: must be positive", r.waitTimeout)
	}
	return n, nil
}
