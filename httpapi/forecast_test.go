package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// DueBefore lists every stored customer as due (the fake has no schedule),
// by id, at most limit.
func (f *fakeReader) DueBefore(_ context.Context, _ int64, limit int) ([]state.Due, bool, error) {
	if f.err != nil {
		return nil, false, f.err
	}
	var ds []state.Due
	for id := range f.recs {
		ds = append(ds, state.Due{ID: id})
	}
	slices.SortFunc(ds, func(a, b state.Due) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	if len(ds) > limit {
		return ds[:limit], true, nil
	}
	return ds, false, nil
}

func (f *fakeReader) Read(_ context.Context, ids []string) ([]state.Record, error) {
	if f.err != nil {
		return nil, f.err
	}
	recs := make([]state.Record, len(ids))
	for i, id := range ids {
		recs[i] = f.recs[id]
	}
	return recs, nil
}

// forecastModel: one count signal (4 logins at a one-day half-life score
// 100, then 100·2^(−Δ/1d)), bands 40/70 without hysteresis; segment big.
const forecastModel = `name: fc
version: "7"
bands: {red: 40, yellow: 70}
hysteresis: 0
categories:
  - name: use
    weight: 1
    signals:
      - {name: logins, event: login, kind: count, half_life: 1d, target: 4}
segments:
  big:
    weights: {use: 2}
`

// published is a record of n logins at t, published by the pipeline at t.
func published(t *testing.T, m *scorer.Model, n int, at time.Time, segment string, extra ...string) state.Record {
	t.Helper()
	st := m.NewState()
	for i := range n {
		ev := scorer.Event{CustomerID: "x", ID: fmt.Sprint(i), Type: "login", Time: at.UnixNano(), HasTime: true, Value: 1, Segment: segment}
		m.Apply(st, &ev)
	}
	for _, s := range extra {
		ev, err := scorer.DecodeEvent([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		m.Apply(st, &ev)
	}
	o := m.Step(st, st.LastEvent)
	return state.Record{Version: 1, Score: o.Eval.Score, Band: o.Eval.Band.String(), Data: m.AppendState(nil, st)}
}

func forecastEnv(t *testing.T) *env {
	m, err := scorer.ParseModel("fc.yaml", []byte(forecastModel))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Model = func() *scorer.Model { return m } })
	day := 24 * time.Hour
	e.reader.recs = map[string]state.Record{
		"a": published(t, m, 4, now.Add(-day), ""),         // 50 now: red at +0.32 d
		"b": published(t, m, 4, now, ""),                   // 100: yellow at +0.51 d, red at +1.32 d
		"c": published(t, m, 4, now.Add(-10*day), ""),      // red
		"d": published(t, m, 40, now, "big"),               // clamped 3.32 d: yellow at +3.84 d, red at +4.64 d
		"e": published(t, m, 4000, now, ""),                // yellow at +10.5 d, red at +11.3 d
		"g": {Version: 2, Data: []byte{0xff}},              // undecodable: skipped
		"h": published(t, m, 4, now.Add(-10*day), "", ovr), // red by events, 90 by override until +2 d
	}
	return e
}

const ovr = `{"id":"o1","customer_id":"h","type":"health.override","time":"2026-11-10T12:00:00Z","value":90,"reason":"renewal signed","attributes":{"by":"ana@example.com"},"expires_at":"2026-11-22T12:00:00Z"}`

func forecastIDs(t *testing.T, body string) (ids []string, list ForecastList) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Customers {
		ids = append(ids, c.CustomerID)
	}
	return ids, list
}

