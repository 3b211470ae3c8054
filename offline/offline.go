// Package offline owns batch scoring of JSONL event files: the engine behind
// `healthscore score`. It reads events line by line, folds them per customer
// with package scorer exactly as the streaming pipeline does, and renders one
// JSON line per customer. Bad lines are reported with their file and line and
// never stop the run.
package offline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	Ignored   int // valid events of a type the model does not read (see scorer.Model.Reads)
	Late      int // valid events after At (ignored)
	BadLines  int
	HasEvents bool
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
}

// Fold reads every input and folds its events. It returns an error only for
// I/O failures; bad lines go to OnError and are counted.
func Fold(inputs []Input, opt Options) (*Result, error) {
	if opt.Model == nil {
		return nil, errors.New("cannot fold events: no model")
	}
	res := &Result{Model: opt.Model, States: make(map[string]*scorer.State), At: opt.At}
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
	if !opt.Model.Reads(ev.Type) {
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
