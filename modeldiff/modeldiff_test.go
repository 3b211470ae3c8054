package modeldiff

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

func model(t *testing.T, target string) *scorer.Model {
	t.Helper()
	m, err := scorer.ParseModel("m.yaml", []byte(`name: m
version: "1"
bands: {red: 40, yellow: 70}
hysteresis: 5
categories:
  - name: engagement
    weight: 3
    signals:
      - {name: logins, event: login, kind: count, half_life: 7d, target: `+target+`}
  - name: support
    weight: 1
    signals:
      - {name: csat, event: csat, kind: average, half_life: 7d, min: 0, max: 10}
`))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCompare: hand-made customers, all events at the instant compared (no
// decay). Old target 2, new target 4:
//
//	a: 2 logins      old 100 green   new 50 yellow   −50
//	b: 1 login       old 50 yellow   new 25 red      −25
//	c: 4 logins      old 100 green   new 100 green     0
//	d: 2 logins, csat 10: old 100 green, new 100·(3·0.5+1)/4 = 62.5 yellow  −37.5
//	e: in the old scoring only: green → none
func TestCompare(t *testing.T) {
	oldM, newM := model(t, "2"), model(t, "4")
	at := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixNano()
	states := func(m *scorer.Model, withE bool) map[string]*scorer.State {
		out := map[string]*scorer.State{}
		add := func(id, typ string, n int, v float64) {
			if out[id] == nil {
				out[id] = m.NewState()
			}
			for range n {
				m.Apply(out[id], &scorer.Event{CustomerID: id, Type: typ, Time: at, HasTime: true, Value: v})
			}
		}
		add("a", "login", 2, 1)
		add("b", "login", 1, 1)
		add("c", "login", 4, 1)
		add("d", "login", 2, 1)
		add("d", "csat", 1, 10)
		if withE {
			add("e", "login", 3, 1)
		}
		// A band from an earlier publication must not apply hysteresis.
		out["b"].Published, out["b"].Band, out["b"].Score = true, scorer.BandYellow, 50
		return out
	}
	r := Compare(oldM, newM, states(oldM, true), states(newM, false), at, 2)
	g, y, red, none := scorer.BandGreen, scorer.BandYellow, scorer.BandRed, scorer.BandNone
	var want [4][4]int
	want[g][y] = 2 // a, d
	want[y][red] = 1
	want[g][g] = 1
	want[g][none] = 1
	if r.Matrix != want {
		t.Errorf("matrix %v, want %v", r.Matrix, want)
	}
	if r.Customers != 5 || r.Worse != 4 || r.Better != 0 {
		t.Errorf("customers %d, worse %d, better %d; want 5, 4, 0", r.Customers, r.Worse, r.Better)
	}
	if len(r.Top) != 2 || r.Top[0].CustomerID != "a" || r.Top[0].Delta != -50 || r.Top[1].CustomerID != "d" || r.Top[1].Delta != -37.5 {
		t.Fatalf("top moves %+v, want a −50 then d −37.5", r.Top)
	}
	// d: logins 75 → 37.5 points (−37.5), csat 25 → 25 (0).
	if ds := r.Top[1].Drivers; len(ds) != 1 || ds[0].Signal != "engagement/logins" || ds[0].Points != -37.5 {
		t.Errorf("drivers of d %+v, want engagement/logins −37.5 only", ds)
	}
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"band changes: 4 (4 worse, 0 better), 1 unchanged",
		"  old \\ new  none  red  yellow  green",
		"      green     1    0       2      1",
		"a         100.00 green  50.00 yellow  -50.00  engagement/logins -50.00",
	} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("output lacks line %q:\n%s", line, b.String())
		}
	}
}
