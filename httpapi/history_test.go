package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// fakeHistory serves histories from maps, or fails with err; it counts the
// calls.
type fakeHistory struct {
	recs  map[string]state.Record
	hists map[string]state.History
	err   error
	calls int
}

func (f *fakeHistory) GetWithHistory(_ context.Context, id string) (state.Record, state.History, error) {
	f.calls++
	if f.err != nil {
		return state.Record{}, state.History{}, f.err
	}
	return f.recs[id], f.hists[id], nil
}

func (f *fakeHistory) Histories(_ context.Context, ids []string) ([]state.History, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	out := make([]state.History, len(ids))
	for i, id := range ids {
		out[i] = state.History{Days: f.hists[id].Days}
	}
	return out, nil
}

// silentRecord is a customer whose one login (at login) was evaluated then
// and nothing since: its day point is login's day.
func silentRecord(t *testing.T, m *scorer.Model, login time.Time, segment string) (state.Record, *scorer.State) {
	t.Helper()
	ev, err := scorer.DecodeEvent(fmt.Appendf(nil, `{"customer_id":"c","type":"login","time":%q,"segment":%q}`, login.Format(time.RFC3339), segment))
	if err != nil {
		t.Fatal(err)
	}
	st := m.NewState()
	closed, _ := m.ApplyWithHistory(st, &ev, 90, nil)
	o := m.Step(st, ev.Time)
	m.NoteDay(st, &o.Eval)
	if len(closed) != 0 || !st.HasDay {
		t.Fatalf("first event: closed %v, day point %v", closed, st.HasDay)
	}
	return state.Record{Version: 1, Score: o.Eval.Score, Band: o.Eval.Band.String(), Data: m.AppendState(nil, st)}, st
}

func day(s string) int64 {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return scorer.DayOf(t.UnixNano())
}

func historyEnv(t *testing.T, fh *fakeHistory, days int, mod func(*Config)) *env {
	return newEnv(t, func(c *Config) {
		c.History, c.HistoryDays = fh, days
		if mod != nil {
			mod(c)
		}
	})
}

