package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const secretURL = "https://hooks.example.com/services/T0001/B0001/SECRETxyz"

// scripted is a RoundTripper that answers from a script, recording when
// each request came; past the script's end it answers 200.
type scripted struct {
	mu     sync.Mutex
	script []func() (*http.Response, error)
	times  []time.Time
	bodies []string
}

func (s *scripted) RoundTrip(r *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.times)
	s.times = append(s.times, time.Now())
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	if n < len(s.script) {
		return s.script[n]()
	}
	return status(200, "")()
}

func status(code int, retryAfter string) func() (*http.Response, error) {
	return func() (*http.Response, error) {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Header: h,
			Body: io.NopCloser(strings.NewReader("no_service"))}, nil
	}
}

func testWebhook(t *testing.T, rt http.RoundTripper, log *zap.Logger) *webhook {
	t.Helper()
	cfg := Config{Brokers: []string{"unused:9092"}, WebhookURL: secretURL, Logger: log, Transport: rt}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	return newWebhook(&cfg, log)
}

// TestDeliverBacksOffAndHonoursRetryAfter: the waits between attempts
// double from 1 s up to 1 min; a Retry-After (seconds or a date) replaces
// them, capped at 15 min; the first 2xx ends it.
func TestDeliverBacksOffAndHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &scripted{}
		for range 7 {
			rt.script = append(rt.script, status(500, ""))
		}
		rt.script = append(rt.script,
			status(429, "7"),
			status(503, time.Now().Add(2*time.Hour).UTC().Format(http.TimeFormat)), // asks for too long
			status(502, "soon"), // not a valid Retry-After: the backoff applies
		)
		w := testWebhook(t, rt, zap.NewNop())
		if err := w.deliver(context.Background(), []byte(`{"text":"x"}`)); err != nil {
			t.Fatal(err)
		}
		var gaps []time.Duration
		for i := 1; i < len(rt.times); i++ {
			gaps = append(gaps, rt.times[i].Sub(rt.times[i-1]))
		}
		s := time.Second
		want := []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 7 * s, 15 * time.Minute, 60 * s}
		if !slices.Equal(gaps, want) {
			t.Fatalf("waits %v\nwant  %v", gaps, want)
		}
	})
}

// TestDeliverStopsWithTheContext: a webhook that keeps failing holds the
// relay until it is stopped; deliver then returns the context's error
// without another attempt.
func TestDeliverStopsWithTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rt := &scripted{}
		for i := range 100 {
			rt.script = append(rt.script, func() (*http.Response, error) {
				if i == 2 {
					cancel() // stopped while the third attempt is under way
				}
				return status(500, "")()
			})
		}
		w := testWebhook(t, rt, zap.NewNop())
		if err := w.deliver(ctx, []byte(`{}`)); !errors.Is(err, context.Canceled) {
			t.Fatalf("deliver: %v", err)
		}
		if len(rt.times) != 3 {
			t.Fatalf("%d attempts, want 3", len(rt.times))
		}
	})
}

// TestWebhookURLNeverShown: the URL is the credential. Neither a transport
// error (Go's includes the URL), nor a refusal, nor an invalid URL puts it
// in a log line or an error.
func TestWebhookURLNeverShown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zap.DebugLevel)
		refused := func() (*http.Response, error) { return nil, errors.New("connection refused") }
		rt := &scripted{script: []func() (*http.Response, error){
			refused,                  // the post below
			refused, status(404, ""), // then deliver's

		}}
		w := testWebhook(t, rt, zap.New(core))
		_, _, err := w.post(context.Background(), []byte(`{}`))
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("post: %v", err)
		}
		if err := w.deliver(context.Background(), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if logs.Len() != 2 {
			t.Fatalf("%d log lines, want 2 (one per failed attempt)", logs.Len())
		}
		all := []string{err.Error()}
		for _, e := range logs.All() {
			all = append(all, e.Message, fmt.Sprint(e.ContextMap()))
		}
		if !strings.Contains(all[2], "connection refused") || !strings.Contains(all[4], "404") {
			t.Errorf("the log does not say what failed: %q", all)
		}
		for _, s := range all {
			if strings.Contains(s, "SECRET") || strings.Contains(s, "hooks.example.com") {
				t.Errorf("the webhook URL shows in %q", s)
			}
		}
	})
	for _, bad := range []string{"hooks.example.com/services/SECRET", "ftp://hooks.example.com/SECRET", "https://SECRET host/", "http://%zzSECRET"} {
		err := checkWebhookURL(bad)
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("checkWebhookURL(%q) = %v", bad, err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              -1,
		"0":                             0,
		"120":                           2 * time.Minute,
		"-5":                            -1,
		"1.5":                           -1,
		"soon":                          -1,
		"Mon, 30 Nov 2026 12:00:30 GMT": 30 * time.Second,
		"Mon, 30 Nov 2026 11:00:00 GMT": 0, // in the past
	} {
		if got := parseRetryAfter(h, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}
