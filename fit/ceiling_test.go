//go:build ceiling

// Measurements, not tests: how well could ANY model of a log's events rank
// churn, whatever its form? They answer why the targets are missed
// (docs/backtesting.md, "What the events allow"), with learners freer than
// a health model: logistic regressions on log-scaled features, ratios,
// cadence, per-segment scales, pairwise products and per-decile steps,
// some trained on labels no fit may read. They assert nothing, print their
// figures and skip without their input:
//
//	HEALTHSCORE_RETAIL=/tmp/retail.jsonl go test -tags ceiling -run TestCeilingRetail -v ./fit/
//	HEALTHSCORE_SIM_TRAIN=$PWD/sim3@2027-10-03 HEALTHSCORE_SIM_TEST=$PWD/sim@2026-10-03,$PWD/sim1@2027-10-03 \
//	  go test -tags ceiling -run TestCeilingSim -v -timeout 60m ./fit/
//
// Paths must be absolute (go test runs in ./fit). The retail log is
// examples/online-retail/map.yaml's conversion; a simulated log is a
// `healthscore simulate` directory, @ a day, usually its oracle's instant.
// The simulated learners train on three label windows of the training
// log, at its day and 90 and 180 days before.
package fit

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/backtest"
	"github.com/healthscore/healthscore/offline"
)