func TestHistory(t *testing.T) {
	m := scorer.DefaultModel()
	// Evaluated on the 16th (now is the 20th, noon): the 16th to the 19th
	// are filled from the state, the 20th is evaluated now; the 14th and
	// 15th come from the store.
	rec, st := silentRecord(t, m, time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC), "")
	stored := []state.Day{
		{Day: day("2026-11-14"), Score: 80.5, Min: 79, Band: "green"},
		{Day: day("2026-11-15"), Score: 70.25, Min: 70, Band: "green"},
	}
	change, err := scorer.AppendChange(nil, &scorer.Change{Type: "health.low", At: time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC).UnixNano(),
		Score: 28.1, Band: scorer.BandRed, PrevBand: scorer.BandYellow, Drivers: []scorer.Driver{{Category: "engagement", Signal: "last_login", Points: -12.5}}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := scorer.AppendChange(nil, &scorer.Change{Type: "health.score_changed", At: time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC).UnixNano(), Score: 50, Band: scorer.BandYellow})
	if err != nil {
		t.Fatal(err)
	}
	fh := &fakeHistory{recs: map[string]state.Record{"c1": rec}, hists: map[string]state.History{"c1": {Days: stored, Changes: [][]byte{change, {0xff}, first}}}}
	e := historyEnv(t, fh, 90, nil)

	r := do(e.h.API, "GET", "/v1/customers/c1/history")
	r.check(t, "history", 200, "")
	var v HistoryView
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatal(err)
	}
	if v.CustomerID != "c1" || v.WindowDays != 90 || v.From != "2026-08-23" || v.To != "2026-11-20" {
		t.Fatalf("header %+v", v)
	}
	wantDays := []string{"2026-11-14", "2026-11-15", "2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"}
	if len(v.Points) != len(wantDays) {
		t.Fatalf("points %+v, want days %v", v.Points, wantDays)
	}
	for i, p := range v.Points {
		if p.Day != wantDays[i] || p.Min > p.Score {
			t.Fatalf("point %d %+v, want day %s", i, p, wantDays[i])
		}
	}
	if v.Points[0] != (HistoryPoint{Day: "2026-11-14", Score: 80.5, Band: "green", Min: 79}) {
		t.Fatalf("stored point %+v", v.Points[0])
	}
	// A filled day: the score at its close, its min the score at its close
	// (the score only decays here).
	end := scorer.DayStart(day("2026-11-18")+1) - 1
	want, _ := m.ScoreAt(st, end)
	if p := v.Points[4]; p.Score != scorer.Hundredths(want) || p.Min != p.Score {
		t.Fatalf("filled day %+v, want score %.2f", p, want)
	}
	// Today: evaluated now.
	nowScore, _ := m.ScoreAt(st, now.UnixNano())
	if p := v.Points[6]; p.Score != scorer.Hundredths(nowScore) {
		t.Fatalf("today %+v, want score %.2f", p, nowScore)
	}
	wantChanges := `"changes":[{"type":"health.low","time":"2026-11-16T10:00:00Z","score":28.1,"band":"red","prev_band":"yellow",` +
		`"drivers":[{"category":"engagement","signal":"last_login","points":-12.5}]},` +
		`{"type":"health.score_changed","time":"2026-11-15T10:00:00Z","score":50,"band":"yellow","prev_band":null,"drivers":[]}]}` + "\n"
	if !strings.HasSuffix(r.body, wantChanges) {
		t.Fatalf("body %s\nwant it to end with %s (the corrupt entry left out)", r.body, wantChanges)
	}

	// from and to (a day, or an instant meaning its day) cut the points.
	r = do(e.h.API, "GET", "/v1/customers/c1/history?from=2026-11-15&to=2026-11-17T23:00:00%2B02:00")
	r.check(t, "history from to", 200, `"from":"2026-11-15","to":"2026-11-17"`)
	if err := json.Unmarshal([]byte(r.body), &v); err != nil || len(v.Points) != 3 || v.Points[0].Day != "2026-11-15" || v.Points[2].Day != "2026-11-17" {
		t.Fatalf("from/to points %+v %v", v.Points, err)
	}
	r = do(e.h.API, "GET", "/v1/customers/c1/history?to=2026-11-16")
	r.check(t, "history to only", 200, `"from":"2026-08-19","to":"2026-11-16"`)
	r = do(e.h.API, "GET", "/v1/customers/c1/history?from=2026-12-01")
	r.check(t, "history from in the future", 200, `"from":"2026-12-01","to":"2026-12-01","points":[]`)

	for _, c := range []struct{ q, msg string }{
		{"from=yesterday", `from=\"yesterday\" is neither a day`},
		{"to=2026-13-01", "to=\\\"2026-13-01\\\" is neither"},
		{"from=2026-11-20&to=2026-11-19", "from=2026-11-20 is after to=2026-11-19"},
		{"from=1000-01-01", "out of range: days from the years 1678 to 2261"},
		{"to=9999-12-31T23:59:59Z", "out of range"},
	} {
		do(e.h.API, "GET", "/v1/customers/c1/history?"+c.q).check(t, "history "+c.q, 400, c.msg)
	}
	do(e.h.API, "GET", "/v1/customers/nobody/history").check(t, "history unknown customer", 404, `customer \"nobody\" has no applied events`)
	long := make([]byte, scorer.MaxCustomerIDLen+1)
	for i := range long {
		long[i] = 'x'
	}
	do(e.h.API, "GET", "/v1/customers/"+string(long)+"/history").check(t, "history long id", 400, "customer id must be 1 to 256 bytes")
	fh.recs["bad"] = state.Record{Version: 2, Data: []byte{0xff}}
	do(e.h.API, "GET", "/v1/customers/bad/history").check(t, "history corrupt state", 500, "cannot decode customer state")
	do(e.h.API, "POST", "/v1/customers/c1/history").check(t, "history POST", 405, "allowed: GET")
	fh.err = errors.New("connection refused")
	do(e.h.API, "GET", "/v1/customers/c1/history").check(t, "history Redis down", 503, "cannot read customer history: connection refused")
}

