package kafkasec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthscore/healthscore/internal/devbroker"
)

const password = "pa55-w0rd:with-colon"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	pw := writeFile(t, "pw", password+"\n")
	for _, tc := range []struct {
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{Config{}, ""},
		{Config{TLS: true}, ""},
		{Config{TLS: true, TLSCAFile: "ca.pem", TLSCertFile: "c.pem", TLSKeyFile: "k.pem", TLSServerName: "kafka"}, ""},
		{Config{SASLMechanism: ScramSHA256, SASLUser: "u", SASLPasswordFile: pw}, ""},
		{Config{SASLMechanism: Plain, SASLUser: "u", SASLPassword: password}, ""},
		{Config{SASLMechanism: OAuthBearer, SASLTokenFile: "tok"}, ""},
		{Config{TLSCAFile: "ca.pem"}, "--kafka-tls-ca is set but --kafka-tls is not"},
		{Config{TLSInsecureSkipVerify: true}, "--kafka-tls-insecure-skip-verify is set but --kafka-tls is not"},
		{Config{TLS: true, TLSCertFile: "c.pem"}, "--kafka-tls-cert and --kafka-tls-key go together"},
		{Config{TLS: true, TLSKeyFile: "k.pem"}, "--kafka-tls-cert and --kafka-tls-key go together"},
		{Config{TLS: true, TLSInsecureSkipVerify: true, TLSCAFile: "ca.pem"}, "drop one of them"},
		{Config{SASLUser: "u"}, "--kafka-sasl-user is set but --kafka-sasl-mechanism is not"},
		{Config{SASLPassword: password}, "--kafka-sasl-password is set but --kafka-sasl-mechanism is not"},
		{Config{SASLMechanism: "GSSAPI"}, `--kafka-sasl-mechanism "GSSAPI" is not supported`},
		{Config{SASLMechanism: ScramSHA512, SASLPassword: password}, "--kafka-sasl-user is required"},
		{Config{SASLMechanism: ScramSHA512, SASLUser: "u"}, "--kafka-sasl-password-file (or --kafka-sasl-password) is required"},
		{Config{SASLMechanism: Plain, SASLUser: "u", SASLPassword: password, SASLPasswordFile: pw}, "exclude each other"},
		{Config{SASLMechanism: Plain, SASLUser: "u", SASLPassword: password, SASLTokenFile: "tok"}, "--kafka-sasl-token-file is for OAUTHBEARER"},
		{Config{SASLMechanism: OAuthBearer}, "--kafka-sasl-token-file is required"},
		{Config{SASLMechanism: OAuthBearer, SASLTokenFile: "tok", SASLPassword: password}, "not used with OAUTHBEARER"},
	} {
		err := tc.cfg.validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: unexpected error %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one containing %q", tc.cfg, err, tc.want)
		case err != nil && strings.Contains(err.Error(), password):
			t.Errorf("%v: the error shows the password: %v", tc.cfg, err)
		}
	}
}

// TestOptsFiles: files are read at start, and their errors name the flag
// and the file, never a secret.
func TestOptsFiles(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, "empty", "\n")
	notPEM := writeFile(t, "ca", password)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{SASLMechanism: ScramSHA256, SASLUser: "u", SASLPasswordFile: filepath.Join(dir, "missing")}, "cannot read --kafka-sasl-password-file " + filepath.Join(dir, "missing") + ": no such file"},
		{Config{SASLMechanism: ScramSHA256, SASLUser: "u", SASLPasswordFile: empty}, "--kafka-sasl-password-file " + empty + " is empty"},
		{Config{SASLMechanism: OAuthBearer, SASLTokenFile: filepath.Join(dir, "missing")}, "cannot read --kafka-sasl-token-file"},
		{Config{TLS: true, TLSCAFile: filepath.Join(dir, "missing")}, "cannot read --kafka-tls-ca"},
		{Config{TLS: true, TLSCAFile: notPEM}, "holds no PEM certificate"},
		{Config{TLS: true, TLSCertFile: notPEM, TLSKeyFile: notPEM}, "cannot load --kafka-tls-cert"},
	} {
		_, err := tc.cfg.Opts(zap.NewNop())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), password) {
			t.Errorf("%v: the error shows the file's content: %v", tc.cfg, err)
		}
	}
}

