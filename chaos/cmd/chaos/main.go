// Command chaos runs the healthscore fault suite (package chaos): `make
// chaos-short` in CI, `make chaos` for the full run. It prints progress on
// stderr, the summary table on stdout, and exits 1 on any violation.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/healthscore/healthscore/chaos"
)

func main() {
	var c chaos.Config
	fs := flag.NewFlagSet("chaos", flag.ExitOnError)
	short := fs.Bool("short", false, "the CI configuration: 200k events, 3000 customers")
	fs.StringVar(&c.Root, "root", ".", "module root (builds ./cmd/healthscore from here)")
	fs.StringVar(&c.Dir, "dir", "", "work dir for logs and the AOF (default: a temp dir, removed unless -keep)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work dir")
	fs.IntVar(&c.Events, "events", 2000000, "events to generate (5% are sent twice, 1% of records are bad)")
	fs.IntVar(&c.Customers, "customers", 20000, "customers")
	fs.IntVar(&c.Partitions, "partitions", 8, "input partitions")
	fs.IntVar(&c.Instances, "instances", 3, "healthscore processes")
	fs.IntVar(&c.Rate, "rate", 6000, "records produced per second (-1: unlimited)")
	fs.IntVar(&c.MaxBatch, "max-batch", 2000, "--max-batch of the instances")
	fs.IntVar(&c.MaxLarge, "max-large", 100, "at most this many records larger than 1 MiB")
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed (0: from the clock)")
	fs.DurationVar(&c.KillMin, "kill-min", time.Second, "shortest time between instance SIGKILLs")
	fs.DurationVar(&c.KillMax, "kill-max", 3*time.Second, "longest time between instance SIGKILLs")
	fs.BoolVar(&c.Dynamic, "dynamic", false, "run the instances as dynamic group members (default: static, --group-instance-id hsN)")
	fs.IntVar(&c.RedisKills, "redis-kills", 3, "redis-server SIGKILLs during production")
	fs.DurationVar(&c.RedisLose, "redis-lose", 0, "after each Redis SIGKILL, cut the AOF back by this much, as a power loss would (e.g. 1s); 0: process crash only")
	fs.StringVar(&c.Fsync, "fsync", "everysec", "redis appendfsync: everysec, always or no")
	fs.DurationVar(&c.Outage, "outage", 10*time.Second, "length of the broker outage (0: none)")
	fs.BoolVar(&c.Faults, "faults", true, "inject broker errors on produce, fetch and offset commit")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Minute, "time allowed to commit everything after production")
	_ = fs.Parse(os.Args[1:])
	if *short {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["events"] {
			c.Events = 200000
		}
		if !set["customers"] {
			c.Customers = 3000
		}
		if !set["rate"] {
			c.Rate = 4000
		}
		if !set["max-large"] {
			c.MaxLarge = 20
		}
		if !set["redis-kills"] {
			c.RedisKills = 2
		}
		if !set["drain-timeout"] {
			c.DrainTimeout = 3 * time.Minute
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := chaos.Run(ctx, c, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	sum.WriteTable(os.Stdout)
	if len(sum.Failures()) > 0 {
		os.Exit(1)
	}
}
