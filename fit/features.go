package fit

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/healthscore/healthscore/backtest"
	"github.com/healthscore/healthscore/scorer"
)

// candidate is a signal the fit may use. Its sub-score (direction not
// applied) is a feature of the regression; the sign of its coefficient
// becomes the signal's direction.
type candidate struct {
	sig   scorer.Signal // Target set per snapshot for quantile targets
	level float64       // count and sum: target = this quantile of S > 0; 0 for a fixed target
	start string        // name in the start model, when it comes from there
}

func (c *candidate) describe() string {
	s := fmt.Sprintf("%s of %s, half-life %s", c.sig.Kind, c.sig.Event, formatHalfLife(c.sig.HalfLife))
	switch c.sig.Kind {
	case scorer.KindCount, scorer.KindSum:
		s += ", target " + formatNum(c.sig.Target)
		if c.level > 0 {
			s += fmt.Sprintf(" (the %g%% quantile)", 100*c.level)
		}
	case scorer.KindAverage:
		s += fmt.Sprintf(", from %s to %s", formatNum(c.sig.Min), formatNum(c.sig.Max))
	}
	return s
}

type aggKey struct {
	event string
	hl    time.Duration
}

// snapshot is the population at one cut-off with its labels and the
// decayed aggregates the candidates read.
type snapshot struct {
	at      int64
	ids     []string
	churned []bool
	nChurn  int
	count   map[aggKey][]float64 // decayed count S per customer
	sum     map[aggKey][]float64 // decayed sum S per customer
	last    map[string][]int64   // latest event time per customer, noTime without
}

const noTime = math.MinInt64

// newSnapshot labels the population at at and computes, for every event
// type and half-life in keys, the decayed count and sum of each customer's
// events before at, as package scorer folds them.
func newSnapshot(h *History, labels Labels, at, horizon int64, keys []aggKey) *snapshot {
	return newSnapshots(h, labels, []int64{at}, horizon, keys)[at]
}

// newSnapshots does newSnapshot for several cut-offs in one pass over
// each customer's events: per event type and half-life the decayed sums
// are folded forward in time (S ← S·2^(−Δt/h) + x, as the scorer folds
// them) and read at each cut-off.
func newSnapshots(h *History, labels Labels, cuts []int64, horizon int64, keys []aggKey) map[int64]*snapshot {
	cuts = slices.Clone(cuts)
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	snaps := make([]*snapshot, len(cuts))
	rows := make([][]int, len(cuts)) // per cut-off, per customer of h: its row, or −1
	for k, at := range cuts {
		s := &snapshot{at: at, count: map[aggKey][]float64{}, sum: map[aggKey][]float64{}, last: map[string][]int64{}}
		rows[k] = make([]int, len(h.Customers))
		for ci, id := range h.Customers {
			rows[k][ci] = -1
			churned, ok := labels.Label(h, id, at, horizon)
			if !ok {
				continue
			}
			rows[k][ci] = len(s.ids)
			s.ids = append(s.ids, id)
			s.churned = append(s.churned, churned)
			if churned {
				s.nChurn++
			}
		}
		n := len(s.ids)
		for _, key := range keys {
			s.count[key], s.sum[key] = make([]float64, n), make([]float64, n)
			if s.last[key.event] == nil {
				l := make([]int64, n)
				for i := range l {
					l[i] = noTime
				}
				s.last[key.event] = l
			}
		}
		snaps[k] = s
	}
	hls := map[string][]float64{}
	for _, key := range keys {
		hls[key.event] = append(hls[key.event], float64(key.hl))
	}
	byType := map[string][]scorer.Event{}
	for ci, id := range h.Customers {
		clear(byType)
		for _, ev := range h.Events[id] {
			if hls[ev.Type] != nil {
				byType[ev.Type] = append(byType[ev.Type], ev)
			}
		}
		for typ, evs := range byType {
			for hi, hl := range hls[typ] {
				key := aggKey{typ, time.Duration(hl)}
				var c, v float64
				var ref int64
				j := 0
				for k, at := range cuts {
					for ; j < len(evs) && evs[j].Time < at; j++ {
						d := 1.0
						if j > 0 {
							d = math.Exp2(-float64(evs[j].Time-ref) / hl)
						}
						c, v, ref = c*d+1, v*d+evs[j].Value, evs[j].Time
					}
					r := rows[k][ci]
					if r < 0 || j == 0 {
						continue
					}
					d := math.Exp2(-float64(at-ref) / hl)
					snaps[k].count[key][r], snaps[k].sum[key][r] = c*d, v*d
					if hi == 0 {
						snaps[k].last[typ][r] = ref
					}
				}
			}
		}
	}
	out := make(map[int64]*snapshot, len(cuts))
	for k, at := range cuts {
		out[at] = snaps[k]
	}
	return out
}

