package testenv_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/healthscore/healthscore/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithRedis(m)) }

func TestRedisIsolatedPrefixes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c1, p1 := testenv.Redis(t)
	c2, p2 := testenv.Redis(t)
	if p1 == p2 {
		t.Fatalf("prefixes are equal: %q", p1)
	}
	if strings.ContainsAny(p1, "{}*?[]") {
		t.Fatalf("prefix %q has hash-tag or glob characters", p1)
	}
	if err := c1.Set(ctx, p1+"k", "one", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Set(ctx, p2+"k", "two", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, want string }{{p1 + "k", "one"}, {p2 + "k", "two"}} {
		got, err := c1.Get(ctx, tc.key).Result()
		if err != nil || got != tc.want {
			t.Fatalf("GET %s = %q, %v; want %q", tc.key, got, err, tc.want)
		}
	}
}

func TestRedisKeysDeletedAtCleanup(t *testing.T) {
	t.Parallel()
	var prefix string
	ok := t.Run("writer", func(t *testing.T) {
		c, p := testenv.Redis(t)
		prefix = p
		for _, k := range []string{"a", "b", "c"} {
			if err := c.Set(t.Context(), p+k, k, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !ok {
		return
	}
	if prefix == "" {
		t.Skip("writer was skipped")
	}
	c, _ := testenv.Redis(t)
	keys, err := c.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("keys left after cleanup: %v", keys)
	}
}

func TestRedisServerConfig(t *testing.T) {
	if os.Getenv(testenv.EnvRedisURL) != "" {
		t.Skip("external server: its config is not ours")
	}
	t.Parallel()
	o := testenv.RedisOptions(t)
	if o.Network != "unix" || len(o.Addr) > 100 {
		t.Fatalf("want a short unix socket, got %s %q", o.Network, o.Addr)
	}
	c, _ := testenv.Redis(t)
	for param, want := range map[string]string{"port": "0", "save": "", "appendonly": "no"} {
		got, err := c.ConfigGet(t.Context(), param).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got[param] != want {
			t.Errorf("config %s = %q, want %q", param, got[param], want)
		}
	}
}

func TestKafkaRoundTrip(t *testing.T) {
	t.Parallel()
	topic := "testenv-roundtrip"
	brokers := testenv.Kafka(t, map[string]int32{topic: 3})
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for p := range int32(3) {
		r := &kgo.Record{Topic: topic, Partition: p, Value: []byte{byte(p)}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}
	seen := map[int32]bool{}
	for len(seen) < 3 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 3 records: %v", len(seen), err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { seen[r.Partition] = true })
	}
}

func TestKafkaClusterFaultInjection(t *testing.T) {
	t.Parallel()
	topic := "testenv-faults"
	c, brokers := testenv.KafkaCluster(t, map[string]int32{topic: 1})
	// Fail the first produce request with a non-retryable error.
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		preq := req.(*kmsg.ProduceRequest)
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range preq.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID // v13+ matches by ID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("first produce: got %v, want %v", err, kerr.InvalidRecord)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("y")}).FirstErr(); err != nil {
		t.Fatalf("second produce (control function consumed): %v", err)
	}
}
