package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/healthscore/healthscore/bench"
)

func benchCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "the quick configuration: 200k events over 20k customers, memory at those customers, a short rate search, 10 s of paced load per latency row, no Redis Cluster row (about 3 minutes)")
	smoke := fs.Bool("smoke", false, "the smallest configuration (20k events), to check the harness in CI")
	events := fs.Int("events", 0, "events to preload (default 2000000; 200000 with --quick)")
	customers := fs.Int("customers", 0, "distinct customers of the preloaded events (default 100000; 20000 with --quick)")
	partitions := fs.Int("partitions", 8, "partitions per topic")
	instances := fs.Int("instances", 1, "pipeline processes (and bare consumers) in the group")
	naive := fs.Int("naive-events", 0, "events the naive per-event design processes (default 20000; 5000 with --quick)")
	memCustomers := fs.Int("memory-customers", 0, "customers at which Redis memory is measured; above --customers the pipeline gets one event per extra customer (default 1000000; the preloaded customers with --quick)")
	sustain := fs.Duration("sustain-window", 0, "window over which a paced rate must hold the group's lag below --lag-bound of input, without growth, to count as sustained, in the search for the highest such rate (default 10s; 6s with --quick; a negative duration skips the search)")
	lagBound := fs.Duration("lag-bound", 0, "most lag a sustained rate may show, in time of input at that rate (default 1s)")
	latency := fs.Duration("latency", 0, "duration of each paced latency load (default 20s; 10s with --quick; a negative duration such as -1s skips them)")
	loads := fs.String("loads", "0.25,0.5", "paced latency loads, comma separated, as fractions of the highest sustained rate (of the bulk rate when none was found)")
	latencyRate := fs.Float64("latency-rate", 0, "events/s that --loads are fractions of, instead of the sustained rate: to compare two builds at the same paced load (add --sustain-window -1s to skip the search)")
	clusterNodes := fs.Int("cluster-nodes", 0, "redis-server nodes of the Redis Cluster row (default 3; none with --quick and --smoke; negative: no row)")
	jsonPath := fs.String("json", "", "also write the result as JSON to `FILE`")
	profDir := fs.String("cpuprofile", "", "write CPU and heap profiles of the pipeline process to `DIR` (needs /debug/pprof in the service)")
	ef := &envFlags{fs: fs}
	kafka := registerKafkaFlags(ef)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: healthscore bench [--quick] [flags]

Starts a broker (healthscore dev-broker) and redis-server as separate processes,
or uses %s and %s, preloads synthetic events and
measures in one run: the bare consume+decode limit, the pipeline (this binary's
'run') to committed offsets, the same against a local Redis Cluster, a naive
per-event design, the highest paced rate the pipeline sustains and latency at
25%% and 50%% of it, Redis memory per customer and the offline scorer on one
core. Prints a table on
stdout and progress on stderr. Against a secured external Kafka, the --kafka-*
flags (as for 'run'; see docs/production-kafka.md) apply to every client of the
harness and to the pipeline processes.

`, bench.EnvBrokers, bench.EnvRedis)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(ef.errs) > 0 {
		return errors.Join(ef.errs...)
	}
	var cfg bench.Config
	switch {
	case *quick && *smoke:
		return fmt.Errorf("--quick and --smoke exclude each other")
	case *quick:
		cfg = bench.Quick()
	case *smoke:
		cfg = bench.Smoke()
	}
	set := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	set(&cfg.Events, *events)
	set(&cfg.Customers, *customers)
	set(&cfg.NaiveEvents, *naive)
	set(&cfg.MemoryCustomers, *memCustomers)
	set(&cfg.ClusterNodes, *clusterNodes)
	cfg.Partitions, cfg.Instances = *partitions, *instances
	for _, l := range splitList(*loads) {
		v, err := strconv.ParseFloat(l, 64)
		if err != nil {
			return fmt.Errorf("invalid --loads %q: %q is not a number", *loads, l)
		}
		cfg.LatencyLoads = append(cfg.LatencyLoads, v)
	}
	switch {
	case *sustain < 0:
		cfg.SustainWindow = -1
	case *sustain > 0:
		cfg.SustainWindow = *sustain
	}
	if *latencyRate < 0 {
		return fmt.Errorf("invalid --latency-rate %g: must not be negative", *latencyRate)
	}
	cfg.LatencyRate = *latencyRate
	if *lagBound > 0 {
		cfg.LagBound = *lagBound
	}
	switch {
	case *latency < 0:
		cfg.LatencyDuration = -1
	case *latency > 0:
		cfg.LatencyDuration = *latency
	}
	if cfg.Customers > cfg.Events && *events != 0 && *customers == 0 {
		cfg.Customers = cfg.Events
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this executable: %w", err)
	}
	cfg.Binary = bin
	cfg.Brokers = splitList(os.Getenv(bench.EnvBrokers))
	if kc := kafka.config(); kc.Enabled() {
		if len(cfg.Brokers) == 0 {
			return fmt.Errorf("--kafka-* security flags need external brokers (%s): the broker bench starts is plaintext", bench.EnvBrokers)
		}
		log, err := newLogger("info")
		if err != nil {
			return err
		}
		if cfg.KafkaOpts, err = kc.Opts(log); err != nil {
			return err
		}
		cfg.ServiceEnv = kafka.childEnv()
	}
	cfg.RedisURL = os.Getenv(bench.EnvRedis)
	cfg.ProfileDir = *profDir
	cfg.Progress, cfg.Log, cfg.Terminal = stderr, stderr, isTerminal(stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := res.WriteTable(stdout); err != nil {
		return err
	}
	if *jsonPath != "" {
		return res.WriteJSON(*jsonPath)
	}
	return nil
}
