package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/internal/testenv"
)

type testEvent struct {
	ID         string  `json:"id,omitempty"`
	CustomerID string  `json:"customer_id"`
	Type       string  `json:"type"`
	Time       string  `json:"time"`
	Value      float64 `json:"value"`
	Segment    string  `json:"segment,omitempty"`
}

// eventLog makes a random event log: out-of-order times over 30 days,
// duplicated lines, events of a type no signal reads, and segments.
func eventLog(rng *rand.Rand, customers, events int, now time.Time) [][]byte {
	types := []string{"login", "login", "login", "feature_used", "feature_used", "ticket_opened", "ticket_escalated",
		"nps_submitted", "kb_viewed", "payment_succeeded", "payment_failed", "page_viewed"}
	segments := []string{"", "enterprise", "smb"}
	var lines [][]byte
	for i := range events {
		ev := testEvent{
			ID:         fmt.Sprintf("e2e-%d", i),
			CustomerID: fmt.Sprintf("cust-%03d", rng.IntN(customers)),
			Type:       types[rng.IntN(len(types))],
			Time:       now.Add(-time.Duration(rng.Int64N(int64(30 * 24 * time.Hour)))).UTC().Format(time.RFC3339Nano),
			Value:      1,
			Segment:    segments[rng.IntN(len(segments))],
		}
		if ev.Type == "nps_submitted" {
			ev.Value = float64(rng.IntN(11))
		}
		b, _ := json.Marshal(ev)
		lines = append(lines, b)
		if rng.IntN(20) == 0 { // the same event sent twice by its producer
			lines = append(lines, b)
		}
	}
	rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return lines
}

// badRecords are records that must go to the dead-letter topic, with the
// reason each must carry.
func badRecords(now time.Time) (values [][]byte, reasons []string) {
	add := func(v, reason string) {
		values = append(values, []byte(v))
		reasons = append(reasons, reason)
	}
	add(`{"customer_id":"x","type":"login"`, "invalid_json")
	add(`not json at all`, "invalid_json")
	add(`{"type":"login","time":"2026-11-20T10:00:00Z"}`, "missing_customer_id")
	add(`{"customer_id":"x","time":"2026-11-20T10:00:00Z"}`, "missing_type")
	add(`{"customer_id":"x","type":"login","time":"yesterday"}`, "invalid_time")
	add(`{"customer_id":"x","type":"login","value":"a lot"}`, "invalid_value")
	add(`{"customer_id":"x","type":"login","value":1e999}`, "invalid_value")
	add(fmt.Sprintf(`{"customer_id":"x","type":"login","time":%q}`, now.Add(48*time.Hour).UTC().Format(time.RFC3339)), "time_skew")
	add(`{"customer_id":"`+strings.Repeat("a", 300)+`","type":"login"}`, "invalid_customer_id")
	add("{\"customer_id\":\"x\xff\",\"type\":\"login\"}", "invalid_utf8")
	return values, reasons
}

