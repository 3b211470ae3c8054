package main

// The flags and input files shared by the offline commands: backtest and fit
// judge churn after a cut-off (cutoffFlags); those two, model diff, score
// and convert read input files where "-" is stdin (openInputs).

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/healthscore/healthscore/backtest"
	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// parseInstant accepts RFC 3339 or a day (YYYY-MM-DD, midnight UTC).
func parseInstant(flagName, s string) (int64, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixNano(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UnixNano(), nil
	}
	return 0, fmt.Errorf("--%s %q is neither RFC 3339 (2011-09-10T00:00:00Z) nor a day (2011-09-10, midnight UTC)", flagName, s)
}

// usageError prints msg as a usage error of the command cmd and returns
// exit status 2.
func usageError(stderr io.Writer, cmd, msg string) error {
	fmt.Fprintf(stderr, "healthscore %s: %s\n", cmd, msg)
	return exitError(2)
}

// cutoffFlags are the flags of the commands that label churn after a
// cut-off: --events, --labels | --churn-if-no, --at and --horizon.
type cutoffFlags struct {
	events    listFlag
	labels    string
	churnIfNo string
	at        string
	horizon   string
}

// register adds the flags to fs. eventsUsage is the command's own usage of
// --events (whether it reads stdin or positional files); labelsNote, when
// not empty, is what the command adds about the labels file.
func (f *cutoffFlags) register(fs *flag.FlagSet, eventsUsage, labelsNote string) {
	fs.Var(&f.events, "events", eventsUsage)
	if labelsNote != "" {
		labelsNote = "; " + labelsNote
	}
	fs.StringVar(&f.labels, "labels", "", "churn labels `FILE` (CSV or JSONL: customer_id, churned, churn_time"+labelsNote+"; docs/backtesting.md)")
	fs.StringVar(&f.churnIfNo, "churn-if-no", "", "label as churned a customer with no event of this `TYPE` in the horizon after the cut-off, (T, T+horizon]")
	fs.StringVar(&f.at, "at", "", "the cut-off `T` (required): RFC 3339, or YYYY-MM-DD for midnight UTC; scores use only events strictly before it")
	fs.StringVar(&f.horizon, "horizon", "90d", "churn `window` after the cut-off (m, h or d; e.g. 90d)")
}

// cutoff is what cutoffFlags say, checked.
type cutoff struct {
	events    []string
	at        int64 // Unix ns
	horizon   time.Duration
	labels    string // the labels FILE, or "" with churnIfNo
	churnIfNo string // the event TYPE, or "" with labels
}

// parse checks the flags of the command cmd. A missing or conflicting flag
// is a usage error: it is printed on stderr and the error is exit status 2.
// A value that does not parse is returned as an error (exit status 1).
func (f *cutoffFlags) parse(cmd string, stderr io.Writer) (cutoff, error) {
	switch {
	case len(f.events) == 0:
		return cutoff{}, usageError(stderr, cmd, "--events FILE is required")
	case (f.labels == "") == (f.churnIfNo == ""):
		return cutoff{}, usageError(stderr, cmd, "give exactly one of --labels FILE and --churn-if-no TYPE")
	case f.at == "":
		return cutoff{}, usageError(stderr, cmd, "--at T is required: the cut-off, RFC 3339 (2011-09-10T00:00:00Z) or a day (2011-09-10, midnight UTC)")
	}
	at, err := parseInstant("at", f.at)
	if err != nil {
		return cutoff{}, err
	}
	horizon, err := scorer.ParseHalfLife(f.horizon)
	if err != nil {
		return cutoff{}, fmt.Errorf("--horizon: %w", err)
	}
	return cutoff{events: f.events, at: at, horizon: horizon, labels: f.labels, churnIfNo: f.churnIfNo}, nil
}

// readLabels reads the --labels file; it returns nil with --churn-if-no.
func (c cutoff) readLabels() (map[string]backtest.Label, error) {
	if c.labels == "" {
		return nil, nil
	}
	f, err := os.Open(c.labels)
	if err != nil {
		return nil, fmt.Errorf("cannot open labels: %w", err)
	}
	defer f.Close()
	return backtest.ReadLabels(c.labels, f)
}

// inputs are a command's opened input files, in the order named.
type inputs struct {
	list  []offline.Input
	size  int64 // bytes in the named files (stdin counts 0), for progress
	files []*os.File
}

// openInputs opens the named files; "-" is stdin, named "stdin" in bad-line
// reports. A nil stdin means the command cannot read it (it has no stdin, or
// reads its input more than once). what names the files in errors
// ("events", "input"). On success the caller closes the inputs.
func openInputs(what string, names []string, stdin io.Reader) (*inputs, error) {
	in := &inputs{}
	for _, name := range names {
		if name == "-" {
			if stdin == nil {
				in.close()
				return nil, fmt.Errorf("cannot read %s from stdin here: give a FILE instead of -", what)
			}
			in.list = append(in.list, offline.Input{Name: "stdin", R: stdin})
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			in.close()
			return nil, fmt.Errorf("cannot open %s: %w", what, err)
		}
		in.files = append(in.files, f)
		if fi, err := f.Stat(); err == nil {
			in.size += fi.Size()
		}
		in.list = append(in.list, offline.Input{Name: name, R: f})
	}
	return in, nil
}

// openArgs opens the positional input files of score and convert: stdin
// when there are none.
func openArgs(files []string, stdin io.Reader) (*inputs, error) {
	if len(files) == 0 {
		files = []string{"-"}
	}
	return openInputs("input", files, stdin)
}

// close closes the opened files; they are only read.
func (in *inputs) close() {
	for _, f := range in.files {
		f.Close()
	}
}
