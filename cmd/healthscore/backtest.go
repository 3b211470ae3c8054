package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/healthscore/healthscore/backtest"
	"github.com/healthscore/healthscore/internal/progress"
	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

func backtestCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf cutoffFlags
	cf.register(fs, "JSONL events `FILE` (repeatable; - for stdin; positional FILEs work too)", "")
	modelPath := fs.String("model", "", "model `FILE` (default: the built-in model)")
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
		return flagError(err)
	}
	cf.events = append(cf.events, rest...)
	c, err := cf.parse("backtest", stderr)
	if err != nil {
		return err
	}
	model, err := loadModel(*modelPath)
	if err != nil {
		return err
	}
	opt := backtest.LoadOptions{At: c.at, Horizon: c.horizon, ChurnIfNo: c.churnIfNo}
	if opt.Labels, err = c.readLabels(); err != nil {
		return err
	}
	rule := fmt.Sprintf("no %s event in (at, at+%s]", c.churnIfNo, backtest.FormatDays(c.horizon))
	if c.labels != "" {
		rule = fmt.Sprintf("labelled in %s with a churn time in (at, at+%s]", c.labels, backtest.FormatDays(c.horizon))
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
	in, err := openInputs("events", c.events, stdin)
	if err != nil {
		return err
	}
	defer in.close()
	if !*quiet {
		opt.OnError = func(e *offline.LineError) { fmt.Fprintln(stderr, e) }
	}
	var bar *progress.Bar
	if !*quiet && isTerminal(stderr) && in.size > 0 {
		bar = &progress.Bar{W: stderr, Label: "reading events (KiB)", Total: int(in.size >> 10)}
		opt.Progress = func(n int64) { bar.Set(int(n >> 10)) }
	}
	data, err := backtest.Load(in.list, opt)
	bar.Done()
	if err != nil {
		return err
	}
	if len(data.IDs) == 0 {
		return fmt.Errorf("no customer has an event before %s: nothing to backtest (check --at)", scorer.FormatTime(c.at))
	}
	bopt := backtest.Options{RFMType: *rfmType, Oracle: oracle, ChurnRule: rule}
	if bopt.RFMType == "" {
		bopt.RFMType = c.churnIfNo
	}
	rep := backtest.Evaluate(data, model, bopt)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if *chartPath != "" {
		if err := writeFile(*chartPath, rep.WriteSVG); err != nil {
			return err
		}
	}
	if *jsonPath != "" {
		if err := writeFile(*jsonPath, rep.WriteJSON); err != nil {
			return err
		}
	}
	if data.BadLines > 0 {
		fmt.Fprintf(stderr, "healthscore backtest: %d bad lines were left out\n", data.BadLines)
		return exitError(1)
	}
	return nil
}

// writeFile creates path and writes it with fn.
func writeFile(path string, fn func(io.Writer) error) error {
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
