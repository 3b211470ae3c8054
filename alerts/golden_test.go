package alerts

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt from the current encoder")

// goldenChanges are evaluations that between them write every field of every
// output type: a first score in red, a recovery, a drop below the baseline
// with an override in force, a decay and a reload cause, a nil model, an
// empty event id and strings that need escaping.
func goldenChanges(t *testing.T) []*Change {
	var cs []*Change
	s := newStory("acme", "enterprise")
	cs = append(cs, s.step(t0, "ticket_escalated"))
	cs = append(cs, s.step(t0+int64(time.Hour), healthy()...))
	h := newStory("c\"h\\ost\x01\u2028ile\xff", "seg\tment")
	c := h.step(t0, "login")
	c.Cause.EventID = ""
	c.Model = nil
	cs = append(cs, c)

	m, err := scorer.ParseModel("m.yaml", []byte(trendModelYAML))
	if err != nil {
		t.Fatal(err)
	}
	st := m.NewState()
	apply := func(ev scorer.Event, n int) {
		for range n {
			m.Apply(st, &ev)
		}
	}
	apply(scorer.Event{CustomerID: "beta", Type: "login", Time: t0, HasTime: true, Value: 1}, 4)
	m.Step(st, t0)
	apply(scorer.Event{CustomerID: "beta", Type: "ticket", Time: t0 + int64(time.Hour), HasTime: true, Value: 1}, 8)
	cs = append(cs, &Change{CustomerID: "beta", Outcome: m.Step(st, st.LastEvent), Model: m, EventTime: st.LastEvent,
		Cause: Cause{Topic: "customer-events", Partition: 1, Offset: 9}})
	apply(scorer.Event{ID: "o1", CustomerID: "beta", Type: scorer.TypeOverride, Time: t0 + 2*int64(time.Hour), HasTime: true,
		Value: 90, Reason: "renewal \"signed\"", By: "ana", ExpiresAt: t0 + 48*int64(time.Hour), HasExpiresAt: true}, 1)
	cs = append(cs, &Change{CustomerID: "beta", Outcome: m.Step(st, st.LastEvent), Model: m, EventTime: st.LastEvent,
		Cause: Cause{EventID: "o1", Topic: "customer-events", Partition: 1, Offset: 10}})
	at, _ := m.NextChange(st, st.LastEvent)
	decay := m.Step(st, at)
	cs = append(cs, &Change{CustomerID: "beta", Outcome: decay, Model: m, EventTime: at, Cause: Cause{Decay: true, At: at}})
	cs = append(cs, &Change{CustomerID: "beta", Outcome: decay, Model: m, EventTime: at, Cause: Cause{Reload: true, At: at}})
	return cs
}

// TestGoldenRecords pins the output records byte for byte (topic, key,
// headers, value): the output contract must not change by accident, for
// instance while the encoder is made cheaper. Run with -update to rewrite
// testdata/golden.txt after an intended change of the contract.
func TestGoldenRecords(t *testing.T) {
	e := newEncoder(t)
	var got bytes.Buffer
	for _, c := range goldenChanges(t) {
		for _, r := range e.AppendRecords(nil, c) {
			fmt.Fprintf(&got, "%s %q", r.Topic, r.Key)
			for _, h := range r.Headers {
				fmt.Fprintf(&got, " %s=%q", h.Key, h.Value)
			}
			fmt.Fprintf(&got, "\n%s\n", r.Value)
		}
	}
	const file = "testdata/golden.txt"
	if *update {
		if err := os.WriteFile(file, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("output records differ from %s:\ngot:\n%s", file, got.Bytes())
	}
}
