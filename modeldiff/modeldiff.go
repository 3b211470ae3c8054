// Package modeldiff owns comparing two health models on the same customers:
// how many would change band and which way (a from→to matrix), and the
// largest score moves with the signals that drove them. It is the engine of
// `healthscore model diff`; scoring itself is package scorer's.
package modeldiff

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/healthscore/healthscore/scorer"
)

// Bands in matrix order: none (no score) first, then worst to healthiest.
var Bands = []scorer.Band{scorer.BandNone, scorer.BandRed, scorer.BandYellow, scorer.BandGreen}

// Driver is one signal's change of contribution between the models.
type Driver struct {
	Signal string  // category/signal
	Points float64 // new − old contribution, in points
}

// Move is one customer's score under both models.
type Move struct {
	CustomerID         string
	OldScore, NewScore float64
	OldBand, NewBand   scorer.Band // BandNone: no score
	Delta              float64     // new − old (0 when either has no score)
	Drivers            []Driver    // top signals by |change|
}

// Report is a comparison.
type Report struct {
	At        int64
	Customers int
	Matrix    [4][4]int // [old][new], indexed like Bands
	Worse     int       // band moved toward red (none counts as worst)
	Better    int
	Top       []Move // largest |Delta| first
}

// Compare scores every customer of either states map at at with its model
// (a customer absent from a map has no score under that model) and keeps
// the top largest moves. Bands are raw (no hysteresis: a first score).
func Compare(oldM, newM *scorer.Model, oldSt, newSt map[string]*scorer.State, at int64, top int) Report {
	ids := map[string]bool{}
	for id := range oldSt {
		ids[id] = true
	}
	for id := range newSt {
		ids[id] = true
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	rep := Report{At: at, Customers: len(sorted)}
	var moves []Move
	for _, id := range sorted {
		oe, ok1 := eval(oldM, oldSt[id], at)
		ne, ok2 := eval(newM, newSt[id], at)
		mv := Move{CustomerID: id}
		if ok1 {
			mv.OldScore, mv.OldBand = oe.Score, oe.Band
		}
		if ok2 {
			mv.NewScore, mv.NewBand = ne.Score, ne.Band
		}
		rep.Matrix[mv.OldBand][mv.NewBand]++
		switch {
		case mv.NewBand < mv.OldBand:
			rep.Worse++
		case mv.NewBand > mv.OldBand:
			rep.Better++
		}
		if ok1 && ok2 {
			mv.Delta = ne.Score - oe.Score
			mv.Drivers = drivers(&oe, &ne)
			moves = append(moves, mv)
		}
	}
	sort.SliceStable(moves, func(i, j int) bool { return math.Abs(moves[i].Delta) > math.Abs(moves[j].Delta) })
	if len(moves) > top {
		moves = moves[:top]
	}
	rep.Top = moves
	return rep
}

func eval(m *scorer.Model, st *scorer.State, at int64) (scorer.Evaluation, bool) {
	if st == nil {
		return scorer.Evaluation{}, false
	}
	cp := *st
	cp.Published, cp.Band = false, scorer.BandNone // raw bands
	ev := m.Evaluate(&cp, at)
	return ev, ev.HasScore
}

// drivers are the signals (matched by category and signal name; absent
// counts 0) whose contribution changed most, top 3.
func drivers(o, n *scorer.Evaluation) []Driver {
	pts := map[string]float64{}
	var order []string
	add := func(ev *scorer.Evaluation, sign float64) {
		for _, c := range ev.Categories {
			for _, s := range c.Signals {
				k := s.Name
				if c.Name != s.Name {
					k = c.Name + "/" + s.Name
				}
				if _, ok := pts[k]; !ok {
					order = append(order, k)
				}
				pts[k] += sign * s.Points
			}
		}
	}
	add(o, -1)
	add(n, 1)
	var ds []Driver
	for _, k := range order {
		if math.Abs(pts[k]) >= 0.005 {
			ds = append(ds, Driver{Signal: k, Points: pts[k]})
		}
	}
	sort.SliceStable(ds, func(i, j int) bool { return math.Abs(ds[i].Points) > math.Abs(ds[j].Points) })
	if len(ds) > 3 {
		ds = ds[:3]
	}
	return ds
}

func bandName(b scorer.Band) string {
	if b == scorer.BandNone {
		return "none"
	}
	return b.String()
}

// Write renders the report as tables.
func (r *Report) Write(w io.Writer) error {
	fmt.Fprintf(w, "customers: %d at %s\n", r.Customers, scorer.FormatTime(r.At))
	changed := r.Worse + r.Better
	fmt.Fprintf(w, "band changes: %d (%d worse, %d better), %d unchanged\n\n", changed, r.Worse, r.Better, r.Customers-changed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "old \\ new\t")
	for _, b := range Bands {
		fmt.Fprintf(tw, "%s\t", bandName(b))
	}
	fmt.Fprintln(tw)
	for _, ob := range Bands {
		fmt.Fprintf(tw, "%s\t", bandName(ob))
		for _, nb := range Bands {
			fmt.Fprintf(tw, "%d\t", r.Matrix[ob][nb])
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Top) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nlargest score moves:\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "customer\told\tnew\tchange\tdrivers (points)")
	for _, m := range r.Top {
		ds := make([]string, len(m.Drivers))
		for i, d := range m.Drivers {
			ds[i] = fmt.Sprintf("%s %+.2f", d.Signal, d.Points)
		}
		fmt.Fprintf(tw, "%s\t%.2f %s\t%.2f %s\t%+.2f\t%s\n", m.CustomerID, m.OldScore, bandName(m.OldBand),
			m.NewScore, bandName(m.NewBand), m.Delta, strings.Join(ds, ", "))
	}
	return tw.Flush()
}
