package alerts

import (
	"fmt"
	"net/url"
)

// Default topics and source.
const (
	DefaultScoreTopic = "customer-health"
	DefaultAlertTopic = "customer-health-alerts"
	DefaultDLQTopic   = "customer-events-dlq"
	DefaultSource     = "healthscore"
)

// Config configures an Encoder. Zero values take the defaults.
type Config struct {
	ScoreTopic string // health.score_changed events; default "customer-health"
	AlertTopic string // health.low and health.recovered; default "customer-health-alerts"
	DLQTopic   string // dead-letter copies of bad input records; default "customer-events-dlq"
	Source     string // CloudEvents source (a URI reference); default "healthscore"
}

// Validate fills in defaults and checks the fields, naming the bad one.
func (c *Config) Validate() error {
	if c.ScoreTopic == "" {
		c.ScoreTopic = DefaultScoreTopic
	}
	if c.AlertTopic == "" {
		c.AlertTopic = DefaultAlertTopic
	}
	if c.DLQTopic == "" {
		c.DLQTopic = DefaultDLQTopic
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	for _, f := range []struct{ name, topic string }{
		{"ScoreTopic", c.ScoreTopic}, {"AlertTopic", c.AlertTopic}, {"DLQTopic", c.DLQTopic},
	} {
		if err := validTopic(f.topic); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if c.DLQTopic == c.ScoreTopic || c.DLQTopic == c.AlertTopic {
		return fmt.Errorf("DLQTopic: %q is also an output topic; dead letters must not mix with events", c.DLQTopic)
	}
	if _, err := url.Parse(c.Source); err != nil {
		return fmt.Errorf("invalid Source %q: not a URI reference: %w", c.Source, err)
	}
	for _, r := range c.Source {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("invalid Source %q: contains a space or control character", c.Source)
		}
	}
	return nil
}

// validTopic applies Kafka's topic name rules.
func validTopic(t string) error {
	if t == "." || t == ".." {
		return fmt.Errorf("%q is not a valid topic name", t)
	}
	if len(t) > 249 {
		return fmt.Errorf("topic name is %d characters long; at most 249 are allowed", len(t))
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("topic %q: character %q is not allowed (want [a-zA-Z0-9._-])", t, c)
		}
	}
	return nil
}
