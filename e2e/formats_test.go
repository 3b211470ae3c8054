package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/scorer"
)

// TestInputFormats: the real binary reads CloudEvents produced by kcat in
// structured mode (a JSON envelope with content-type
// application/cloudevents+json) and in binary mode (ce_* headers), on an
// auto-detecting topic, and Segment calls produced by segmentio/kafka-go on
// a topic configured as segment by --input-config. Each customer's events
// fold exactly as the same events sent in the native format to a twin
// customer: the API serves both with the same score, segment, categories
// and signals. Records that look like a format but lack a field land in the
// dead-letter topic with the reason and a detail naming the format.
func TestInputFormats(t *testing.T) {
	kcat := kcatOrSkip(t)
	const (
		events, segTopic            = "formats-events", "formats-segment"
		scoreTopic, alertTopic, dlq = "formats-health", "formats-alerts", "formats-dlq"
	)
	brokers := testenv.Kafka(t, map[string]int32{events: 2, segTopic: 2, scoreTopic: 1, alertTopic: 1, dlq: 1})
	addr := strings.Join(brokers, ",")
	prefix := testenv.KeyPrefix(t)
	group := "e2e-formats-" + prefix[:len(prefix)-1]
	cfg := filepath.Join(t.TempDir(), "input.yaml")
	if err := os.WriteFile(cfg, []byte("topics:\n  "+segTopic+":\n    format: segment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	svc := startService(t, "--brokers", addr, "--redis", redisURL(t), "--redis-prefix", prefix, "--group", group,
		"--topics", events+","+segTopic, "--score-topic", scoreTopic, "--alert-topic", alertTopic, "--dlq-topic", dlq,
		"--input-config", cfg)

	t0 := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	ts := func(h int) string { return t0.Add(time.Duration(h) * time.Hour).Format(time.RFC3339) }
	var twins []string // native events of the twin customers
	twin := func(customer, typ string, h int, value float64, segment string) {
		ev := map[string]any{"customer_id": "twin-" + customer, "type": typ, "time": ts(h), "value": value}
		if segment != "" {
			ev["segment"] = segment
		}
		b, _ := json.Marshal(ev)
		twins = append(twins, string(b))
	}

	// CloudEvents, structured mode, with kcat: an envelope per line.
	var structured []string
	for i, e := range []struct {
		typ     string
		value   float64
		segment string
	}{{"login", 1, ""}, {"feature_used", 3, ""}, {"account_updated", 1, "enterprise"}} {
		data := map[string]any{"value": e.value}
		if e.segment != "" {
			data["segment"] = e.segment
		}
		b, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": fmt.Sprintf("ce-s-%d", i), "source": "/e2e", "type": e.typ,
			"subject": "ce-structured", "time": ts(i), "datacontenttype": "application/json", "data": data})
		structured = append(structured, string(b))
		twin("ce-structured", e.typ, i, e.value, e.segment)
	}
	// Its version is wrong: dead-lettered.
	structured = append(structured, `{"specversion":"0.3","id":"old","source":"/e2e","type":"login","subject":"ce-structured"}`)
	kcatRun(t, kcat, strings.Join(structured, "\n")+"\n", "-b", addr, "-t", events, "-P", "-X", "acks=all",
		"-H", "content-type=application/cloudevents+json")

	// CloudEvents, binary mode, with kcat: one record per call, its
	// attributes in ce_ headers and its data as the value.
	for i, e := range []struct {
		typ, data string
		value     float64
		segment   string
	}{{"login", `{}`, 1, ""}, {"ticket_opened", `{"value":1}`, 1, ""}, {"plan_changed", `{"segment":"smb"}`, 1, "smb"}} {
		kcatRun(t, kcat, e.data+"\n", "-b", addr, "-t", events, "-P", "-X", "acks=all", "-k", "ce-binary",
			"-H", "ce_specversion=1.0", "-H", fmt.Sprintf("ce_id=ce-b-%d", i), "-H", "ce_source=/e2e", "-H", "ce_type="+e.typ,
			"-H", "ce_subject=ce-binary", "-H", "ce_time="+ts(i), "-H", "content-type=application/json")
		twin("ce-binary", e.typ, i, e.value, e.segment)
	}
	// No subject: dead-lettered.
	kcatRun(t, kcat, `{"value":1}`+"\n", "-b", addr, "-t", events, "-P", "-X", "acks=all",
		"-H", "ce_specversion=1.0", "-H", "ce_id=nosubject", "-H", "ce_source=/e2e", "-H", "ce_type=login")

	// Segment calls with segmentio/kafka-go.
	calls := []string{
		fmt.Sprintf(`{"type":"identify","messageId":"s-0","userId":"seg-acme","traits":{"segment":"enterprise"},"timestamp":%q}`, ts(0)),
		fmt.Sprintf(`{"type":"track","event":"login","messageId":"s-1","userId":"u-1","context":{"groupId":"seg-acme"},"timestamp":%q}`, ts(1)),
		fmt.Sprintf(`{"type":"track","event":"feature_used","messageId":"s-2","userId":"u-2","groupId":"seg-acme","properties":{"value":4},"timestamp":%q}`, ts(2)),
		fmt.Sprintf(`{"type":"group","messageId":"s-3","userId":"u-2","groupId":"seg-acme","traits":{"name":"Acme"},"timestamp":%q}`, ts(2)),
		// Dead-lettered: no account, and a page call.
		`{"type":"track","event":"login","anonymousId":"a-1"}`,
		`{"type":"page","name":"Pricing","userId":"u-1"}`,
	}
	twin("seg-acme", "identify", 0, 1, "enterprise")
	twin("seg-acme", "login", 1, 1, "")
	twin("seg-acme", "feature_used", 2, 4, "")
	twin("seg-acme", "group", 2, 1, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: segTopic, RequiredAcks: kafka.RequireAll, BatchTimeout: 10 * time.Millisecond, Balancer: &kafka.Murmur2Balancer{}}
	var msgs []kafka.Message
	for _, c := range calls {
		msgs = append(msgs, kafka.Message{Value: []byte(c)})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("kafka-go: %v", err)
	}
	_ = w.Close()

	// The twins, native, with kcat.
	kcatRun(t, kcat, strings.Join(twins, "\n")+"\n", "-b", addr, "-t", events, "-P", "-X", "acks=all")

	waitCommitted(t, brokers, group, events, 2*time.Minute)
	waitCommitted(t, brokers, group, segTopic, 2*time.Minute)

	at := url.QueryEscape(ts(3))
	for customer, segment := range map[string]string{"ce-structured": "enterprise", "ce-binary": "smb", "seg-acme": "enterprise"} {
		var got, want map[string]any
		if code := svc.getJSON(t, "/v1/customers/"+customer+"?at="+at, &got); code != 200 {
			t.Errorf("GET /v1/customers/%s: %d", customer, code)
			continue
		}
		if code := svc.getJSON(t, "/v1/customers/twin-"+customer+"?at="+at, &want); code != 200 {
			t.Errorf("GET /v1/customers/twin-%s: %d", customer, code)
			continue
		}
		if got["segment"] != segment || got["score"] == nil {
			t.Errorf("%s: segment %v, score %v; want segment %s and a score", customer, got["segment"], got["score"], segment)
		}
		// The bands and the forecast (the instants the band changes) are
		// left out: the band's hysteresis depends on how the events were
		// split into batches (each binary-mode record is its own kcat
		// call), not on how they were decoded.
		for _, k := range []string{"customer_id", "band", "event_band", "forecast"} {
			delete(got, k)
			delete(want, k)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Errorf("%s folds differently from its native twin:\n got %s\nwant %s", customer, g, w)
		}
	}

	// Each record counted in the format it was read in.
	resp, err := http.Get(svc.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for format, n := range map[string]int{"native": len(twins), "cloudevents": len(structured) + 4, "segment": len(calls)} {
		if line := fmt.Sprintf("healthscore_input_records_total{format=%q} %d\n", format, n); !bytes.Contains(metrics, []byte(line)) {
			t.Errorf("/metrics has no %q", strings.TrimSpace(line))
		}
	}

	wantDLQ := map[string]string{ // source topic + detail fragment → reason
		events + " CloudEvent in structured mode (content-type application/cloudevents+json) but its specversion": scorer.ReasonInvalidCloudEvent,
		events + " CloudEvent in binary mode (a ce_specversion header) but has no subject":                        scorer.ReasonMissingCustomerID,
		segTopic + " Segment track call (the topic's format) but has no groupId, context.groupId or userId":       scorer.ReasonMissingCustomerID,
		segTopic + " page calls are not read": scorer.ReasonUnsupportedSegmentCall,
	}
	recs := readAll(t, brokers, dlq)
	if len(recs) != len(wantDLQ) {
		t.Errorf("DLQ has %d records, want %d", len(recs), len(wantDLQ))
	}
	found := map[string]bool{}
	for _, r := range recs {
		reason, detail, src := header(r, alerts.HeaderDLQReason), header(r, alerts.HeaderDLQDetail), header(r, alerts.HeaderDLQSourceTopic)
		matched := false
		for k, want := range wantDLQ {
			topic, frag, _ := strings.Cut(k, " ")
			if src == topic && strings.Contains(detail, frag) {
				matched, found[k] = true, true
				if reason != want {
					t.Errorf("DLQ record %q: reason %q, want %q", r.Value, reason, want)
				}
			}
		}
		if !matched {
			t.Errorf("unexpected DLQ record %q from %s: %s: %s", r.Value, src, reason, detail)
		}
	}
	for k := range wantDLQ {
		if !found[k] {
			t.Errorf("no DLQ record matches %q", k)
		}
	}
}

// kcatRun runs kcat with args and stdin.
func kcatRun(t *testing.T, kcat, stdin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
