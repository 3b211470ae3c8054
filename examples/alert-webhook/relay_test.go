package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/scorer"
)

// broker is a Kafka cluster with a topic and a group of one test's own:
// in-process kfake, or the brokers in HEALTHSCORE_TEST_BROKERS (hence the
// unique names).
type broker struct {
	addrs        []string
	topic, group string
}

func newBroker(t *testing.T, partitions int32) *broker {
	t.Helper()
	name := fmt.Sprintf("alert-webhook-%s-%d", t.Name(), time.Now().UnixNano())
	return &broker{addrs: testenv.Kafka(t, map[string]int32{name: partitions}), topic: name, group: name}
}

// config is a relay's configuration for this broker and a webhook.
func (b *broker) config(webhookURL string) Config {
	return Config{Brokers: b.addrs, Topic: b.topic, Group: b.group, WebhookURL: webhookURL}
}

func (b *broker) committed(t *testing.T) int64 { return testenv.Committed(t, b.addrs, b.group) }

// produce writes recs to the topic.
func (b *broker) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...), kgo.DefaultProduceTopic(b.topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range recs {
		r.Topic = ""
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// hook is a webhook under test: answer decides each request's status and
// headers; the requests are recorded.
type hook struct {
	*httptest.Server
	answer func(n int, text string) (status int, retryAfter string) // n counts requests from 0

	mu       sync.Mutex
	requests []request
}

type request struct {
	text   string
	status int
	at     time.Time
	// committed is the group's committed offsets (summed) when the request
	// arrived, when the test asked for it (onRequest).
	committed int64
}

func newHook(t *testing.T, answer func(n int, text string) (int, string), onRequest func() int64) *hook {
	h := &hook{answer: answer}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m slackMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad request: %v, content-type %q", err, r.Header.Get("Content-Type"))
		}
		h.mu.Lock()
		n := len(h.requests)
		h.mu.Unlock()
		req := request{text: m.Text, at: time.Now(), status: http.StatusOK}
		if onRequest != nil {
			req.committed = onRequest()
		}
		retryAfter := ""
		if h.answer != nil {
			req.status, retryAfter = h.answer(n, m.Text)
		}
		h.mu.Lock()
		h.requests = append(h.requests, req)
		h.mu.Unlock()
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(req.status)
		fmt.Fprint(w, http.StatusText(req.status))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) all() []request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

// posted returns the alert ids of the accepted posts, in order.
func (h *hook) posted() []string {
	var ids []string
	for _, r := range h.all() {
		if r.status/100 == 2 {
			ids = append(ids, idOf(r.text))
		}
	}
	return ids
}

// idOf finds the alert id at the end of a rendered message.
func idOf(text string) string {
	const marker = " · id "
	for i := len(text) - len(marker); i >= 0; i-- {
		if text[i:i+len(marker)] == marker {
			return text[i+len(marker):]
		}
	}
	return ""
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling an observable effect
	}
}

