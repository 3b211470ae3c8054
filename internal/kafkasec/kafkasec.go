// Package kafkasec owns the security settings of every Kafka client the
// service creates: TLS (CA, client certificate, server name, and an explicit
// option to skip verification) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,
// OAUTHBEARER) through franz-go's own sasl packages. A Config turns into
// franz-go client options (Config.Opts); the same options go to the
// consumer, the topic check, the demo producer and watcher, and the
// benchmark's clients.
//
// Secrets (the SASL password and the OAUTHBEARER token) are never logged and
// never appear in an error or in the formatted Config: they are kept as
// Secret values, which format as "[redacted]". Secrets read from files are
// read again on every authentication, so a rotated password or token file
// is picked up by the next connection (and by SASL re-authentication)
// without a restart.
//
// It does not own the flags (cmd/healthscore does) nor a broker's side of
// security (internal/devbroker).
package kafkasec

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/internal/credfiles"
)

// SASL mechanisms (the values of --kafka-sasl-mechanism).
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
)

// Mechanisms lists the supported SASL mechanisms.
var Mechanisms = []string{Plain, ScramSHA256, ScramSHA512, OAuthBearer}

// Secret is a string that never prints: every fmt verb, JSON and text
// marshalling give "[redacted]" (or "" when it is empty, so that "not set"
// stays visible).
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString redacts %#v.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// Format redacts every verb, %x and %d included.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalText redacts JSON, YAML and zap's reflection encoder.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Config is the security of the Kafka clients. The zero value is plaintext
// without authentication. Each field names its flag; the flags' environment
// twins are HEALTHSCORE_KAFKA_….
type Config struct {
	TLS                   bool   // --kafka-tls: connect with TLS
	TLSCAFile             string // --kafka-tls-ca: PEM CA bundle; empty: the system roots
	TLSCertFile           string // --kafka-tls-cert: PEM client certificate (with --kafka-tls-key)
	TLSKeyFile            string // --kafka-tls-key: PEM client key (with --kafka-tls-cert)
	TLSServerName         string // --kafka-tls-server-name: name to verify; empty: each broker's host
	TLSInsecureSkipVerify bool   // --kafka-tls-insecure-skip-verify: trust any certificate (logged at warn)

	SASLMechanism    string // --kafka-sasl-mechanism: "" (none), PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER
	SASLUser         string // --kafka-sasl-user (PLAIN and SCRAM)
	SASLPassword     Secret // --kafka-sasl-password (PLAIN and SCRAM)
	SASLPasswordFile string // --kafka-sasl-password-file: read again at each authentication
	SASLTokenFile    string // --kafka-sasl-token-file: OAUTHBEARER token, read again at each authentication
}

// Enabled reports whether any security option is set.
func (c Config) Enabled() bool {
	return c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSServerName != "" ||
		c.TLSInsecureSkipVerify || c.SASLMechanism != "" || c.SASLUser != "" || c.SASLPassword != "" ||
		c.SASLPasswordFile != "" || c.SASLTokenFile != ""
}

// String describes the settings without their secrets, for logs.
func (c Config) String() string {
	var b strings.Builder
	if c.TLS {
		b.WriteString("tls")
		if c.TLSCAFile != "" {
			fmt.Fprintf(&b, " ca=%s", c.TLSCAFile)
		}
		if c.TLSCertFile != "" {
			fmt.Fprintf(&b, " cert=%s key=%s", c.TLSCertFile, c.TLSKeyFile)
		}
		if c.TLSServerName != "" {
			fmt.Fprintf(&b, " server-name=%s", c.TLSServerName)
		}
		if c.TLSInsecureSkipVerify {
			b.WriteString(" insecure-skip-verify")
		}
	} else {
		b.WriteString("plaintext")
	}
	if c.SASLMechanism == "" {
		b.WriteString(", no SASL")
		return b.String()
	}
	fmt.Fprintf(&b, ", SASL %s", c.SASLMechanism)
	if c.SASLUser != "" {
		fmt.Fprintf(&b, " user=%s", c.SASLUser)
	}
	switch {
	case c.SASLPassword != "":
		b.WriteString(" password=" + redacted)
	case c.SASLPasswordFile != "":
		fmt.Fprintf(&b, " password-file=%s", c.SASLPasswordFile)
	case c.SASLTokenFile != "":
		fmt.Fprintf(&b, " token-file=%s", c.SASLTokenFile)
	}
	return b.String()
}

