package offline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

func TestTimeline(t *testing.T) {
	m := scorer.DefaultModel()
	start := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	var in strings.Builder
	for d := range 7 {
		fmt.Fprintf(&in, `{"customer_id":"silent","type":"login","time":%q}`+"\n", start.AddDate(0, 0, d).Format(time.RFC3339))
	}
	// A customer pinned by an override for two days, then left to decay.
	fmt.Fprintf(&in, `{"customer_id":"pinned","type":"login","time":%q}`+"\n", start.Format(time.RFC3339))
	fmt.Fprintf(&in, `{"id":"o1","customer_id":"pinned","type":"health.override","value":90,"time":%q,"expires_at":%q}`+"\n",
		start.Add(time.Hour).Format(time.RFC3339), start.Add(49*time.Hour).Format(time.RFC3339))
	at := start.AddDate(0, 0, 60)
	res, err := Fold([]Input{{Name: "in", R: strings.NewReader(in.String())}}, Options{Model: m, At: at.UnixNano(), HasAt: true, Timeline: true})
	if err != nil || res.BadLines > 0 || res.Applied != 9 {
		t.Fatalf("fold: %v, %+v", err, res)
	}
	var out strings.Builder
	if err := res.WriteTimeline(&out); err != nil {
		t.Fatal(err)
	}
	var got []TimelineEntry
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var e TimelineEntry
		d := json.NewDecoder(strings.NewReader(sc.Text()))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		got = append(got, e)
	}
	byCustomer := map[string][]TimelineEntry{}
	for _, e := range got {
		byCustomer[e.CustomerID] = append(byCustomer[e.CustomerID], e)
	}
	// silent: a first band from the first login, then the decay path into
	// red with exactly one low alert, at the instant NextChange predicts.
	s := byCustomer["silent"]
	lows := 0
	for i, e := range s {
		if i > 0 && e.At < s[i-1].At {
			t.Fatalf("not in time order: %+v", s)
		}
		if e.Type == "health.low" {
			lows++
			if e.Cause != "decay" || e.Band != "red" || s[i-1].Type != TimelineBandChanged || s[i-1].At != e.At {
				t.Fatalf("low: %+v", s)
			}
		}
	}
	if lows != 1 || s[0].Cause != "event" || s[0].At != "2026-11-01T09:00:00Z" {
		t.Fatalf("silent: %+v", s)
	}
	// The predicted instant: replay the state and step through NextChange.
	st := m.NewState()
	var last int64
	for d := range 7 {
		e := scorer.Event{CustomerID: "silent", Type: "login", Time: start.AddDate(0, 0, d).UnixNano()}
		m.Apply(st, &e)
		m.Step(st, e.Time)
		last = e.Time
	}
	for st.Band != scorer.BandRed {
		next, ok := m.NextChange(st, last)
		if !ok {
			t.Fatal("never red")
		}
		m.Step(st, next)
		last = next
	}
	if low := s[len(s)-1]; low.Type != "health.low" || low.At != scorer.FormatTime(last) {
		t.Fatalf("low at %s, NextChange says %s", low.At, scorer.FormatTime(last))
	}
	// pinned: the override shows green from its event; at its expiry the
	// computed score (a single login two days old) is yellow, by decay.
	p := byCustomer["pinned"]
	if len(p) < 3 || p[1].At != "2026-11-01T10:00:00Z" || p[1].Score != 90 || p[1].Band != "green" ||
		p[2].At != "2026-11-03T10:00:00Z" || p[2].Cause != "decay" {
		t.Fatalf("pinned: %+v", p)
	}
	// Without Options.Timeline there is nothing to replay.
	res.Events = nil
	if err := res.WriteTimeline(&out); err == nil {
		t.Fatal("timeline without events")
	}
}
