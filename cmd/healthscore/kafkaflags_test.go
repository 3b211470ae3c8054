package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/healthscore/healthscore/internal/kafkasec"
)

const testSecret = "s3cret-Pa55"

// TestKafkaFlags: every --kafka-* flag has its environment twin, flags
// override the environment, and -h never shows the password.
func TestKafkaFlags(t *testing.T) {
	t.Setenv("HEALTHSCORE_KAFKA_TLS", "true")
	t.Setenv("HEALTHSCORE_KAFKA_TLS_CA", "/etc/ca.pem")
	t.Setenv("HEALTHSCORE_KAFKA_SASL_MECHANISM", "scram-sha-512")
	t.Setenv("HEALTHSCORE_KAFKA_SASL_USER", "env-user")
	t.Setenv("HEALTHSCORE_KAFKA_SASL_PASSWORD", testSecret)
	f, err := parseServiceFlags([]string{"--kafka-sasl-user", "flag-user", "--kafka-tls-server-name", "kafka.internal"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := kafkasec.Config{TLS: true, TLSCAFile: "/etc/ca.pem", TLSServerName: "kafka.internal",
		SASLMechanism: "SCRAM-SHA-512", SASLUser: "flag-user", SASLPassword: testSecret}
	if got := f.kafka.config(); got != want {
		t.Errorf("config = %+v, want %+v", got, want)
	}

	// The environment of a child `run` (bench) gives the same settings.
	env := f.kafka.childEnv()
	for name := range kafkaEnv {
		os.Unsetenv(kafkaEnv[name]) //nolint:errcheck // restored by t.Setenv's cleanup
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	g, err := parseServiceFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.kafka.config(); got != want {
		t.Errorf("config from childEnv = %+v, want %+v", got, want)
	}

	var help bytes.Buffer
	_, _ = parseServiceFlags([]string{"-h"}, &help) // how -h exits is not this test's business
	if strings.Contains(help.String(), testSecret) {
		t.Errorf("-h shows the password taken from the environment:\n%s", help.String())
	}
	for name, env := range kafkaEnv {
		if !strings.Contains(help.String(), "-"+name+" ") && !strings.Contains(help.String(), "-"+name+"\n") {
			t.Errorf("-h does not list --%s", name)
		}
		if !strings.Contains(help.String(), env) {
			t.Errorf("-h does not name %s", env)
		}
	}
}

func TestKafkaClientOpts(t *testing.T) {
	k := &kafkaFlags{}
	if opts, err := k.clientOpts(true, zap.NewNop()); err != nil || opts != nil {
		t.Errorf("no security: %v, %v; want no options", opts, err)
	}
	k = &kafkaFlags{mechanism: "plain", user: "u", password: testSecret}
	if _, err := k.clientOpts(true, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "need --brokers") {
		t.Errorf("security with the embedded broker: %v, want an error asking for --brokers", err)
	}
	if opts, err := k.clientOpts(false, zap.NewNop()); err != nil || len(opts) != 1 {
		t.Errorf("SASL PLAIN: %d options, %v; want 1", len(opts), err)
	}
	k.user = ""
	if _, err := k.clientOpts(false, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--kafka-sasl-user") || strings.Contains(err.Error(), testSecret) {
		t.Errorf("no user: %v, want an error naming --kafka-sasl-user and not the password", err)
	}
}

// TestDevBrokerSecurity: the dev-broker's security flags, and that what it
// prints never holds a password.
func TestDevBrokerSecurity(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("# users\nPLAIN:carol:"+testSecret+"\nsuperuser SCRAM-SHA-512:root:"+testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, notes, err := devBrokerSecurity("", "", filepath.Join(dir, "tls"), "", []string{"SCRAM-SHA-256:alice:" + testSecret}, nil, users,
		[]string{"alice:topic:customer-events:read", "carol:group:g:read"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil || len(cfg.Users) != 3 || !cfg.Users[2].Super || !cfg.EnableACLs || len(cfg.ACLs) != 2 {
		t.Errorf("config %+v", cfg)
	}
	all := strings.Join(notes, "\n")
	if strings.Contains(all, testSecret) || !strings.Contains(all, filepath.Join(dir, "tls", "ca.pem")) {
		t.Errorf("notes must name the CA and no password:\n%s", all)
	}
	for _, tc := range []struct {
		cert, key, gen, clientCA string
		users, acls              []string
		want                     string
	}{
		{gen: dir, cert: "c", key: "k", want: "exclude each other"},
		{cert: "c", want: "go together"},
		{clientCA: "ca", want: "needs a TLS listener"},
		{users: []string{"PLAIN:bob"}, want: "MECHANISM:NAME:PASSWORD"},
		{users: []string{"GSSAPI:bob:" + testSecret}, want: "not one of"},
		{acls: []string{"bob:topic:t"}, want: "--acl"},
	} {
		_, _, err := devBrokerSecurity(tc.cert, tc.key, tc.gen, tc.clientCA, tc.users, nil, "", tc.acls, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), testSecret) {
			t.Errorf("%+v: %v, want an error containing %q and no password", tc, err, tc.want)
		}
	}
}
