package redisconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const secretPW = "s3cr3t-Pa55w0rd"

func TestValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		flag string
	}{
		{"none", Config{}, "--redis-cluster"},
		{"two topologies", Config{URL: "redis://a:1", ClusterAddrs: []string{"b:2"}}, "exactly one"},
		{"three topologies", Config{URL: "redis://a:1", ClusterAddrs: []string{"b:2"}, SentinelAddrs: []string{"c:3"}, SentinelMaster: "m"}, "exactly one"},
		{"sentinel without master", Config{SentinelAddrs: []string{"c:3"}}, "--redis-sentinel-master"},
		{"master without sentinel", Config{URL: "redis://a:1", SentinelMaster: "m"}, "--redis-sentinel"},
		{"sentinel password without sentinel", Config{URL: "redis://a:1", SentinelPassword: secretPW}, "--redis-sentinel-password"},
		{"password twice", Config{URL: "redis://a:1", Password: secretPW, PasswordFile: "/x"}, "--redis-password-file"},
		{"cert without key", Config{URL: "rediss://a:1", TLSCert: "/c"}, "--redis-tls-key"},
		{"bad address", Config{ClusterAddrs: []string{"redis://b:2"}}, "host:port"},
		{"tls options without tls", Config{URL: "redis://a:1", TLSCA: "/ca.pem"}, "--redis-tls"},
		{"tls on a unix socket", Config{URL: "unix:///tmp/r.sock", TLS: true}, "unix://"},
		{"cluster tls options without tls", Config{ClusterAddrs: []string{"b:2"}, TLSServerName: "x"}, "--redis-tls"},
		{"bad url", Config{URL: "http://u:" + secretPW + "@a:1"}, "--redis"},
		{"user in url and flag", Config{URL: "redis://u:" + secretPW + "@a:1", User: "v"}, "one place"},
		{"password in url and flag", Config{URL: "redis://:" + secretPW + "@a:1", Password: secretPW}, "one place"},
		{"missing password file", Config{URL: "redis://a:1", PasswordFile: "/nonexistent/pw"}, "--redis-password-file"},
		{"missing CA", Config{URL: "rediss://a:1", TLSCA: "/nonexistent/ca.pem"}, "--redis-tls-ca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg, zap.NewNop())
			if err == nil {
				c.Close()
				t.Fatalf("no error for %+v", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.flag) {
				t.Errorf("error %q does not name %q", err, tc.flag)
			}
			if strings.Contains(err.Error(), secretPW) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestTopologiesUseGoRedisClients(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(secretPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want any
		topo Topology
	}{
		{Config{URL: "redis://127.0.0.1:1/0", User: "hs", PasswordFile: pwFile}, &redis.Client{}, Single},
		{Config{ClusterAddrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, User: "hs", Password: secretPW, TLS: true}, &redis.ClusterClient{}, Cluster},
		{Config{SentinelAddrs: []string{"127.0.0.1:1"}, SentinelMaster: "m", SentinelPasswordFile: pwFile}, &redis.Client{}, Sentinel},
	} {
		c, err := New(tc.cfg, zap.NewNop())
		if err != nil {
			t.Fatalf("%+v: %v", tc.cfg, err)
		}
		switch tc.want.(type) {
		case *redis.Client:
			rc, ok := c.(*redis.Client)
			if !ok {
				t.Errorf("%s: got %T", tc.topo, c)
			} else if tc.topo == Single && (rc.Options().Password != secretPW || rc.Options().Username != "hs" || !rc.Options().ContextTimeoutEnabled) {
				t.Errorf("single: password from file, user and ContextTimeoutEnabled not set: user %q, ContextTimeoutEnabled %v", rc.Options().Username, rc.Options().ContextTimeoutEnabled)
			}
		case *redis.ClusterClient:
			cc, ok := c.(*redis.ClusterClient)
			if !ok {
				t.Errorf("%s: got %T", tc.topo, c)
			} else if o := cc.Options(); o.TLSConfig == nil || o.Password != secretPW || !o.ContextTimeoutEnabled {
				t.Errorf("cluster: TLS, password or ContextTimeoutEnabled not set")
			}
		}
		if got := tc.cfg.Topology(); got != tc.topo {
			t.Errorf("Topology() = %q, want %q", got, tc.topo)
		}
		if d := tc.cfg.Describe(); strings.Contains(d, secretPW) || d == "" {
			t.Errorf("Describe() = %q", d)
		}
		c.Close()
	}
}

func TestURLPasswordRedactedAndTLSFromScheme(t *testing.T) {
	cfg := Config{URL: "rediss://hs:" + secretPW + "@redis.example:6380/2", TLSServerName: "other.example"}
	if d := cfg.Describe(); strings.Contains(d, secretPW) || !strings.Contains(d, "redis.example") {
		t.Errorf("Describe() = %q", d)
	}
	c, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "other.example" || o.DB != 2 {
		t.Errorf("TLS config %+v, DB %d", o.TLSConfig, o.DB)
	}
	// Without an override, the URL's host is the name verified.
	c2, err := New(Config{URL: "redis://redis.example:6379", TLS: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if sn := c2.(*redis.Client).Options().TLSConfig.ServerName; sn != "redis.example" {
		t.Errorf("ServerName %q, want redis.example", sn)
	}
}

func TestInsecureSkipVerifyIsLoggedAtWarn(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	c, err := New(Config{URL: "redis://a:1", TLS: true, TLSInsecureSkipVerify: true, Password: secretPW}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.(*redis.Client).Options().TLSConfig.InsecureSkipVerify {
		t.Error("InsecureSkipVerify not set")
	}
	if logs.FilterMessageSnippet("NOT verified").Len() != 1 {
		t.Errorf("want one warning, got %v", logs.All())
	}
	for _, e := range logs.All() {
		if strings.Contains(e.Message, secretPW) || strings.Contains(fmt.Sprint(e.ContextMap()), secretPW) {
			t.Errorf("log shows the password: %v", e)
		}
	}
}
