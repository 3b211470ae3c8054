package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/healthscore/healthscore/internal/progress"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/simulate"
)

func simulateCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	customers := fs.Int("customers", simulate.DefaultCustomers, "number of customers")
	days := fs.Int("days", simulate.DefaultDays, "simulated days")
	seed := fs.Uint64("seed", 1, "random seed: the same seed and flags give byte-identical files")
	out := fs.String("out", "", "output `DIR` (required): events.jsonl, labels.csv, oracle.csv")
	start := fs.String("start", simulate.DefaultStart.Format(time.DateOnly), "first simulated `day` (YYYY-MM-DD, UTC)")
	at := fs.String("at", "", "the oracle's instant, a `day` (YYYY-MM-DD, UTC) (default: start + days − horizon)")
	horizon := fs.String("horizon", "90d", "the oracle's churn horizon, whole days (e.g. 90d)")
	quiet := fs.Bool("quiet", false, "do not print the summary and progress on stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: healthscore simulate --out DIR [--customers N] [--days D] [--seed S] [--at DAY] [--horizon 90d]\n\n"+
			"Writes a synthetic B2B SaaS event log drawn from a latent health process (docs/backtesting.md):\n"+
			"DIR/events.jsonl (input events sorted by time), DIR/labels.csv (customer_id, segment, churned,\n"+
			"churn_time) and DIR/oracle.csv (the generator's churn probability over the horizon for each\n"+
			"customer alive at --at).\n\n")
		fs.PrintDefaults()
	}
	if rest, err := parseInterspersed(fs, args); err != nil {
		return flagError(err)
	} else if len(rest) > 0 {
		fmt.Fprintf(stderr, "healthscore simulate: unexpected argument %q\n", rest[0])
		return exitError(2)
	}
	if *out == "" {
		fmt.Fprintln(stderr, "healthscore simulate: --out DIR is required")
		return exitError(2)
	}
	cfg := simulate.Config{Customers: *customers, Days: *days, Seed: *seed}
	var err error
	if cfg.Start, err = time.Parse(time.DateOnly, *start); err != nil {
		return fmt.Errorf("--start %q is not a day (YYYY-MM-DD)", *start)
	}
	if *at != "" {
		if cfg.At, err = time.Parse(time.DateOnly, *at); err != nil {
			return fmt.Errorf("--at %q is not a day (YYYY-MM-DD)", *at)
		}
	}
	if cfg.Horizon, err = scorer.ParseHalfLife(*horizon); err != nil {
		return fmt.Errorf("--horizon %q: %w", *horizon, err)
	}
	var bar *progress.Bar
	if !*quiet && isTerminal(stderr) {
		bar = &progress.Bar{W: stderr, Label: "simulate", Total: cfg.Days}
		cfg.Progress = func(d, _ int) { bar.Set(d) }
	}
	res, err := simulate.WriteDir(cfg, *out)
	bar.Done()
	if err != nil {
		return err
	}
	if !*quiet {
		churned, inHorizon := 0, 0
		end := res.Config.At.Add(res.Config.Horizon).UnixNano()
		for _, l := range res.Labels {
			if l.Churned {
				churned++
				if l.ChurnTime > res.Config.At.UnixNano() && l.ChurnTime <= end {
					inHorizon++
				}
			}
		}
		fmt.Fprintf(stderr, "simulated %d customers over %d days: %d events, %d churned (%d within the oracle's horizon after %s); wrote %s\n",
			len(res.Labels), res.Config.Days, res.Events, churned, inHorizon, res.Config.At.Format(time.DateOnly), *out)
	}
	return nil
}
