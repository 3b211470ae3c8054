// Package devbroker owns the embedded Kafka-compatible broker used by
// `healthscore run` without --brokers, by `healthscore dev-broker`, by the
// fault suite and the benchmarks: franz-go's kfake, listening on loopback with
// the service's topics created. It keeps everything in memory and is for
// development and tests only.
//
// It can also be secured (see security.go): a TLS listener, SASL users
// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and ACLs, so that clients can be
// tested against a broker configured like a managed Kafka.
//
// It can also break on purpose (see control.go): kfake faults on chosen
// request kinds, and outages in which every request fails or hangs, driven
// from Go or, in `healthscore dev-broker --control`, over loopback HTTP.
package devbroker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultTopics are the topics the service reads and writes.
var DefaultTopics = []string{"customer-events", "customer-health", "customer-health-alerts", "customer-events-dlq"}

// Config configures a broker.
type Config struct {
	Port       int      // 0 picks a free port
	Partitions int32    // per topic; default 8
	Topics     []string // default DefaultTopics
	// MaxSessionTimeout, when positive, lowers the session timeout that
	// classic-group members ask for in JoinGroup to at most this, and their
	// rebalance timeout to at most twice this. A member killed without
	// leaving (SIGKILL) is then dropped from its group after this long
	// instead of the client's default (45 s for franz-go), and a rebalance
	// waits at most twice this for members to rejoin (60 s by default), so
	// tests that kill consumers every few seconds keep making progress.
	MaxSessionTimeout time.Duration

	// TLS, when set, makes the listener TLS-only (see GenerateTLS and
	// ServerTLS).
	TLS *tls.Config
	// Users, when given, turn SASL on: every client must authenticate as
	// one of them (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512).
	Users []User
	// EnableACLs checks every request against ACLs: a user (other than a
	// superuser) may do only what an ACL allows. Without SASL, clients are
	// User:ANONYMOUS and can do nothing.
	EnableACLs bool
	ACLs       []ACL // need EnableACLs; each names one of Users

	Opts []kfake.Opt // more kfake options, applied last
}

// Broker is a running in-memory broker.
type Broker struct {
	Cluster *kfake.Cluster
	Addr    string

	outageOnce sync.Once
	outageMu   sync.Mutex
	outage     outage // guarded by outageMu
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
	if cfg.MaxSessionTimeout < 0 || (cfg.MaxSessionTimeout > 0 && cfg.MaxSessionTimeout < time.Second) {
		return nil, fmt.Errorf("cannot start the embedded broker: MaxSessionTimeout %s must be 0 or at least 1s", cfg.MaxSessionTimeout)
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
	sec, err := cfg.securityOpts()
	if err != nil {
		return nil, fmt.Errorf("cannot start the embedded broker: %w", err)
	}
	opts = append(opts, sec...)
	c, err := kfake.NewCluster(append(opts, cfg.Opts...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot start the embedded broker: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, errors.New("cannot start the embedded broker: it has no listener")
	}
	if cfg.MaxSessionTimeout > 0 {
		capMs := int32(cfg.MaxSessionTimeout / time.Millisecond)
		// Not handling the request (false) keeps the control function
		// installed and lets the cluster process the modified request.
		c.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
			if r, ok := req.(*kmsg.JoinGroupRequest); ok {
				r.SessionTimeoutMillis = min(r.SessionTimeoutMillis, capMs)
				r.RebalanceTimeoutMillis = min(r.RebalanceTimeoutMillis, 2*capMs)
			}
			return nil, nil, false
		})
	}
	return &Broker{Cluster: c, Addr: addrs[0]}, nil
}

// Close stops the broker.
func (b *Broker) Close() { b.Cluster.Close() }
