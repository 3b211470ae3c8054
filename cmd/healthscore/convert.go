package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/healthscore/healthscore/convert"
	"github.com/healthscore/healthscore/offline"
)

func convertCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const use = "Usage: healthscore convert csv --map FILE [--out FILE] [--quiet] [CSV...]\n\n" +
		"Turns CSV logs (stdin when no CSV, or CSV is -) into JSONL input events, as the map FILE says\n" +
		"(see docs/backtesting.md and examples/online-retail/map.yaml). Bad rows are reported as\n" +
		"FILE:LINE: reason; the exit status is then 1.\n\n"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(stdout, use)
		return nil
	}
	if len(args) == 0 || args[0] != "csv" {
		fmt.Fprint(stderr, use)
		return exitError(2)
	}
	fs := flag.NewFlagSet("convert csv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mapPath := fs.String("map", "", "mapping `FILE` (YAML; required)")
	outPath := fs.String("out", "", "write the events to `FILE` (default: stdout)")
	quiet := fs.Bool("quiet", false, "do not print the summary and progress on stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, use)
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return flagError(err)
	}
	if *mapPath == "" {
		return usageError(stderr, "convert csv", "--map FILE is required")
	}
	data, err := os.ReadFile(*mapPath)
	if err != nil {
		return fmt.Errorf("cannot read the map: %w", err)
	}
	m, err := convert.ParseMap(*mapPath, data)
	if err != nil {
		return err
	}
	in, err := openArgs(files, stdin)
	if err != nil {
		return err
	}
	defer in.close()
	out := stdout
	var outFile *os.File
	if *outPath != "" {
		if outFile, err = os.Create(*outPath); err != nil {
			return fmt.Errorf("cannot create the output: %w", err)
		}
		defer outFile.Close()
		out = outFile
	}
	opt := convert.Options{OnError: func(e *offline.LineError) { fmt.Fprintln(stderr, e) }}
	if !*quiet && isTerminal(stderr) {
		start := time.Now()
		opt.ProgressEvery = 100_000
		opt.Progress = func(rows int) {
			fmt.Fprintf(stderr, "\r%d rows read (%.0f/s)", rows, float64(rows)/time.Since(start).Seconds())
		}
	}
	st, err := convert.Convert(in.list, m, out, opt)
	if opt.Progress != nil && st.Rows >= opt.ProgressEvery {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	if outFile != nil {
		if err := outFile.Close(); err != nil {
			return fmt.Errorf("cannot write the output: %w", err)
		}
	}
	if !*quiet {
		fmt.Fprintf(stderr, "converted %d rows into %d events (%d rows without a customer skipped, %d bad rows)\n",
			st.Rows, st.Events, st.NoCustomer, st.BadRows)
	}
	if st.BadRows > 0 {
		return exitError(1)
	}
	return nil
}
