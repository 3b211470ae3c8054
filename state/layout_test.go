package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/state"
)

func TestCheckLayout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := context.Background()
		c := newClient()
		s := newStore(t, c, cfg)
		if _, err := s.CheckLayout(ctx); err != nil {
			t.Fatalf("first check: %v", err)
		}
		got, err := c.Get(ctx, s.LayoutKey()).Result()
		if err != nil || got != "buckets=16384 shards=16" {
			t.Fatalf("layout key = %q, %v; want buckets=16384 shards=16", got, err)
		}
		if _, err := newStore(t, newClient(), cfg).CheckLayout(ctx); err != nil {
			t.Fatalf("second store, same layout: %v", err)
		}
		other := cfg
		other.Buckets = 32768
		_, err = newStore(t, newClient(), other).CheckLayout(ctx)
		if err == nil || !strings.Contains(err.Error(), "--state-buckets") {
			t.Fatalf("other bucket count: err = %v, want a refusal naming --state-buckets", err)
		}

		// A Redis with state in the earlier layout (no layout key, a
		// band index key of its own) is refused.
		legacy := cfg
		legacy.Prefix = cfg.Prefix + "old:"
		if err := c.ZAdd(ctx, legacy.Prefix+"band:yellow", redis.Z{Score: 50, Member: "c1"}).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Del(context.Background(), legacy.Prefix+"band:yellow") })
		if _, err := newStore(t, c, legacy).CheckLayout(ctx); !errors.Is(err, state.ErrLegacyLayout) {
			t.Fatalf("legacy store: err = %v, want ErrLegacyLayout", err)
		}
		if n, _ := c.Exists(ctx, legacy.Prefix+"layout").Result(); n != 0 {
			t.Fatal("a refused legacy store got a layout key")
		}
	})
}

func TestCheckLayoutListpackAdvice(t *testing.T) {
	c, prefix := testenv.Redis(t)
	ctx := context.Background()
	s := newStore(t, c, state.Config{Prefix: prefix})
	lp, err := s.CheckLayout(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lp.HashValue != 512 || lp.Advice != "" {
		t.Fatalf("test server (hash-max-listpack-value 512): %+v, want no advice", lp)
	}
	old, err := c.ConfigGet(ctx, "hash-max-listpack-value").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "hash-max-listpack-value", "64").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.ConfigSet(context.Background(), "hash-max-listpack-value", old["hash-max-listpack-value"]) })
	lp, err = s.CheckLayout(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lp.Advice, "hash-max-listpack-value 512") {
		t.Fatalf("advice at 64 = %q, want it to say hash-max-listpack-value 512", lp.Advice)
	}
}
