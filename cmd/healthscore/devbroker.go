package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/healthscore/healthscore/internal/devbroker"
)

func devBrokerCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 9092, "port on 127.0.0.1 (0 picks a free one)")
	partitions := fs.Int("partitions", 8, "partitions per topic")
	topics := fs.String("topics", "customer-events,customer-health,customer-health-alerts,customer-events-dlq", "topics to create, comma separated")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: healthscore dev-broker [--port P] [--partitions N] [--topics T,...]\n\nRuns an in-memory Kafka-compatible broker (franz-go's kfake) on 127.0.0.1 with the\ntopics created, until interrupted. For development and tests only: nothing is persisted.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if *partitions < 1 {
		return fmt.Errorf("--partitions must be at least 1, got %d", *partitions)
	}
	b, err := devbroker.Start(devbroker.Config{Port: *port, Partitions: int32(*partitions), Topics: splitList(*topics)})
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(stdout, "dev-broker listening on %s with topics %s (%d partitions each); Ctrl-C to stop\n", b.Addr, *topics, *partitions)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
