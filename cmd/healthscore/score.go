package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

func loadModel(path string) (*scorer.Model, error) {
	if path == "" {
		return scorer.DefaultModel(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read model: %w", err)
	}
	m, err := scorer.ParseModel(path, data)
	if err != nil {
		return nil, fmt.Errorf("invalid model (check it with 'healthscore model check %s'):\n%w", path, err)
	}
	return m, nil
}

func scoreCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelPath := fs.String("model", "", "model `FILE` (default: the built-in model)")
	atFlag := fs.String("at", "", "score as of this RFC 3339 `time`; later events are ignored (default: the latest event time)")
	quiet := fs.Bool("quiet", false, "do not print the summary and progress on stderr")
	timeline := fs.Bool("timeline", false, "instead of scores, write per customer the band transitions and alerts the stream would publish up to --at, including decay crossings (JSON lines)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: healthscore score [--model FILE] [--at RFC3339] [--timeline] [FILE...]\n\nReads JSONL events (stdin when no FILE, or FILE is -) and writes one JSON line per customer,\nsorted by customer_id. Bad lines are reported as FILE:LINE: reason; the exit status is then 1.\n\n")
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return flagError(err)
	}
	model, err := loadModel(*modelPath)
	if err != nil {
		return err
	}
	opt := offline.Options{Model: model, Timeline: *timeline}
	if *atFlag != "" {
		at, err := time.Parse(time.RFC3339Nano, *atFlag)
		if err != nil {
			return fmt.Errorf("--at %q is not RFC 3339 (e.g. 2026-11-20T10:00:00Z)", *atFlag)
		}
		opt.At, opt.HasAt = at.UnixNano(), true
	}
	opt.OnError = func(e *offline.LineError) { fmt.Fprintln(stderr, e) }
	if !*quiet && isTerminal(stderr) {
		start := time.Now()
		opt.ProgressEvery = 1 << 20
		opt.Progress = func(lines int) {
			fmt.Fprintf(stderr, "\r%d lines read (%.0f/s)", lines, float64(lines)/time.Since(start).Seconds())
		}
	}
	in, err := openArgs(files, stdin)
	if err != nil {
		return err
	}
	defer in.close()
	res, err := offline.Fold(in.list, opt)
	if err != nil {
		return err
	}
	if opt.Progress != nil && res.Lines >= opt.ProgressEvery {
		fmt.Fprintln(stderr)
	}
	write := res.Write
	if *timeline {
		write = res.WriteTimeline
	}
	if err := write(stdout); err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintf(stderr, "scored %d customers at %s from %d events (%d of ignored types, %d after --at, %d bad lines)\n",
			len(res.States), scorer.FormatTime(res.At), res.Applied, res.Ignored, res.Late, res.BadLines)
	}
	if res.BadLines > 0 {
		return exitError(1)
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
