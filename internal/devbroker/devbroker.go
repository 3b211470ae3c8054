// Package devbroker owns the embedded Kafka-compatible broker used by
// `healthscore run` without --brokers, by `healthscore dev-broker`, by the
// fault suite and the benchmarks: franz-go's kfake, listening on loopback with
// the service's topics created. It keeps everything in memory and is for
// development and tests only.
package devbroker

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultTopics are the topics the service reads and writes.
var DefaultTopics = []string{"customer-events", "customer-health", "customer-health-alerts", "customer-events-dlq"}

// Config configures a broker.
type Config struct {
	Port       int      // 0 picks a free port
	Partitions int32    // per topic; default 8
	Topics     []string // default DefaultTopics
	Opts       []kfake.Opt
}

// Broker is a running in-memory broker.
type Broker struct {
	Cluster *kfake.Cluster
	Addr    string
}

// Start starts a one-node broker. Close it with Close.
func Start(cfg Config) (*Broker, error) {
	if cfg.Partitions <= 0 {
		cfg.Partitions = 8
	}
	if len(cfg.Topics) == 0 {
		cfg.Topics = DefaultTopics
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("cannot start the embedded broker: port %d is out of range", cfg.Port)
	}
	// kfake listens on 127.0.0.1; probe a fixed port first for a clear message.
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(cfg.Partitions, cfg.Topics...)}
	if cfg.Port != 0 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("cannot start the embedded broker on %s (is a Kafka broker already running there? pass --brokers to use it): %w", addr, err)
		}
		ln.Close()
		opts = append(opts, kfake.Ports(cfg.Port))
	}
	c, err := kfake.NewCluster(append(opts, cfg.Opts...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot start the embedded broker: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, errors.New("cannot start the embedded broker: it has no listener")
	}
	return &Broker{Cluster: c, Addr: addrs[0]}, nil
}

// Close stops the broker.
func (b *Broker) Close() { b.Cluster.Close() }
