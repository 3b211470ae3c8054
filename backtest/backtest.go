package backtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

// Scores evaluates m for every customer of d as of d.At, folding only its
// events before d.At (in time order, as the stream would). A customer
// without a score (no category of m has data, e.g. a model of averages
// only and no answers) gets score 0 and the red band: it is ranked the
// riskiest. unscored counts them.
func (d *Data) Scores(m *scorer.Model) (scores []float64, bands []scorer.Band, unscored int) {
	scores = make([]float64, len(d.IDs))
	bands = make([]scorer.Band, len(d.IDs))
	for i := range d.IDs {
		st := m.NewState()
		for k := range d.Events[i] {
			m.Apply(st, &d.Events[i][k])
		}
		ev := m.Evaluate(st, d.At)
		if !ev.HasScore {
			unscored++
			scores[i], bands[i] = 0, scorer.BandRed
			continue
		}
		scores[i], bands[i] = ev.Score, ev.Band
	}
	return scores, bands, unscored
}

// RFM returns the baseline score of every customer of d: the sum of three
// mid-ranks (1 = worst) over the population, computed from its events
// before d.At of type typ (every type when typ is ""):
//
//   - recency: the time of its latest such event (more recent ranks
//     higher; none ranks lowest);
//   - frequency: how many such events;
//   - monetary: the sum of their values.
//
// A higher sum is healthier, like a model score.
func (d *Data) RFM(typ string) []float64 {
	n := len(d.IDs)
	r, f, mon := make([]float64, n), make([]float64, n), make([]float64, n)
	for i, evs := range d.Events {
		r[i] = math.Inf(-1)
		for k := range evs {
			if typ != "" && evs[k].Type != typ {
				continue
			}
			r[i] = max(r[i], float64(evs[k].Time))
			f[i]++
			mon[i] += evs[k].Value
		}
	}
	rr, rf, rm := Ranks(r), Ranks(f), Ranks(mon)
	out := make([]float64, n)
	for i := range out {
		out[i] = rr[i] + rf[i] + rm[i]
	}
	return out
}

// Metric is a figure that may be undefined (NaN, written as JSON null).
type Metric float64

// MarshalJSON writes NaN and infinities as null.
func (m Metric) MarshalJSON() ([]byte, error) {
	f := float64(m)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'f', -1, 64), nil
}

// BandFigures is the churn in one band.
type BandFigures struct {
	Band      string `json:"band"`
	Customers int    `json:"customers"`
	Churned   int    `json:"churned"`
	ChurnRate Metric `json:"churn_rate"`
}

// Report is a backtest's figures. The JSON names are stable.
type Report struct {
	Model     string `json:"model"` // name and version
	At        string `json:"at"`
	Horizon   string `json:"horizon"`
	ChurnRule string `json:"churn_rule"`

	Customers      int    `json:"customers"`
	Churned        int    `json:"churned"`
	ChurnRate      Metric `json:"churn_rate"`
	Unscored       int    `json:"unscored"`
	AlreadyChurned int    `json:"already_churned"`
	Unlabelled     int    `json:"unlabelled"`
	EventsBefore   int    `json:"events_before"`
	BadLines       int    `json:"bad_lines"`

	AUC                   Metric `json:"auc"`
	BaselineAUC           Metric `json:"baseline_auc"`
	TopDecileLift         Metric `json:"top_decile_lift"`
	BaselineTopDecileLift Metric `json:"baseline_top_decile_lift"`
	RedPrecision          Metric `json:"red_precision"`
	RedRecall             Metric `json:"red_recall"`
	BaselineRedPrecision  Metric `json:"baseline_red_precision"`
	BaselineRedRecall     Metric `json:"baseline_red_recall"`
	// The oracle's figures (a risk file such as simulate's oracle.csv);
	// nil without one.
	OracleAUC           *Metric `json:"oracle_auc,omitempty"`
	OracleTopDecileLift *Metric `json:"oracle_top_decile_lift,omitempty"`
	OracleMissing       int     `json:"oracle_missing,omitempty"`

	Bands         []BandFigures `json:"bands"`
	BaselineBands []BandFigures `json:"baseline_bands"`
	RFMType       string        `json:"rfm_type"`

	ROC         []Point `json:"-"`
	BaselineROC []Point `json:"-"`
	OracleROC   []Point `json:"-"`
}

// Options of Evaluate.
type Options struct {
	// RFMType is the event type the baseline reads ("" for every type).
	RFMType string
	// Oracle, when set, maps customers to a churn risk (higher is riskier)
	// evaluated alongside; customers without one count as risk 0.
	Oracle map[string]float64
	// ChurnRule describes where labels came from, for the report.
	ChurnRule string
}