func TestForecast(t *testing.T) {
	e := forecastEnv(t)
	day := 24 * time.Hour
	at := func(d float64) string {
		ns := now.UnixNano() + int64(d*float64(day))
		return scorer.FormatTime((ns + int64(time.Millisecond) - 1) / int64(time.Millisecond) * int64(time.Millisecond))
	}
	f := func(query string, want ...string) ForecastList {
		t.Helper()
		r := do(e.h.API, "GET", "/v1/forecast?"+query)
		r.check(t, query, 200, "")
		ids, list := forecastIDs(t, r.body)
		if !slices.Equal(ids, want) {
			t.Errorf("%s: %v, want %v (%s)", query, ids, want, r.body)
		}
		return list
	}
	l := f("band=red", "a", "b", "h", "d") // h: red when the override expires, at +2 d
	if !l.Complete || l.Within != "7d" || l.Band != "red" || l.From != "2026-11-20T12:00:00Z" || l.ExactUntil != "2026-11-27T12:00:00Z" {
		t.Errorf("list %+v", l)
	}
	// The exact instants: 100·2^(−Δ) < 40 at Δ = log2(2.5) d after the
	// logins, at the next whole millisecond.
	a := l.Customers[0]
	if a.Band != "yellow" || a.Score != 50 || a.Segment != "" || a.At > at(math.Log2(2.5)-1+1e-9) || a.At < at(math.Log2(2.5)-1-1e-9) {
		t.Errorf("a: %+v, want yellow 50 turning red at %s", a, at(math.Log2(2.5)-1))
	}
	if h := l.Customers[2]; h.At != "2026-11-22T12:00:00Z" || h.Score != 90 || h.Band != "green" {
		t.Errorf("h: %+v, want green 90 (the override) turning red when it expires", h)
	}
	if d := l.Customers[3]; d.Segment != "big" || d.Band != "green" {
		t.Errorf("d: %+v", d)
	}
	// Each instant is the customer's own forecast.
	for _, band := range []string{"red", "yellow"} {
		for _, c := range f("band="+band+"&within=365d", map[string][]string{"red": {"a", "b", "h", "d", "e"}, "yellow": {"b", "h", "d", "e"}}[band]...).Customers {
			var v scorer.CustomerView
			if err := json.Unmarshal([]byte(do(e.h.API, "GET", "/v1/customers/"+c.CustomerID).body), &v); err != nil {
				t.Fatal(err)
			}
			at := v.Forecast.RedAt
			if band == "yellow" {
				at = v.Forecast.YellowAt
			}
			if at == nil || *at != c.At || *v.Score != c.Score || *v.Band != c.Band || v.Segment != c.Segment {
				t.Errorf("%s in the %s forecast: %+v; the customer: %v %v %q forecast %+v", c.CustomerID, band, c, *v.Score, *v.Band, v.Segment, v.Forecast)
			}
		}
	}
	f("band=red&within=1d", "a")
	f("band=red&within=12d", "a", "b", "h", "d", "e")
	f("band=red&limit=2", "a", "b")
	f("band=red&segment=big", "d")
	f("band=red&segment=nobody")
	f("band=yellow", "b", "h", "d") // a is yellow already, c red
	f("band=yellow&within=365d", "b", "h", "d", "e")
	f("band=yellow&within=24h", "b")

	for q, msg := range map[string]string{
		"":                              "band must be yellow or red",
		"band=green":                    "band must be yellow or red",
		"band=red&within=0h":            "whole number of hours or days from 1h to 365d",
		"band=red&within=366d":          "from 1h to 365d",
		"band=red&within=8761h":         "from 1h to 365d",
		"band=red&within=1.5d":          "e.g. 36h or 7d",
		"band=red&within=2w":            "e.g. 36h or 7d",
		"band=red&within=-1d":           "e.g. 36h or 7d",
		"band=red&limit=0":              "limit must be an integer from 1 to 10000",
		"band=red&limit=10001":          "limit must be",
		"band=red&segment=" + long(257): "segment must be at most 256 bytes",
	} {
		do(e.h.API, "GET", "/v1/forecast?"+q).check(t, "forecast?"+q, 400, msg)
	}
	f("band=red&within=8760h", "a", "b", "h", "d", "e")
	e.reader.err = errors.New("connection refused")
	do(e.h.API, "GET", "/v1/forecast?band=red").check(t, "forecast with Redis down", 503, "cannot list customers: connection refused")
}

func long(n int) string { return strings.Repeat("s", n) }

