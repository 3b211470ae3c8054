package backtest

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

// Label is one customer's churn truth, from a labels file.
type Label struct {
	Churned bool
	Time    int64 // Unix ns of the churn; 0 when unknown
}

// LoadOptions say where to split a log and where churn comes from.
type LoadOptions struct {
	At      int64         // the cut-off T, Unix ns
	Horizon time.Duration // churn window (T, T+Horizon]
	// Exactly one of Labels and ChurnIfNo.
	// Labels: a customer churned when its label says so with a time in
	// (T, T+Horizon] or no time; one whose churn time is at or before T
	// had already left and is excluded; one without a label is excluded.
	Labels map[string]Label
	// ChurnIfNo: a customer churned when it has no event of this type in
	// (T, T+Horizon].
	ChurnIfNo string
	// OnError receives every bad input line; it may be nil.
	OnError func(*offline.LineError)
	// Progress, when set, is called with the bytes read so far, every MiB.
	Progress func(bytes int64)
}

// Data is a log split at At: the population (customers with at least one
// valid event strictly before At, sorted by id), their events before At
// (in time order) and their churn labels. Nothing in it depends on events
// at or after At except Churned.
type Data struct {
	At      int64
	Horizon time.Duration
	IDs     []string
	Events  [][]scorer.Event // per customer, before At, in time order
	Churned []bool

	Lines           int // non-blank lines read
	BadLines        int
	AlreadyChurned  int // excluded: label churn time at or before At
	Unlabelled      int // excluded: no label in the labels file
	EventsBefore    int // events before At of the population
	EventsAfterSeen int // events at or after At (read for labels only)
}

