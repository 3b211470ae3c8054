package fit

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/healthscore/healthscore/backtest"
	"github.com/healthscore/healthscore/scorer"
)

// Defaults of Config.
var (
	DefaultHalfLives = []time.Duration{7 * day, 14 * day, 30 * day, 60 * day, 90 * day, 180 * day, 365 * day}
	DefaultLevels    = []float64{0.25, 0.5, 0.75, 0.9, 0.99, 1}
)

const (
	day = 24 * time.Hour
	// DefaultMaxSignals is how many signals a fitted model has at most;
	// the validation AUC chooses how many below it (parsimony). It was 8:
	// on simulated logs the validation kept improving past 8 signals, and
	// 16 narrowed the gap to the oracle by up to 0.007 (docs/backtesting.md).
	DefaultMaxSignals = 16
	// DefaultL2 is λ, the L2 penalty on standardised coefficients.
	DefaultL2 = 1.0
	// DefaultWindows label windows, DefaultStep apart, are stacked.
	DefaultWindows = 6
	DefaultStep    = 30 * day
	// DefaultMinCustomers is how many training customers must have an event
	// type before it is proposed as a signal.
	DefaultMinCustomers = 10
	// parsimony: the smallest number of signals whose validation AUC is
	// within this of the best is chosen.
	parsimony = 0.002
)

// Config is what to fit.
type Config struct {
	Start     *scorer.Model // the starting model (required)
	StartName string        // how comments name it, e.g. its file
	At        int64         // the cut-off T, Unix ns: nothing after it is read
	Horizon   time.Duration // churn window (required)
	// Gap is how far the training cut-off T1 lies before the validation
	// cut-off T2 = T − Horizon; default Horizon (the training labels end
	// where the validation features end).
	Gap    time.Duration
	Labels Labels // required
	// HalfLives and Levels span the candidate signals: every half-life,
	// and for count and sum every quantile level of the customers' decayed
	// S as a target. Defaults DefaultHalfLives, DefaultLevels.
	HalfLives []time.Duration
	Levels    []float64
	// MaxSignals bounds the fitted model's signals (default
	// DefaultMaxSignals); L2 is the penalty λ (default DefaultL2; < 0 is
	// an error).
	MaxSignals int
	L2         float64
	// Windows is how many label windows are stacked for training (ending
	// at T1, T1 − Step, …) and for the final refit (ending at T2, T2 −
	// Step, …); default DefaultWindows, DefaultStep.
	Windows int
	Step    time.Duration
	// NoPropose keeps the fit to the event types the start model reads;
	// otherwise every event type with at least MinCustomers training
	// customers (default DefaultMinCustomers) is a candidate.
	NoPropose    bool
	MinCustomers int
}

func (c *Config) validate() error {
	switch {
	case c.Start == nil:
		return errors.New("no start model")
	case c.Labels == nil:
		return errors.New("no labels: give a labels file or an event type whose absence is churn")
	case c.Horizon <= 0:
		return errors.New("the horizon must be > 0, e.g. 90d")
	case c.Gap < 0:
		return errors.New("the gap must be >= 0")
	case c.L2 < 0 || math.IsNaN(c.L2):
		return errors.New("the L2 penalty must be >= 0")
	case c.Windows < 0 || c.Step < 0:
		return errors.New("the number of windows and their step must be > 0")
	case c.MaxSignals < 0:
		return errors.New("the maximum number of signals must be > 0")
	}
	if c.Gap == 0 {
		c.Gap = c.Horizon
	}
	if len(c.HalfLives) == 0 {
		c.HalfLives = DefaultHalfLives
	}
	for _, hl := range c.HalfLives {
		if hl < time.Minute || hl > 36500*day {
			return fmt.Errorf("half-life %v is outside 1m..36500d", hl)
		}
	}
	if len(c.Levels) == 0 {
		c.Levels = DefaultLevels
	}
	for _, l := range c.Levels {
		if !(l > 0 && l <= 1) {
			return fmt.Errorf("target quantile %v is not in (0, 1]", l)
		}
	}
	if c.MaxSignals == 0 {
		c.MaxSignals = DefaultMaxSignals
	}
	if c.Windows == 0 {
		c.Windows = DefaultWindows
	}
	if c.Step == 0 {
		c.Step = DefaultStep
	}
	if c.MinCustomers == 0 {
		c.MinCustomers = DefaultMinCustomers
	}
	return nil
}

// Step is one step of the forward selection on the training window.
type Step struct {
	Signal      string  `json:"signal"`
	Description string  `json:"description"`
	TrainAUC    float64 `json:"train_auc"`
	ValidateAUC float64 `json:"validate_auc"`
}