func TestCustomerOverrideAndForecast(t *testing.T) {
	e := forecastEnv(t)
	var v map[string]any
	r := do(e.h.API, "GET", "/v1/customers/h")
	r.check(t, "GET /v1/customers/h", 200, "")
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"score": 90.0, "band": "green", "event_band": "red",
		"override": map[string]any{"score": 90.0, "by": "ana@example.com", "reason": "renewal signed",
			"set_at": "2026-11-10T12:00:00Z", "expires_at": "2026-11-22T12:00:00Z"},
		"forecast": map[string]any{"yellow_at": "2026-11-22T12:00:00Z", "red_at": "2026-11-22T12:00:00Z", "horizon_days": 365.0},
	}
	for k, w := range want {
		if got, _ := json.Marshal(v[k]); string(got) != mustJSON(t, w) {
			t.Errorf("%s: %s, want %s", k, got, mustJSON(t, w))
		}
	}
	if es, _ := v["event_score"].(float64); es >= 1 {
		t.Errorf("event_score %v, want the events' score (ten days of decay: under 1)", v["event_score"])
	}
	// Categories add up to the event score, not the override's.
	sum := 0.0
	for _, c := range v["categories"].([]any) {
		sum += c.(map[string]any)["contribution"].(float64)
	}
	if math.Abs(sum-v["event_score"].(float64)) > 0.01 {
		t.Errorf("categories add up to %v, event_score is %v", sum, v["event_score"])
	}

	// No override: event_score = score, override null, a forecast.
	r = do(e.h.API, "GET", "/v1/customers/b")
	r.check(t, "GET /v1/customers/b", 200, `"override":null`)
	v = nil
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatal(err)
	}
	if v["event_score"] != v["score"] || v["event_band"] != v["band"] || v["score"] != 100.0 {
		t.Errorf("b: score %v %v, event score %v %v", v["score"], v["band"], v["event_score"], v["event_band"])
	}
	fc := v["forecast"].(map[string]any)
	if fc["yellow_at"] == nil || fc["red_at"] == nil || fc["yellow_at"].(string) >= fc["red_at"].(string) {
		t.Errorf("b: forecast %v", fc)
	}
	// Already red: both null.
	do(e.h.API, "GET", "/v1/customers/c").check(t, "GET /v1/customers/c", 200, `"forecast":{"yellow_at":null,"red_at":null,"horizon_days":365}`)
	// The last representable year: no overflow.
	do(e.h.API, "GET", "/v1/customers/b?at=2261-12-31T00:00:00Z").check(t, "GET /v1/customers/b in 2261", 200, `"forecast":{"yellow_at":null,"red_at":null,"horizon_days":365}`)
	// Later, through ?at=: the forecast starts there.
	do(e.h.API, "GET", "/v1/customers/h?at=2026-11-23T00:00:00Z").check(t, "h after the override", 200, `"override":null`)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestModel(t *testing.T) {
	m1, err := scorer.ParseModel("fc.yaml", []byte(forecastModel))
	if err != nil {
		t.Fatal(err)
	}
	var cur atomic.Pointer[scorer.Model]
	cur.Store(m1)
	e := newEnv(t, func(c *Config) { c.Model = cur.Load })
	r := do(e.h.API, "GET", "/v1/model")
	r.check(t, "GET /v1/model", 200, "")
	var v ModelView
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatal(err)
	}
	want := ModelView{Name: "fc", Version: "7", Bands: BandsView{RedBelow: 40, GreenAtOrAbove: 70}, ChangeMinDelta: 1, DecayStep: 5,
		Categories: []ModelCategory{{Name: "use", Weight: 1, Signals: []ModelSignal{{Name: "logins", Event: "login", Kind: "count",
			Direction: "positive", HalfLife: "1d", HalfLifeSeconds: 86400, Target: ptr(4.0)}}}},
		Segments: []ModelSegmentView{{Name: "big", Bands: BandsView{RedBelow: 40, GreenAtOrAbove: 70}, Weights: map[string]float64{"use": 2}, Targets: map[string]float64{}}},
		YAML:     forecastModel}
	if got, w := mustJSON(t, v), mustJSON(t, want); got != w {
		t.Errorf("model\n got %s\nwant %s", got, w)
	}
	// The default model: every kind, a trend section or not, and its file.
	cur.Store(scorer.DefaultModel())
	r = do(e.h.API, "GET", "/v1/model")
	v = ModelView{}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "b2b-saas" || v.YAML != string(scorer.DefaultModelYAML()) || len(v.Categories) != len(scorer.DefaultModel().Categories) {
		t.Errorf("after a reload the API serves %s %s (yaml %d bytes)", v.Name, v.Version, len(v.YAML))
	}
	for _, c := range v.Categories {
		for _, s := range c.Signals {
			if (s.Kind == "average") != (s.Min != nil && s.Max != nil) || (s.Kind == "count" || s.Kind == "sum") != (s.Target != nil) || s.HalfLife == "" {
				t.Errorf("signal %+v", s)
			}
		}
	}
	e.reader.err = errors.New("connection refused") // the model needs no Redis
	do(e.h.API, "GET", "/v1/model").check(t, "GET /v1/model with Redis down", 200, `"name":"b2b-saas"`)
	tok := newEnv(t, func(c *Config) { c.Token = func() []byte { return []byte("s3cret") } })
	do(tok.h.API, "GET", "/v1/model").check(t, "GET /v1/model without the token", 401, "")
	do(tok.h.API, "GET", "/v1/forecast?band=red").check(t, "GET /v1/forecast without the token", 401, "")
}