// validate checks the combination of settings and names the flag to fix.
// It does not read files.
func (c Config) validate() error {
	if !c.TLS {
		for _, f := range []struct {
			set  bool
			name string
		}{
			{c.TLSCAFile != "", "--kafka-tls-ca"}, {c.TLSCertFile != "", "--kafka-tls-cert"}, {c.TLSKeyFile != "", "--kafka-tls-key"},
			{c.TLSServerName != "", "--kafka-tls-server-name"}, {c.TLSInsecureSkipVerify, "--kafka-tls-insecure-skip-verify"},
		} {
			if f.set {
				return fmt.Errorf("%s is set but --kafka-tls is not: add --kafka-tls (HEALTHSCORE_KAFKA_TLS=true)", f.name)
			}
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("--kafka-tls-cert and --kafka-tls-key go together: give both (a client certificate and its key) or neither")
	}
	if c.TLSInsecureSkipVerify && c.TLSCAFile != "" {
		return errors.New("--kafka-tls-insecure-skip-verify makes --kafka-tls-ca pointless: drop one of them")
	}
	switch c.SASLMechanism {
	case "":
		for _, f := range []struct {
			set  bool
			name string
		}{
			{c.SASLUser != "", "--kafka-sasl-user"}, {c.SASLPassword != "", "--kafka-sasl-password"},
			{c.SASLPasswordFile != "", "--kafka-sasl-password-file"}, {c.SASLTokenFile != "", "--kafka-sasl-token-file"},
		} {
			if f.set {
				return fmt.Errorf("%s is set but --kafka-sasl-mechanism is not: add --kafka-sasl-mechanism (one of %s)", f.name, strings.Join(Mechanisms, ", "))
			}
		}
	case Plain, ScramSHA256, ScramSHA512:
		if c.SASLUser == "" {
			return fmt.Errorf("--kafka-sasl-user is required with --kafka-sasl-mechanism %s", c.SASLMechanism)
		}
		switch {
		case c.SASLPassword != "" && c.SASLPasswordFile != "":
			return errors.New("--kafka-sasl-password and --kafka-sasl-password-file exclude each other: give one")
		case c.SASLPassword == "" && c.SASLPasswordFile == "":
			return fmt.Errorf("--kafka-sasl-password-file (or --kafka-sasl-password) is required with --kafka-sasl-mechanism %s", c.SASLMechanism)
		case c.SASLTokenFile != "":
			return fmt.Errorf("--kafka-sasl-token-file is for OAUTHBEARER, not %s: drop it", c.SASLMechanism)
		}
	case OAuthBearer:
		switch {
		case c.SASLTokenFile == "":
			return errors.New("--kafka-sasl-token-file is required with --kafka-sasl-mechanism OAUTHBEARER")
		case c.SASLPassword != "" || c.SASLPasswordFile != "":
			return errors.New("--kafka-sasl-password and --kafka-sasl-password-file are not used with OAUTHBEARER (the token comes from --kafka-sasl-token-file): drop them")
		}
	default:
		return fmt.Errorf("--kafka-sasl-mechanism %q is not supported: want one of %s", c.SASLMechanism, strings.Join(Mechanisms, ", "))
	}
	return nil
}

// Opts validates the settings, reads the files they name (so a missing or
// unreadable file is reported at start) and returns the franz-go options
// for them: kgo.DialTLSConfig and kgo.SASL. The zero Config gives none.
// log receives one warning when certificate verification is off.
func (c Config) Opts(log *zap.Logger) ([]kgo.Opt, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if c.TLS {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		if c.TLSInsecureSkipVerify {
			log.Warn("Kafka TLS certificate verification is OFF (--kafka-tls-insecure-skip-verify): anyone on the network path can impersonate the brokers and read the SASL credentials; use it only for tests")
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASLMechanism != "" {
		m, err := c.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// TLSConfig returns the client TLS configuration, or nil without --kafka-tls.
func (c Config) TLSConfig() (*tls.Config, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if !c.TLS {
		return nil, nil
	}
	return c.tlsConfig()
}

func (c Config) tlsConfig() (*tls.Config, error) {
	return credfiles.TLS{
		Flag: "--kafka-tls", CAFile: c.TLSCAFile, CertFile: c.TLSCertFile, KeyFile: c.TLSKeyFile,
		ServerName: c.TLSServerName, InsecureSkipVerify: c.TLSInsecureSkipVerify,
	}.ClientConfig()
}

// mechanism returns the SASL mechanism. Secrets from files are read once
// now (to fail at start) and again at every authentication.
func (c Config) mechanism() (sasl.Mechanism, error) {
	if c.SASLMechanism == OAuthBearer {
		if _, err := readSecretFile(c.SASLTokenFile, "--kafka-sasl-token-file"); err != nil {
			return nil, err
		}
		return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			tok, err := readSecretFile(c.SASLTokenFile, "--kafka-sasl-token-file")
			return oauth.Auth{Token: string(tok)}, err
		}), nil
	}
	password := func() (string, error) { return string(c.SASLPassword), nil }
	if c.SASLPasswordFile != "" {
		if _, err := readSecretFile(c.SASLPasswordFile, "--kafka-sasl-password-file"); err != nil {
			return nil, err
		}
		password = func() (string, error) {
			p, err := readSecretFile(c.SASLPasswordFile, "--kafka-sasl-password-file")
			return string(p), err
		}
	}
	switch c.SASLMechanism {
	case Plain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			p, err := password()
			return plain.Auth{User: c.SASLUser, Pass: p}, err
		}), nil
	case ScramSHA256, ScramSHA512:
		fn := func(context.Context) (scram.Auth, error) {
			p, err := password()
			return scram.Auth{User: c.SASLUser, Pass: p}, err
		}
		if c.SASLMechanism == ScramSHA256 {
			return scram.Sha256(fn), nil
		}
		return scram.Sha512(fn), nil
	}
	return nil, fmt.Errorf("--kafka-sasl-mechanism %q is not supported", c.SASLMechanism) // validate rejected it already
}

// readSecretFile reads a secret from a file, without the trailing newline
// that editors and `echo` add. Its errors name the flag and the file, never
// the content.
func readSecretFile(path, flag string) (Secret, error) {
	v, err := credfiles.ReadSecret(path, flag)
	return Secret(v), err
}
