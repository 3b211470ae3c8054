// Package redisconf owns how the service connects to Redis: which topology
// (one server by URL, a Redis Cluster by seed addresses, or a primary found
// through Sentinel), the ACL user and password, and TLS. It turns a Config
// into a go-redis UniversalClient built by go-redis's own constructors
// (NewClient, NewClusterClient, NewFailoverClient), so that the state store
// sees a *redis.ClusterClient for a cluster and selects its single-key mode.
//
// Secrets (passwords, the contents of password files) are never logged and
// never appear in an error. Non-goals: the keys and commands the service
// uses (package state), flags and environment variables (cmd/healthscore).
package redisconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/internal/credfiles"
)

// Topology names what a Config connects to.
type Topology string

// The topologies.
const (
	Single   Topology = "single"   // one server (or a proxy) by URL
	Cluster  Topology = "cluster"  // Redis Cluster
	Sentinel Topology = "sentinel" // a primary found through Sentinel
)

// Config says how to reach Redis. Exactly one of URL, ClusterAddrs and
// SentinelAddrs is set. Field comments name the flags of `healthscore run`
// that set them: errors name the flag to fix.
type Config struct {
	// URL is a single server: redis://[user:pass@]host:port/db,
	// rediss://… (TLS) or unix:///path/to.sock (--redis).
	URL string
	// ClusterAddrs are seed addresses (host:port) of a Redis Cluster
	// (--redis-cluster).
	ClusterAddrs []string
	// SentinelAddrs are Sentinel addresses (host:port) (--redis-sentinel);
	// SentinelMaster is the name of the primary they monitor
	// (--redis-sentinel-master).
	SentinelAddrs  []string
	SentinelMaster string
	// SentinelPassword authenticates to the Sentinels themselves, when they
	// require it (--redis-sentinel-password, --redis-sentinel-password-file).
	SentinelPassword     string
	SentinelPasswordFile string

	// User and Password authenticate to Redis (ACL user; no user: the
	// default user) (--redis-user, --redis-password, --redis-password-file).
	// With a URL they may also be in the URL, but not in both places.
	User         string
	Password     string
	PasswordFile string

	// TLS enables TLS (--redis-tls; a rediss:// URL enables it too). CA is a
	// PEM file of the certificate authorities to trust (default: the
	// system's); Cert and Key a client certificate (both or neither);
	// ServerName overrides the name checked in the server's certificate.
	TLS                   bool
	TLSCA                 string
	TLSCert               string
	TLSKey                string
	TLSServerName         string
	TLSInsecureSkipVerify bool // do not verify the server's certificate (testing only; logged at warn)
}

// Topology reports which topology c selects ("" when none is set).
func (c *Config) Topology() Topology {
	switch {
	case c.URL != "":
		return Single
	case len(c.ClusterAddrs) > 0:
		return Cluster
	case len(c.SentinelAddrs) > 0:
		return Sentinel
	}
	return ""
}

// IsSet reports whether any topology is given.
func (c *Config) IsSet() bool { return c.Topology() != "" }

// Validate checks the settings without reading any file or connecting, so
// that a bad combination is reported at start, before anything waits.
func (c *Config) Validate() error { return c.validate() }

func (c *Config) validate() error {
	n := 0
	for _, set := range []bool{c.URL != "", len(c.ClusterAddrs) > 0, len(c.SentinelAddrs) > 0} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return errors.New("no Redis given: set --redis (a URL), --redis-cluster (seed addresses) or --redis-sentinel (Sentinel addresses)")
	case n > 1:
		return errors.New("--redis, --redis-cluster and --redis-sentinel exclude each other: set exactly one")
	case len(c.SentinelAddrs) > 0 && c.SentinelMaster == "":
		return errors.New("--redis-sentinel needs --redis-sentinel-master (the primary's name in the Sentinel configuration)")
	case len(c.SentinelAddrs) == 0 && c.SentinelMaster != "":
		return errors.New("--redis-sentinel-master needs --redis-sentinel (the Sentinel addresses)")
	case len(c.SentinelAddrs) == 0 && (c.SentinelPassword != "" || c.SentinelPasswordFile != ""):
		return errors.New("--redis-sentinel-password needs --redis-sentinel")
	case c.Password != "" && c.PasswordFile != "":
		return errors.New("--redis-password and --redis-password-file exclude each other: set one")
	case c.SentinelPassword != "" && c.SentinelPasswordFile != "":
		return errors.New("--redis-sentinel-password and --redis-sentinel-password-file exclude each other: set one")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--redis-tls-cert and --redis-tls-key go together: set both or neither")
	}
	for _, a := range append(append([]string(nil), c.ClusterAddrs...), c.SentinelAddrs...) {
		if !strings.Contains(a, ":") || strings.Contains(a, "/") {
			return fmt.Errorf("address %q in --redis-cluster or --redis-sentinel: want host:port", a)
		}
	}
	return nil
}

// tlsOptions reports whether TLS settings were given (beyond the switch).
func (c *Config) tlsOptions() bool {
	return c.TLSCA != "" || c.TLSCert != "" || c.TLSServerName != "" || c.TLSInsecureSkipVerify
}

