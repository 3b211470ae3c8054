// Command alert-webhook posts healthscore's alerts (health.low,
// health.recovered, health.dropped on customer-health-alerts) to a
// Slack-compatible incoming webhook, with github.com/segmentio/kafka-go.
//
// What makes it safe to copy:
//   - it commits an alert's offset only after the webhook answered 2xx
//     (FetchMessage, post, CommitMessages; never ReadMessage, which commits
//     before you have done anything), and does not move past an alert the
//     webhook refuses: it retries with capped exponential backoff, honouring
//     Retry-After;
//   - it drops alerts whose CloudEvents id it has already posted, because
//     healthscore publishes at least once and republishes an alert under the
//     same id after a crash (the last DedupIDs ids are remembered);
//   - the webhook URL is the credential: it is read from a file or the
//     environment, never from a flag, and never logged.
//
// Usage:
//
//	ALERT_WEBHOOK_URL=https://hooks.slack.com/services/… go run ./examples/alert-webhook --brokers localhost:9092
//
// See README.md for what it guarantees.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap"
)

func main() {
	log, err := zap.NewProduction(zap.AddStacktrace(zap.DPanicLevel)) // JSON on stderr; no stack traces on errors
	if err != nil {
		fmt.Fprintln(os.Stderr, "alert-webhook:", err)
		os.Exit(1)
	}
	defer func() { _ = log.Sync() }()
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err == nil {
		cfg.Logger = log
		err = cfg.validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "alert-webhook:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg); err != nil {
		log.Error("alert-webhook stopped", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
	log.Info("alert-webhook stopped")
}

// parseConfig reads flags, each with an environment twin (the flag wins).
// The webhook URL is taken from the file --webhook-url-file names, else from
// ALERT_WEBHOOK_URL: it is a secret, so there is no flag that would show it
// in the process list.
func parseConfig(args []string, getenv func(string) string) (Config, error) {
	var bad []error // environment values that do not parse
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	envInt := func(name string, def int) int {
		n, err := strconv.Atoi(env(name, strconv.Itoa(def)))
		if err != nil {
			bad = append(bad, fmt.Errorf("%s=%q: want an integer", name, getenv(name)))
		}
		return n
	}
	envBool := func(name string) bool {
		b, err := strconv.ParseBool(env(name, "false"))
		if err != nil {
			bad = append(bad, fmt.Errorf("%s=%q: want true or false", name, getenv(name)))
		}
		return b
	}
	fs := flag.NewFlagSet("alert-webhook", flag.ContinueOnError)
	brokers := fs.String("brokers", env("ALERT_WEBHOOK_BROKERS", "localhost:9092"), "Kafka brokers, comma separated (ALERT_WEBHOOK_BROKERS)")
	topic := fs.String("topic", env("ALERT_WEBHOOK_TOPIC", DefaultTopic), "healthscore's alert topic (ALERT_WEBHOOK_TOPIC)")
	group := fs.String("group", env("ALERT_WEBHOOK_GROUP", DefaultGroup), "consumer group (ALERT_WEBHOOK_GROUP)")
	fromStart := fs.Bool("from-start", envBool("ALERT_WEBHOOK_FROM_START"),
		"a new group starts at the oldest alert instead of the newest (ALERT_WEBHOOK_FROM_START=true)")
	urlFile := fs.String("webhook-url-file", env("ALERT_WEBHOOK_URL_FILE", ""), "file holding the webhook URL (ALERT_WEBHOOK_URL_FILE); else ALERT_WEBHOOK_URL is used")
	dedup := fs.Int("dedup-ids", envInt("ALERT_WEBHOOK_DEDUP_IDS", DefaultDedupIDs), "alert ids remembered to drop repeats (ALERT_WEBHOOK_DEDUP_IDS)")
	minBackoff := fs.Duration("min-backoff", DefaultMinBackoff, "first wait after a failed post; doubles per failure")
	maxBackoff := fs.Duration("max-backoff", DefaultMaxBackoff, "longest wait between posts (a Retry-After may ask for longer)")
	if len(bad) > 0 {
		return Config{}, errors.Join(bad...)
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := Config{Topic: *topic, Group: *group, FromStart: *fromStart, DedupIDs: *dedup,
		MinBackoff: *minBackoff, MaxBackoff: *maxBackoff}
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}
	cfg.WebhookURL = getenv("ALERT_WEBHOOK_URL")
	if *urlFile != "" {
		b, err := os.ReadFile(*urlFile)
		if err != nil {
			return Config{}, fmt.Errorf("cannot read the webhook URL: %w", err) // names the file, not its content
		}
		cfg.WebhookURL = strings.TrimSpace(string(b))
	}
	return cfg, nil
}