// TestPipelineMatchesOffline produces one random event log through three
// independent clients at once (franz-go keyed, segmentio/kafka-go with its
// default round-robin balancer, and kcat), plus bad records, into the real
// binary; then every customer's score from the HTTP API must equal
// `healthscore score` on the same events, every customer that ends red must
// have a health.low as its latest alert, and every bad record must be in the
// dead-letter topic with its reason.
func TestPipelineMatchesOffline(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv(testenv.EnvRequireRedis) == "1" {
			t.Fatal("kcat is not installed (apt-get install kcat); the test command installs it")
		}
		t.Skip("kcat is not installed")
	}
	topics := map[string]int32{"customer-events": 6, "customer-health": 3, "customer-health-alerts": 3, "customer-events-dlq": 1}
	brokers := testenv.Kafka(t, topics)
	prefix := testenv.KeyPrefix(t)
	now := time.Now()
	svc := startService(t, "--brokers", strings.Join(brokers, ","), "--redis", redisURL(t), "--redis-prefix", prefix,
		"--group", "e2e-"+prefix[:len(prefix)-1], "--max-batch", "500")

	rng := rand.New(rand.NewPCG(42, 4242))
	lines := eventLog(rng, 80, 4000, now)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(logFile, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}

	// Three producers at once, a third of the log each.
	parts := [3][][]byte{}
	for i, l := range lines {
		parts[i%3] = append(parts[i%3], l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Go(func() { // franz-go, keyed by customer
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("customer-events"))
		if err != nil {
			errs <- err
			return
		}
		defer cl.Close()
		var recs []*kgo.Record
		for _, l := range parts[0] {
			var ev testEvent
			_ = json.Unmarshal(l, &ev)
			recs = append(recs, &kgo.Record{Key: []byte(ev.CustomerID), Value: l})
		}
		bad, _ := badRecords(now)
		for _, b := range bad {
			recs = append(recs, &kgo.Record{Value: b})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			errs <- fmt.Errorf("franz-go: %w", err)
		}
	})
	wg.Go(func() { // kafka-go, default balancer: keys ignored, customers spread over partitions
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "customer-events", RequiredAcks: kafka.RequireAll, BatchTimeout: 10 * time.Millisecond}
		defer w.Close()
		var msgs []kafka.Message
		for _, l := range parts[1] {
			msgs = append(msgs, kafka.Message{Value: l})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			errs <- fmt.Errorf("kafka-go: %w", err)
		}
	})
	wg.Go(func() { // kcat, keyed with a tab delimiter
		var in bytes.Buffer
		for _, l := range parts[2] {
			var ev testEvent
			_ = json.Unmarshal(l, &ev)
			fmt.Fprintf(&in, "%s\t%s\n", ev.CustomerID, l)
		}
		cmd := exec.CommandContext(ctx, kcat, "-b", strings.Join(brokers, ","), "-t", "customer-events", "-P", "-K", "\t", "-X", "acks=all")
		cmd.Stdin = &in
		if out, err := cmd.CombinedOutput(); err != nil {
			errs <- fmt.Errorf("kcat: %v: %s", err, out)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	waitCommitted(t, brokers, "e2e-"+prefix[:len(prefix)-1], "customer-events", 2*time.Minute)

	// Expected: the offline scorer on the same events.
	out, err := exec.Command(binary(t), "score", "--quiet", logFile).Output()
	if err != nil {
		t.Fatalf("healthscore score: %v", err)
	}
	type view struct {
		CustomerID string   `json:"customer_id"`
		Score      *float64 `json:"score"`
		Band       *string  `json:"band"`
		Segment    string   `json:"segment"`
		At         string   `json:"at"`
	}
	var offline []view
	for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var v view
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("offline output %q: %v", l, err)
		}
		offline = append(offline, v)
	}
	if len(offline) < 70 {
		t.Fatalf("offline scored %d customers; the log has about 80", len(offline))
	}
	for _, want := range offline {
		var got view
		path := "/v1/customers/" + url.PathEscape(want.CustomerID) + "?at=" + url.QueryEscape(want.At)
		if code := svc.getJSON(t, path, &got); code != 200 {
			t.Errorf("GET %s: status %d", path, code)
			continue
		}
		if (got.Score == nil) != (want.Score == nil) || (got.Score != nil && *got.Score != *want.Score) {
			t.Errorf("%s: stream score %v, offline %v", want.CustomerID, deref(got.Score), deref(want.Score))
		}
		if got.Segment != want.Segment {
			t.Errorf("%s: stream segment %q, offline %q", want.CustomerID, got.Segment, want.Segment)
		}
	}

	// Customers that end red have health.low as their latest alert.
	var red struct {
		Customers []struct {
			CustomerID string `json:"customer_id"`
		} `json:"customers"`
	}
	if code := svc.getJSON(t, "/v1/customers?band=red&limit=10000", &red); code != 200 {
		t.Fatalf("band listing: status %d", code)
	}
	if len(red.Customers) == 0 {
		t.Fatal("no customer ended red; the event log should make some red")
	}
	lastAlert := map[string]string{}
	for _, r := range readAll(t, brokers, "customer-health-alerts") {
		var ce struct {
			Type    string `json:"type"`
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal(r.Value, &ce); err != nil {
			t.Fatalf("alert %s: %v", r.Value, err)
		}
		lastAlert[ce.Subject] = ce.Type // one partition per customer: in order
	}
	for _, c := range red.Customers {
		if lastAlert[c.CustomerID] != "health.low" {
			t.Errorf("%s ended red; its latest alert is %q", c.CustomerID, lastAlert[c.CustomerID])
		}
		checkHistoryEndsRed(t, svc, c.CustomerID)
	}

	// Every bad record is in the DLQ, unchanged, with its reason.
	bad, reasons := badRecords(now)
	want := map[string]string{}
	for i, b := range bad {
		want[string(b)] = reasons[i]
	}
	dlq := readAll(t, brokers, "customer-events-dlq")
	if len(dlq) != len(bad) {
		t.Errorf("DLQ has %d records; %d bad records were sent", len(dlq), len(bad))
	}
	var got []string
	for _, r := range dlq {
		reason := header(r, alerts.HeaderDLQReason)
		if w, ok := want[string(r.Value)]; !ok {
			t.Errorf("unexpected DLQ record %q", r.Value)
		} else if reason != w {
			t.Errorf("DLQ record %q: reason %q, want %q", r.Value, reason, w)
		}
		got = append(got, reason)
	}
	sort.Strings(got)
	t.Logf("dead-lettered: %v", got)
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// checkHistoryEndsRed reads the score history of a customer that ended red
// from the service (--history-days at its default): it has points, the
// latest one red, and its changes hold the health.low that took it there.
func checkHistoryEndsRed(t *testing.T, svc *service, id string) {
	t.Helper()
	var h struct {
		WindowDays int `json:"window_days"`
		Points     []struct {
			Day   string  `json:"day"`
			Score float64 `json:"score"`
			Band  string  `json:"band"`
			Min   float64 `json:"min"`
		} `json:"points"`
		Changes []struct {
			Type string `json:"type"`
			Band string `json:"band"`
		} `json:"changes"`
	}
	path := "/v1/customers/" + url.PathEscape(id) + "/history"
	if code := svc.getJSON(t, path, &h); code != 200 {
		t.Errorf("GET %s: status %d", path, code)
		return
	}
	if h.WindowDays != 90 || len(h.Points) == 0 || h.Points[len(h.Points)-1].Band != "red" {
		t.Errorf("GET %s: window %d, points %+v; want the latest red", path, h.WindowDays, h.Points)
	}
	for _, c := range h.Changes {
		if c.Type == "health.low" && c.Band == "red" {
			return
		}
	}
	t.Errorf("GET %s: changes %+v hold no health.low", path, h.Changes)
}