func ptr[T any](v T) *T { return &v }

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		7 * 24 * time.Hour: "7d", 36 * time.Hour: "36h", 90 * time.Minute: "90m", 1500 * time.Millisecond: "1.5s", 0: "0s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestForecastFromSchedule: against the real store (on miniredis), the
// candidates come from the schedule the pipeline keeps (each customer due
// at its NextChange); with a cap of 2 candidates, the 2 due soonest are
// examined and the answer says up to when it is exact.
func TestForecastFromSchedule(t *testing.T) {
	fe := forecastEnv(t) // its records, saved in the real store
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	store, err := state.NewRedis(client, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	model, err := scorer.ParseModel("fc.yaml", []byte(forecastModel))
	if err != nil {
		t.Fatal(err)
	}
	var dues []state.Due
	sess, err := store.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for id, rec := range fe.reader.recs {
		if id == "g" {
			continue
		}
		// As the sweeper leaves it: evaluated now, due at its next change.
		st, err := model.DecodeState(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		o := model.Step(st, now.UnixNano())
		rec = state.Record{Score: o.Eval.Score, Band: o.Eval.Band.String(), Data: model.AppendState(nil, st)}
		if saved, err := sess.Save(t.Context(), []state.Write{{ID: id, Rec: rec}}); err != nil || !saved.Applied[0] {
			t.Fatalf("save %s: %v", id, err)
		}
		if next, ok := model.NextChange(st, now.UnixNano()); ok {
			dues = append(dues, state.Due{ID: id, At: (next + int64(time.Millisecond) - 1) / int64(time.Millisecond)})
		}
	}
	if err := store.ScheduleEarlier(t.Context(), dues); err != nil {
		t.Fatal(err)
	}
	query := func(cap int) ForecastList {
		e := newEnv(t, func(c *Config) {
			c.Model, c.Store, c.ForecastCandidates = func() *scorer.Model { return model }, store, cap
		})
		r := do(e.h.API, "GET", "/v1/forecast?band=red&within=12d")
		r.check(t, "forecast from the schedule", 200, "")
		_, l := forecastIDs(t, r.body)
		return l
	}
	ids := func(l ForecastList) []string {
		var out []string
		for _, c := range l.Customers {
			out = append(out, c.CustomerID)
		}
		return out
	}
	if l := query(0); !l.Complete || !slices.Equal(ids(l), []string{"a", "b", "h", "d", "e"}) {
		t.Errorf("all candidates: %+v", l)
	}
	// b (100 → 95) is due first, then a (50 → 45 at +0.152 d).
	l := query(2)
	aDue := now.Add(time.Duration(math.Log2(50.0/45) * float64(24*time.Hour))).Truncate(time.Millisecond)
	if l.Complete || !slices.Equal(ids(l), []string{"a", "b"}) || (l.ExactUntil != scorer.FormatTime(aDue.UnixNano()) && l.ExactUntil != scorer.FormatTime(aDue.Add(time.Millisecond).UnixNano())) {
		t.Errorf("2 candidates: %+v; want a and b, incomplete, exact until %s", l, aDue)
	}
	rd, err := NewReadiness(nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Model: scorer.DefaultModel, Store: store, Ready: rd, Logger: zap.NewNop(), ForecastCandidates: -1}); err == nil {
		t.Error("a negative ForecastCandidates accepted")
	}
}