// New builds the client c describes. log (not nil) receives a warning when
// certificate verification is off. The caller owns the client.
func New(c Config, log *zap.Logger) (redis.UniversalClient, error) {
	if log == nil {
		return nil, errors.New("cannot create Redis client: no logger")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	password, err := secret(c.Password, c.PasswordFile, "--redis-password-file")
	if err != nil {
		return nil, err
	}
	sentinelPassword, err := secret(c.SentinelPassword, c.SentinelPasswordFile, "--redis-sentinel-password-file")
	if err != nil {
		return nil, err
	}
	switch c.Topology() {
	case Cluster:
		tc, err := c.tlsConfig(c.TLS, log)
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                 c.ClusterAddrs,
			Username:              c.User,
			Password:              password,
			TLSConfig:             tc,
			ContextTimeoutEnabled: true, // deadlines bound reads of a hung server too
		}), nil
	case Sentinel:
		tc, err := c.tlsConfig(c.TLS, log)
		if err != nil {
			return nil, err
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            c.SentinelMaster,
			SentinelAddrs:         c.SentinelAddrs,
			SentinelPassword:      sentinelPassword,
			Username:              c.User,
			Password:              password,
			TLSConfig:             tc,
			ContextTimeoutEnabled: true,
		}), nil
	}
	opt, err := redis.ParseURL(c.URL)
	if err != nil {
		// ParseURL errors quote the URL's scheme or parts, never its
		// password; still, say only what to fix.
		return nil, fmt.Errorf("--redis: not a Redis URL (want redis://host:6379/0, rediss://host:6380/0 or unix:///path/to/redis.sock): %w", redactErr(err, c.URL))
	}
	if (c.User != "" && opt.Username != "") || (password != "" && opt.Password != "") {
		return nil, errors.New("--redis: the URL has a user or password and so do --redis-user/--redis-password: give them in one place")
	}
	if c.User != "" {
		opt.Username = c.User
	}
	if password != "" {
		opt.Password = password
	}
	useTLS := c.TLS || opt.TLSConfig != nil
	if opt.Network == "unix" && (useTLS || c.tlsOptions()) {
		return nil, errors.New("--redis-tls and its options do not apply to a unix:// URL")
	}
	if !useTLS && c.tlsOptions() {
		return nil, errors.New("--redis-tls-ca, --redis-tls-cert, --redis-tls-server-name and --redis-tls-insecure-skip-verify need --redis-tls or a rediss:// URL")
	}
	if useTLS {
		serverName, skip := "", false
		if opt.TLSConfig != nil { // from a rediss:// URL
			serverName, skip = opt.TLSConfig.ServerName, opt.TLSConfig.InsecureSkipVerify
		}
		cc := c
		cc.TLSInsecureSkipVerify = c.TLSInsecureSkipVerify || skip
		tc, err := cc.tlsConfig(true, log)
		if err != nil {
			return nil, err
		}
		if tc.ServerName == "" {
			if serverName == "" {
				serverName, _, _ = strings.Cut(opt.Addr, ":")
			}
			tc.ServerName = serverName
		}
		opt.TLSConfig = tc
	}
	opt.ContextTimeoutEnabled = true // deadlines bound reads of a hung server too
	return redis.NewClient(opt), nil
}

// Describe returns a loggable description of the target: the URL with its
// password redacted, or the topology and addresses. Never a secret.
func (c *Config) Describe() string {
	switch c.Topology() {
	case Cluster:
		return "cluster " + strings.Join(c.ClusterAddrs, ",")
	case Sentinel:
		return "sentinel " + c.SentinelMaster + "@" + strings.Join(c.SentinelAddrs, ",")
	case Single:
		if u, err := url.Parse(c.URL); err == nil {
			return u.Redacted()
		}
		return "(unparsable URL)"
	}
	return ""
}

// tlsConfig returns the TLS settings, or nil when on is false and none are
// given.
func (c *Config) tlsConfig(on bool, log *zap.Logger) (*tls.Config, error) {
	if !on {
		if c.tlsOptions() {
			return nil, errors.New("--redis-tls-ca, --redis-tls-cert, --redis-tls-server-name and --redis-tls-insecure-skip-verify need --redis-tls")
		}
		return nil, nil
	}
	tc, err := credfiles.TLS{
		Flag: "--redis-tls", CAFile: c.TLSCA, CertFile: c.TLSCert, KeyFile: c.TLSKey,
		ServerName: c.TLSServerName, InsecureSkipVerify: c.TLSInsecureSkipVerify,
	}.ClientConfig()
	if err != nil {
		return nil, err
	}
	if c.TLSInsecureSkipVerify {
		log.Warn("--redis-tls-insecure-skip-verify: the Redis server's certificate is NOT verified; anyone on the network path can read and change customer states. Use it for testing only")
	}
	return tc, nil
}

// secret returns value, or the contents of file (without trailing
// newlines). Errors name the flag and the file, never the contents.
func secret(value, file, flag string) (string, error) {
	if file == "" {
		return value, nil
	}
	return credfiles.ReadSecret(file, flag)
}

// redactErr returns err with any password of rawURL replaced.
func redactErr(err error, rawURL string) error {
	u, perr := url.Parse(rawURL)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}