func ceilingLoad(t *testing.T, path string, at string, opt backtest.LoadOptions) *backtest.Data {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	when, err := time.Parse("2006-01-02", at)
	if err != nil {
		t.Fatal(err)
	}
	opt.At, opt.Horizon = when.UnixNano(), 90*day
	d, err := backtest.Load([]offline.Input{{Name: path, R: f}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ceilingCount(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// decayed is Σ 2^(−age/hl) (or of the values) over d's customer i's
// events of type typ before d.At; hl in days.
func decayed(d *backtest.Data, i int, typ string, hl float64, values bool) float64 {
	s := 0.0
	for _, e := range d.Events[i] {
		if e.Type != typ {
			continue
		}
		w := math.Exp2(-float64(d.At-e.Time) / float64(day) / hl)
		if values {
			w *= e.Value
		}
		s += w
	}
	return s
}

// retailRow is one customer's purchase history in a few figures.
type retailRow map[string]float64

func retailRows(d *backtest.Data) []retailRow {
	rows := make([]retailRow, len(d.IDs))
	for i := range d.IDs {
		r := retailRow{}
		var n, m, canc float64
		first, last := int64(math.MaxInt64), int64(math.MinInt64)
		months := map[int]bool{}
		for _, e := range d.Events[i] {
			if e.Type == "cancellation" {
				canc++
				continue
			}
			n++
			m += e.Value
			first, last = min(first, e.Time), max(last, e.Time)
			tm := time.Unix(0, e.Time).UTC()
			months[tm.Year()*12+int(tm.Month())] = true
		}
		rec, ten := 1000.0, 0.0 // days since the last and the first purchase
		if n > 0 {
			rec, ten = float64(d.At-last)/float64(day), float64(d.At-first)/float64(day)
		}
		r["-R"], r["F"], r["M"], r["tenure"] = -rec, n, m, ten
		r["-logR"], r["logF"], r["logM"] = -math.Log1p(rec), math.Log1p(n), math.Log1p(math.Max(m, 0))
		r["cancellations"], r["months"], r["avg"] = canc, float64(len(months)), 0
		if n > 0 {
			r["avg"] = m / n
			// recency against the customer's own cadence: days since the
			// last purchase over the mean gap between purchases.
			r["-log(R/gap)"] = -math.Log((rec + 1) / (ten/n + 1))
		} else {
			r["-log(R/gap)"] = -10
		}
		for _, hl := range []float64{7, 30, 90, 180, 365} {
			r[fmt.Sprintf("logc%g", hl)] = math.Log(1e-3 + decayed(d, i, "purchase", hl, false))
			r[fmt.Sprintf("logs%g", hl)] = math.Log1p(math.Max(0, decayed(d, i, "purchase", hl, true)))
		}
		// recent against usual activity
		r["log(c30/c365)"] = r["logc30"] - r["logc365"]
		r["log(c7/c90)"] = r["logc7"] - r["logc90"]
		rows[i] = r
	}
	return rows
}

func retailCols(rows []retailRow, names []string) [][]float64 {
	cols := make([][]float64, len(names))
	for j, n := range names {
		cols[j] = make([]float64, len(rows))
		for i, r := range rows {
			cols[j][i] = r[n]
		}
	}
	return cols
}

// stepCols turns each column into steps at its deciles among ref: an
// additive model free to take any monotone or non-monotone shape.
func stepCols(ref, cols [][]float64) [][]float64 {
	var out [][]float64
	for j, c := range ref {
		vs := append([]float64(nil), c...)
		sort.Float64s(vs)
		var cuts []float64
		for q := 1; q < 10; q++ {
			if v := vs[q*len(vs)/10]; len(cuts) == 0 || v > cuts[len(cuts)-1] {
				cuts = append(cuts, v)
			}
		}
		for _, cut := range cuts {
			col := make([]float64, len(cols[j]))
			for i, v := range cols[j] {
				if v >= cut {
					col[i] = 1
				}
			}
			out = append(out, col)
		}
	}
	return out
}

func rowsOf(cols [][]float64, rows []int) [][]float64 {
	out := make([][]float64, len(cols))
	for j, c := range cols {
		out[j] = make([]float64, len(rows))
		for k, i := range rows {
			out[j][k] = c[i]
		}
	}
	return out
}

// crossValidated is the AUC of 5-fold cross-validated predictions: a
// model trained on the evaluation's own labels, other customers' only.
func crossValidated(cols [][]float64, churned []bool, lambda float64, steps bool) float64 {
	y := stayed(churned)
	pred := make([]float64, len(y))
	for fold := 0; fold < 5; fold++ {
		var trn, tst []int
		for i := range y {
			if i%5 == fold {
				tst = append(tst, i)
			} else {
				trn = append(trn, i)
			}
		}
		yt := make([]float64, len(trn))
		for k, i := range trn {
			yt[k] = y[i]
		}
		xtr, xts := rowsOf(cols, trn), rowsOf(cols, tst)
		if steps {
			xtr, xts = stepCols(xtr, xtr), stepCols(xtr, xts)
		}
		p := fitLogistic(xtr, yt, lambda).predict(xts)
		for k, i := range tst {
			pred[i] = p[k]
		}
	}
	return backtest.AUC(pred, churned)
}

func TestCeilingRetail(t *testing.T) {
	path := os.Getenv("HEALTHSCORE_RETAIL")
	if path == "" {
		t.Skip("HEALTHSCORE_RETAIL (the converted Online Retail log) is not set")
	}
	cuts := []string{"2011-03-14", "2011-06-12", "2011-09-10"}
	data := map[string]*backtest.Data{}
	rows := map[string][]retailRow{}
	for _, c := range cuts {
		data[c] = ceilingLoad(t, path, c, backtest.LoadOptions{ChurnIfNo: "purchase"})
		rows[c] = retailRows(data[c])
		d := data[c]
		fmt.Printf("cut-off %s: %d customers, %d churned; RFM rank-sum AUC %.3f\n", c, len(d.IDs), ceilingCount(d.Churned), backtest.AUC(d.RFM("purchase"), d.Churned))
	}
	ev := data["2011-09-10"]
	fmt.Println("\none feature at 2011-09-10 (AUC):")
	single := []string{"logc365", "logc180", "logc90", "logc30", "logF", "logs90", "logM", "months", "-logR", "log(c7/c90)", "log(c30/c365)", "tenure", "-log(R/gap)", "cancellations", "avg"}
	for _, n := range single {
		fmt.Printf("  %-14s %.3f\n", n, backtest.AUC(retailCols(rows["2011-09-10"], []string{n})[0], ev.Churned))
	}
	sets := []struct {
		name  string
		feats []string
	}{
		{"log R, F, M", []string{"-logR", "logF", "logM"}},
		{"decayed counts and spend", []string{"logc30", "logc90", "logc365", "logs90"}},
		{"decayed + cadence recency", []string{"logc30", "logc365", "logs90", "-log(R/gap)", "-logR"}},
		{"decayed + recent/usual", []string{"logc30", "logc90", "logc365", "logs90", "log(c30/c365)", "log(c7/c90)"}},
		{"all", nil},
	}
	for n := range rows["2011-09-10"][0] { // every customer has every feature
		sets[len(sets)-1].feats = append(sets[len(sets)-1].feats, n)
	}
	sort.Strings(sets[len(sets)-1].feats)
	sets[len(sets)-1].name = fmt.Sprintf("all %d features", len(sets[len(sets)-1].feats))
	fmt.Println("\nAUC at 2011-09-10 of a logistic regression (λ = 1) trained at:")
	fmt.Println("  2011-03-14 (labels to 2011-06-12: what a fit at 2011-06-12 may read)")
	fmt.Println("  2011-06-12 (labels to 2011-09-10: read past that fit's cut-off)")
	fmt.Println("  2011-09-10, 5-fold cross-validated (the evaluation's own labels)")
	for _, steps := range []bool{false, true} {
		for _, s := range sets {
			name := s.name
			if steps {
				name += ", decile steps"
			}
			var out []string
			for _, c := range cuts[:2] {
				tr := retailCols(rows[c], s.feats)
				xe := retailCols(rows["2011-09-10"], s.feats)
				if steps {
					tr, xe = stepCols(tr, tr), stepCols(tr, xe)
				}
				l := fitLogistic(tr, stayed(data[c].Churned), 1)
				out = append(out, fmt.Sprintf("%.3f", backtest.AUC(l.predict(xe), ev.Churned)))
			}
			out = append(out, fmt.Sprintf("%.3f", crossValidated(retailCols(rows["2011-09-10"], s.feats), ev.Churned, 1, steps)))
			fmt.Printf("  %-42s %s\n", name, strings.Join(out, "  "))
		}
	}
}

// simRow is a simulated customer's activity: decayed counts per event
// type and half-life, recency, mean NPS and segment.
type simRow struct {
	c   map[string][]float64
	rec map[string]float64
	nps float64
	seg string
}

var (
	simTypes = []string{"login", "feature_used", "kb_viewed", "ticket_opened", "ticket_escalated", "payment_failed"}
	simHLs   = []float64{3, 7, 14, 30, 60, 90} // days
)

func simRows(d *backtest.Data) []simRow {
	rows := make([]simRow, len(d.IDs))
	for i := range d.IDs {
		r := simRow{c: map[string][]float64{}, rec: map[string]float64{}, nps: 5}
		for _, typ := range simTypes {
			r.c[typ] = make([]float64, len(simHLs))
		}
		last := map[string]int64{}
		var s, w float64
		for _, e := range d.Events[i] {
			if e.Segment != "" {
				r.seg = e.Segment
			}
			age := float64(d.At-e.Time) / float64(day)
			if e.Type == "nps_submitted" {
				a := math.Exp2(-age / 90)
				s, w = s+a*e.Value, w+a
				continue
			}
			if v := r.c[e.Type]; v != nil {
				for k, hl := range simHLs {
					v[k] += math.Exp2(-age / hl)
				}
				last[e.Type] = e.Time
			}
		}
		if w > 0 {
			r.nps = s / w
		}
		for typ, l := range last {
			r.rec[typ] = math.Exp2(-float64(d.At-l) / float64(day) / 7)
		}
		rows[i] = r
	}
	return rows
}

// segmentMedians: per segment, type and half-life, the median decayed count.
func segmentMedians(rows []simRow) map[string]map[string][]float64 {
	bySeg := map[string][]simRow{}
	for _, r := range rows {
		bySeg[r.seg] = append(bySeg[r.seg], r)
	}
	out := map[string]map[string][]float64{}
	for seg, rs := range bySeg {
		out[seg] = map[string][]float64{}
		for _, typ := range simTypes {
			out[seg][typ] = make([]float64, len(simHLs))
			for k := range simHLs {
				vs := make([]float64, len(rs))
				for i, r := range rs {
					vs[i] = r.c[typ][k]
				}
				sort.Float64s(vs)
				out[seg][typ][k] = vs[len(vs)/2] + 0.01
			}
		}
	}
	return out
}

// simCols: "base" is log decayed counts, recency and NPS; "rich" adds the
// counts against the segment's median, recent-against-usual ratios and
// segment indicators; "quadratic" is the main ones and all their products.
func simCols(rows []simRow, med map[string]map[string][]float64, kind string) [][]float64 {
	var cols [][]float64
	col := func(f func(r simRow) float64) {
		c := make([]float64, len(rows))
		for i, r := range rows {
			c[i] = f(r)
		}
		cols = append(cols, c)
	}
	segment := func(s string) func(r simRow) float64 {
		return func(r simRow) float64 {
			if r.seg == s {
				return 1
			}
			return 0
		}
	}
	if kind == "quadratic" {
		for _, typ := range []string{"login", "feature_used"} {
			for _, k := range []int{0, 1, 2, 3, 5} {
				col(func(r simRow) float64 { return math.Log(0.1 + r.c[typ][k]) })
			}
		}
		col(func(r simRow) float64 { return math.Log(0.1 + r.c["ticket_opened"][3]) })
		col(func(r simRow) float64 { return math.Log(0.1 + r.c["kb_viewed"][3]) })
		col(func(r simRow) float64 { return r.nps })
		col(segment("enterprise"))
		col(segment("mid-market"))
		n := len(cols)
		for a := 0; a < n; a++ {
			for b := a; b < n; b++ {
				c := make([]float64, len(rows))
				for i := range c {
					c[i] = cols[a][i] * cols[b][i]
				}
				cols = append(cols, c)
			}
		}
		return cols
	}
	for _, typ := range simTypes {
		for k := range simHLs {
			col(func(r simRow) float64 { return math.Log(0.1 + r.c[typ][k]) })
			if kind == "rich" {
				col(func(r simRow) float64 { return math.Log((0.1 + r.c[typ][k]) / (0.1 + med[r.seg][typ][k])) })
			}
		}
		col(func(r simRow) float64 { return r.rec[typ] })
		if kind == "rich" {
			for _, p := range [][2]int{{1, 4}, {2, 5}, {0, 3}, {1, 3}} {
				col(func(r simRow) float64 { return math.Log((0.1 + r.c[typ][p[0]]) / (0.1 + r.c[typ][p[1]])) })
			}
		}
	}
	col(func(r simRow) float64 { return r.nps })
	if kind == "rich" {
		col(segment("enterprise"))
		col(segment("mid-market"))
	}
	return cols
}

func simLoad(t *testing.T, spec string) (*backtest.Data, []float64) {
	t.Helper()
	dir, at, ok := strings.Cut(spec, "@")
	if !ok {
		t.Fatalf("%q: want DIR@YYYY-MM-DD", spec)
	}
	lf, err := os.Open(dir + "/labels.csv")
	if err != nil {
		t.Fatal(err)
	}
	labels, err := backtest.ReadLabels("labels.csv", lf)
	lf.Close()
	if err != nil {
		t.Fatal(err)
	}
	d := ceilingLoad(t, dir+"/events.jsonl", at, backtest.LoadOptions{Labels: labels})
	of, err := os.Open(dir + "/oracle.csv")
	if err != nil {
		t.Fatal(err)
	}
	risks, err := backtest.ReadRisks("oracle.csv", of)
	of.Close()
	if err != nil {
		t.Fatal(err)
	}
	oracle := make([]float64, len(d.IDs))
	for i, id := range d.IDs {
		oracle[i] = -risks[id]
	}
	return d, oracle
}

func TestCeilingSim(t *testing.T) {
	train, tests := os.Getenv("HEALTHSCORE_SIM_TRAIN"), os.Getenv("HEALTHSCORE_SIM_TEST")
	if train == "" || tests == "" {
		t.Skip("HEALTHSCORE_SIM_TRAIN and HEALTHSCORE_SIM_TEST (DIR@DAY of simulate directories) are not set")
	}
	dir, at, _ := strings.Cut(train, "@")
	when, err := time.Parse("2006-01-02", at)
	if err != nil {
		t.Fatal(err)
	}
	// Three label windows of the training log, 90 days apart.
	var rows []simRow
	var churned []bool
	for k := 0; k < 3; k++ {
		c := when.Add(-time.Duration(k) * 90 * day).Format("2006-01-02")
		d, _ := simLoad(t, dir+"@"+c)
		rows, churned = append(rows, simRows(d)...), append(churned, d.Churned...)
		fmt.Printf("training %s at %s: %d customers, %d churned\n", dir, c, len(d.IDs), ceilingCount(d.Churned))
	}
	med := segmentMedians(rows)
	kinds := []string{"base", "rich", "quadratic"}
	models := map[string]*logistic{}
	for _, k := range kinds {
		models[k] = fitLogistic(simCols(rows, med, k), stayed(churned), 30)
	}
	for _, spec := range strings.Split(tests, ",") {
		d, oracle := simLoad(t, spec)
		trows := simRows(d)
		fmt.Printf("%s: %d customers, %d churned; oracle %.3f;", spec, len(d.IDs), ceilingCount(d.Churned), backtest.AUC(oracle, d.Churned))
		for _, k := range kinds {
			fmt.Printf(" %s %.3f", k, backtest.AUC(models[k].predict(simCols(trows, med, k)), d.Churned))
		}
		fmt.Println()
	}
}
