package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/internal/kafkasec"
	"github.com/healthscore/healthscore/internal/testenv"
)

// devBroker runs `healthscore dev-broker` with args on a free port and
// returns its address. It is stopped at cleanup.
func devBroker(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"dev-broker", "--port", "0", "--partitions", "2"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			// "dev-broker listening on 127.0.0.1:PORT with topics …"
			if f := strings.Fields(sc.Text()); len(f) > 3 && f[1] == "listening" {
				addr <- f[3]
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case a := <-addr:
		return a
	case <-done:
		t.Fatalf("dev-broker exited: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("dev-broker did not listen within 30 s: %s", stderr.String())
	}
	return ""
}

func kcatOrSkip(t *testing.T) string {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv(testenv.EnvRequireRedis) == "1" {
			t.Fatal("kcat is not installed (apt-get install kcat); the test command installs it")
		}
		t.Skip("kcat is not installed")
	}
	return kcat
}

// secOpts are the franz-go options kafkasec builds for cfg.
func secOpts(t *testing.T, cfg kafkasec.Config) []kgo.Opt {
	t.Helper()
	opts, err := cfg.Opts(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// kcatProduce produces lines keyed by their customer with kcat (librdkafka)
// and the given -X settings.
func kcatProduce(t *testing.T, kcat, addr string, lines [][]byte, x ...string) {
	t.Helper()
	var in bytes.Buffer
	for _, l := range lines {
		var ev testEvent
		_ = json.Unmarshal(l, &ev)
		fmt.Fprintf(&in, "%s\t%s\n", ev.CustomerID, l)
	}
	args := []string{"-b", addr, "-t", "customer-events", "-P", "-K", "\t", "-X", "acks=all"}
	for _, s := range x {
		args = append(args, "-X", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v: %s", err, out)
	}
}

func customersOf(lines [][]byte) map[string]bool {
	out := map[string]bool{}
	for _, l := range lines {
		var ev testEvent
		if json.Unmarshal(l, &ev) == nil {
			out[ev.CustomerID] = true
		}
	}
	return out
}

// TestKafkaSCRAMOverTLS: `healthscore dev-broker` with a generated TLS
// certificate and SCRAM users; kcat (librdkafka) produces over SASL_SSL
// with SCRAM-SHA-512, the service consumes and publishes over SCRAM-SHA-256
// with its password in a file, and the outputs are read back over SCRAM,
// by franz-go and by kcat.
func TestKafkaSCRAMOverTLS(t *testing.T) {
	kcat := kcatOrSkip(t)
	const svcPW, prodPW, adminPW = "svc-Pa55:word", "producer-pw", "admin-pw"
	tlsDir := filepath.Join(t.TempDir(), "tls")
	addr := devBroker(t, "--tls-generate", tlsDir,
		"--sasl-user", "SCRAM-SHA-256:svc:"+svcPW, "--sasl-user", "SCRAM-SHA-512:producer:"+prodPW,
		"--sasl-superuser", "SCRAM-SHA-512:admin:"+adminPW)
	ca := filepath.Join(tlsDir, "ca.pem")
	prefix := testenv.KeyPrefix(t)
	group := "e2e-sec-" + prefix[:len(prefix)-1]
	svc := startService(t, "--brokers", addr, "--redis", redisURL(t), "--redis-prefix", prefix, "--group", group,
		"--kafka-tls", "--kafka-tls-ca", ca, "--kafka-sasl-mechanism", "SCRAM-SHA-256",
		"--kafka-sasl-user", "svc", "--kafka-sasl-password-file", writeSecret(t, svcPW))

	lines := eventLog(rand.New(rand.NewPCG(12, 12)), 25, 500, time.Now())
	kcatProduce(t, kcat, addr, lines, "security.protocol=SASL_SSL", "ssl.ca.location="+ca,
		"sasl.mechanisms=SCRAM-SHA-512", "sasl.username=producer", "sasl.password="+prodPW)

	admin := secOpts(t, kafkasec.Config{TLS: true, TLSCAFile: ca, SASLMechanism: kafkasec.ScramSHA512, SASLUser: "admin", SASLPassword: adminPW})
	brokers := []string{addr}
	waitCommitted(t, brokers, group, "customer-events", 2*time.Minute, admin...)
	for c := range customersOf(lines) {
		if code := svc.getJSON(t, "/v1/customers/"+url.PathEscape(c), nil); code != 200 {
			t.Errorf("GET /v1/customers/%s: %d, want a state", c, code)
		}
	}
	// Stopped first: its sweeper keeps publishing decay changes, and the two
	// readers below must see the same topic.
	svc.stop(t)
	scores := readAll(t, brokers, "customer-health", admin...)
	if len(scores) == 0 {
		t.Fatal("no health.score_changed event on customer-health")
	}
	// librdkafka reads the outputs over SCRAM too.
	out, err := exec.Command(kcat, "-b", addr, "-C", "-e", "-q", "-t", "customer-health", "-o", "beginning",
		"-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location="+ca,
		"-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=svc", "-X", "sasl.password="+svcPW).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -C: %v: %s", err, out)
	}
	if n := bytes.Count(out, []byte("\n")); n != len(scores) {
		t.Errorf("kcat read %d records from customer-health, franz-go %d", n, len(scores))
	}
	logs := svc.logs.String()
	if strings.Contains(logs, svcPW) {
		t.Error("the service logged its SASL password")
	}
	if !strings.Contains(logs, "SASL SCRAM-SHA-256 user=svc password-file=") {
		t.Errorf("no log line describing the Kafka security settings")
	}
}

// serviceACLs are the ACLs docs/production-kafka.md documents for the
// service's user, with the default topic names and group g.
func serviceACLs(user, group string) []string {
	return []string{
		user + ":topic:customer-events:read",
		user + ":group:" + group + ":read",
		user + ":topic:customer-health:write",
		user + ":topic:customer-health-alerts:write",
		user + ":topic:customer-events-dlq:write",
	}
}

// TestKafkaACLs runs the service under a user that holds exactly the
// documented ACLs (read on the input topic and the group, write on the
// three output topics; Describe is implied, no cluster right): the pipeline
// works. Then under users that each lack one of them: each fails visibly,
// so none of them is superfluous.
func TestKafkaACLs(t *testing.T) {
	const svcPW, adminPW = "svc-pw", "admin-pw"
	admin := secOpts(t, kafkasec.Config{SASLMechanism: kafkasec.ScramSHA512, SASLUser: "admin", SASLPassword: adminPW})
	start := func(t *testing.T, acls []string) (addr, prefix, group string, args []string) {
		prefix = testenv.KeyPrefix(t)
		group = "e2e-acl-" + prefix[:len(prefix)-1]
		aclFile := filepath.Join(t.TempDir(), "acls")
		var b strings.Builder
		for _, a := range acls {
			b.WriteString(strings.ReplaceAll(a, "GROUP", group) + "\n")
		}
		if err := os.WriteFile(aclFile, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		addr = devBroker(t, "--sasl-user", "SCRAM-SHA-512:svc:"+svcPW, "--sasl-superuser", "SCRAM-SHA-512:admin:"+adminPW, "--acl-file", aclFile)
		args = []string{"--brokers", addr, "--redis", redisURL(t), "--redis-prefix", prefix, "--group", group,
			"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", "svc", "--kafka-sasl-password-file", writeSecret(t, svcPW)}
		return addr, prefix, group, args
	}
	produce := func(t *testing.T, addr string, withBad bool) {
		t.Helper()
		cl, err := kgo.NewClient(append(admin, kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("customer-events"))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var recs []*kgo.Record
		for _, l := range eventLog(rand.New(rand.NewPCG(5, 5)), 10, 100, time.Now()) {
			recs = append(recs, &kgo.Record{Value: l})
		}
		if withBad {
			bad, _ := badRecords(time.Now())
			for _, v := range bad {
				recs = append(recs, &kgo.Record{Value: v})
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("documented set", func(t *testing.T) {
		addr, _, group, args := start(t, serviceACLs("svc", "GROUP"))
		svc := startService(t, args...)
		produce(t, addr, true)
		brokers := []string{addr}
		waitCommitted(t, brokers, group, "customer-events", 2*time.Minute, admin...)
		if n := len(readAll(t, brokers, "customer-health", admin...)); n == 0 {
			t.Error("nothing on customer-health")
		}
		bad, _ := badRecords(time.Now())
		if n := len(readAll(t, brokers, "customer-events-dlq", admin...)); n != len(bad) {
			t.Errorf("%d records on the DLQ, want %d", n, len(bad))
		}
		if strings.Contains(svc.logs.String(), "AUTHORIZATION_FAILED") {
			t.Errorf("authorization errors with the documented ACLs:\n%s", svc.logs.String())
		}
	})

	// Each case takes one ACL out of the set (or narrows it); the service
	// must say what it lacks and commit nothing.
	for _, tc := range []struct {
		drop    int    // index in serviceACLs
		with    string // what replaces it, if anything
		want    string // in the logs (or the /readyz reason)
		atStart bool   // the topic check at start fails: the service waits, not ready
	}{
		{drop: 0, want: "not authorized to describe topics", atStart: true},
		{drop: 1, want: "GROUP_AUTHORIZATION_FAILED"},
		{drop: 2, want: "not authorized to describe topics", atStart: true},
		{drop: 2, with: "svc:topic:customer-health:describe", want: "TOPIC_AUTHORIZATION_FAILED"},
		{drop: 3, want: "not authorized to describe topics", atStart: true},
		{drop: 4, want: "not authorized to describe topics", atStart: true},
	} {
		acls := serviceACLs("svc", "GROUP")
		dropped := acls[tc.drop]
		name := "without " + strings.ReplaceAll(dropped, ":", " ")
		acls = append(acls[:tc.drop:tc.drop], acls[tc.drop+1:]...)
		if tc.with != "" {
			acls = append(acls, tc.with)
			name += " with " + strings.ReplaceAll(tc.with, ":", " ")
		}
		t.Run(name, func(t *testing.T) {
			addr, _, group, args := start(t, acls)
			if tc.atStart {
				// Start-up errors are retried (the ACLs may be granted
				// later); /readyz names what is missing meanwhile.
				svc := startService(t, args...)
				svc.waitReadyz(t, http.StatusServiceUnavailable, tc.want)
				return
			}
			// A batch that cannot be published is retried until shutdown;
			// do not wait the default 30 s for it then.
			svc := startService(t, append(args, "--shutdown-grace", "1s")...)
			produce(t, addr, false)
			deadline := time.Now().Add(time.Minute)
			for !strings.Contains(svc.logs.String(), tc.want) {
				if time.Now().After(deadline) {
					t.Fatalf("no %s in the logs within a minute of running without %s", tc.want, dropped)
				}
				time.Sleep(200 * time.Millisecond)
			}
			cl, err := kgo.NewClient(append(admin, kgo.SeedBrokers(addr))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
			if errors.Is(err, kerr.GroupIDNotFound) {
				return // never joined: nothing committed
			}
			if err != nil {
				t.Fatal(err)
			}
			offs.Each(func(o kadm.OffsetResponse) {
				if o.At > 0 {
					t.Errorf("offset %d committed on %s/%d without %s", o.At, o.Topic, o.Partition, dropped)
				}
			})
		})
	}
}
