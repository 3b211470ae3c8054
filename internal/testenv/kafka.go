package testenv

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvBrokers names comma-separated Kafka brokers that [Kafka] uses instead of
// an in-process cluster.
const EnvBrokers = "HEALTHSCORE_TEST_BROKERS"

// Kafka returns the seed brokers of a Kafka cluster that has the given topics
// (topic → partitions; a non-positive count means the cluster default).
//
// Without HEALTHSCORE_TEST_BROKERS it is a one-broker in-process kfake
// cluster on 127.0.0.1, closed when the test ends. With it, the topics are
// created on those brokers (existing topics are kept as they are); tests that
// share external brokers should use topic names unique to the test.
func Kafka(tb testing.TB, topics map[string]int32) []string {
	tb.Helper()
	if env := os.Getenv(EnvBrokers); env != "" {
		var brokers []string
		for _, b := range strings.Split(env, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
		createTopics(tb, brokers, topics)
		return brokers
	}
	_, brokers := KafkaCluster(tb, topics)
	return brokers
}

// KafkaCluster starts a one-broker in-process kfake cluster with the given
// topics seeded, whatever HEALTHSCORE_TEST_BROKERS says, and returns it (for
// fault injection with ControlKey and friends) with its listen addresses.
// opts are appended to the defaults. The cluster is closed when the test ends.
func KafkaCluster(tb testing.TB, topics map[string]int32, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	tb.Helper()
	all := []kfake.Opt{kfake.NumBrokers(1)}
	for _, t := range sortedTopics(topics) {
		all = append(all, kfake.SeedTopics(topics[t], t))
	}
	all = append(all, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		tb.Fatalf("testenv: cannot start kfake cluster: %v", err)
	}
	tb.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

func sortedTopics(topics map[string]int32) []string {
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	sort.Strings(names)
	return names
}

func createTopics(tb testing.TB, brokers []string, topics map[string]int32) {
	tb.Helper()
	if len(topics) == 0 {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		tb.Fatalf("testenv: cannot create kafka client for %v: %v", brokers, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, t := range sortedTopics(topics) {
		p := topics[t]
		if p <= 0 {
			p = -1 // broker default
		}
		_, err := adm.CreateTopic(ctx, p, -1, nil, t)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			tb.Fatalf("testenv: cannot create topic %q on %v: %v", t, brokers, err)
		}
	}
}

// Committed returns the sum of the offsets group has committed, over every
// topic and partition (0 when it has committed nothing, or the group does
// not exist yet).
func Committed(tb testing.TB, brokers []string, group string) int64 {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0
	}
	if err != nil {
		tb.Fatal(err)
	}
	n := int64(0)
	offs.Each(func(o kadm.OffsetResponse) { n += o.At })
	return n
}
