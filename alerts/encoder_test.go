package alerts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/scorer"
)

// The documented schema of the output events (docs/events.md). Tests decode
// with DisallowUnknownFields so an undocumented field fails them.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

type eventData struct {
	CustomerID    string          `json:"customer_id"`
	Score         float64         `json:"score"`
	PreviousScore *float64        `json:"previous_score"`
	Band          string          `json:"band"`
	PreviousBand  *string         `json:"previous_band"`
	Segment       string          `json:"segment"`
	Model         scorer.ModelRef `json:"model"`
	EventTime     string          `json:"event_time"`
	Cause         struct {
		EventID   *string `json:"event_id"`
		Topic     string  `json:"topic"`
		Partition int32   `json:"partition"`
		Offset    int64   `json:"offset"`
		Decay     bool    `json:"decay"`
		At        string  `json:"at"`
	} `json:"cause"`
	Overridden *struct {
		Value     float64 `json:"value"`
		By        string  `json:"by"`
		Reason    string  `json:"reason"`
		ExpiresAt *string `json:"expires_at"`
	} `json:"overridden"`
	Baseline      *float64        `json:"baseline"`
	Drop          *float64        `json:"drop"`
	CooldownUntil *string         `json:"cooldown_until"`
	Drivers       []scorer.Driver `json:"drivers"`
	Categories    []struct {
		Name   string   `json:"name"`
		Score  *float64 `json:"score"`
		Weight float64  `json:"weight"`
		Points float64  `json:"points"`
	} `json:"categories"`
}

var (
	scoreKeys = []string{"band", "categories", "cause", "customer_id", "drivers", "event_time", "model", "previous_band", "previous_score", "score", "segment"}
	alertKeys = []string{"band", "cause", "customer_id", "drivers", "event_time", "model", "previous_band", "previous_score", "score", "segment"}
	ceKeys    = []string{"data", "datacontenttype", "id", "source", "specversion", "subject", "time", "type"}
)

// dataKeys are the sorted data keys of an event of type typ.
func dataKeys(typ string, overridden bool) []string {
	want := slices.Clone(alertKeys)
	switch typ {
	case TypeScoreChanged:
		want = slices.Clone(scoreKeys)
	case TypeDropped:
		want = append(want, "baseline", "drop", "cooldown_until")
	}
	if overridden {
		want = append(want, "overridden")
	}
	slices.Sort(want)
	return want
}

func strict(t testing.TB, b []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("cannot decode %s: %v", b, err)
	}
	if d.More() {
		t.Fatalf("trailing data after %s", b)
	}
}

