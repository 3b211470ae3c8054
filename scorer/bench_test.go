package scorer

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchLines is a realistic mix of event JSON lines for 10k customers over
// 30 days, for the default model: mostly logins and feature use, some
// tickets, NPS answers, payments, and types no signal reads.
func benchLines(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	types := []struct {
		typ    string
		weight int
	}{
		{"login", 30}, {"feature_used", 40}, {"kb_viewed", 8}, {"ticket_opened", 4}, {"ticket_escalated", 1},
		{"nps_submitted", 1}, {"payment_succeeded", 2}, {"payment_failed", 1}, {"page_view", 13},
	}
	segments := []string{"enterprise", "smb", "", ""}
	start := time.Date(2026, 10, 21, 0, 0, 0, 0, time.UTC)
	lines := make([][]byte, n)
	for i := range lines {
		k := r.IntN(100)
		typ := types[0].typ
		for _, t := range types {
			if k < t.weight {
				typ = t.typ
				break
			}
			k -= t.weight
		}
		cust := r.IntN(10000)
		at := start.Add(time.Duration(i) * 30 * 24 * time.Hour / time.Duration(n)).Format(time.RFC3339Nano)
		value := ""
		if typ == "nps_submitted" {
			value = fmt.Sprintf(`,"value":%d`, r.IntN(11))
		}
		lines[i] = fmt.Appendf(nil, `{"id":"evt-%d","customer_id":"cust-%05d","type":%q,"time":%q%s,"segment":%q,"attributes":{"source":"web","plan":"pro"}}`,
			i, cust, typ, at, value, segments[cust%len(segments)])
	}
	return lines
}

// BenchmarkOffline is the offline scorer's inner loop: decode every line,
// fold it into its customer's state, then evaluate every customer.
func BenchmarkOffline(b *testing.B) {
	m := DefaultModel()
	lines := benchLines(1 << 18)
	b.ReportAllocs()
	b.ResetTimer()
	states := make(map[string]*State, 10000)
	var last int64
	i := 0
	for b.Loop() {
		line := lines[i%len(lines)]
		i++
		e, err := DecodeEvent(line)
		if err != nil {
			b.Fatal(err)
		}
		if len(m.SignalsFor(e.Type)) == 0 {
			continue
		}
		st := states[e.CustomerID]
		if st == nil {
			st = m.NewState()
			states[e.CustomerID] = st
		}
		m.Apply(st, &e)
		last = max(last, e.Time)
		if i%len(lines) == 0 { // end of a pass: evaluate everyone
			for _, st := range states {
				m.Evaluate(st, last)
			}
			clear(states)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkApply(b *testing.B) {
	m := DefaultModel()
	st := m.NewState()
	evs := []Event{
		{CustomerID: "c", Type: "login", Value: 1},
		{CustomerID: "c", Type: "feature_used", Value: 1},
		{CustomerID: "c", Type: "nps_submitted", Value: 8},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := &evs[i%len(evs)]
		e.Time = t0 + int64(i)*int64(time.Minute)
		if i%7 == 0 {
			e.Time -= int64(time.Hour) // some late events
		}
		m.Apply(st, e)
	}
}

func benchState(m *Model) *State {
	st := m.NewState()
	for i, line := range benchLines(2000) {
		e, err := DecodeEvent(line)
		if err != nil {
			panic(err)
		}
		e.CustomerID = "c"
		m.Apply(st, &e)
		if i%100 == 0 {
			m.Step(st, e.Time)
		}
	}
	return st
}

func BenchmarkEvaluate(b *testing.B) {
	m := DefaultModel()
	st := benchState(m)
	b.ReportAllocs()
	for b.Loop() {
		m.Evaluate(st, st.LastEvent)
	}
}

func BenchmarkAppendState(b *testing.B) {
	m := DefaultModel()
	st := benchState(m)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendState(buf[:0], st)
	}
	b.SetBytes(int64(len(buf)))
}
