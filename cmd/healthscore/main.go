// Command healthscore scores customer health in real time from Kafka events.
//
// This package only wires: it parses flags and environment, builds the
// components of the other packages and runs them. See `healthscore help`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `healthscore scores customer health in real time from Kafka events.

Usage:
  healthscore [run] [flags]             run the service (default; --demo for a self-contained demo)
  healthscore score [--model FILE] [--at RFC3339] [FILE...]
                                        score JSONL events offline, one JSON line per customer
  healthscore convert csv --map FILE [--out FILE] [CSV...]
                                        turn a CSV log into JSONL events (docs/backtesting.md)
  healthscore simulate --out DIR [--customers N] [--days D] [--seed S]
                                        write a synthetic event log with churn labels and the generator's risk
  healthscore backtest --events FILE (--labels FILE | --churn-if-no TYPE) --at T [--horizon 90d]
                                        measure how well a model's score predicts churn, against RFM
  healthscore model check FILE          validate a model file
  healthscore model show                print the built-in default model
  healthscore model diff OLD NEW --events FILE [--at T]
                                        band moves (from→to) and the largest score moves between two models
  healthscore fit [--model FILE] --events FILE (--labels FILE | --churn-if-no TYPE) --at T [--horizon 90d] --out FILE
                                        learn a model from the events before T, time-split validated (docs/fitting.md)
  healthscore dev-broker [--port P] [--partitions N] [--tls-generate DIR] [--sasl-user M:U:P] [--acl …]
                                        run an in-memory Kafka-compatible broker for development,
                                        optionally with TLS, SASL users and ACLs
  healthscore bench [--quick] [--json FILE]
                                        measure throughput, latency and memory against the bare-consume limit
  healthscore help                      show this help (also -h, --help)

Run 'healthscore COMMAND -h' for the flags of a command.
`

// exitError carries an exit status without printing anything more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "run"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		cmd = "help"
	case len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-':
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = runService(args, stderr)
	case "score":
		err = scoreCmd(args, stdin, stdout, stderr)
	case "convert":
		err = convertCmd(args, stdin, stdout, stderr)
	case "simulate":
		err = simulateCmd(args, stdout, stderr)
	case "backtest":
		err = backtestCmd(args, stdin, stdout, stderr)
	case "model":
		err = modelCmd(args, stdout, stderr)
	case "dev-broker":
		err = devBrokerCmd(args, stdout, stderr)
	case "bench":
		err = benchCmd(args, stdout, stderr)
	case "fit":
		err = fitCmd(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "healthscore: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return int(ee)
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "healthscore %s: %v\n", cmd, err)
		return 1
	}
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "-" || len(args[0]) == 0 || args[0][0] != '-' {
			pos = append(pos, args[0])
			args = args[1:]
			continue
		}
		pos = append(pos, args...) // after "--"
		return pos, nil
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// flagError is the result of a failed flag parse: -h is a success (the
// flag package printed the usage), anything else is a usage error (exit 2,
// the flag package printed why).
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return flag.ErrHelp
	}
	return exitError(2)
}
