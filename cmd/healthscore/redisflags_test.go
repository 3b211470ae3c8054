package main

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/state"
)

func TestRedisFlagsAndEnvTwins(t *testing.T) {
	t.Setenv("HEALTHSCORE_REDIS_SENTINEL", "127.0.0.1:26379, 127.0.0.1:26380")
	t.Setenv("HEALTHSCORE_REDIS_SENTINEL_MASTER", "hs")
	t.Setenv("HEALTHSCORE_REDIS_USER", "healthscore")
	t.Setenv("HEALTHSCORE_REDIS_TLS", "true")
	t.Setenv("HEALTHSCORE_REDIS_WAIT_TIMEOUT", "3s")
	f, err := parseServiceFlags([]string{"--redis-password-file", "/run/secrets/redis", "--redis-wait-replicas", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := f.redis.config(f.redisURL)
	if !slices.Equal(c.SentinelAddrs, []string{"127.0.0.1:26379", "127.0.0.1:26380"}) || c.SentinelMaster != "hs" || c.User != "healthscore" ||
		!c.TLS || c.PasswordFile != "/run/secrets/redis" {
		t.Errorf("config %+v", c)
	}
	if n, err := f.redis.replicas(); err != nil || n != 2 || f.redis.waitTimeout != 3*time.Second {
		t.Errorf("replicas %d, %v, timeout %s", n, err, f.redis.waitTimeout)
	}

	for _, env := range []string{"HEALTHSCORE_REDIS_SENTINEL", "HEALTHSCORE_REDIS_SENTINEL_MASTER"} {
		os.Unsetenv(env) //nolint:errcheck // restored by t.Setenv's cleanup
	}
	f, err = parseServiceFlags([]string{"--redis-cluster", "a:1,b:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.redis.replicas(); err != nil || n != state.AutoReplicas {
		t.Errorf("default --redis-wait-replicas: %d, %v; want auto", n, err)
	}
	if c := f.redis.config(""); !slices.Equal(c.ClusterAddrs, []string{"a:1", "b:2"}) {
		t.Errorf("cluster addrs %v", c.ClusterAddrs)
	}
	for _, bad := range []string{"-1", "many"} { // refused at start, before anything waits
		if _, err := parseServiceFlags([]string{"--redis-wait-replicas", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "--redis-wait-replicas") {
			t.Errorf("--redis-wait-replicas %s: error %v", bad, err)
		}
	}
}

// TestSecretsNeverInUsage: passwords (and a Redis URL, which may hold one)
// given by the environment, as a Kubernetes Secret gives them, never show in
// -h or in the usage printed after a mistyped flag; they still take effect.
func TestSecretsNeverInUsage(t *testing.T) {
	secrets := map[string]string{
		"HEALTHSCORE_REDIS_URL":               "redis://hs:url-Secret-1@redis:6379/0",
		"HEALTHSCORE_REDIS_PASSWORD":          "redis-Secret-2",
		"HEALTHSCORE_REDIS_SENTINEL_PASSWORD": "sentinel-Secret-3",
		"HEALTHSCORE_KAFKA_SASL_PASSWORD":     "kafka-Secret-4",
	}
	for env, v := range secrets {
		t.Setenv(env, v)
	}
	for _, args := range [][]string{{"-h"}, {"--no-such-flag"}} {
		var out bytes.Buffer
		if _, err := parseServiceFlags(args, &out); err == nil {
			t.Fatalf("%v: no error", args)
		}
		if !strings.Contains(out.String(), "-redis-password") {
			t.Fatalf("%v printed no usage:\n%s", args, out.String())
		}
		for env, v := range secrets {
			if strings.Contains(out.String(), v) {
				t.Errorf("%v shows the value of %s:\n%s", args, env, out.String())
			}
		}
	}
	// They take effect (a URL and a Sentinel exclude each other: one each).
	f, err := parseServiceFlags([]string{"--redis-sentinel-password", ""}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if f.redisURL != secrets["HEALTHSCORE_REDIS_URL"] || f.redis.conn.Password != secrets["HEALTHSCORE_REDIS_PASSWORD"] ||
		f.kafka.password != secrets["HEALTHSCORE_KAFKA_SASL_PASSWORD"] {
		t.Errorf("the secrets from the environment were not taken: %+v", f)
	}
	os.Unsetenv("HEALTHSCORE_REDIS_URL") //nolint:errcheck // restored by t.Setenv's cleanup
	t.Setenv("HEALTHSCORE_REDIS_SENTINEL", "s:26379")
	t.Setenv("HEALTHSCORE_REDIS_SENTINEL_MASTER", "hs")
	if f, err = parseServiceFlags(nil, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if f.redis.conn.SentinelPassword != secrets["HEALTHSCORE_REDIS_SENTINEL_PASSWORD"] {
		t.Errorf("the Sentinel password from the environment was not taken")
	}
}
