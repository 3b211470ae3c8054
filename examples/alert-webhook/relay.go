package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// Defaults of Config.
const (
	DefaultTopic          = "customer-health-alerts"
	DefaultGroup          = "healthscore-alert-webhook"
	DefaultWebhookTimeout = 10 * time.Second
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultMaxRetryAfter  = 15 * time.Minute
	DefaultDedupIDs       = 100_000

	commitTimeout = 10 * time.Second // per commit attempt
)

// Config configures the relay. Zero values take the defaults.
type Config struct {
	Brokers    []string
	Topic      string // default DefaultTopic
	Group      string // consumer group; default DefaultGroup
	FromStart  bool   // a group with no committed offset starts at the oldest alert (default: the newest)
	WebhookURL string // required; a secret

	WebhookTimeout time.Duration // per attempt
	MinBackoff     time.Duration // first wait after a failed attempt; doubles per failure
	MaxBackoff     time.Duration // cap of that wait
	MaxRetryAfter  time.Duration // cap of a Retry-After the webhook asks for
	DedupIDs       int           // how many alert ids are remembered to drop repeats

	Logger    *zap.Logger       // required
	Transport http.RoundTripper // nil: http.DefaultTransport
}

func (c *Config) validate() error {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.WebhookTimeout == 0 {
		c.WebhookTimeout = DefaultWebhookTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.DedupIDs == 0 {
		c.DedupIDs = DefaultDedupIDs
	}
	switch {
	case len(c.Brokers) == 0:
		return errors.New("no brokers: set --brokers (host:9092,…)")
	case c.Logger == nil:
		return errors.New("no logger: Config.Logger is nil")
	case c.WebhookTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff || c.MaxRetryAfter < 0:
		return errors.New("timeouts and backoffs must be positive, and the maximum backoff at least the minimum")
	case c.DedupIDs < 0:
		return fmt.Errorf("DedupIDs is %d; want a positive number", c.DedupIDs)
	}
	return checkWebhookURL(c.WebhookURL)
}

// checkWebhookURL checks the URL without ever quoting it: url.Parse's error
// would contain it.
func checkWebhookURL(s string) error {
	if s == "" {
		return errors.New("no webhook URL: set ALERT_WEBHOOK_URL or --webhook-url-file")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("the webhook URL (not shown: it is a secret) is not an absolute http or https URL")
	}
	return nil
}

// Run relays alerts from the topic to the webhook until ctx ends (then it
// returns nil) or the reader fails. Per record, in order: decode; drop it if
// it is not an alert or its id was seen; post it until the webhook answers
// 2xx; remember its id; commit its offset. A record is committed only after
// its post succeeded, and the next one is fetched only after that commit.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	log := cfg.Logger
	log.Info("relaying alerts", zap.Strings("brokers", cfg.Brokers), zap.String("topic", cfg.Topic),
		zap.String("group", cfg.Group), zap.Int("dedup_ids", cfg.DedupIDs))
	if err := checkTopic(ctx, cfg.Brokers, cfg.Topic); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	start := kafka.LastOffset
	if cfg.FromStart {
		start = kafka.FirstOffset
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     cfg.Brokers,
		Topic:       cfg.Topic,
		GroupID:     cfg.Group,
		StartOffset: start,
		// CommitInterval 0 (the default): CommitMessages is synchronous.
		// Close waits for a fetch in flight: a short long-poll keeps a
		// shutdown short (the default, 10 s, makes it last that long).
		MaxWait: time.Second,
		// Without it, brokers that become unreachable go unnoticed: kafka-go
		// retries quietly.
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Warn("kafka-go: " + fmt.Sprintf(msg, args...))
		}),
	})
	defer r.Close() // leaves the group, so another member takes over at once

	hook := newWebhook(&cfg, log)
	seen := newSeenIDs(cfg.DedupIDs)
	for {
		m, err := r.FetchMessage(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot fetch from %s: %w", cfg.Topic, err)
		}
		if err := relay(ctx, m, hook, seen, log); err != nil {
			return nil // ctx ended while the webhook failed: the record is not committed
		}
		if err := commit(ctx, r, m, &cfg, log); err != nil {
			return nil // likewise
		}
	}
}

// checkTopic fails when the topic does not exist: a group reader would wait
// for it in silence, and a misspelt topic would never post anything. The
// metadata request does not allow auto-creation: the check creates nothing.
func checkTopic(ctx context.Context, brokers []string, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("cannot read the metadata of topic %q from %v: %w", topic, brokers, err)
	}
	for _, t := range md.Topics {
		if t.Name == topic && t.Error == nil {
			return nil
		}
		if t.Name == topic && !errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			return fmt.Errorf("cannot use topic %q: %w", topic, t.Error)
		}
	}
	return fmt.Errorf("topic %q does not exist: check --topic (healthscore's --alert-topic)", topic)
}

// relay delivers the alert in m unless it was seen; it fails only when ctx
// ends before the webhook took it.
func relay(ctx context.Context, m kafka.Message, hook *webhook, seen *seenIDs, log *zap.Logger) error {
	a, err := decodeAlert(m.Value)
	if errors.Is(err, errNotAlert) {
		return nil // another output type on a shared topic
	}
	if err != nil {
		log.Warn("skipping a record that is not a healthscore alert", zap.Int("partition", m.Partition),
			zap.Int64("offset", m.Offset), zap.Error(err))
		return nil
	}
	if seen.has(a.dedupKey()) {
		return nil // republished after a crash of healthscore: posted already
	}
	if err := hook.deliver(ctx, render(a)); err != nil {
		return err
	}
	seen.add(a.dedupKey())
	return nil
}

// commit commits m's offset, retrying with backoff until it succeeds or ctx
// ends. Like a post, an attempt under way finishes even if ctx ends.
func commit(ctx context.Context, r *kafka.Reader, m kafka.Message, cfg *Config, log *zap.Logger) error {
	backoff := cfg.MinBackoff
	for {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		err := r.CommitMessages(cctx, m)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn("offset commit failed; retrying", zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset),
			zap.Error(err), zap.Duration("retry_in", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, cfg.MaxBackoff)
	}
}
