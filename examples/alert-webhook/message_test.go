package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
)

var t0 = time.Date(2026, 11, 20, 10, 15, 30, 0, time.UTC).UnixNano()

// encode makes the records package alerts publishes for c.
func encode(t *testing.T, c *alerts.Change) map[string][]byte {
	t.Helper()
	enc, err := alerts.NewEncoder(alerts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, r := range enc.AppendRecords(nil, c) {
		out[alerts.TypeOf(r)] = r.Value
	}
	return out
}

func text(t *testing.T, value []byte) string {
	t.Helper()
	a, err := decodeAlert(value)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, value)
	}
	var m slackMessage
	if err := json.Unmarshal(render(a), &m); err != nil {
		t.Fatal(err)
	}
	return m.Text
}

var model = &scorer.Model{Name: "b2b-saas", Version: "2026.11.1"}

// TestRenderEveryAlertType renders every alert type package alerts
// produces, made by its encoder: first scores, transitions, drops, overrides
// and every kind of cause.
func TestRenderEveryAlertType(t *testing.T) {
	drivers := []scorer.Driver{{Category: "support", Signal: "tickets", Points: -13.64}, {Category: "engagement", Signal: "logins", Points: 2.5}}

	// A first score, already red, caused by an input event.
	low := encode(t, &alerts.Change{CustomerID: "globex", Model: model, EventTime: t0,
		Cause:   alerts.Cause{EventID: "evt-1", Topic: "customer-events", Partition: 3, Offset: 48368},
		Outcome: scorer.Outcome{Eval: scorer.Evaluation{HasScore: true, Score: 10, Band: scorer.BandRed}, Changed: true, Alert: scorer.AlertLow, Drivers: drivers}})
	id := alerts.EventID(alerts.TypeLow, "globex", alerts.Cause{Topic: "customer-events", Partition: 3, Offset: 48368})
	want := ":red_circle: *globex* entered red: score *10* (first score)\n" +
		"Segment: base · model b2b-saas 2026.11.1\n" +
		"Top drivers:\n• support / tickets: -13.64\n• engagement / logins: +2.5\n" +
		"health.low · 2026-11-20 10:15:30 UTC · cause: event evt-1 (customer-events/3@48368) · id " + id
	if got := text(t, low[alerts.TypeLow]); got != want {
		t.Errorf("health.low:\n%s\nwant\n%s", got, want)
	}
	if _, err := decodeAlert(low[alerts.TypeScoreChanged]); !errors.Is(err, errNotAlert) {
		t.Errorf("a score change decodes as an alert: %v", err)
	}

	// Recovered, from a model reload, in a segment.
	rec := encode(t, &alerts.Change{CustomerID: "globex", Model: model, EventTime: t0, Cause: alerts.Cause{Reload: true, At: t0},
		Outcome: scorer.Outcome{Eval: scorer.Evaluation{HasScore: true, Score: 83.29, Band: scorer.BandGreen, Segment: "enterprise"},
			HadPrevious: true, PrevScore: 10, PrevBand: scorer.BandRed, Alert: scorer.AlertRecovered}})
	id = alerts.EventID(alerts.TypeRecovered, "globex", alerts.Cause{Reload: true, At: t0})
	want = ":large_green_circle: *globex* recovered: score *83.29*, band green (was 10, red)\n" +
		"Segment: enterprise · model b2b-saas 2026.11.1\n" +
		"health.recovered · 2026-11-20 10:15:30 UTC · cause: a model reload · id " + id
	if got := text(t, rec[alerts.TypeRecovered]); got != want {
		t.Errorf("health.recovered:\n%s\nwant\n%s", got, want)
	}

	// Low and dropped in one decay-driven evaluation, under an override, for
	// a customer whose id needs escaping in Slack's mrkdwn.
	both := encode(t, &alerts.Change{CustomerID: "a<b>&c", EventTime: t0, Cause: alerts.Cause{Decay: true, At: t0},
		Outcome: scorer.Outcome{Eval: scorer.Evaluation{HasScore: true, Score: 35, Band: scorer.BandRed,
			Override: &scorer.Override{Value: 35, By: "ana@example.com", Reason: "churn risk <confirmed>", Expires: t0 + int64(48*time.Hour)}},
			HadPrevious: true, PrevScore: 61.1, PrevBand: scorer.BandYellow, Alert: scorer.AlertLow,
			Dropped: true, Baseline: 71.5, CooldownUntil: t0 + int64(7*24*time.Hour), Drivers: drivers[:1]}})
	if len(both) != 2 {
		t.Fatalf("records %v", both)
	}
	for typ, v := range both {
		got := text(t, v)
		for _, s := range []string{
			"*a&lt;b&gt;&amp;c*", "score *35*", "(was 61.1, yellow)",
			"\n:warning: manual override in force: 35 by ana@example.com (churn risk &lt;confirmed&gt;) until 2026-11-22 10:15:30 UTC",
			"\n• support / tickets: -13.64", "cause: no new events (the score decayed)",
			typ + " · ", "id " + alerts.EventID(typ, "a<b>&c", alerts.Cause{Decay: true, At: t0}),
		} {
			if !strings.Contains(got, s) {
				t.Errorf("%s: %q missing in\n%s", typ, s, got)
			}
		}
		if strings.Contains(got, "a<b>") || strings.Contains(got, "model ") {
			t.Errorf("%s: unescaped id, or a model there was none:\n%s", typ, got)
		}
	}
	if got := text(t, both[alerts.TypeDropped]); !strings.HasPrefix(got, ":chart_with_downwards_trend: *a&lt;b&gt;&amp;c* dropped 36.5 points below its baseline 71.5: score *35*, band red") {
		t.Errorf("health.dropped:\n%s", got)
	}
}

