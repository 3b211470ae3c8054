package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/healthscore/healthscore/fit"
	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

func fitCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath := fs.String("model", "", "start `FILE` (default: the built-in model)")
	var cf cutoffFlags
	cf.register(fs, "JSONL event `FILE` (repeat for several)", "every churn needs its churn_time")
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
	rest, err := parseInterspersed(fs, args)
	switch {
	case err != nil:
		return flagError(err)
	case len(rest) > 0:
		return usageError(stderr, "fit", fmt.Sprintf("unexpected argument %q: give event files with --events", rest[0]))
	case *out == "":
		return usageError(stderr, "fit", "--out FILE is required")
	}
	c, err := cf.parse("fit", stderr)
	if err != nil {
		return err
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
	var labels fit.Labels = fit.Inactivity{Type: c.churnIfNo}
	if c.labels != "" {
		lab, err := c.readLabels()
		if err != nil {
			return err
		}
		if labels, err = fit.NewChurnTimes(lab); err != nil {
			return fmt.Errorf("%s: %w", c.labels, err)
		}
	}
	in, err := openInputs("events", c.events, nil)
	if err != nil {
		return err
	}
	defer in.close()
	h, err := fit.ReadHistory(in.list, c.at, func(e *offline.LineError) { fmt.Fprintln(stderr, e) })
	if err != nil {
		return err
	}
	startName := *modelPath
	if startName == "" {
		startName = "the built-in model"
	}
	res, err := fit.Fit(h, fit.Config{Start: start, StartName: startName, At: c.at, Horizon: c.horizon, Gap: gap,
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
