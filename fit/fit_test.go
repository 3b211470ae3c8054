package fit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/backtest"
	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// synthLog is a small event log: each customer buys at its own rate
// (purchase events with an amount), sometimes returns goods, and may stop
// for good at a random instant. It returns JSONL lines in random order.
func synthLog(seed uint64, customers, days int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 99))
	var lines [][]byte
	for c := range customers {
		rate := math.Exp(rng.NormFloat64() - 2) // purchases per day
		start := rng.Float64() * float64(days) / 2
		stop := float64(days) + 1
		if rng.IntN(2) == 0 {
			stop = start + rng.ExpFloat64()*float64(days)/2
		}
		spend := math.Exp(rng.NormFloat64() + 4)
		for d := start; d < math.Min(stop, float64(days)); d += rng.ExpFloat64() / rate {
			typ := "purchase"
			if rng.IntN(10) == 0 {
				typ = "return"
			}
			ev := map[string]any{"customer_id": fmt.Sprintf("c%03d", c), "type": typ,
				"time": t0.Add(time.Duration(d * float64(24*time.Hour))).Format(time.RFC3339Nano), "value": math.Round(spend*rng.Float64()*200) / 100}
			b, _ := json.Marshal(ev)
			lines = append(lines, b)
		}
	}
	rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return lines
}

