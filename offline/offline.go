// Package offline owns batch scoring of JSONL event files: the engine behind
// `healthscore score`. It reads events line by line, folds them per customer
// with package scorer exactly as the streaming pipeline does, and renders one
// JSON line per customer. Bad lines are reported with their file and line and
// never stop the run.
package offline

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/healthscore/healthscore/scorer"
)

// MaxLine is the longest input line accepted, in bytes (the event size limit
// of the streaming side).
const MaxLine = 1 << 20

// Input is one named event source.
type Input struct {
	Name string // used in error messages, e.g. a file name or "stdin"
	R    io.Reader
}

// LineError is a bad input line.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// Result is the folded state of every customer.
type Result struct {
	Model     *scorer.Model
	At        int64 // evaluation instant, Unix ns
	States    map[string]*scorer.State
	Lines     int // non-blank lines read
	Applied   int // events folded
	Ignored   int // valid events the model does not fold: of a type no signal reads, naming no segment (see scorer.Model.Folds)
	Late      int // valid events after At (ignored)
	BadLines  int
	HasEvents bool
	// Events holds every folded event per customer, when Options.Timeline.
	Events map[string][]scorer.Event
}

// Options control a fold.
type Options struct {
	Model *scorer.Model
	// At is the evaluation instant in Unix ns; when HasAt is false it is the
	// latest event time in the input.
	At    int64
	HasAt bool
	// OnError receives every bad line; it may be nil.
	OnError func(*LineError)
	// Progress, when set, is called every ProgressEvery lines.
	Progress      func(lines int)
	ProgressEvery int
	// Timeline keeps every folded event (Result.Events) for WriteTimeline.
	Timeline bool
}

// Fold reads every input and folds its events. It returns an error only for
// I/O failures; bad lines go to OnError and are counted.
func Fold(inputs []Input, opt Options) (*Result, error) {
	if opt.Model == nil {
		return nil, errors.New("cannot fold events: no model")
	}
	res := &Result{Model: opt.Model, States: make(map[string]*scorer.State), At: opt.At}
	if opt.Timeline {
		res.Events = make(map[string][]scorer.Event)
	}
	for _, in := range inputs {
		if err := res.fold(in, &opt); err != nil {
			return res, err
		}
	}
	if !opt.HasAt {
		res.At = 0
		for _, st := range res.States {
			if st.LastEvent > res.At || res.At == 0 {
				res.At = st.LastEvent
			}
		}
	}
	return res, nil
}

func (res *Result) fold(in Input, opt *Options) error {
	r := bufio.NewReaderSize(in.R, 64<<10)
	var long []byte  // a line longer than the reader's buffer, assembled
	tooLong := false // the current line is over MaxLine: skip the rest of it
	lineNo := 0
	bad := func(err error) {
		res.BadLines++
		if opt.OnError != nil {
			opt.OnError(&LineError{File: in.Name, Line: lineNo, Err: err})
		}
	}
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !tooLong && len(long)+len(line) <= MaxLine+2 { // + "\r\n"
				long = append(long, line...)
			} else {
				tooLong, long = true, long[:0]
			}
			continue
		}
		if len(long) > 0 && !tooLong {
			line = append(long, line...)
		}
		if len(line) > 0 || tooLong {
			lineNo++
			switch {
			case tooLong || len(bytes.TrimRight(line, "\r\n")) > MaxLine:
				bad(fmt.Errorf("line is longer than %d bytes", MaxLine))
			default:
				res.line(bytes.TrimSpace(line), opt, bad)
			}
		}
		long, tooLong = long[:0], false
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", in.Name, err)
		}
		if opt.Progress != nil && opt.ProgressEvery > 0 && lineNo%opt.ProgressEvery == 0 {
			opt.Progress(res.Lines)
		}
	}
}

