package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/healthscore/healthscore/modeldiff"
	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

func modelDiffCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model diff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var events listFlag
	fs.Var(&events, "events", "JSONL event `FILE` (repeat for several)")
	atFlag := fs.String("at", "", "compare as of this `time` (RFC 3339 or a day); later events are ignored (default: the latest event time)")
	top := fs.Int("top", 10, "list the `N` largest score moves")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: healthscore model diff OLD NEW --events FILE [--at T] [--top N]\n\nScores the same customers with both models and prints how many change band and which way\n(a from→to matrix) and the largest score moves with the signals that drove them.\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 2 {
		fs.Usage()
		return exitError(2)
	}
	if len(events) == 0 {
		return usageError(stderr, "model diff", "--events FILE is required")
	}
	var models [2]*scorer.Model
	for i, p := range pos {
		if models[i], err = loadModel(p); err != nil {
			return err
		}
	}
	opt := offline.Options{}
	if *atFlag != "" {
		if opt.At, err = parseInstant("at", *atFlag); err != nil {
			return err
		}
		opt.HasAt = true
	}
	var res [2]*offline.Result
	bad := 0
	for i, m := range models {
		in, err := openInputs("events", events, nil) // read once per model: not stdin
		if err != nil {
			return err
		}
		o := opt
		o.Model = m
		if i == 0 {
			o.OnError = func(e *offline.LineError) { fmt.Fprintln(stderr, e) }
		}
		res[i], err = offline.Fold(in.list, o)
		in.close()
		if err != nil {
			return err
		}
		bad = res[i].BadLines
	}
	at := max(res[0].At, res[1].At)
	rep := modeldiff.Compare(models[0], models[1], res[0].States, res[1].States, at, *top)
	if err := rep.Write(stdout); err != nil {
		return err
	}
	if bad > 0 {
		return exitError(1)
	}
	return nil
}