func history(t *testing.T, lines [][]byte, until int64) *History {
	t.Helper()
	h, err := ReadHistory([]offline.Input{{Name: "events.jsonl", R: bytes.NewReader(bytes.Join(lines, []byte("\n")))}}, until, func(e *offline.LineError) { t.Errorf("bad line: %v", e) })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

const startModel = `name: shop
version: "1"
bands: {red: 40, yellow: 70}
hysteresis: 2
categories:
  - name: engagement
    weight: 60
    signals:
      - {name: orders, event: purchase, kind: count, half_life: 30d, target: 3}
      - {name: last_order, event: purchase, kind: recency, half_life: 30d}
  - name: sentiment
    weight: 10
    signals:
      - {name: nps, event: nps_submitted, kind: average, half_life: 90d, min: 0, max: 10}
  - name: returns
    weight: 30
    signals:
      - {name: returns, event: return, kind: count, half_life: 60d, target: 2, direction: negative}
segments:
  big: {targets: {orders: 10}}
`

func fitConfig(t *testing.T, at time.Time) Config {
	t.Helper()
	m, err := scorer.ParseModel("start.yaml", []byte(startModel))
	if err != nil {
		t.Fatal(err)
	}
	return Config{Start: m, StartName: "start.yaml", At: at.UnixNano(), Horizon: 60 * day, Labels: Inactivity{Type: "purchase"}}
}

// TestFitNeverReadsPastT: events after the cut-off, and churn times after
// it in a labels file, never change a fit at the cut-off: the model file is
// byte for byte the same.
func TestFitNeverReadsPastT(t *testing.T) {
	lines := synthLog(1, 300, 400)
	at := t0.Add(300 * day)
	cut := at.UnixNano()
	var before [][]byte
	for _, l := range lines {
		ev, err := scorer.DecodeEvent(l)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Time < cut {
			before = append(before, l)
		}
	}
	if len(before) == len(lines) || len(before) == 0 {
		t.Fatalf("the log must have events on both sides of the cut-off (%d of %d before)", len(before), len(lines))
	}
	// More events at and after the cut-off, from known and new customers.
	extra := append([][]byte(nil), lines...)
	extra = append(extra, []byte(fmt.Sprintf(`{"customer_id":"c001","type":"purchase","time":%q,"value":1e6}`, at.Format(time.RFC3339Nano))),
		[]byte(fmt.Sprintf(`{"customer_id":"c002","type":"return","time":%q,"value":1e6}`, at.Add(time.Nanosecond).Format(time.RFC3339Nano))),
		[]byte(fmt.Sprintf(`{"customer_id":"new","type":"return","time":%q}`, at.Add(day).Format(time.RFC3339Nano))))

	for _, labels := range []func(h *History) Labels{
		func(*History) Labels { return Inactivity{Type: "purchase"} },
		func(h *History) Labels {
			// Churn at the last event for customers silent over the last
			// 60 days of the full log: some of these times are after the
			// cut-off; they must not matter.
			ct := ChurnTimes{}
			for _, id := range h.Customers {
				evs := h.Events[id]
				ct[id] = backtest.Label{}
				if last := evs[len(evs)-1].Time; last < t0.Add(340*day).UnixNano() {
					ct[id] = backtest.Label{Churned: true, Time: last + 1}
				}
			}
			return ct
		},
	} {
		full := history(t, extra, math.MaxInt64)
		full.Until = math.MaxInt64
		lab := labels(full) // churn times known from the whole log
		var outs [][]byte
		for _, in := range [][][]byte{before, lines, extra} {
			cfg := fitConfig(t, at)
			cfg.Labels = lab
			res, err := Fit(history(t, in, cut), cfg)
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, res.YAML)
		}
		for i := 1; i < len(outs); i++ {
			if !bytes.Equal(outs[0], outs[i]) {
				t.Errorf("%s: the fit changed with events after the cut-off:\n%s\n---\n%s", lab, outs[0], outs[i])
			}
		}
		// The cut-off itself matters: one day later, a different fit.
		cfg := fitConfig(t, at.Add(day))
		cfg.Labels = lab
		res, err := Fit(history(t, extra, cut+int64(day)), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(res.YAML, outs[0]) {
			t.Errorf("%s: a fit one day later is identical: the test cannot see leakage", lab)
		}
	}
}

// TestFitRejectsHistoryPastT: the guard against a history read too far.
func TestFitRejectsHistoryPastT(t *testing.T) {
	at := t0.Add(300 * day)
	_, err := Fit(history(t, synthLog(1, 50, 400), math.MaxInt64), fitConfig(t, at))
	if err == nil || !strings.Contains(err.Error(), "past the cut-off") {
		t.Fatalf("err = %v, want a history past the cut-off rejected", err)
	}
	_, err = Fit(history(t, synthLog(1, 50, 400), at.UnixNano()-1), fitConfig(t, at))
	if err == nil || !strings.Contains(err.Error(), "ends before the cut-off") {
		t.Fatalf("err = %v, want a history that ends early rejected", err)
	}
}

// TestFitModel: the fitted model is valid, says what changed, beats the
// start model at validation, and its score orders customers as the
// regression does.
func TestFitModel(t *testing.T) {
	at := t0.Add(330 * day)
	h := history(t, synthLog(2, 400, 400), at.UnixNano())
	res, err := Fit(h, fitConfig(t, at))
	if err != nil {
		t.Fatal(err)
	}
	y := string(res.YAML)
	if _, err := scorer.ParseModel("fitted.yaml", res.YAML); err != nil {
		t.Fatalf("fitted model invalid: %v\n%s", err, y)
	}
	for _, want := range []string{"# Fitted by `healthscore fit` from shop version 1 (start.yaml)", "Nothing after the cut-off was read",
		"dropped nps: no nps_submitted event before the training cut-off", "dropped the segments (big)", "version: \"1-fit.20261127\"", "Validation AUC: start model"} {
		if !strings.Contains(y, want) {
			t.Errorf("model file lacks %q:\n%s", want, y)
		}
	}
	r := res.Report
	if r.TrainAt != "2026-07-30T00:00:00Z" || r.ValidateAt != "2026-09-28T00:00:00Z" {
		t.Errorf("train at %s, validate at %s; want T − 2·60d and T − 60d", r.TrainAt, r.ValidateAt)
	}
	if !(r.FittedAUC > r.StartAUC) || !(r.FittedAUC > 0.6) {
		t.Errorf("validation AUC before %.4f, after %.4f: want a better fit", r.StartAUC, r.FittedAUC)
	}
	t.Logf("validation AUC before %.4f after %.4f, final %.4f, %d signals\n%s", r.StartAUC, r.FittedAUC, r.FinalAUC, res.Model.Signals(), y)
	// Bands: about as many reds at T2 as churned there.
	val := newSnapshot(h, Inactivity{Type: "purchase"}, at.Add(-60*day).UnixNano(), int64(60*day), nil)
	_, bands, _ := val.data(h, 60*day).Scores(res.Model)
	red := 0
	for _, b := range bands {
		if b == scorer.BandRed {
			red++
		}
	}
	if math.Abs(float64(red-val.nChurn)) > 0.05*float64(len(val.ids)) {
		t.Errorf("%d red at the validation cut-off, %d churned: want about as many", red, val.nChurn)
	}
}

// TestLogisticRecovers: on data drawn from a logistic model, the fit
// recovers its coefficients (large n, no penalty).
func TestLogisticRecovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	n := 20000
	x1, x2, y := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range y {
		x1[i], x2[i] = rng.Float64(), rng.Float64()
		if rng.Float64() < sigmoid(-1+3*x1[i]-2*x2[i]) {
			y[i] = 1
		}
	}
	l := fitLogistic([][]float64{x1, x2}, y, 0)
	raw := l.raw()
	if math.Abs(raw[0]-3) > 0.2 || math.Abs(raw[1]+2) > 0.2 {
		t.Errorf("coefficients %v, want about [3 -2]", raw)
	}
}

