package fit

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/healthscore/healthscore/backtest"
	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/simulate"
)

// TestFitOnSimulation fits on a small simulated log (package simulate,
// 1,000 customers) at the oracle's instant and scores the customers alive
// then: the fitted model must rank them better than the built-in model it
// starts from. It logs the gap to the generator's oracle; the issue's
// target (within 0.02) is measured on larger logs in docs/backtesting.md, not
// asserted here: with ~70 churners the AUCs move by a few hundredths
// between seeds (gaps of 0.011 to 0.033 for seeds 7 to 10).
func TestFitOnSimulation(t *testing.T) {
	var events bytes.Buffer
	sim, err := simulate.Run(simulate.Config{Customers: 1000, Days: 450, Seed: 7, OraclePaths: 20}, &events)
	if err != nil {
		t.Fatal(err)
	}
	at := sim.Config.At.UnixNano()
	labels := map[string]backtest.Label{}
	for _, l := range sim.Labels {
		labels[l.CustomerID] = backtest.Label{Churned: l.Churned, Time: l.ChurnTime}
	}
	churnTimes, err := NewChurnTimes(labels)
	if err != nil {
		t.Fatal(err)
	}
	log := events.Bytes()
	h, err := ReadHistory([]offline.Input{{Name: "events.jsonl", R: bytes.NewReader(log)}}, at, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Fit(h, Config{Start: scorer.DefaultModel(), At: at, Horizon: sim.Config.Horizon, Gap: 30 * 24 * time.Hour, Labels: churnTimes, HalfLives: []time.Duration{7 * day, 30 * day, 90 * day, 365 * day}})
	if err != nil {
		t.Fatal(err)
	}
	// The backtest at the oracle's instant: who is alive then, who churns.
	d, err := backtest.Load([]offline.Input{{Name: "events.jsonl", R: bytes.NewReader(log)}}, backtest.LoadOptions{At: at, Horizon: sim.Config.Horizon, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	risk := map[string]float64{}
	for _, r := range sim.Oracle {
		risk[r.CustomerID] = r.Risk
	}
	oracle := make([]float64, len(d.IDs))
	n := 0
	for i, id := range d.IDs {
		oracle[i] = -risk[id]
		if d.Churned[i] {
			n++
		}
	}
	aucOf := func(m *scorer.Model) float64 {
		s, _, _ := d.Scores(m)
		return backtest.AUC(s, d.Churned)
	}
	builtin, fitted, best := aucOf(scorer.DefaultModel()), aucOf(res.Model), backtest.AUC(oracle, d.Churned)
	t.Logf("%d customers alive at %s, %d churned within %s: AUC built-in %.4f, fitted %.4f, oracle %.4f (gap %.4f)",
		len(d.IDs), scorer.FormatTime(at), n, sim.Config.Horizon, builtin, fitted, best, best-fitted)
	if n < 10 || math.IsNaN(fitted) {
		t.Fatalf("too few churners (%d) to compare", n)
	}
	if !(fitted > builtin) {
		t.Errorf("fitted AUC %.4f, built-in %.4f: the fit must rank better than its start", fitted, builtin)
	}
}
