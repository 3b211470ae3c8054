package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/healthscore/healthscore/internal/devbroker"
)

func devBrokerCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 9092, "port on 127.0.0.1 (0 picks a free one)")
	partitions := fs.Int("partitions", 8, "partitions per topic")
	topics := fs.String("topics", "customer-events,customer-health,customer-health-alerts,customer-events-dlq", "topics to create, comma separated")
	control := fs.String("control", "", "serve the fault-injection API on this loopback `ADDR` (e.g. 127.0.0.1:9099; port 0 picks one): POST /faults, POST /outage?seconds=N")
	maxSession := fs.Duration("max-session-timeout", 0, "lower the session timeout consumers ask for to at most this, and their rebalance timeout to twice this (e.g. 6s), so killed consumers leave their group sooner; 0 keeps theirs")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: healthscore dev-broker [--port P] [--partitions N] [--topics T,...] [--control ADDR]

Runs an in-memory Kafka-compatible broker (franz-go's kfake) on 127.0.0.1 with the
topics created, until interrupted. For development and tests only: nothing is persisted.

With --control, a loopback HTTP endpoint injects faults (for fault tests):
  POST /faults  {"api":"produce|fetch|offset_commit|…","error":"NOT_LEADER_FOR_PARTITION|…","count":N}
                answers the next N requests of that API with that Kafka error (-1: forever)
  POST /outage?seconds=10[&hang=1]
                every request fails (or hangs, then fails) for that long

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if *partitions < 1 {
		return fmt.Errorf("--partitions must be at least 1, got %d", *partitions)
	}
	var ln net.Listener
	if *control != "" {
		host, _, err := net.SplitHostPort(*control)
		if err != nil {
			return fmt.Errorf("--control %q: %w", *control, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--control %q: the fault API listens on loopback only (127.0.0.1, ::1 or localhost)", *control)
		}
		if ln, err = net.Listen("tcp", *control); err != nil {
			return fmt.Errorf("cannot listen on --control %s: %w", *control, err)
		}
		defer ln.Close()
	}
	b, err := devbroker.Start(devbroker.Config{Port: *port, Partitions: int32(*partitions), Topics: splitList(*topics), MaxSessionTimeout: *maxSession})
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(stdout, "dev-broker listening on %s with topics %s (%d partitions each); Ctrl-C to stop\n", b.Addr, *topics, *partitions)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if ln != nil {
		srv := &http.Server{Handler: b.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(stderr, "dev-broker: control endpoint: %v\n", err)
			}
		}()
		defer srv.Close()
		fmt.Fprintf(stdout, "dev-broker control on http://%s\n", ln.Addr())
	}
	<-ctx.Done()
	return nil
}