// TestModelScoresAreTheRegression: for random coefficients on random
// candidate signals, the model file buildModel writes scores every
// customer exactly as the regression's features say, through package
// scorer: 100·Σ w_j·sub_j / Σ w_j with w_j = |β_j| (rounded as written)
// and sub_j = x_j, or 1 − x_j when β_j < 0. So the features are the
// scorer's sub-scores and the score orders customers as the regression.
func TestModelScoresAreTheRegression(t *testing.T) {
	at := t0.Add(300 * day)
	h := history(t, synthLog(4, 200, 400), at.UnixNano())
	cfg := fitConfig(t, at)
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	cands, keys, _ := candidates(h, &cfg, at.UnixNano())
	snap := newSnapshot(h, cfg.Labels, at.UnixNano()-int64(10*day), int64(cfg.Horizon), keys)
	var usable []candidate
	for _, c := range cands {
		if c.sig.Kind != scorer.KindAverage && snap.setTarget(&c) {
			usable = append(usable, c)
		}
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for round := range 20 {
		var chosen []candidate
		var coef []float64
		for _, i := range rng.Perm(len(usable))[:1+rng.IntN(6)] {
			chosen = append(chosen, usable[i])
			coef = append(coef, (rng.Float64()*2-1)*math.Pow(10, rng.Float64()*2))
		}
		w := weights(coef)
		res, err := buildModel(&cfg, chosen, coef, scorer.Bands{Red: 40, Yellow: 70}, nil)
		if err != nil {
			t.Fatal(err)
		}
		scores, _, unscored := snap.data(h, cfg.Horizon).Scores(res.Model)
		if unscored > 0 {
			t.Fatalf("round %d: %d customers unscored", round, unscored)
		}
		want := make([]float64, len(snap.ids))
		var total float64
		for j, c := range chosen {
			x := snap.feature(&c)
			total += w[j]
			for i := range want {
				if coef[j] < 0 {
					want[i] += w[j] * (1 - x[i])
				} else {
					want[i] += w[j] * x[i]
				}
			}
		}
		for i := range want {
			if want[i] = 100 * want[i] / total; math.Abs(scores[i]-want[i]) > 1e-9 {
				t.Fatalf("round %d: customer %s scores %v, the regression's features say %v\n%s", round, snap.ids[i], scores[i], want[i], res.YAML)
			}
		}
	}
}
