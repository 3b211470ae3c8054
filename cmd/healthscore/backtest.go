package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/healthscore/healthscore/backtest"
	"github.com/healthscore/healthscore/internal/progress"
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

func backtestCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var events listFlag
	fs.Var(&events, "events", "JSONL events `FILE` (repeatable; - for stdin; positional FILEs work too)")
	modelPath := fs.String("model", "", "model `FILE` (default: the built-in model)")
	labelsPath := fs.String("labels", "", "churn labels `FILE` (CSV or JSONL: customer_id, churned, churn_time)")
	churnIfNo := fs.String("churn-if-no", "", "label as churned a customer with no event of this `TYPE` in (at, at+horizon]")
	atFlag := fs.String("at", "", "the cut-off (RFC 3339, or YYYY-MM-DD for midnight UTC; required): scores use events strictly before it")
	horizonFlag := fs.String("horizon", "90d", "churn window after the cut-off (e.g. 90d)")
	rfmType := fs.String("rfm-type", "", "event `TYPE` the RFM baseline reads (default: the --churn-if-no type, else every type)")
	oraclePath := fs.String("oracle", "", "risk `FILE` to measure alongside (CSV customer_id,risk; e.g. simulate's oracle.csv)")
	chartPath := fs.String("chart", "", "write an SVG chart (ROC curves, churn rate per band) to `FILE`")
	jsonPath := fs.String("json", "", "write the figures as JSON to `FILE`")
	quiet := fs.Bool("quiet", false, "do not print progress and bad lines on stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: healthscore backtest --events FILE (--labels FILE | --churn-if-no TYPE) --at T [--horizon 90d]\n"+
			"                            [--model FILE] [--chart F.svg] [--json F] [--oracle FILE]\n\n"+
			"Scores every customer with events before --at from those events only, labels churn in\n"+
			"(at, at+horizon], and reports AUC, top-decile lift, red-band precision and recall and churn\n"+
			"rate per band for the model and an RFM rank-sum baseline (docs/backtesting.md).\n\n")
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return exitError(2)
	}
	events = append(events, rest...)
	usage := func(msg string) error {
		fmt.Fprintf(stderr, "healthscore backtest: %s\n", msg)
		return exitError(2)
	}
	switch {
	case len(events) == 0:
		return usage("--events FILE is required")
	case (*labelsPath == "") == (*churnIfNo == ""):
		return usage("give exactly one of --labels FILE and --churn-if-no TYPE")
	case *atFlag == "":
		return usage("--at is required (the cut-off)")
	}
	at, err := parseInstant("at", *atFlag)
	if err != nil {
		return err
	}
	horizon, err := scorer.ParseHalfLife(*horizonFlag)
	if err != nil {
		return fmt.Errorf("--horizon %q: %w", *horizonFlag, err)
	}
	model, err := loadModel(*modelPath)
	if err != nil {
		return err
	}
	opt := backtest.LoadOptions{At: at, Horizon: horizon, ChurnIfNo: *churnIfNo}
	rule := fmt.Sprintf("no %s event in (at, at+%s]", *churnIfNo, backtest.FormatDays(horizon))
	if *labelsPath != "" {
		f, err := os.Open(*labelsPath)
		if err != nil {
			return fmt.Errorf("cannot open labels: %w", err)
		}
		opt.Labels, err = backtest.ReadLabels(*labelsPath, f)
		f.Close()
		if err != nil {
			return err
		}
		rule = fmt.Sprintf("labelled in %s with a churn time in (at, at+%s]", *labelsPath, backtest.FormatDays(horizon))
	}
	var oracle map[string]float64
	if *oraclePath != "" {
		f, err := os.Open(*oraclePath)
		if err != nil {
			return fmt.Errorf("cannot open the oracle: %w", err)
		}
		oracle, err = backtest.ReadRisks(*oraclePath, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	var inputs []offline.Input
	var total int64
	for _, name := range events {
		if name == "-" {
			inputs = append(inputs, offline.Input{Name: "stdin", R: stdin})
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("cannot open events: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			total += fi.Size()
		}
		inputs = append(inputs, offline.Input{Name: name, R: f})
	}
	if !*quiet {
		opt.OnError = func(e *offline.LineError) { fmt.Fprintln(stderr, e) }
	}
	var bar *progress.Bar
	if !*quiet && isTerminal(stderr) && total > 0 {
		bar = &progress.Bar{W: stderr, Label: "reading events (KiB)", Total: int(total >> 10)}
		opt.Progress = func(n int64) { bar.Set(int(n >> 10)) }
	}
	data, err := backtest.Load(inputs, opt)
	bar.Done()
	if err != nil {
		return err
	}
	if len(data.IDs) == 0 {
		return fmt.Errorf("no customer has an event before %s: nothing to backtest (check --at)", scorer.FormatTime(at))
	}
	bopt := backtest.Options{RFMType: *rfmType, Oracle: oracle, ChurnRule: rule}
	if bopt.RFMType == "" {
		bopt.RFMType = *churnIfNo
	}
	rep := backtest.Evaluate(data, model, bopt)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	write := func(path string, fn func(io.Writer) error) error {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("cannot create %s: %w", path, err)
		}
		if err := fn(f); err != nil {
			f.Close()
			return fmt.Errorf("cannot write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("cannot write %s: %w", path, err)
		}
		return nil
	}
	if *chartPath != "" {
		if err := write(*chartPath, rep.WriteSVG); err != nil {
			return err
		}
	}
	if *jsonPath != "" {
		if err := write(*jsonPath, rep.WriteJSON); err != nil {
			return err
		}
	}
	if data.BadLines > 0 {
		fmt.Fprintf(stderr, "healthscore backtest: %d bad lines were left out\n", data.BadLines)
		return exitError(1)
	}
	return nil
}
