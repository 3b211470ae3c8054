package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// webhook posts messages to an incoming webhook until it answers 2xx. Its
// URL is a secret (it is the credential): it appears in no log line and no
// error.
type webhook struct {
	url    string
	client *http.Client
	cfg    *Config
	log    *zap.Logger
}

func newWebhook(cfg *Config, log *zap.Logger) *webhook {
	client := &http.Client{
		Transport: cfg.Transport, // nil: http.DefaultTransport
		Timeout:   cfg.WebhookTimeout,
		// A webhook does not redirect; a 3xx is a failure to retry, and
		// errors never name a redirect target.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &webhook{url: cfg.WebhookURL, client: client, cfg: cfg, log: log}
}

// deliver posts body until the webhook answers 2xx, waiting between
// attempts: cfg.MinBackoff, doubling up to cfg.MaxBackoff, or what a
// Retry-After header asks for (at most cfg.MaxRetryAfter). It returns nil
// once delivered and ctx.Err() when ctx ends first.
//
// An attempt already sent is not cut short by ctx: it runs to its answer
// (at most cfg.WebhookTimeout), so that a shutdown does not post an alert
// and then forget that it did.
func (w *webhook) deliver(ctx context.Context, body []byte) error {
	backoff := w.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		status, retryAfter, err := w.post(context.WithoutCancel(ctx), body)
		if err == nil {
			return nil
		}
		wait := backoff
		if retryAfter >= 0 {
			wait = min(retryAfter, w.cfg.MaxRetryAfter)
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
		w.log.Warn("webhook post failed; retrying", zap.Int("attempt", attempt), zap.Int("status", status),
			zap.Error(err), zap.Duration("retry_in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// post makes one attempt. It returns the status (0 without an answer), the
// delay the answer's Retry-After asks for (-1 when it has none) and an error
// unless the status is 2xx.
func (w *webhook) post(ctx context.Context, body []byte) (status int, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, -1, errors.New("cannot create webhook request") // its error would show the URL
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // "Post \"<the secret URL>\": …": keep only the cause
			err = ue.Err
		}
		return 0, -1, fmt.Errorf("cannot post to the webhook: %w", err)
	}
	defer resp.Body.Close()
	// Slack explains a refusal in a short body ("invalid_payload", "no_service").
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, -1, nil
	}
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		fmt.Errorf("webhook answered %s: %q", resp.Status, strings.TrimSpace(string(snippet)))
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110, section 10.2.3). It returns -1 when the header is absent or
// invalid, and 0 for a date in the past.
func parseRetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return -1
	}
	if s, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0)
	}
	return -1
}