// Report says what the fit saw and achieved. AUCs are those of the score
// (a low score predicts churn), computed through package scorer.
type Report struct {
	At                string   `json:"at"`
	Horizon           string   `json:"horizon"`
	Labels            string   `json:"labels"`
	TrainAt           string   `json:"train_at"`
	ValidateAt        string   `json:"validate_at"`
	TrainWindows      int      `json:"train_windows"`
	FinalWindows      int      `json:"final_windows"`
	TrainCustomers    int      `json:"train_customers"`
	TrainChurned      int      `json:"train_churned"`
	ValidateCustomers int      `json:"validate_customers"`
	ValidateChurned   int      `json:"validate_churned"`
	Candidates        int      `json:"candidates"`
	Path              []Step   `json:"path"`
	Chosen            int      `json:"chosen_signals"`
	BaselineAUC       float64  `json:"validate_baseline_auc"` // the RFM rank-sum at T2
	StartAUC          float64  `json:"validate_auc_before"`   // the start model at T2
	FittedAUC         float64  `json:"validate_auc_after"`    // the model trained at T1, at T2
	FinalAUC          float64  `json:"final_auc_in_sample"`   // the written model (refit at T2), at T2
	Changes           []string `json:"changes"`
}

// Result is a fitted model.
type Result struct {
	YAML   []byte // the model file, with comments
	Model  *scorer.Model
	Report Report
}

// Fit learns a model from h, which must be read up to the cut-off
// (ReadHistory(inputs, cfg.At, …)): it holds every event before cfg.At
// and none at or after it.
func Fit(h *History, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cannot fit: %w", err)
	}
	switch {
	case h.Until > cfg.At:
		return nil, errors.New("cannot fit: the history reaches past the cut-off (read it with ReadHistory up to the cut-off)")
	case h.Until < cfg.At:
		return nil, errors.New("cannot fit: the history ends before the cut-off (read it with ReadHistory up to the cut-off)")
	}
	T := cfg.At
	T2 := T - int64(cfg.Horizon)
	T1 := T2 - int64(cfg.Gap)
	rep := Report{At: scorer.FormatTime(T), Horizon: formatHalfLife(cfg.Horizon), Labels: cfg.Labels.String(),
		TrainAt: scorer.FormatTime(T1), ValidateAt: scorer.FormatTime(T2)}

	cands, keys, notes := candidates(h, &cfg, T1)
	// Every window's snapshot, computed in one pass: the validation
	// cut-off T2, the training ones T1, T1 − step, … and the final refit's
	// T2, T2 − step, … (they often coincide).
	var cuts []int64
	for k := 0; k < cfg.Windows; k++ {
		cuts = append(cuts, T1-int64(k)*int64(cfg.Step), T2-int64(k)*int64(cfg.Step))
	}
	snaps := newSnapshots(h, cfg.Labels, cuts, int64(cfg.Horizon), keys)
	val := snaps[T2]
	if val.nChurn == 0 || val.nChurn == len(val.ids) {
		return nil, fmt.Errorf("cannot fit: the validation window at %s has %d customers, %d churned: it needs both churned and retained customers (try a later --at)",
			scorer.FormatTime(T2), len(val.ids), val.nChurn)
	}
	train := windows(snaps, &cfg, T1)
	if len(train) == 0 {
		return nil, fmt.Errorf("cannot fit: the training window at %s needs both churned and retained customers (try a later --at or a smaller --gap)", scorer.FormatTime(T1))
	}
	rep.TrainWindows = len(train)
	rep.TrainCustomers, rep.TrainChurned = train.counts()
	rep.ValidateCustomers, rep.ValidateChurned = len(val.ids), val.nChurn
	kept := cands[:0]
	for _, c := range cands {
		if train.setTarget(&c) {
			kept = append(kept, c)
		}
	}
	cands = kept
	rep.Candidates = len(cands)
	if len(cands) == 0 {
		return nil, fmt.Errorf("cannot fit: no candidate signal: no event type the model could read has events before %s", scorer.FormatTime(T1))
	}

	// Forward selection on the training window, scored on the validation one.
	trainChurned := train.churned()
	y := stayed(trainChurned)
	xtr := make([][]float64, len(cands))
	xval := make([][]float64, len(cands))
	for i := range cands {
		xtr[i], xval[i] = train.feature(&cands[i]), val.feature(&cands[i])
	}
	p := make([]float64, len(y))
	_, nChurn := train.counts()
	base := float64(len(y)-nChurn) / float64(len(y))
	for i := range p {
		p[i] = base
	}
	var sel []int
	var fits []*logistic
	for len(sel) < cfg.MaxSignals {
		best, bestStat := -1, 1e-9
		for j := range cands {
			if contains(sel, j) {
				continue
			}
			if s := scoreTest(xtr[j], y, p); s > bestStat {
				best, bestStat = j, s
			}
		}
		if best < 0 {
			break
		}
		sel = append(sel, best)
		l := fitLogistic(pick(xtr, sel), y, cfg.L2)
		eta := l.predict(pick(xtr, sel))
		for i := range p {
			p[i] = sigmoid(eta[i])
		}
		fits = append(fits, l)
		rep.Path = append(rep.Path, Step{Signal: cands[best].name(), Description: cands[best].describe(),
			TrainAUC: backtest.AUC(eta, trainChurned), ValidateAUC: backtest.AUC(l.predict(pick(xval, sel)), val.churned)})
	}
	k, bestAUC := 0, math.Inf(-1)
	for _, s := range rep.Path {
		bestAUC = math.Max(bestAUC, s.ValidateAUC)
	}
	for i, s := range rep.Path {
		if s.ValidateAUC >= bestAUC-parsimony {
			k = i + 1
			break
		}
	}
	if k == 0 {
		return nil, errors.New("cannot fit: no signal separates churned from retained customers in the training window")
	}
	rep.Chosen = k
	chosen := make([]candidate, k)
	for i, j := range sel[:k] {
		chosen[i] = cands[j]
	}

	// The model trained at T1, scored at T2 through the scorer: the
	// validation AUC after.
	vd := val.data(h, cfg.Horizon)
	rep.StartAUC = modelAUC(vd, cfg.Start)
	rep.BaselineAUC = backtest.AUC(vd.RFM(cfg.rfmType()), vd.Churned)
	trained, err := buildModel(&cfg, chosen, fits[k-1].raw(), cfg.Start.Bands, nil)
	if err != nil {
		return nil, err
	}
	rep.FittedAUC = modelAUC(vd, trained.Model)

	// Refit on the latest labels before T: targets at T2, weights from the
	// windows ending at T2, T2 − step, …
	last := windows(snaps, &cfg, T2)
	rep.FinalWindows = len(last)
	final := make([]candidate, 0, k)
	for _, c := range chosen {
		if last.setTarget(&c) {
			final = append(final, c)
		}
	}
	cols := make([][]float64, len(final))
	for i := range final {
		cols[i] = last.feature(&final[i])
	}
	all := fitLogistic(cols, stayed(last.churned()), cfg.L2).raw()
	w := weights(all)
	var coef []float64
	used := final[:0]
	for i, c := range final {
		if w[i] > 0 { // the others would get a weight of 0: left out
			used, coef = append(used, c), append(coef, all[i])
		}
	}
	final = used
	res, err := buildModel(&cfg, final, coef, cfg.Start.Bands, nil)
	if err != nil {
		return nil, err
	}
	scores, _, _ := vd.Scores(res.Model)
	bands := quantileBands(scores, val.nChurn)
	rep.Changes = changes(&cfg, final, notes)
	rep.FinalAUC = backtest.AUC(scores, vd.Churned)
	res, err = buildModel(&cfg, final, coef, bands, &rep)
	if err != nil {
		return nil, err
	}
	res.Report = rep
	return res, nil
}