// Evaluate measures m and the RFM baseline on d.
func Evaluate(d *Data, m *scorer.Model, opt Options) *Report {
	scores, bands, unscored := d.Scores(m)
	base := d.RFM(opt.RFMType)
	r := &Report{
		Model:          m.Name + " " + m.Version,
		At:             scorer.FormatTime(d.At),
		Horizon:        FormatDays(d.Horizon),
		ChurnRule:      opt.ChurnRule,
		Customers:      len(d.IDs),
		Unscored:       unscored,
		AlreadyChurned: d.AlreadyChurned,
		Unlabelled:     d.Unlabelled,
		EventsBefore:   d.EventsBefore,
		BadLines:       d.BadLines,
		RFMType:        opt.RFMType,
	}
	for _, c := range d.Churned {
		if c {
			r.Churned++
		}
	}
	r.ChurnRate = Metric(float64(r.Churned) / float64(r.Customers))
	r.AUC, r.BaselineAUC = Metric(AUC(scores, d.Churned)), Metric(AUC(base, d.Churned))
	r.TopDecileLift, r.BaselineTopDecileLift = Metric(TopDecileLift(scores, d.Churned)), Metric(TopDecileLift(base, d.Churned))
	r.ROC, r.BaselineROC = ROC(scores, d.Churned), ROC(base, d.Churned)
	r.Bands = bandFigures(bands, d.Churned)
	r.RedPrecision, r.RedRecall = precisionRecall(bands, d.Churned)
	baseBands := sameSizeBands(base, bands)
	r.BaselineBands = bandFigures(baseBands, d.Churned)
	r.BaselineRedPrecision, r.BaselineRedRecall = precisionRecall(baseBands, d.Churned)
	if opt.Oracle != nil {
		health := make([]float64, len(d.IDs))
		for i, id := range d.IDs {
			risk, ok := opt.Oracle[id]
			if !ok {
				r.OracleMissing++
			}
			health[i] = -risk
		}
		auc, lift := Metric(AUC(health, d.Churned)), Metric(TopDecileLift(health, d.Churned))
		r.OracleAUC, r.OracleTopDecileLift, r.OracleROC = &auc, &lift, ROC(health, d.Churned)
	}
	return r
}

// FormatDays writes a duration in days when it is whole days (90d), else
// as Go does.
func FormatDays(h time.Duration) string {
	if h%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(h/(24*time.Hour)), 10) + "d"
	}
	return h.String()
}

var bandOrder = []scorer.Band{scorer.BandRed, scorer.BandYellow, scorer.BandGreen}

func bandFigures(bands []scorer.Band, churned []bool) []BandFigures {
	out := make([]BandFigures, len(bandOrder))
	for k, b := range bandOrder {
		out[k].Band = b.String()
		for i := range bands {
			if bands[i] == b {
				out[k].Customers++
				if churned[i] {
					out[k].Churned++
				}
			}
		}
		out[k].ChurnRate = Metric(float64(out[k].Churned) / float64(out[k].Customers))
	}
	return out
}

// precisionRecall of the red band: the share of red customers who churned,
// and the share of churned customers who were red.
func precisionRecall(bands []scorer.Band, churned []bool) (Metric, Metric) {
	var red, hit, pos float64
	for i, b := range bands {
		if churned[i] {
			pos++
		}
		if b == scorer.BandRed {
			red++
			if churned[i] {
				hit++
			}
		}
	}
	return Metric(hit / red), Metric(hit / pos)
}

// sameSizeBands gives the baseline the model's band sizes: its lowest
// scores (ties broken by customer order, i.e. by customer id) are red, as
// many as the model has red, then yellow, then green.
func sameSizeBands(base []float64, model []scorer.Band) []scorer.Band {
	count := map[scorer.Band]int{}
	for _, b := range model {
		count[b]++
	}
	idx := order(base)
	out := make([]scorer.Band, len(base))
	k := 0
	for _, b := range bandOrder {
		for range count[b] {
			out[idx[k]] = b
			k++
		}
	}
	return out
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the report: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func f3(m Metric) string {
	if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
		return "—"
	}
	return strconv.FormatFloat(float64(m), 'f', 3, 64)
}

func pct(m Metric) string {
	if math.IsNaN(float64(m)) {
		return "—"
	}
	return strconv.FormatFloat(100*float64(m), 'f', 1, 64) + "%"
}

// WriteTable writes the report as aligned text.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "backtest of %s at %s, horizon %s; churned: %s\n", r.Model, r.At, r.Horizon, r.ChurnRule)
	fmt.Fprintf(&b, "customers %d (with events before the cut-off), churned %d (%s)", r.Customers, r.Churned, pct(r.ChurnRate))
	if r.AlreadyChurned+r.Unlabelled+r.Unscored > 0 {
		fmt.Fprintf(&b, "; excluded: %d churned before, %d without a label; %d without a score (ranked riskiest)", r.AlreadyChurned, r.Unlabelled, r.Unscored)
	}
	b.WriteString("\n\n")
	rfm := "RFM rank-sum"
	head := fmt.Sprintf("%-18s %8s %14s", "", "model", rfm)
	if r.OracleAUC != nil {
		head += fmt.Sprintf(" %8s", "oracle")
	}
	b.WriteString(strings.TrimRight(head, " ") + "\n")
	row := func(name string, m, base string, oracle *Metric) {
		s := fmt.Sprintf("%-18s %8s %14s", name, m, base)
		if r.OracleAUC != nil {
			o := ""
			if oracle != nil {
				o = f3(*oracle)
			}
			s += fmt.Sprintf(" %8s", o)
		}
		b.WriteString(strings.TrimRight(s, " ") + "\n")
	}
	row("AUC", f3(r.AUC), f3(r.BaselineAUC), r.OracleAUC)
	row("top-decile lift", f3(r.TopDecileLift), f3(r.BaselineTopDecileLift), r.OracleTopDecileLift)
	row("red precision", f3(r.RedPrecision), f3(r.BaselineRedPrecision), nil)
	row("red recall", f3(r.RedRecall), f3(r.BaselineRedRecall), nil)
	b.WriteString("\nchurn rate per band (the baseline's bands have the model's sizes)\n")
	fmt.Fprintf(&b, "%-8s %10s %8s %10s %14s %14s\n", "band", "customers", "churned", "model", "RFM churned", "RFM rate")
	for k := range r.Bands {
		m, bb := r.Bands[k], r.BaselineBands[k]
		fmt.Fprintf(&b, "%-8s %10d %8d %10s %14d %14s\n", m.Band, m.Customers, m.Churned, pct(m.ChurnRate), bb.Churned, pct(bb.ChurnRate))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