// TestRedaction: no way of printing a Config shows its password.
func TestRedaction(t *testing.T) {
	cfg := Config{TLS: true, SASLMechanism: Plain, SASLUser: "alice", SASLPassword: password}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, cfg.SASLPassword), fmt.Sprintf(verb, &cfg))
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(js), cfg.String())
	core, logs := observer.New(zapcore.DebugLevel)
	var buf bytes.Buffer
	jsonLog := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.DebugLevel))
	for _, l := range []*zap.Logger{zap.New(core), jsonLog} {
		l.Info("config", zap.Any("cfg", cfg), zap.Stringer("str", cfg), zap.Any("pw", cfg.SASLPassword), zap.Reflect("r", cfg))
	}
	outs = append(outs, buf.String())
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			outs = append(outs, fmt.Sprint(k, v))
		}
	}
	for _, o := range outs {
		if strings.Contains(o, password) || strings.Contains(o, fmt.Sprintf("%x", password)) || strings.Contains(o, "pa55") {
			t.Errorf("the password is visible in %q", o)
		}
	}
	if !strings.Contains(cfg.String(), "user=alice password=[redacted]") {
		t.Errorf("String() = %q, want the user and a redacted password", cfg.String())
	}
	if s := fmt.Sprint(Secret("")); s != "" {
		t.Errorf("an empty secret prints %q, want nothing", s)
	}
}

// TestSecretsReReadAtEachAuthentication: a rotated password or token file
// is used by the next authentication.
func TestSecretsReReadAtEachAuthentication(t *testing.T) {
	ctx := context.Background()
	tok := writeFile(t, "token", "token-one\n")
	pw := writeFile(t, "pw", "first-password\n")
	for _, tc := range []struct {
		cfg         Config
		file        string
		first, next string
	}{
		{Config{SASLMechanism: OAuthBearer, SASLTokenFile: tok}, tok, "auth=Bearer token-one\x01", "auth=Bearer token-two\x01"},
		{Config{SASLMechanism: Plain, SASLUser: "alice", SASLPasswordFile: pw}, pw, "\x00alice\x00first-password", "\x00alice\x00second-password"},
	} {
		if _, err := tc.cfg.Opts(zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		m, err := tc.cfg.mechanism()
		if err != nil {
			t.Fatal(err)
		}
		_, msg, err := m.Authenticate(ctx, "127.0.0.1:9092")
		if err != nil || !bytes.HasSuffix(msg, []byte(tc.first)) && !bytes.Contains(msg, []byte(tc.first)) {
			t.Fatalf("%s: first authentication sends %q (%v), want %q in it", tc.cfg.SASLMechanism, msg, err, tc.first)
		}
		repl := strings.ReplaceAll(strings.ReplaceAll(tc.next, "auth=Bearer ", ""), "\x00alice\x00", "")
		if err := os.WriteFile(tc.file, []byte(strings.TrimSuffix(repl, "\x01")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, msg, err = m.Authenticate(ctx, "127.0.0.1:9092"); err != nil || !bytes.Contains(msg, []byte(tc.next)) {
			t.Fatalf("%s: after the file changed, authentication sends %q (%v), want %q in it", tc.cfg.SASLMechanism, msg, err, tc.next)
		}
		if err := os.Remove(tc.file); err != nil {
			t.Fatal(err)
		}
		if _, _, err = m.Authenticate(ctx, "127.0.0.1:9092"); err == nil || !strings.Contains(err.Error(), "cannot read --kafka-sasl-") {
			t.Fatalf("%s: authentication with the file gone: %v, want an error naming the flag", tc.cfg.SASLMechanism, err)
		}
	}
}

// TestInsecureSkipVerifyIsLogged: skipping verification warns.
func TestInsecureSkipVerifyIsLogged(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	if _, err := (Config{TLS: true, TLSInsecureSkipVerify: true}).Opts(zap.New(core)); err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessageSnippet("verification is OFF").Len() != 1 {
		t.Fatalf("no warning about skipped verification: %v", logs.All())
	}
	if _, err := (Config{TLS: true}).Opts(zap.New(core)); err != nil || logs.Len() != 1 {
		t.Fatalf("verified TLS warns too: %v %v", err, logs.All())
	}
}

// broker starts a secured dev-broker with one topic and the user alice.
func broker(t *testing.T, tls *devbroker.TLSFiles, mech string, clientCA string) *devbroker.Broker {
	t.Helper()
	cfg := devbroker.Config{Partitions: 1, Topics: []string{"t"}}
	if tls != nil {
		tc, err := devbroker.ServerTLS(tls.Cert, tls.Key, clientCA)
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = tc
	}
	if mech != "" {
		cfg.Users = []devbroker.User{{Mechanism: mech, Name: "alice", Password: password}}
	}
	b, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// roundTrip produces one record with the options cfg builds and consumes it
// back; it returns the first error.
func roundTrip(t *testing.T, addr string, cfg Config) error {
	t.Helper()
	opts, err := cfg.Opts(zap.NewNop())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("t"),
		kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordDeliveryTimeout(5*time.Second), kgo.RequestRetries(1))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	want := fmt.Sprintf("hello %d", time.Now().UnixNano())
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(want)}).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		for _, fe := range fs.Errors() {
			return fmt.Errorf("consume: %w", fe.Err)
		}
		for _, r := range fs.Records() {
			if string(r.Value) == want {
				return nil
			}
		}
	}
}