// data is the snapshot as a backtest.Data (its population, events before
// its cut-off and labels), so that its AUCs are the backtest's.
func (s *snapshot) data(h *History, horizon time.Duration) *backtest.Data {
	d := &backtest.Data{At: s.at, Horizon: horizon, IDs: s.ids, Churned: s.churned}
	for _, id := range s.ids {
		d.Events = append(d.Events, before(h.Events[id], s.at))
	}
	return d
}

// sample is one or more snapshots stacked: their rows one after the
// other, targets from the first (the latest).
type sample []*snapshot

func (ss sample) setTarget(c *candidate) bool { return ss[0].setTarget(c) }

func (ss sample) feature(c *candidate) []float64 {
	var x []float64
	for _, s := range ss {
		x = append(x, s.feature(c)...)
	}
	return x
}

func (ss sample) churned() []bool {
	var out []bool
	for _, s := range ss {
		out = append(out, s.churned...)
	}
	return out
}

func (ss sample) counts() (rows, churned int) {
	for _, s := range ss {
		rows += len(s.ids)
		churned += s.nChurn
	}
	return rows, churned
}

// setTarget sets a quantile candidate's target from this snapshot (rounded
// to 4 significant digits, as written in the model file); false when no
// customer has a positive S.
func (s *snapshot) setTarget(c *candidate) bool {
	if c.level == 0 {
		return true
	}
	src := s.count
	if c.sig.Kind == scorer.KindSum {
		src = s.sum
	}
	var pos []float64
	for _, v := range src[aggKey{c.sig.Event, c.sig.HalfLife}] {
		if v > 0 {
			pos = append(pos, v)
		}
	}
	if len(pos) == 0 {
		return false
	}
	sort.Float64s(pos)
	t := roundSig(pos[int(math.Min(float64(len(pos)-1), c.level*float64(len(pos))))], 4)
	if !(t > 0) {
		return false
	}
	c.sig.Target = t
	return true
}

// feature is the candidate's sub-score per customer, direction not
// applied. An average without data (no event yet) gets the mean of those
// with data: the scorer leaves its category out and renormalises, which no
// constant reproduces exactly; the AUCs reported are the scorer's.
func (s *snapshot) feature(c *candidate) []float64 {
	k := aggKey{c.sig.Event, c.sig.HalfLife}
	x := make([]float64, len(s.ids))
	if c.sig.Kind == scorer.KindAverage {
		var sum float64
		n := 0
		for i := range x {
			if w := s.count[k][i]; w > 0 {
				x[i] = clamp01((s.sum[k][i]/w - c.sig.Min) / (c.sig.Max - c.sig.Min))
				sum += x[i]
				n++
			} else {
				x[i] = math.NaN()
			}
		}
		mean := 0.5
		if n > 0 {
			mean = sum / float64(n)
		}
		for i := range x {
			if math.IsNaN(x[i]) {
				x[i] = mean
			}
		}
		return x
	}
	for i := range x {
		switch c.sig.Kind {
		case scorer.KindCount:
			x[i] = clamp01(s.count[k][i] / c.sig.Target)
		case scorer.KindSum:
			x[i] = clamp01(s.sum[k][i] / c.sig.Target)
		case scorer.KindRecency:
			if l := s.last[c.sig.Event][i]; l != noTime {
				x[i] = math.Exp2(-float64(s.at-l) / float64(c.sig.HalfLife))
			}
		}
	}
	return x
}

func clamp01(x float64) float64 {
	switch {
	case x > 1:
		return 1
	case x >= 0:
		return x
	default:
		return 0
	}
}

func roundSig(x float64, digits int) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', digits, 64), 64)
	return v
}

func formatNum(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// formatHalfLife writes a duration as the model file's half_life.
func formatHalfLife(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	default:
		return strconv.FormatFloat(float64(d)/float64(time.Minute), 'f', -1, 64) + "m"
	}
}
