package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/healthscore/healthscore/backtest"
	"github.com/healthscore/healthscore/fit"
	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

// readHistory reads the event files up to until (Unix ns).
func readHistory(files []string, until int64, stderr io.Writer) (*fit.History, error) {
	if len(files) == 0 {
		return nil, errors.New("--events FILE is required")
	}
	var inputs []offline.Input
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("cannot open events: %w", err)
		}
		defer f.Close()
		inputs = append(inputs, offline.Input{Name: name, R: f})
	}
	return fit.ReadHistory(inputs, until, func(e *offline.LineError) { fmt.Fprintln(stderr, e) })
}

func fitCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath := fs.String("model", "", "start `FILE` (default: the built-in model)")
	var events listFlag
	fs.Var(&events, "events", "JSONL event `FILE` (repeat for several)")
	labelsPath := fs.String("labels", "", "labels `FILE` as `healthscore backtest` reads it; every churn needs its churn_time (docs/backtesting.md)")
	churnIfNo := fs.String("churn-if-no", "", "a customer churned when it has no event of this `TYPE` in the horizon")
	atFlag := fs.String("at", "", "the cut-off `T`, RFC 3339 or a day (midnight UTC): only events strictly before it are read")
	horizonFlag := fs.String("horizon", "90d", "churn `window` (m, h or d)")
	gapFlag := fs.String("gap", "", "training cut-off = cut-off − horizon − `gap` (default: the horizon)")
	out := fs.String("out", "", "write the fitted model to `FILE` (required)")
	report := fs.String("report", "", "write the report as JSON to `FILE`")
	maxSignals := fs.Int("max-signals", fit.DefaultMaxSignals, "at most this many signals")
	l2 := fs.Float64("l2", fit.DefaultL2, "L2 penalty on standardised coefficients")
	windows := fs.Int("windows", fit.DefaultWindows, "stack this many label windows for training and for the final refit")
	stepFlag := fs.String("step", "30d", "the windows are this `far` apart")
	halfLives := fs.String("half-lives", "", "comma-separated half-life `grid` of the candidate signals (default 7d,14d,30d,60d,90d,180d,365d)")
	noPropose := fs.Bool("no-propose", false, "use only the event types the start model reads")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: healthscore fit [--model FILE] --events FILE (--labels FILE | --churn-if-no TYPE) --at T [--horizon 90d] --out FILE [--report FILE]\n\nLearns signals, half-lives, targets, weights and bands from the events before --at\n(time split: trained at T − horizon − gap, validated at T − horizon) and writes a model file\n(docs/fitting.md).\n\n")
		fs.PrintDefaults()
	}
	if _, err := parseInterspersed(fs, args); err != nil {
		return exitError(2)
	}
	if *out == "" {
		return errors.New("--out FILE is required")
	}
	var labels fit.Labels
	switch {
	case (*labelsPath == "") == (*churnIfNo == ""):
		return errors.New("give exactly one of --labels FILE and --churn-if-no TYPE")
	case *churnIfNo != "":
		labels = fit.Inactivity{Type: *churnIfNo}
	}
	if *atFlag == "" {
		return errors.New("--at is required: the cut-off, RFC 3339 or a day (2011-06-12)")
	}
	at, err := parseInstant("at", *atFlag)
	if err != nil {
		return err
	}
	horizon, err := scorer.ParseHalfLife(*horizonFlag)
	if err != nil {
		return fmt.Errorf("--horizon: %w", err)
	}
	var gap time.Duration
	if *gapFlag != "" {
		if gap, err = scorer.ParseHalfLife(*gapFlag); err != nil {
			return fmt.Errorf("--gap: %w", err)
		}
	}
	step, err := scorer.ParseHalfLife(*stepFlag)
	if err != nil {
		return fmt.Errorf("--step: %w", err)
	}
	var grid []time.Duration
	if *halfLives != "" {
		for _, v := range strings.Split(*halfLives, ",") {
			hl, err := scorer.ParseHalfLife(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("--half-lives: %w", err)
			}
			grid = append(grid, hl)
		}
	}
	start, err := loadModel(*modelPath)
	if err != nil {
		return err
	}
	if *labelsPath != "" {
		f, err := os.Open(*labelsPath)
		if err != nil {
			return fmt.Errorf("cannot open labels: %w", err)
		}
		defer f.Close()
		lab, err := backtest.ReadLabels(*labelsPath, f)
		if err != nil {
			return err
		}
		if labels, err = fit.NewChurnTimes(lab); err != nil {
			return fmt.Errorf("%s: %w", *labelsPath, err)
		}
	}
	h, err := readHistory(events, at, stderr)
	if err != nil {
		return err
	}
	startName := *modelPath
	if startName == "" {
		startName = "the built-in model"
	}
	res, err := fit.Fit(h, fit.Config{Start: start, StartName: startName, At: at, Horizon: horizon, Gap: gap,
		Labels: labels, MaxSignals: *maxSignals, L2: *l2, NoPropose: *noPropose, Windows: *windows, Step: step, HalfLives: grid})
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, res.YAML, 0o644); err != nil {
		return fmt.Errorf("cannot write the model: %w", err)
	}
	if *report != "" {
		b, _ := json.MarshalIndent(res.Report, "", "  ")
		if err := os.WriteFile(*report, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("cannot write the report: %w", err)
		}
	}
	r := res.Report
	fmt.Fprintf(stdout, "fitted %s: %d signals from %d candidates\n", *out, res.Model.Signals(), r.Candidates)
	fmt.Fprintf(stdout, "training   at %s: %d customers, %d churned (%d windows)\n", r.TrainAt, r.TrainCustomers, r.TrainChurned, r.TrainWindows)
	fmt.Fprintf(stdout, "validation at %s: %d customers, %d churned\n", r.ValidateAt, r.ValidateCustomers, r.ValidateChurned)
	fmt.Fprintf(stdout, "validation AUC: before %.4f, after %.4f (refit in sample %.4f); RFM rank-sum %.4f\n", r.StartAUC, r.FittedAUC, r.FinalAUC, r.BaselineAUC)
	if h.BadLines > 0 {
		return exitError(1)
	}
	return nil
}
