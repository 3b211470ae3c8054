package fit

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

func (c *candidate) name() string {
	if c.start != "" {
		return c.start
	}
	n := fmt.Sprintf("%s_%s_%s", c.sig.Event, c.sig.Kind, formatHalfLife(c.sig.HalfLife))
	if c.level > 0 {
		n += fmt.Sprintf("_p%g", 100*c.level)
	}
	return n
}

// candidates lists the signals the fit may use: the start model's count,
// sum and recency signals as they are, and for each event type they read
// (and, unless NoPropose, each event type of the training history with
// enough customers) a recency per half-life and a count and a sum (sum
// only when the values vary) per half-life and target quantile. notes say
// which start signals cannot be candidates and why.
func candidates(h *History, cfg *Config, T1 int64) (cands []candidate, keys []aggKey, notes []string) {
	type info struct {
		customers  int
		minV, maxV float64
		values     []float64
	}
	types := map[string]*info{}
	for _, id := range h.Customers {
		seen := map[string]bool{}
		for _, ev := range before(h.Events[id], T1) {
			in := types[ev.Type]
			if in == nil {
				in = &info{minV: ev.Value, maxV: ev.Value}
				types[ev.Type] = in
			}
			in.minV, in.maxV = math.Min(in.minV, ev.Value), math.Max(in.maxV, ev.Value)
			in.values = append(in.values, ev.Value)
			if !seen[ev.Type] {
				seen[ev.Type] = true
				in.customers++
			}
		}
	}
	use := map[string]bool{}
	hls := map[string][]time.Duration{}
	for _, c := range cfg.Start.Categories {
		for _, s := range c.Signals {
			switch {
			case types[s.Event] == nil:
				notes = append(notes, fmt.Sprintf("dropped %s: no %s event before the training cut-off", s.Name, s.Event))
			default:
				sig := s
				sig.Negative = false
				cands = append(cands, candidate{sig: sig, start: s.Name})
				use[s.Event] = true
				hls[s.Event] = append(hls[s.Event], s.HalfLife)
			}
		}
	}
	if !cfg.NoPropose {
		for t, in := range types {
			if t != scorer.TypeOverride && in.customers >= cfg.MinCustomers {
				use[t] = true
			}
		}
	}
	names := make([]string, 0, len(use))
	for t := range use {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		grid := slices.Clone(cfg.HalfLives)
		grid = append(grid, hls[t]...)
		slices.Sort(grid)
		grid = slices.Compact(grid)
		for _, hl := range grid {
			keys = append(keys, aggKey{t, hl})
			cands = append(cands, candidate{sig: scorer.Signal{Event: t, Kind: scorer.KindRecency, HalfLife: hl}})
			for _, lv := range cfg.Levels {
				cands = append(cands, candidate{sig: scorer.Signal{Event: t, Kind: scorer.KindCount, HalfLife: hl}, level: lv})
			}
			if in := types[t]; in.minV != in.maxV {
				for _, lv := range cfg.Levels {
					cands = append(cands, candidate{sig: scorer.Signal{Event: t, Kind: scorer.KindSum, HalfLife: hl}, level: lv})
				}
				if lo, hi := valueRange(in.values); lo < hi {
					cands = append(cands, candidate{sig: scorer.Signal{Event: t, Kind: scorer.KindAverage, HalfLife: hl, Min: lo, Max: hi}})
				}
			}
		}
	}
	return cands, keys, notes
}

// valueRange is the 5% and 95% quantiles of an event type's values (4
// significant digits): the min and max of a proposed average signal.
func valueRange(vs []float64) (lo, hi float64) {
	vs = slices.Clone(vs)
	slices.Sort(vs)
	q := func(f float64) float64 { return roundSig(vs[int(f*float64(len(vs)-1))], 4) }
	return q(0.05), q(0.95)
}