func keys(t testing.TB, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("cannot decode %s: %v", b, err)
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkEvent asserts r is a valid output record for change c and returns its
// decoded event and data.
func checkEvent(t testing.TB, e *Encoder, r *kgo.Record, c *Change) (cloudEvent, eventData) {
	t.Helper()
	if string(r.Key) != c.CustomerID {
		t.Errorf("key = %q, want %q", r.Key, c.CustomerID)
	}
	if len(r.Headers) != 1 || r.Headers[0].Key != "content-type" || string(r.Headers[0].Value) != "application/cloudevents+json" {
		t.Errorf("headers = %v", r.Headers)
	}
	if !json.Valid(r.Value) {
		t.Fatalf("invalid JSON: %q", r.Value)
	}
	if got := keys(t, r.Value); !slices.Equal(got, ceKeys) {
		t.Errorf("CloudEvents attributes = %v, want %v", got, ceKeys)
	}
	var ce cloudEvent
	strict(t, r.Value, &ce)
	if ce.SpecVersion != "1.0" || ce.Source != e.Config().Source || ce.DataContentType != "application/json" {
		t.Errorf("attributes: %+v", ce)
	}
	if ce.ID == "" || ce.ID != EventID(ce.Type, c.CustomerID, c.Cause) {
		t.Errorf("id = %q, want %q", ce.ID, EventID(ce.Type, c.CustomerID, c.Cause))
	}
	if TypeOf(r) != ce.Type {
		t.Errorf("TypeOf = %q, want %q", TypeOf(r), ce.Type)
	}
	wantTopic := e.Config().AlertTopic
	if ce.Type == TypeScoreChanged {
		wantTopic = e.Config().ScoreTopic
	}
	if r.Topic != wantTopic {
		t.Errorf("topic = %q, want %q", r.Topic, wantTopic)
	}
	ts, err := time.Parse(time.RFC3339Nano, ce.Time)
	if err != nil || ts.UnixNano() != c.EventTime || !strings.HasSuffix(ce.Time, "Z") {
		t.Errorf("time = %q (%v), want %d in UTC", ce.Time, err, c.EventTime)
	}
	var want string
	_ = json.Unmarshal(must(json.Marshal(c.CustomerID)), &want)
	if ce.Subject != want {
		t.Errorf("subject = %q, want %q", ce.Subject, want)
	}
	wantKeys := dataKeys(ce.Type, c.Outcome.Eval.Override != nil)
	if got := keys(t, ce.Data); !slices.Equal(got, wantKeys) {
		t.Errorf("data keys = %v, want %v", got, wantKeys)
	}
	var d eventData
	strict(t, ce.Data, &d)
	if d.CustomerID != want {
		t.Errorf("customer_id = %q, want %q", d.CustomerID, want)
	}
	if d.EventTime != ce.Time {
		t.Errorf("event_time = %q, time = %q", d.EventTime, ce.Time)
	}
	return ce, d
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func newEncoder(t testing.TB) *Encoder {
	t.Helper()
	e, err := NewEncoder(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC).UnixNano()

// story folds events into a fresh state and steps after each one, returning
// every outcome with its change.
type story struct {
	m      *scorer.Model
	st     *scorer.State
	id     string
	offset int64
}

func newStory(id, segment string) *story {
	m := scorer.DefaultModel()
	s := &story{m: m, st: m.NewState(), id: id}
	s.st.Segment = segment
	return s
}

func (s *story) step(at int64, types ...string) *Change {
	for _, typ := range types {
		ev := scorer.Event{ID: fmt.Sprintf("ev-%d", s.offset), CustomerID: s.id, Type: typ, Time: at, HasTime: true, Value: 1}
		s.m.Apply(s.st, &ev)
		s.offset++
	}
	o := s.m.Step(s.st, s.st.LastEvent)
	return &Change{
		CustomerID: s.id, Outcome: o, Model: s.m, EventTime: s.st.LastEvent,
		Cause: Cause{EventID: fmt.Sprintf("ev-%d", s.offset-1), Topic: "customer-events", Partition: 3, Offset: s.offset - 1},
	}
}

func healthy() []string {
	var ts []string
	for range 30 {
		ts = append(ts, "login", "feature_used", "feature_used", "feature_used", "kb_viewed")
	}
	return append(ts, "payment_succeeded")
}

func TestFirstScoreInRed(t *testing.T) {
	e := newEncoder(t)
	s := newStory("acme", "")
	c := s.step(t0, "ticket_escalated")
	if !c.Outcome.Changed || c.Outcome.Alert != scorer.AlertLow {
		t.Fatalf("story: want a first score in red, got %+v", c.Outcome)
	}
	recs := e.AppendRecords(nil, c)
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2", len(recs))
	}
	ce, d := checkEvent(t, e, recs[0], c)
	if ce.Type != TypeScoreChanged {
		t.Fatalf("first record type = %q", ce.Type)
	}
	if d.PreviousScore != nil || d.PreviousBand != nil {
		t.Errorf("previous_score = %v, previous_band = %v; want null on a first score", d.PreviousScore, d.PreviousBand)
	}
	if d.Band != "red" || d.Score != scorer.Round2(c.Outcome.Eval.Score) {
		t.Errorf("band %q score %v; outcome %v %v", d.Band, d.Score, c.Outcome.Eval.Band, c.Outcome.Eval.Score)
	}
	if d.Model != (scorer.ModelRef{Name: "b2b-saas", Version: "2026.11.1"}) {
		t.Errorf("model = %+v", d.Model)
	}
	if d.Cause.EventID == nil || *d.Cause.EventID != "ev-0" || d.Cause.Topic != "customer-events" || d.Cause.Partition != 3 || d.Cause.Offset != 0 {
		t.Errorf("cause = %+v", d.Cause)
	}
	if ce.Time != "2026-11-20T10:00:00.123456789Z" {
		t.Errorf("time = %q", ce.Time)
	}
	if len(d.Categories) != len(c.Outcome.Eval.Categories) {
		t.Fatalf("categories = %d, want %d", len(d.Categories), len(c.Outcome.Eval.Categories))
	}
	var sum float64
	for i, cat := range d.Categories {
		ev := c.Outcome.Eval.Categories[i]
		if cat.Name != ev.Name || cat.Weight != ev.Weight || cat.Points != scorer.Round2(ev.Points) {
			t.Errorf("category %d = %+v, want %+v", i, cat, ev)
		}
		if ev.HasData != (cat.Score != nil) || (cat.Score != nil && (*cat.Score < 0 || *cat.Score > 100 || *cat.Score != scorer.Round2(100*ev.Score))) {
			t.Errorf("category %s score = %v, want %v (has data %v)", cat.Name, cat.Score, 100*ev.Score, ev.HasData)
		}
		sum += cat.Points
	}
	if math.Abs(sum-d.Score) > 0.05 {
		t.Errorf("category points add up to %v, score is %v", sum, d.Score)
	}
	if len(d.Drivers) == 0 || len(d.Drivers) != len(c.Outcome.Drivers) {
		t.Fatalf("drivers = %+v, want %+v", d.Drivers, c.Outcome.Drivers)
	}
	for i, dr := range d.Drivers {
		want := c.Outcome.Drivers[i]
		if dr.Category != want.Category || dr.Signal != want.Signal || dr.Points != scorer.Round2(want.Points) {
			t.Errorf("driver %d = %+v, want %+v", i, dr, want)
		}
	}

	ce2, d2 := checkEvent(t, e, recs[1], c)
	if ce2.Type != TypeLow || d2.Band != "red" || d2.PreviousBand != nil || d2.Categories != nil {
		t.Errorf("alert: type %q, data %+v", ce2.Type, d2)
	}
	if ce2.ID == ce.ID {
		t.Errorf("score and alert share id %q", ce.ID)
	}
}

func TestRecoveredAndQuietSteps(t *testing.T) {
	e := newEncoder(t)
	s := newStory("acme", "smb")
	first := s.step(t0, "ticket_escalated")
	if first.Outcome.Alert != scorer.AlertLow {
		t.Fatalf("story: want a low alert first, got %+v", first.Outcome)
	}
	c := s.step(t0+int64(time.Hour), healthy()...)
	if c.Outcome.Alert != scorer.AlertRecovered {
		t.Fatalf("story: want a recovery, got band %v score %v", c.Outcome.Eval.Band, c.Outcome.Eval.Score)
	}
	recs := e.AppendRecords(make([]*kgo.Record, 0, 4), c)
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2", len(recs))
	}
	for i, want := range []string{TypeScoreChanged, TypeRecovered} {
		ce, d := checkEvent(t, e, recs[i], c)
		if ce.Type != want {
			t.Errorf("record %d type = %q, want %q", i, ce.Type, want)
		}
		if d.PreviousBand == nil || *d.PreviousBand != "red" || d.PreviousScore == nil || *d.PreviousScore != scorer.Round2(first.Outcome.Eval.Score) {
			t.Errorf("record %d previous = %v %v", i, d.PreviousScore, d.PreviousBand)
		}
		if d.Band == "red" || d.Segment != "smb" {
			t.Errorf("record %d band %q segment %q", i, d.Band, d.Segment)
		}
	}

	// The same state a second later publishes nothing.
	quiet := s.step(t0 + int64(time.Hour) + 1)
	if quiet.Outcome.Changed || quiet.Outcome.Alert != scorer.AlertNone {
		t.Fatalf("story: want no change, got %+v", quiet.Outcome)
	}
	if recs := e.AppendRecords(nil, quiet); len(recs) != 0 {
		t.Errorf("unchanged outcome gave %d records", len(recs))
	}
	// A score change without a band change gives only score_changed.
	c = s.step(t0+int64(time.Hour)+2, "ticket_opened", "ticket_opened", "ticket_opened")
	if !c.Outcome.Changed || c.Outcome.Alert != scorer.AlertNone {
		t.Fatalf("story: want a plain change, got %+v", c.Outcome)
	}
	recs = e.AppendRecords(nil, c)
	if len(recs) != 1 || TypeOf(recs[0]) != TypeScoreChanged {
		t.Fatalf("plain change gave %d records", len(recs))
	}
	checkEvent(t, e, recs[0], c)

	// No score: nothing, whatever the flags say.
	none := &Change{CustomerID: "x", Outcome: scorer.Outcome{Changed: true, Alert: scorer.AlertLow}}
	if recs := e.AppendRecords(nil, none); len(recs) != 0 {
		t.Errorf("outcome without a score gave %d records", len(recs))
	}
}

func TestEmptyEventIDOmittedAndNilModel(t *testing.T) {
	e := newEncoder(t)
	c := newStory("acme", "").step(t0, "login")
	c.Cause.EventID = ""
	c.Model = nil
	c.EventTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	recs := e.AppendRecords(nil, c)
	if len(recs) == 0 {
		t.Fatal("no records")
	}
	var ce cloudEvent
	strict(t, recs[0].Value, &ce)
	if ce.Time != "2026-01-02T03:04:05Z" {
		t.Errorf("time without nanoseconds = %q", ce.Time)
	}
	if bytes.Contains(ce.Data, []byte("event_id")) {
		t.Errorf("empty event_id not omitted: %s", ce.Data)
	}
	if !bytes.Contains(ce.Data, []byte(`"model":null`)) {
		t.Errorf("nil model: %s", ce.Data)
	}
}

func TestEventIDs(t *testing.T) {
	base := Cause{EventID: "e", Topic: "customer-events", Partition: 1, Offset: 42}
	id := EventID(TypeScoreChanged, "acme", base)
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("id %q is not 32 lower-case hex digits", id)
	}
	if EventID(TypeScoreChanged, "acme", base) != id {
		t.Error("id is not deterministic")
	}
	other := base
	other.EventID = "different"
	if EventID(TypeScoreChanged, "acme", other) != id {
		t.Error("id depends on the cause's event id")
	}
	seen := map[string]string{}
	add := func(name, id string) {
		if prev, ok := seen[id]; ok {
			t.Errorf("%s and %s share id %s", prev, name, id)
		}
		seen[id] = name
	}
	for _, typ := range []string{TypeScoreChanged, TypeLow, TypeRecovered} {
		for _, cust := range []string{"acme", "acme2", "", "a\x00b", "1"} {
			for _, topic := range []string{"customer-events", "customer-events2", "t"} {
				for _, p := range []int32{0, 1, 11} {
					for _, off := range []int64{0, 1, 2, 11, 111} {
						add(fmt.Sprintf("%s/%q/%s/%d/%d", typ, cust, topic, p, off),
							EventID(typ, cust, Cause{Topic: topic, Partition: p, Offset: off}))
					}
				}
			}
		}
	}
	// The id in an encoded record does not depend on the source or topics.
	c := newStory("acme", "").step(t0, "ticket_escalated")
	e1 := newEncoder(t)
	e2, err := NewEncoder(Config{ScoreTopic: "s", AlertTopic: "a", DLQTopic: "d", Source: "urn:other"})
	if err != nil {
		t.Fatal(err)
	}
	r1, r2 := e1.AppendRecords(nil, c), e2.AppendRecords(nil, c)
	for i := range r1 {
		var a, b cloudEvent
		strict(t, r1[i].Value, &a)
		strict(t, r2[i].Value, &b)
		if a.ID != b.ID || a.ID != EventID(a.Type, "acme", c.Cause) {
			t.Errorf("record %d: ids %q and %q", i, a.ID, b.ID)
		}
	}
	// Re-encoding the same change gives byte-identical records.
	r3 := e1.AppendRecords(nil, c)
	for i := range r1 {
		if !bytes.Equal(r1[i].Value, r3[i].Value) {
			t.Errorf("record %d differs on re-encoding", i)
		}
	}
}