// Load reads JSONL events (the input event schema; "time" required) and
// splits them at opt.At.
func Load(inputs []offline.Input, opt LoadOptions) (*Data, error) {
	if (opt.Labels == nil) == (opt.ChurnIfNo == "") {
		return nil, errors.New("cannot load events: give labels or a churn-if-no event type, not both or neither")
	}
	if opt.Horizon <= 0 {
		return nil, errors.New("cannot load events: the horizon must be positive")
	}
	end := opt.At + int64(opt.Horizon)
	before := map[string][]scorer.Event{}
	active := map[string]bool{} // ChurnIfNo events in (At, end]
	d := &Data{At: opt.At, Horizon: opt.Horizon}
	var read int64
	for _, in := range inputs {
		sc := bufio.NewScanner(in.R)
		sc.Buffer(make([]byte, 64<<10), offline.MaxLine+2)
		line := 0
		var next int64 = 1 << 20
		for sc.Scan() {
			line++
			read += int64(len(sc.Bytes())) + 1
			if opt.Progress != nil && read >= next {
				opt.Progress(read)
				next += 1 << 20
			}
			b := sc.Bytes()
			if len(strings.TrimSpace(string(b))) == 0 {
				continue
			}
			d.Lines++
			ev, err := scorer.DecodeEvent(b)
			if err == nil && !ev.HasTime {
				err = &scorer.DecodeError{Reason: scorer.ReasonMissingTime, Field: "time", Detail: "is required offline (RFC 3339, e.g. 2026-11-20T10:00:00Z)"}
			}
			if err != nil {
				d.BadLines++
				if opt.OnError != nil {
					opt.OnError(&offline.LineError{File: in.Name, Line: line, Err: err})
				}
				continue
			}
			if ev.Time < opt.At {
				before[ev.CustomerID] = append(before[ev.CustomerID], ev)
				continue
			}
			d.EventsAfterSeen++
			if ev.Time > opt.At && ev.Time <= end && ev.Type == opt.ChurnIfNo { // (At, end]: an event at At itself is in neither the history nor the window
				active[ev.CustomerID] = true
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("cannot read %s (line %d): %w", in.Name, line+1, err)
		}
	}
	ids := make([]string, 0, len(before))
	for id := range before {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		churned := !active[id]
		if opt.Labels != nil {
			l, ok := opt.Labels[id]
			switch {
			case !ok:
				d.Unlabelled++
				continue
			case l.Churned && l.Time != 0 && l.Time <= opt.At:
				d.AlreadyChurned++
				continue
			}
			churned = l.Churned && (l.Time == 0 || l.Time <= end)
		}
		evs := before[id]
		slices.SortStableFunc(evs, func(a, b scorer.Event) int { return cmp.Compare(a.Time, b.Time) })
		d.IDs = append(d.IDs, id)
		d.Events = append(d.Events, evs)
		d.Churned = append(d.Churned, churned)
		d.EventsBefore += len(evs)
	}
	return d, nil
}

// ReadLabels reads a labels file: CSV with a header naming at least
// customer_id and churned (true/false/1/0) and optionally churn_time (RFC
// 3339, may be empty), or, when the first non-blank byte is '{', JSON lines
// with the same fields ("churned" a boolean). Errors name the line.
func ReadLabels(name string, r io.Reader) (map[string]Label, error) {
	br := bufio.NewReader(r)
	for {
		b, err := br.Peek(1)
		if err != nil || (b[0] != ' ' && b[0] != '\n' && b[0] != '\r' && b[0] != '\t') {
			break
		}
		_, _ = br.ReadByte()
	}
	if b, err := br.Peek(1); err == nil && b[0] == '{' {
		return readLabelsJSON(name, br)
	}
	labels := map[string]Label{}
	cr := csv.NewReader(br)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s:1: cannot read the header: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	ci, ok1 := col["customer_id"]
	chi, ok2 := col["churned"]
	ti, hasTime := col["churn_time"]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%s:1: the header must name customer_id and churned (and optionally churn_time), got %s", name, strings.Join(header, ","))
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return labels, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		var ts string
		if hasTime {
			ts = rec[ti]
		}
		if err := addLabel(labels, rec[ci], rec[chi], ts); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
}

func readLabelsJSON(name string, r io.Reader) (map[string]Label, error) {
	labels := map[string]Label{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), offline.MaxLine+2)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l struct {
			CustomerID string `json:"customer_id"`
			Churned    *bool  `json:"churned"`
			ChurnTime  string `json:"churn_time"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if l.Churned == nil {
			return nil, fmt.Errorf("%s:%d: churned is required (true or false)", name, line)
		}
		if err := addLabel(labels, l.CustomerID, strconv.FormatBool(*l.Churned), l.ChurnTime); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, err)
	}
	return labels, nil
}

func addLabel(labels map[string]Label, id, churned, ts string) error {
	if id == "" {
		return errors.New("customer_id is empty")
	}
	if _, dup := labels[id]; dup {
		return fmt.Errorf("customer %q is labelled twice", id)
	}
	var l Label
	switch strings.TrimSpace(churned) {
	case "true", "1":
		l.Churned = true
	case "false", "0":
	default:
		return fmt.Errorf("churned %q: want true, false, 1 or 0", churned)
	}
	if ts = strings.TrimSpace(ts); ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return fmt.Errorf("churn_time %q is not RFC 3339 (e.g. 2026-11-20T10:00:00Z)", ts)
		}
		l.Time = t.UnixNano()
	}
	labels[id] = l
	return nil
}

// ReadRisks reads a risk file such as simulate's oracle.csv: CSV with a
// header naming customer_id and risk (a churn probability: higher is
// riskier).
func ReadRisks(name string, r io.Reader) (map[string]float64, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s:1: cannot read the header: %w", name, err)
	}
	ci, ri := slices.Index(header, "customer_id"), slices.Index(header, "risk")
	if ci < 0 || ri < 0 {
		return nil, fmt.Errorf("%s:1: the header must name customer_id and risk, got %s", name, strings.Join(header, ","))
	}
	out := map[string]float64{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		v, err := strconv.ParseFloat(rec[ri], 64)
		if err != nil || v != v {
			return nil, fmt.Errorf("%s:%d: risk %q is not a number", name, line, rec[ri])
		}
		out[rec[ci]] = v
	}
}