// ping connects and authenticates once with the options cfg builds; it is
// how the failure cases fail fast (a produce would retry until its
// delivery timeout).
func ping(t *testing.T, addr string, cfg Config) error {
	t.Helper()
	opts, err := cfg.Opts(zap.NewNop())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(addr))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.Ping(ctx)
}

// TestAgainstSecuredBroker: produce and consume through the options this
// package builds, against kfake with TLS (certificates made here) and each
// SASL mechanism; wrong credentials and a missing TLS are refused.
func TestAgainstSecuredBroker(t *testing.T) {
	files, err := devbroker.GenerateTLS(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pwFile := writeFile(t, "pw", password+"\n")
	t.Run("TLS", func(t *testing.T) {
		b := broker(t, &files, "", "")
		if err := roundTrip(t, b.Addr, Config{TLS: true, TLSCAFile: files.CA}); err != nil {
			t.Fatal(err)
		}
		// The broker's certificate is for 127.0.0.1 and localhost only.
		err := ping(t, b.Addr, Config{TLS: true, TLSCAFile: files.CA, TLSServerName: "kafka.example.com"})
		if err == nil || !strings.Contains(err.Error(), "certificate is valid for") {
			t.Fatalf("a wrong --kafka-tls-server-name: %v, want a certificate name error", err)
		}
		// Without the CA the system roots do not know the broker.
		if err := ping(t, b.Addr, Config{TLS: true}); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("without --kafka-tls-ca: %v, want an unknown authority error", err)
		}
		if err := roundTrip(t, b.Addr, Config{TLS: true, TLSInsecureSkipVerify: true}); err != nil {
			t.Fatalf("with --kafka-tls-insecure-skip-verify: %v", err)
		}
		// A plaintext client against a TLS listener.
		err = ping(t, b.Addr, Config{})
		if err == nil || !strings.Contains(err.Error(), "TLS") {
			t.Fatalf("a plaintext client against a TLS broker: %v, want an error that mentions TLS", err)
		}
		t.Logf("plaintext client, TLS broker: %v", err)
	})
	t.Run("mutual TLS", func(t *testing.T) {
		b := broker(t, &files, "", files.CA)
		if err := roundTrip(t, b.Addr, Config{TLS: true, TLSCAFile: files.CA, TLSCertFile: files.ClientCert, TLSKeyFile: files.ClientKey}); err != nil {
			t.Fatal(err)
		}
		if err := ping(t, b.Addr, Config{TLS: true, TLSCAFile: files.CA}); err == nil {
			t.Fatal("a client without a certificate got through a broker that requires one")
		}
	})
	for _, mech := range []string{Plain, ScramSHA256, ScramSHA512} {
		for _, withTLS := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s TLS=%v", mech, withTLS), func(t *testing.T) {
				var tf *devbroker.TLSFiles
				cfg := Config{SASLMechanism: mech, SASLUser: "alice", SASLPasswordFile: pwFile}
				if withTLS {
					tf = &files
					cfg.TLS, cfg.TLSCAFile = true, files.CA
				}
				b := broker(t, tf, mech, "")
				if err := roundTrip(t, b.Addr, cfg); err != nil {
					t.Fatal(err)
				}
				bad := cfg
				bad.SASLPasswordFile, bad.SASLPassword = "", "wrong-"+password
				err := ping(t, b.Addr, bad)
				if err == nil {
					t.Fatal("a wrong password was accepted")
				}
				if strings.Contains(err.Error(), password) {
					t.Fatalf("the error shows the password: %v", err)
				}
				// kfake closes the connection (EOF); a real broker answers
				// SASL_AUTHENTICATION_FAILED.
				t.Logf("wrong password: %v", err)
				noSASL := cfg
				noSASL.SASLMechanism, noSASL.SASLUser, noSASL.SASLPasswordFile = "", "", ""
				if err := ping(t, b.Addr, noSASL); err == nil {
					t.Fatal("a client without SASL got through")
				}
			})
		}
	}
}
