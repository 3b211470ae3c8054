package containers

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/kafka"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
)

// Images of the container run; the same versions as the compose stack.
const (
	kafkaImage = "apache/kafka:4.1.0"
	redisImage = "redis:7.4.2"
)

// repoRoot is the service's module, relative to this package.
const repoRoot = "../.."

// runE2E runs the service's e2e suite with the given Kafka brokers and
// Redis URL as its external endpoints; no silent skips.
func runE2E(t *testing.T, brokers, redisURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-race", "./e2e/")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(),
		"HEALTHSCORE_TEST_BROKERS="+brokers,
		"HEALTHSCORE_TEST_REDIS="+redisURL,
		"HEALTHSCORE_REQUIRE_REDIS=1",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("e2e suite against %s and %s: %v\n%s", brokers, redisURL, err, out)
	}
	t.Logf("e2e suite against %s and %s:\n%s", brokers, redisURL, strings.TrimSpace(string(out)))
}

// TestE2EAgainstContainers starts Kafka (the official apache/kafka image,
// KRaft) and Redis in containers with testcontainers-go and runs the e2e
// suite against them. Without a Docker engine it skips.
func TestE2EAgainstContainers(t *testing.T) {
	ctx := context.Background()
	if reason := dockerUnavailable(ctx); reason != "" {
		t.Skipf("no Docker engine (%s): the e2e suite against %s and %s containers is skipped; "+
			"TestE2EAgainstDevBrokerAndRedisServer runs the same suite against processes", reason, kafkaImage, redisImage)
	}
	rc, err := tcredis.Run(ctx, redisImage)
	testcontainers.CleanupContainer(t, rc)
	if err != nil {
		t.Fatalf("start %s: %v", redisImage, err)
	}
	redisURL, err := rc.ConnectionString(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kafka.Run(ctx, kafkaImage, apacheKafka())
	testcontainers.CleanupContainer(t, kc)
	if err != nil {
		t.Fatalf("start %s: %v", kafkaImage, err)
	}
	brokers, err := kc.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runE2E(t, strings.Join(brokers, ","), redisURL)
}

// dockerUnavailable says why no Docker engine can be used ("" if one can).
func dockerUnavailable(ctx context.Context) (reason string) {
	defer func() {
		if r := recover(); r != nil { // testcontainers panics on some broken setups
			reason = fmt.Sprint(r)
		}
	}()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return err.Error()
	}
	defer p.Close()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Health(hctx); err != nil {
		return err.Error()
	}
	return ""
}

// apacheKafka adapts the kafka module (v0.44, written for
// confluentinc/confluent-local) to the official apache/kafka image. The
// module copies a start script into the container once the broker's port
// is mapped; that script starts Confluent's launcher, which apache/kafka
// does not have. So the container takes only the advertised listeners
// from the script (the host and mapped port, known only after the start)
// and runs apache/kafka's own launcher, which turns the module's KAFKA_*
// variables (KRaft, one broker and controller) into its configuration.
// The module then waits, as for its own image, for the broker's
// "Transitioning from RECOVERY to RUNNING".
func apacheKafka() testcontainers.CustomizeRequestOption {
	const script = "/usr/sbin/testcontainers_start.sh" // where the module copies it
	return func(req *testcontainers.GenericContainerRequest) error {
		req.Entrypoint = []string{"sh"}
		req.Cmd = []string{"-c", "while [ ! -f " + script + " ]; do sleep 0.1; done; " +
			"eval \"$(grep '^export KAFKA_ADVERTISED_LISTENERS=' " + script + ")\"; exec /etc/kafka/docker/run"}
		// Confluent-only settings the Apache launcher would pass on as
		// unknown broker properties.
		delete(req.Env, "KAFKA_REST_BOOTSTRAP_SERVERS")
		return nil
	}
}

// TestE2EAgainstDevBrokerAndRedisServer runs the e2e suite against a
// `healthscore dev-broker` and a redis-server started here as processes
// (loopback and a unix socket in a temporary directory): the suite's
// external-endpoint mode, as CI runs it.
func TestE2EAgainstDevBrokerAndRedisServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	redisServer, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("HEALTHSCORE_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server is not installed; scripts/test.sh installs it")
		}
		t.Skip("redis-server is not installed")
	}
	dir, err := os.MkdirTemp("/tmp", "hsc") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	bin := filepath.Join(dir, "healthscore")
	build := exec.Command("go", "build", "-o", bin, "./cmd/healthscore")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	broker := startProcess(t, exec.Command(bin, "dev-broker", "--port", "0"),
		regexp.MustCompile(`dev-broker listening on (\S+)`))

	sock := filepath.Join(dir, "redis.sock")
	startProcess(t, exec.Command(redisServer, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
		"--hash-max-listpack-value", "512", "--dir", dir, "--logfile", ""), regexp.MustCompile(`(?i)(ready to accept connections)`))

	runE2E(t, broker, "unix://"+sock)

	// The suite used these endpoints: its topics are on the broker and the
	// server ran its commands.
	out, err := exec.Command("kcat", "-b", broker, "-L").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `topic "customer-events"`) {
		t.Errorf("the dev-broker has no customer-events topic after the suite (kcat -L: %v)\n%s", err, out)
	}
	out, err = exec.Command("redis-cli", "-s", sock, "INFO", "stats").CombinedOutput()
	m := regexp.MustCompile(`total_commands_processed:(\d+)`).FindSubmatch(out)
	if err != nil || m == nil || len(m[1]) < 4 {
		t.Errorf("redis-server ran fewer than 1000 commands during the suite (%v): %s", err, m)
	}
}

// startProcess starts cmd, waits for a line of its output that matches re
// and returns the first submatch; the process is interrupted (then killed)
// when the test ends.
func startProcess(t *testing.T, cmd *exec.Cmd, re *regexp.Regexp) string {
	t.Helper()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); pw.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	found := make(chan string, 1)
	var logs strings.Builder
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			if logs.Len() < 1<<16 {
				logs.WriteString(sc.Text() + "\n")
			}
		}
	}()
	select {
	case v := <-found:
		return v
	case <-exited:
		t.Fatalf("%s exited before it was ready", cmd.Path)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready within 30 s", cmd.Path)
	}
	return ""
}
