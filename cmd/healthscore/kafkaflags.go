package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/internal/kafkasec"
)

// kafkaFlags are the --kafka-* security flags, shared by `run` and `bench`.
type kafkaFlags struct {
	tls, tlsInsecure                   bool
	tlsCA, tlsCert, tlsKey, tlsServer  string
	mechanism, user, passwordFile, tok string
	password                           string
}

// kafkaEnv maps each flag to its environment twin.
var kafkaEnv = map[string]string{
	"kafka-tls":                      "HEALTHSCORE_KAFKA_TLS",
	"kafka-tls-ca":                   "HEALTHSCORE_KAFKA_TLS_CA",
	"kafka-tls-cert":                 "HEALTHSCORE_KAFKA_TLS_CERT",
	"kafka-tls-key":                  "HEALTHSCORE_KAFKA_TLS_KEY",
	"kafka-tls-server-name":          "HEALTHSCORE_KAFKA_TLS_SERVER_NAME",
	"kafka-tls-insecure-skip-verify": "HEALTHSCORE_KAFKA_TLS_INSECURE_SKIP_VERIFY",
	"kafka-sasl-mechanism":           "HEALTHSCORE_KAFKA_SASL_MECHANISM",
	"kafka-sasl-user":                "HEALTHSCORE_KAFKA_SASL_USER",
	"kafka-sasl-password":            "HEALTHSCORE_KAFKA_SASL_PASSWORD",
	"kafka-sasl-password-file":       "HEALTHSCORE_KAFKA_SASL_PASSWORD_FILE",
	"kafka-sasl-token-file":          "HEALTHSCORE_KAFKA_SASL_TOKEN_FILE",
}

// registerKafkaFlags adds the --kafka-* flags (with their environment
// twins) to e.
func registerKafkaFlags(e *envFlags) *kafkaFlags {
	k := &kafkaFlags{}
	e.bool(&k.tls, "kafka-tls", kafkaEnv["kafka-tls"], "connect to Kafka with TLS")
	e.str(&k.tlsCA, "kafka-tls-ca", kafkaEnv["kafka-tls-ca"], "", "PEM `file` of the CAs that sign the brokers' certificates; empty: the system's roots")
	e.str(&k.tlsCert, "kafka-tls-cert", kafkaEnv["kafka-tls-cert"], "", "PEM `file` of a client certificate, for brokers that require one (with --kafka-tls-key)")
	e.str(&k.tlsKey, "kafka-tls-key", kafkaEnv["kafka-tls-key"], "", "PEM `file` of the client certificate's key")
	e.str(&k.tlsServer, "kafka-tls-server-name", kafkaEnv["kafka-tls-server-name"], "", "name the brokers' certificates must carry; empty: each broker's host name")
	e.bool(&k.tlsInsecure, "kafka-tls-insecure-skip-verify", kafkaEnv["kafka-tls-insecure-skip-verify"], "accept any broker certificate (tests only; logged at warn)")
	e.str(&k.mechanism, "kafka-sasl-mechanism", kafkaEnv["kafka-sasl-mechanism"], "", "SASL mechanism: "+strings.Join(kafkasec.Mechanisms, ", ")+"; empty: no SASL")
	e.str(&k.user, "kafka-sasl-user", kafkaEnv["kafka-sasl-user"], "", "SASL user (PLAIN, SCRAM)")
	e.secret(&k.password, "kafka-sasl-password", kafkaEnv["kafka-sasl-password"], "SASL password (PLAIN, SCRAM); prefer --kafka-sasl-password-file or the environment, which other users of the machine cannot list")
	e.str(&k.passwordFile, "kafka-sasl-password-file", kafkaEnv["kafka-sasl-password-file"], "", "`file` holding the SASL password, read again at each authentication (rotation without restart)")
	e.str(&k.tok, "kafka-sasl-token-file", kafkaEnv["kafka-sasl-token-file"], "", "`file` holding the OAUTHBEARER token, read again at each authentication (keep it fresh, e.g. with a sidecar)")
	return k
}

// config returns the flags as a kafkasec.Config.
func (k *kafkaFlags) config() kafkasec.Config {
	return kafkasec.Config{
		TLS: k.tls, TLSCAFile: k.tlsCA, TLSCertFile: k.tlsCert, TLSKeyFile: k.tlsKey, TLSServerName: k.tlsServer,
		TLSInsecureSkipVerify: k.tlsInsecure,
		SASLMechanism:         strings.ToUpper(strings.TrimSpace(k.mechanism)),
		SASLUser:              k.user, SASLPassword: kafkasec.Secret(k.password), SASLPasswordFile: k.passwordFile, SASLTokenFile: k.tok,
	}
}

// clientOpts returns the franz-go options of every Kafka client of the
// service. The embedded broker has no security: security flags without
// --brokers are an error rather than silently unused.
func (k *kafkaFlags) clientOpts(embedded bool, log *zap.Logger) ([]kgo.Opt, error) {
	cfg := k.config()
	if !cfg.Enabled() {
		return nil, nil
	}
	if embedded {
		return nil, errors.New("--kafka-* security flags need --brokers: the embedded broker is plaintext without authentication (for a secured local broker see 'healthscore dev-broker -h')")
	}
	opts, err := cfg.Opts(log)
	if err != nil {
		return nil, err
	}
	log.Info("Kafka security", zap.Stringer("kafka", cfg))
	return opts, nil
}

// childEnv returns the flags as environment variables for a child
// `healthscore run` (secrets stay out of its command line).
func (k *kafkaFlags) childEnv() []string {
	c := k.config()
	var env []string
	add := func(flag, v string) {
		if v != "" {
			env = append(env, kafkaEnv[flag]+"="+v)
		}
	}
	if c.TLS {
		add("kafka-tls", strconv.FormatBool(true))
	}
	if c.TLSInsecureSkipVerify {
		add("kafka-tls-insecure-skip-verify", strconv.FormatBool(true))
	}
	add("kafka-tls-ca", c.TLSCAFile)
	add("kafka-tls-cert", c.TLSCertFile)
	add("kafka-tls-key", c.TLSKeyFile)
	add("kafka-tls-server-name", c.TLSServerName)
	add("kafka-sasl-mechanism", c.SASLMechanism)
	add("kafka-sasl-user", c.SASLUser)
	add("kafka-sasl-password", string(c.SASLPassword))
	add("kafka-sasl-password-file", c.SASLPasswordFile)
	add("kafka-sasl-token-file", c.SASLTokenFile)
	return env
}
