package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/healthscore/healthscore/scorer"
)

func modelCmd(args []string, stdout, stderr io.Writer) error {
	const use = "usage: healthscore model check FILE | healthscore model show | healthscore model diff OLD NEW --events FILE [--at T] [--top N]"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, use+"\n\n  check FILE  validate a model file: every error with its line\n  show        print the built-in default model (YAML)\n  diff        how many customers a model change moves between bands, and the largest score moves with their drivers")
		return nil
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, use)
		return exitError(2)
	}
	switch args[0] {
	case "diff":
		return modelDiffCmd(args[1:], stdout, stderr)
	case "show":
		_, err := stdout.Write(scorer.DefaultModelYAML())
		return err
	case "check":
		if len(args) == 2 && isHelp(args[1]) {
			fmt.Fprintln(stdout, "usage: healthscore model check FILE\n\nValidates a model file; every error names the file, the line and the field.")
			return nil
		}
		if len(args) != 2 {
			fmt.Fprintln(stderr, use)
			return exitError(2)
		}
		data, err := os.ReadFile(args[1])
		if err != nil {
			return fmt.Errorf("cannot read model: %w", err)
		}
		m, err := scorer.ParseModel(args[1], data)
		var errs scorer.ModelErrors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, e)
			}
			return exitError(1)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: ok: model %s version %s, %d categories, %d signals, %d segments\n",
			args[1], m.Name, m.Version, len(m.Categories), m.Signals(), len(m.Segments))
		return nil
	default:
		fmt.Fprintln(stderr, use)
		return exitError(2)
	}
}