func TestHistoryOffAndToken(t *testing.T) {
	fh := &fakeHistory{}
	for name, e := range map[string]*env{
		"no reader": newEnv(t, nil),
		"0 days":    historyEnv(t, fh, 0, nil),
	} {
		do(e.h.API, "GET", "/v1/customers/c1/history").check(t, name, 404, `score history is turned off (--history-days 0)`)
		r := do(e.h.API, "GET", "/v1/customers?band=red")
		r.check(t, name+": list", 200, `"trend_7d":null,"trend_30d":null`)
	}
	if fh.calls != 0 {
		t.Errorf("history off: %d reads", fh.calls)
	}
	e := historyEnv(t, fh, 90, func(c *Config) { c.Token = func() []byte { return []byte("s3cret") } })
	do(e.h.API, "GET", "/v1/customers/c1/history").check(t, "history without token", 401, "")
	if fh.calls != 0 {
		t.Errorf("unauthenticated request read Redis")
	}
}

// The listing filters by segment on the server (in the store's one read of
// the band) and adds trends from the history.
func TestListSegmentsAndTrends(t *testing.T) {
	m := scorer.DefaultModel()
	login := time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC)
	var members []state.Member
	for i, seg := range []string{"", "smb", "", "", "enterprise", "", "enterprise"} {
		rec, _ := silentRecord(t, m, login, seg)
		members = append(members, state.Member{ID: fmt.Sprintf("c%d", i), Score: 10 + float64(i), Data: rec.Data})
	}
	fh := &fakeHistory{hists: map[string]state.History{
		"c4": {Days: []state.Day{
			{Day: day("2026-10-21"), Score: 50, Min: 40, Band: "yellow"}, // 30 days before the 20th
			{Day: day("2026-11-13"), Score: 30.5, Min: 30, Band: "red"},  // 7 days before
		}},
	}}
	e := historyEnv(t, fh, 90, nil)
	e.reader.members = members

	r := do(e.h.API, "GET", "/v1/customers?band=red&segment=enterprise&limit=1")
	r.check(t, "list enterprise", 200, "")
	if want := `{"band":"red","customers":[{"customer_id":"c4","score":14,"band":"red","segment":"enterprise","trend_7d":-16.5,"trend_30d":-36}]}` + "\n"; r.body != want {
		t.Fatalf("list body %s, want %s", r.body, want)
	}
	r = do(e.h.API, "GET", "/v1/customers?band=red&segment=enterprise")
	r.check(t, "list enterprise, default limit", 200, `"customer_id":"c6"`)
	var body struct{ Customers []ListItem }
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || len(body.Customers) != 2 {
		t.Fatalf("enterprise customers %+v %v", body.Customers, err)
	}
	// c6 has no history on those days: null trends.
	if c := body.Customers[1]; c.Trend7d != nil || c.Trend30d != nil || c.Segment != "enterprise" {
		t.Fatalf("c6 %+v", c)
	}
	r = do(e.h.API, "GET", "/v1/customers?band=red&limit=3")
	r.check(t, "list any segment", 200, `"customer_id":"c1","score":11,"band":"red","segment":"smb"`)
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || len(body.Customers) != 3 || body.Customers[0].CustomerID != "c0" {
		t.Fatalf("any segment %+v %v", body.Customers, err)
	}
	do(e.h.API, "GET", "/v1/customers?band=red&segment=nobody").check(t, "list unknown segment", 200, `"customers":[]`)
	fh.err = errors.New("connection refused")
	do(e.h.API, "GET", "/v1/customers?band=red").check(t, "list trends Redis down", 503, "cannot read customer histories")
}