// windows are the snapshots at from, from − Step, … (at most Windows),
// stopping at the first without both churned and retained customers.
func windows(snaps map[int64]*snapshot, cfg *Config, from int64) sample {
	var out sample
	for k := 0; k < cfg.Windows; k++ {
		s := snaps[from-int64(k)*int64(cfg.Step)]
		if s.nChurn == 0 || s.nChurn == len(s.ids) {
			break
		}
		out = append(out, s)
	}
	return out
}

// rfmType is the event type the RFM baseline reads, as the backtest
// chooses it: the --churn-if-no type, else every type.
func (c *Config) rfmType() string {
	if in, ok := c.Labels.(Inactivity); ok {
		return in.Type
	}
	return ""
}

func stayed(churned []bool) []float64 {
	y := make([]float64, len(churned))
	for i, c := range churned {
		if !c {
			y[i] = 1
		}
	}
	return y
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func pick(cols [][]float64, sel []int) [][]float64 {
	out := make([][]float64, len(sel))
	for i, j := range sel {
		out[i] = cols[j]
	}
	return out
}

// modelAUC is the AUC of m's scores, as `healthscore backtest` computes it.
func modelAUC(d *backtest.Data, m *scorer.Model) float64 {
	scores, _, _ := d.Scores(m)
	return backtest.AUC(scores, d.Churned)
}

// quantileBands puts the red boundary where as many customers of the
// snapshot score below it as churned in its window, and the yellow one
// where twice as many do (at most 95% of them).
func quantileBands(scores []float64, nChurn int) scorer.Bands {
	xs := slices.Clone(scores)
	slices.Sort(xs)
	rate := float64(nChurn) / float64(len(xs))
	q := func(f float64) float64 {
		i := int(math.Ceil(f * float64(len(xs))))
		i = max(0, min(len(xs)-1, i))
		return math.Round(xs[i]*100) / 100
	}
	red := q(rate)
	yellow := q(math.Min(2*rate, 0.95))
	red = math.Min(math.Max(red, 0.01), 99.98)
	if yellow <= red {
		yellow = red + 0.01
	}
	yellow = math.Min(yellow, 100)
	return scorer.Bands{Red: red, Yellow: yellow}
}