func TestDecodeAlertRejects(t *testing.T) {
	for _, v := range []string{
		`not json`,
		`{"type":"health.low","id":"1","data":{"customer_id":"a"}}`,                                 // no specversion
		`{"specversion":"1.0","type":"health.low","data":{"customer_id":"a"}}`,                      // no id
		`{"specversion":"1.0","type":"health.low","id":"1","data":{}}`,                              // no customer
		`{"specversion":"1.0","type":"health.low","id":"1","data":{"customer_id":"a","score":"x"}}`, // wrong type
	} {
		if _, err := decodeAlert([]byte(v)); err == nil || errors.Is(err, errNotAlert) {
			t.Errorf("decodeAlert(%s) = %v, want a parse error", v, err)
		}
	}
}

// FuzzRender: whatever the record, decoding never panics, and an alert
// that decodes renders to valid JSON with its id in the text.
func FuzzRender(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","type":"health.dropped","source":"s","id":"i","data":{"customer_id":"c","drop":1,"drivers":[{"category":"a","signal":"b","points":-1}],"overridden":{"value":1,"expires_at":null}}}`))
	f.Add([]byte(`{"specversion":"1.0","type":"health.low","id":"<&>","data":{"customer_id":"x","previous_score":null,"cause":{"decay":true}}}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		a, err := decodeAlert(v)
		if err != nil {
			return
		}
		var m slackMessage
		if err := json.Unmarshal(render(a), &m); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(m.Text, " · id "+esc(a.ID)) {
			t.Fatalf("text %q does not end with the id", m.Text)
		}
	})
}

func TestSeenIDsIsBounded(t *testing.T) {
	s := newSeenIDs(3)
	for _, k := range []string{"a", "b", "a", "c", "d"} { // "a" again is not a new entry
		s.add(k)
	}
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true} {
		if s.has(k) != want {
			t.Errorf("has(%q) = %v, want %v", k, !want, want)
		}
	}
	if len(s.set) != 3 || len(s.ring) != 3 {
		t.Fatalf("%d keys in the set, %d in the ring; want 3", len(s.set), len(s.ring))
	}
	for i := range 1000 {
		s.add(string(rune('e' + i)))
	}
	if len(s.set) != 3 || len(s.ring) != 3 || !s.has(string(rune('e'+999))) || s.has(string(rune('e'+996))) {
		t.Fatalf("after 1000 adds: %d keys, ring %q", len(s.set), s.ring)
	}
}