func (res *Result) line(line []byte, opt *Options, bad func(error)) {
	if len(line) == 0 {
		return
	}
	res.Lines++
	ev, err := scorer.DecodeEvent(line)
	if err != nil {
		bad(err)
		return
	}
	if !ev.HasTime {
		bad(&scorer.DecodeError{Reason: scorer.ReasonMissingTime, Field: "time", Detail: "is required offline (RFC 3339, e.g. 2026-11-20T10:00:00Z)"})
		return
	}
	if opt.HasAt && ev.Time > opt.At {
		res.Late++
		return
	}
	if !opt.Model.Folds(&ev) {
		res.Ignored++
		return
	}
	st := res.States[ev.CustomerID]
	if st == nil {
		st = opt.Model.NewState()
		res.States[ev.CustomerID] = st
	}
	opt.Model.Apply(st, &ev)
	res.Applied++
	if res.Events != nil {
		res.Events[ev.CustomerID] = append(res.Events[ev.CustomerID], ev)
	}
}

// TimelineEntry is one line of WriteTimeline.
type TimelineEntry struct {
	CustomerID string  `json:"customer_id"`
	At         string  `json:"at"`
	Type       string  `json:"type"` // band_changed, health.low, health.recovered or health.dropped
	Score      float64 `json:"score"`
	Band       string  `json:"band"`
	Cause      string  `json:"cause"` // event or decay
}

// Timeline types besides the alert types.
const TimelineBandChanged = "band_changed"

// Timeline replays one customer's events in time order as the stream
// would, evaluating at each distinct event time (as if each were its own
// batch) and, in between and after the last event up to at, at every
// decay crossing predicted by NextChange. It returns the band transitions
// (including the first band) and alerts, in time order.
func Timeline(m *scorer.Model, customerID string, evs []scorer.Event, at int64) []TimelineEntry {
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b scorer.Event) int { return cmp.Compare(a.Time, b.Time) })
	var out []TimelineEntry
	st := m.NewState()
	emit := func(t int64, cause string) {
		o := m.Step(st, t)
		if !o.Eval.HasScore {
			return
		}
		add := func(typ string) {
			out = append(out, TimelineEntry{CustomerID: customerID, At: scorer.FormatTime(t), Type: typ,
				Score: scorer.Round2(o.Eval.Score), Band: o.Eval.Band.String(), Cause: cause})
		}
		if o.Changed && o.BandChanged {
			add(TimelineBandChanged)
		}
		switch o.Alert {
		case scorer.AlertLow:
			add("health.low")
		case scorer.AlertRecovered:
			add("health.recovered")
		}
		if o.Dropped {
			add("health.dropped")
		}
	}
	// decayUntil steps at every crossing in (from, until).
	decayUntil := func(from, until int64, inclusive bool) {
		for {
			t, ok := m.NextChange(st, from)
			if !ok || t > until || (t == until && !inclusive) {
				return
			}
			emit(t, "decay")
			from = t
		}
	}
	var last int64
	for i := 0; i < len(evs); {
		t := evs[i].Time
		if i > 0 {
			decayUntil(last, t, false)
		}
		for ; i < len(evs) && evs[i].Time == t; i++ {
			m.Apply(st, &evs[i])
		}
		emit(t, "event")
		last = t
	}
	if len(evs) > 0 {
		decayUntil(last, at, true)
	}
	return out
}

// WriteTimeline writes the Timeline of every customer up to res.At as JSON
// lines, customers sorted by customer_id. It needs Options.Timeline.
func (res *Result) WriteTimeline(w io.Writer) error {
	if res.Events == nil {
		return errors.New("cannot write the timeline: events were not kept (Options.Timeline)")
	}
	ids := make([]string, 0, len(res.Events))
	for id := range res.Events {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, id := range ids {
		for _, e := range Timeline(res.Model, id, res.Events[id], res.At) {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("cannot write the timeline: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write the timeline: %w", err)
	}
	return nil
}

// Write renders one JSON line per customer, sorted by customer_id, evaluated
// at res.At.
func (res *Result) Write(w io.Writer) error {
	ids := make([]string, 0, len(res.States))
	for id := range res.States {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, id := range ids {
		st := res.States[id]
		ev := res.Model.Evaluate(st, res.At)
		if err := enc.Encode(res.Model.View(id, st, &ev, false)); err != nil {
			return fmt.Errorf("cannot write scores: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write scores: %w", err)
	}
	return nil
}