var hostile = []string{
	"", "plain", `quo"te`, `back\slash`, "new\nline", "tab\t", "cr\r", "nul\x00", "bell\x07", "esc\x1b", "del\x7f",
	"\u2028line\u2029para", "<script>&amp;</script>", "é日本語🎉", "\xff", "a\xffb", "\xc3", "\xc3(", "\xed\xa0\x80",
	"\xf4\x90\x80\x80", "\xef\xbf\xbd", "\ufeffbom", "\u00ad\u200b", strings.Repeat("x", 300), "/\\u0000",
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range hostile {
		checkString(t, s)
	}
	for i := range 256 {
		checkString(t, string([]byte{byte(i)}))
		checkString(t, "a"+string([]byte{byte(i)})+"z")
	}
}

func checkString(t testing.TB, s string) {
	t.Helper()
	b := appendString(nil, s)
	var got, want string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("appendString(%q) = %s: invalid JSON: %v", s, b, err)
	}
	if err := json.Unmarshal(must(json.Marshal(s)), &want); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("appendString(%q) decodes to %q; encoding/json gives %q", s, got, want)
	}
	if bytes.ContainsAny(b, "\u2028\u2029") {
		t.Fatalf("appendString(%q) = %s keeps a raw U+2028 or U+2029", s, b)
	}
	for _, c := range b {
		if c < 0x20 {
			t.Fatalf("appendString(%q) = %q keeps a control character", s, b)
		}
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 72.35, -3.07, 100, 1e-7, 1.5e-7, 1e20, 1e21, 1.23e25, -1e-9, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, 1.0 / 3} {
		got, want := string(appendFloat(nil, f)), string(must(json.Marshal(f)))
		if got != want {
			t.Errorf("appendFloat(%v) = %s, encoding/json: %s", f, got, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := string(appendFloat(nil, f)); got != "null" {
			t.Errorf("appendFloat(%v) = %s, want null", f, got)
		}
	}
	if got := string(appendFloat(nil, math.Copysign(0, -1))); got != "0" {
		t.Errorf("appendFloat(-0) = %s", got)
	}
	if got := string(appendRound2(nil, 72.34567)); got != "72.35" {
		t.Errorf("appendRound2(72.34567) = %s", got)
	}
	if got := string(appendRound2(nil, -0.001)); got != "0" {
		t.Errorf("appendRound2(-0.001) = %s", got)
	}
}

func TestHostileStrings(t *testing.T) {
	e := newEncoder(t)
	for _, id := range hostile {
		c := newStory(id, id).step(t0, "ticket_escalated")
		c.Cause.EventID = id + "-ev"
		c.Cause.Topic = id
		m := *c.Model
		m.Name, m.Version = id, id
		c.Model = &m
		recs := e.AppendRecords(nil, c)
		if len(recs) != 2 {
			t.Fatalf("%q: %d records", id, len(recs))
		}
		var want string
		_ = json.Unmarshal(must(json.Marshal(id)), &want)
		for _, r := range recs {
			_, d := checkEvent(t, e, r, c)
			if d.Segment != want || d.Model.Name != want || d.Model.Version != want || d.Cause.Topic != want || *d.Cause.EventID != want+"-ev" {
				t.Errorf("%q: data %+v", id, d)
			}
		}
	}
}

func TestTypeOf(t *testing.T) {
	e := newEncoder(t)
	dl := e.DeadLetter(&kgo.Record{Value: []byte(`{"specversion":"1.0","type":"health.low"`)}, "x", "y")
	for _, tc := range []struct {
		r    *kgo.Record
		want string
	}{
		{&kgo.Record{Value: []byte(`{"specversion":"1.0","type":"health.low","x":1}`)}, TypeLow},
		{&kgo.Record{Value: []byte(`{"specversion":"1.0","type":"health.lowest"}`)}, LabelUnknown},
		{&kgo.Record{Value: []byte(`{"specversion":"1.0","type":"health.low`)}, LabelUnknown},
		{&kgo.Record{Value: []byte(`{"type":"health.low"}`)}, LabelUnknown},
		{&kgo.Record{}, LabelUnknown},
		{&kgo.Record{Headers: []kgo.RecordHeader{{Key: HeaderDLQReason}}}, LabelDeadLetter},
		{dl, LabelDeadLetter}, // a dead letter of a record that looks like an event
	} {
		if got := TypeOf(tc.r); got != tc.want {
			t.Errorf("TypeOf(%q) = %q, want %q", tc.r.Value, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c != (Config{ScoreTopic: "customer-health", AlertTopic: "customer-health-alerts", DLQTopic: "customer-events-dlq", Source: "healthscore"}) {
		t.Errorf("defaults: %+v", c)
	}
	same := Config{ScoreTopic: "out", AlertTopic: "out"}
	if err := same.Validate(); err != nil {
		t.Errorf("one topic for scores and alerts: %v", err)
	}
	for _, tc := range []struct {
		c     Config
		field string
	}{
		{Config{ScoreTopic: "bad topic"}, "ScoreTopic"},
		{Config{AlertTopic: ".."}, "AlertTopic"},
		{Config{DLQTopic: strings.Repeat("a", 250)}, "DLQTopic"},
		{Config{DLQTopic: "customer-health"}, "DLQTopic"},
		{Config{Source: "has space"}, "Source"},
		{Config{Source: "%zz"}, "Source"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: error %v, want one naming %s", tc.c, err, tc.field)
		}
		if _, err := NewEncoder(tc.c); err == nil {
			t.Errorf("NewEncoder(%+v) accepted it", tc.c)
		}
	}
}

func TestAppendRecordsAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not stable under the race detector; scripts/test.sh runs this test without -race")
	}
	e := newEncoder(t)
	c := newStory("acme", "").step(t0, "ticket_escalated")
	dst := make([]*kgo.Record, 0, 8)
	allocs := testing.AllocsPerRun(100, func() { dst = e.AppendRecords(dst[:0], c) })
	// One for the keys and values, one for the records.
	if allocs > 2 {
		t.Errorf("AppendRecords allocates %v times per call, want at most 2", allocs)
	}
}

func BenchmarkAppendRecords(b *testing.B) {
	e := newEncoder(b)
	s := newStory("customer-000123", "enterprise")
	c := s.step(t0, "ticket_escalated") // score change + low alert
	plain := *c
	plain.Outcome.Alert = scorer.AlertNone // score change only
	for _, bc := range []struct {
		name string
		c    *Change
	}{{"score+alert", c}, {"score", &plain}} {
		b.Run(bc.name, func(b *testing.B) {
			dst := make([]*kgo.Record, 0, 8)
			n := 0
			for b.Loop() {
				dst = e.AppendRecords(dst[:0], bc.c)
				n = 0
				for _, r := range dst {
					n += len(r.Value)
				}
			}
			b.SetBytes(int64(n))
		})
	}
}

// BenchmarkEncodingJSON is the reflection-based baseline: the same event
// built as structs and marshalled with encoding/json.
func BenchmarkEncodingJSON(b *testing.B) {
	s := newStory("customer-000123", "enterprise")
	c := s.step(t0, "ticket_escalated")
	type category struct {
		Name   string   `json:"name"`
		Score  *float64 `json:"score"`
		Weight float64  `json:"weight"`
		Points float64  `json:"points"`
	}
	for b.Loop() {
		cats := make([]category, len(c.Outcome.Eval.Categories))
		for i, cs := range c.Outcome.Eval.Categories {
			sc := scorer.Round2(100 * cs.Score)
			cats[i] = category{cs.Name, &sc, cs.Weight, scorer.Round2(cs.Points)}
		}
		data := map[string]any{
			"customer_id": c.CustomerID, "score": scorer.Round2(c.Outcome.Eval.Score), "previous_score": nil,
			"band": c.Outcome.Eval.Band.String(), "previous_band": nil, "segment": c.Outcome.Eval.Segment,
			"model": scorer.ModelRef{Name: c.Model.Name, Version: c.Model.Version}, "event_time": scorer.FormatTime(c.EventTime),
			"cause":   map[string]any{"event_id": c.Cause.EventID, "topic": c.Cause.Topic, "partition": c.Cause.Partition, "offset": c.Cause.Offset},
			"drivers": c.Outcome.Drivers, "categories": cats,
		}
		ev := map[string]any{"specversion": "1.0", "type": TypeScoreChanged, "source": "healthscore", "id": EventID(TypeScoreChanged, c.CustomerID, c.Cause),
			"subject": c.CustomerID, "time": scorer.FormatTime(c.EventTime), "datacontenttype": "application/json", "data": data}
		_ = must(json.Marshal(ev))
	}
}

// trendModelYAML is a one-category model with a trend section: a login
// signal and a negative ticket signal.
const trendModelYAML = `name: trend
version: "7"
bands: {red: 60, yellow: 80}
trend: {drop_points: 15, baseline_half_life: 14d, cooldown: 7d}
categories:
  - name: c
    weight: 1
    signals:
      - {name: logins, event: login, kind: count, half_life: 1d, target: 4}
      - {name: tickets, event: ticket, kind: count, half_life: 1d, target: 4, direction: negative}
`

func TestDroppedOverriddenAndDecay(t *testing.T) {
	e := newEncoder(t)
	m, err := scorer.ParseModel("m.yaml", []byte(trendModelYAML))
	if err != nil {
		t.Fatal(err)
	}
	st := m.NewState()
	apply := func(typ string, at int64, n int) {
		for range n {
			ev := scorer.Event{CustomerID: "acme", Type: typ, Time: at, HasTime: true, Value: 1}
			m.Apply(st, &ev)
		}
	}
	apply("login", t0, 4)
	m.Step(st, t0)
	// Eight tickets an hour later: red and far below the baseline of 100.
	apply("ticket", t0+int64(time.Hour), 8)
	c := &Change{CustomerID: "acme", Outcome: m.Step(st, st.LastEvent), Model: m, EventTime: st.LastEvent,
		Cause: Cause{Topic: "customer-events", Partition: 1, Offset: 9}}
	recs := e.AppendRecords(nil, c)
	var types []string
	for _, r := range recs {
		ce, d := checkEvent(t, e, r, c)
		types = append(types, ce.Type)
		if ce.Type == TypeDropped {
			wantDrop := scorer.Round2(100 - c.Outcome.Eval.Score)
			if d.Baseline == nil || *d.Baseline != 100 || d.Drop == nil || *d.Drop != wantDrop ||
				d.CooldownUntil == nil || *d.CooldownUntil != "2026-11-27T11:00:00.123456789Z" || r.Topic != e.Config().AlertTopic {
				t.Errorf("dropped data: %s", ce.Data)
			}
		}
	}
	if !slices.Equal(types, []string{TypeScoreChanged, TypeLow, TypeDropped}) {
		t.Fatalf("types %v", types)
	}

	// An override by ana, then a decay-driven evaluation at its expiry.
	ov := scorer.Event{ID: "o1", CustomerID: "acme", Type: scorer.TypeOverride, Time: t0 + 2*int64(time.Hour), HasTime: true,
		Value: 90, Reason: "renewal \"signed\"", By: "ana", ExpiresAt: t0 + 48*int64(time.Hour), HasExpiresAt: true}
	m.Apply(st, &ov)
	c = &Change{CustomerID: "acme", Outcome: m.Step(st, st.LastEvent), Model: m, EventTime: st.LastEvent,
		Cause: Cause{EventID: "o1", Topic: "customer-events", Partition: 1, Offset: 10}}
	recs = e.AppendRecords(nil, c)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	for _, r := range recs {
		_, d := checkEvent(t, e, r, c)
		if o := d.Overridden; o == nil || o.Value != 90 || o.By != "ana" || o.Reason != `renewal "signed"` ||
			o.ExpiresAt == nil || *o.ExpiresAt != "2026-11-22T10:00:00.123456789Z" || d.Score != 90 {
			t.Errorf("overridden: %+v", d.Overridden)
		}
	}
	// The first whole millisecond from the expiry on (NextChange's grid).
	at, ok := m.NextChange(st, st.LastEvent)
	if ms := int64(time.Millisecond); !ok || at != (ov.ExpiresAt+ms-1)/ms*ms {
		t.Fatalf("NextChange %v %v", at, ok)
	}
	c = &Change{CustomerID: "acme", Outcome: m.Step(st, at), Model: m, EventTime: at, Cause: Cause{Decay: true, At: at}}
	recs = e.AppendRecords(nil, c)
	if len(recs) == 0 {
		t.Fatal("nothing published at the expiry")
	}
	for _, r := range recs {
		ce, d := checkEvent(t, e, r, c)
		if !d.Cause.Decay || d.Cause.At != "2026-11-22T10:00:00.124Z" || d.Cause.Topic != "" || d.Overridden != nil {
			t.Errorf("decay cause: %s", ce.Data)
		}
		if ce.ID != EventID(ce.Type, "acme", Cause{Decay: true, At: at}) || ce.ID == EventID(ce.Type, "acme", Cause{Decay: true, At: at + 1}) {
			t.Errorf("decay id %s", ce.ID)
		}
	}
}