// weights maps coefficients to category weights summing to 100 (4
// significant digits); a signal under 0.5% of the total gets 0 (left out).
func weights(coef []float64) []float64 {
	var total float64
	for _, c := range coef {
		total += math.Abs(c)
	}
	w := make([]float64, len(coef))
	if total == 0 {
		return w
	}
	for i, c := range coef {
		if math.Abs(c) >= 0.005*total {
			w[i] = roundSig(100*math.Abs(c)/total, 4)
		}
	}
	return w
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// buildModel writes the model file: one category per signal (a category
// averages its signals with equal weights, so a weight per signal needs a
// category each), weight |coefficient|, direction its sign. With rep it
// adds the header comments.
func buildModel(cfg *Config, cands []candidate, coef []float64, bands scorer.Bands, rep *Report) (*Result, error) {
	st := cfg.Start
	w := weights(coef)
	var b strings.Builder
	if rep != nil {
		from := st.Name + " version " + st.Version
		if cfg.StartName != "" {
			from += " (" + cfg.StartName + ")"
		}
		fmt.Fprintf(&b, "# Fitted by `healthscore fit` from %s.\n", from)
		fmt.Fprintf(&b, "# Cut-off %s, horizon %s, churn: %s. Nothing after the cut-off was read.\n", rep.At, rep.Horizon, rep.Labels)
		fmt.Fprintf(&b, "# Trained on %s ending at %s, %s apart (%d customer rows, %d churned); validated on %d customers at %s (%d churned).\n",
			plural(rep.TrainWindows, "label window"), rep.TrainAt, formatHalfLife(cfg.Step), rep.TrainCustomers, rep.TrainChurned, rep.ValidateCustomers, rep.ValidateAt, rep.ValidateChurned)
		fmt.Fprintf(&b, "# Validation AUC: start model %.4f, fitted %.4f, RFM rank-sum %.4f (%d of %d candidate signals chosen by forward selection).\n",
			rep.StartAUC, rep.FittedAUC, rep.BaselineAUC, rep.Chosen, rep.Candidates)
		fmt.Fprintf(&b, "# Targets and weights were then refit on the latest %s, ending at %s, the validation cut-off (AUC there, in sample, %.4f).\n", plural(rep.FinalWindows, "label window"), rep.ValidateAt, rep.FinalAUC)
		b.WriteString("# Each signal is its own category (a category averages its signals with equal weights);\n")
		b.WriteString("# the weight is the signal's share of the regression, the direction its sign.\n")
		b.WriteString("# Changes from the start model:\n")
		for _, c := range rep.Changes {
			fmt.Fprintf(&b, "#   - %s\n", c)
		}
	}
	fmt.Fprintf(&b, "name: %s\n", quote(st.Name))
	fmt.Fprintf(&b, "version: %s\n", quote(st.Version+"-fit."+time.Unix(0, cfg.At).UTC().Format("20060102")))
	if rep != nil {
		b.WriteString("# red: about as many customers as churned at the validation cut-off score below it; yellow: twice as many.\n")
	}
	fmt.Fprintf(&b, "bands: {red: %s, yellow: %s}\n", formatNum(bands.Red), formatNum(bands.Yellow))
	fmt.Fprintf(&b, "hysteresis: %s\nchange_min_delta: %s\ndecay_step: %s\n", formatNum(st.Hysteresis), formatNum(st.ChangeMinDelta), formatNum(st.DecayStep))
	if t := st.Trend; t != nil {
		fmt.Fprintf(&b, "trend: {drop_points: %s, baseline_half_life: %s, cooldown: %s}\n", formatNum(t.DropPoints), formatHalfLife(t.BaselineHalfLife), formatHalfLife(t.Cooldown))
	}
	b.WriteString("categories:\n")
	used := map[string]bool{}
	n := 0
	for i, c := range cands {
		if w[i] == 0 {
			continue
		}
		name := c.name()
		for used[name] {
			name += "_fit"
		}
		used[name] = true
		n++
		fmt.Fprintf(&b, "  - name: %s\n    weight: %s\n    signals:\n", quote(name), formatNum(w[i]))
		if rep != nil {
			way := "higher is healthier"
			if coef[i] < 0 {
				way = "higher is riskier"
			}
			origin := "new"
			if c.start != "" {
				origin = "kept from the start model"
			}
			fmt.Fprintf(&b, "      # %s: %s; %s\n", origin, c.describe(), way)
		}
		fmt.Fprintf(&b, "      - {name: %s, event: %s, kind: %s, half_life: %s", quote(name), quote(c.sig.Event), c.sig.Kind, formatHalfLife(c.sig.HalfLife))
		switch c.sig.Kind {
		case scorer.KindCount, scorer.KindSum:
			fmt.Fprintf(&b, ", target: %s", formatNum(c.sig.Target))
		case scorer.KindAverage:
			fmt.Fprintf(&b, ", min: %s, max: %s", formatNum(c.sig.Min), formatNum(c.sig.Max))
		}
		if coef[i] < 0 {
			b.WriteString(", direction: negative")
		}
		b.WriteString("}\n")
	}
	if n == 0 {
		return nil, fmt.Errorf("cannot fit: every fitted weight is zero")
	}
	data := []byte(b.String())
	m, err := scorer.ParseModel("fitted model", data)
	if err != nil {
		return nil, fmt.Errorf("cannot fit: the fitted model is invalid (a bug): %w", err)
	}
	return &Result{YAML: data, Model: m}, nil
}

// changes lists what the fit changed, for the comments and the report.
func changes(cfg *Config, final []candidate, notes []string) []string {
	var out []string
	in := map[string]bool{}
	for _, c := range final {
		if c.start != "" {
			in[c.start] = true
			out = append(out, fmt.Sprintf("kept %s (%s)", c.start, c.describe()))
		} else {
			out = append(out, fmt.Sprintf("added %s (%s)", c.name(), c.describe()))
		}
	}
	noted := map[string]bool{}
	for _, n := range notes {
		noted[strings.Fields(n)[1]] = true
	}
	for _, c := range cfg.Start.Categories {
		for _, s := range c.Signals {
			if !in[s.Name] && !noted[s.Name+":"] {
				out = append(out, fmt.Sprintf("dropped %s: not chosen by the forward selection", s.Name))
			}
		}
	}
	out = append(out, notes...)
	if len(cfg.Start.Segments) > 0 {
		segs := make([]string, 0, len(cfg.Start.Segments))
		for s := range cfg.Start.Segments {
			segs = append(segs, s)
		}
		sort.Strings(segs)
		out = append(out, "dropped the segments ("+strings.Join(segs, ", ")+"): the fit learns one set of weights and targets for every customer")
	}
	out = append(out, "categories regrouped: one per signal")
	return out
}