// startRelay runs Run until the returned stop is called (or the test ends);
// stop waits for Run to return and checks it returned nil.
func startRelay(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	cfg.FromStart = true
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// alertRecord makes a real alert with package alerts' encoder: a first
// score in red for customer, caused by input offset.
func alertRecord(t *testing.T, customer string, offset int64) *kgo.Record {
	t.Helper()
	enc, err := alerts.NewEncoder(alerts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := &alerts.Change{CustomerID: customer, EventTime: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixNano(),
		Cause: alerts.Cause{Topic: "customer-events", Offset: offset},
		Outcome: scorer.Outcome{Eval: scorer.Evaluation{HasScore: true, Score: 12.5, Band: scorer.BandRed},
			Alert: scorer.AlertLow, Drivers: []scorer.Driver{{Category: "support", Signal: "tickets", Points: -20}}}}
	recs := enc.AppendRecords(nil, c)
	if len(recs) != 1 || recs[0].Topic != alerts.DefaultAlertTopic {
		t.Fatalf("encoder made %d records", len(recs))
	}
	return recs[0]
}

func idOfRecord(t *testing.T, r *kgo.Record) string {
	t.Helper()
	a, err := decodeAlert(r.Value)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// TestEveryAlertPostedOnce: over two partitions, every alert is posted
// once, an alert republished under the same id is posted once, records that
// are not alerts are skipped, and every offset ends up committed.
func TestEveryAlertPostedOnce(t *testing.T) {
	b := newBroker(t, 2)
	h := newHook(t, nil, nil)
	var recs []*kgo.Record
	var want []string
	for i := range 12 {
		r := alertRecord(t, fmt.Sprintf("customer-%02d", i), int64(i))
		recs = append(recs, r)
		want = append(want, idOfRecord(t, r))
	}
	// healthscore republishes after a crash: the same events, same ids.
	for _, r := range recs[:5] {
		dup := *r
		recs = append(recs, &dup)
	}
	// Not alerts: a score change on a shared topic, and garbage.
	recs = append(recs,
		&kgo.Record{Key: []byte("customer-00"), Value: []byte(`{"specversion":"1.0","type":"health.score_changed","source":"healthscore","id":"x","data":{"customer_id":"customer-00"}}`)},
		&kgo.Record{Key: []byte("customer-01"), Value: []byte(`not json`)})
	b.produce(t, recs...)

	startRelay(t, b.config(h.URL))
	waitFor(t, "every offset committed", func() bool { return b.committed(t) == int64(len(recs)) })
	got := h.posted()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("posted %d alerts %v\nwant %d %v", len(got), got, len(want), want)
	}
}

// TestFailingWebhookLosesNothing: the webhook answers 500, 500, then 429
// with Retry-After: 1, then recovers. Nothing is lost, nothing posted twice,
// the relay waits as long as Retry-After asks, and each alert's offset is
// committed only after its post succeeded: when a post arrives, exactly the
// alerts before it are committed.
func TestFailingWebhookLosesNothing(t *testing.T) {
	b := newBroker(t, 1)
	answers := []struct {
		status     int
		retryAfter string
	}{{500, ""}, {500, ""}, {429, "1"}}
	h := newHook(t, func(n int, _ string) (int, string) {
		if n < len(answers) {
			return answers[n].status, answers[n].retryAfter
		}
		return http.StatusOK, ""
	}, func() int64 { return b.committed(t) })
	var want []string
	var recs []*kgo.Record
	for i := range 3 {
		r := alertRecord(t, fmt.Sprintf("customer-%d", i), int64(i))
		recs = append(recs, r)
		want = append(want, idOfRecord(t, r))
	}
	b.produce(t, recs...)

	startRelay(t, b.config(h.URL))
	waitFor(t, "every offset committed", func() bool { return b.committed(t) == 3 })
	if got := h.posted(); !slices.Equal(got, want) {
		t.Fatalf("posted %v, want %v in order", got, want)
	}
	reqs := h.all()
	if len(reqs) != len(answers)+3 {
		t.Fatalf("%d requests, want %d", len(reqs), len(answers)+3)
	}
	for i, r := range reqs {
		alert := max(i-len(answers), 0) // the failures were all the first alert's
		if idOf(r.text) != want[alert] {
			t.Errorf("request %d posted %s, want alert %d", i, idOf(r.text), alert)
		}
		if r.committed != int64(alert) {
			t.Errorf("request %d (alert %d): %d offsets committed when it arrived, want %d", i, alert, r.committed, alert)
		}
	}
	if gap := reqs[3].at.Sub(reqs[2].at); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
}

// TestRestartResumesAfterLastCommit: a relay that stopped is replaced by a
// new one (a new Reader in the same group); it posts only the alerts after
// the last committed one.
func TestRestartResumesAfterLastCommit(t *testing.T) {
	b := newBroker(t, 1)
	h := newHook(t, nil, nil)
	var want []string
	var recs []*kgo.Record
	for i := range 5 {
		r := alertRecord(t, fmt.Sprintf("customer-%d", i), int64(i))
		recs = append(recs, r)
		want = append(want, idOfRecord(t, r))
	}
	b.produce(t, recs[:3]...)
	stop := startRelay(t, b.config(h.URL))
	waitFor(t, "3 offsets committed", func() bool { return b.committed(t) == 3 })
	stop()

	b.produce(t, recs[3:]...)
	startRelay(t, b.config(h.URL))
	waitFor(t, "5 offsets committed", func() bool { return b.committed(t) == 5 })
	if got := h.posted(); !slices.Equal(got, want) {
		t.Fatalf("posted %v, want %v", got, want)
	}
}

// TestStopDuringPostCommitsIt: stopped while the webhook is taking an
// alert, the relay lets the post finish, commits it and then stops, so the
// alert is not posted again by the next run; the next alert is left alone.
func TestStopDuringPostCommitsIt(t *testing.T) {
	b := newBroker(t, 1)
	arrived, release := make(chan struct{}), make(chan struct{})
	h := newHook(t, func(n int, _ string) (int, string) {
		if n == 0 {
			close(arrived)
			<-release
		}
		return http.StatusOK, ""
	}, nil)
	first := alertRecord(t, "customer-0", 0)
	b.produce(t, first, alertRecord(t, "customer-1", 1))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		cfg := b.config(h.URL)
		cfg.FromStart, cfg.Logger = true, zaptest.NewLogger(t)
		done <- Run(ctx, cfg)
	}()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("no post within 30 s")
	}
	cancel()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := b.committed(t); got != 1 {
		t.Errorf("%d offsets committed, want 1 (the alert being posted at the stop)", got)
	}
	if got := h.posted(); !slices.Equal(got, []string{idOfRecord(t, first)}) {
		t.Errorf("posted %v", got)
	}
}

// TestMissingTopicIsAnError: a misspelt topic stops the relay with an error
// that says what to fix, instead of a group waiting for it in silence.
func TestMissingTopicIsAnError(t *testing.T) {
	b := newBroker(t, 1)
	cfg := b.config("http://127.0.0.1:9/unused")
	cfg.Topic, cfg.Logger = b.topic+"-misspelt", zaptest.NewLogger(t)
	err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "--topic") {
		t.Fatalf("Run: %v", err)
	}
}
