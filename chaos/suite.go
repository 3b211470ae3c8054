package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/scorer"
)

// Topics of the service (its defaults).
const (
	InputTopic = "customer-events"
	AlertTopic = "customer-health-alerts"
	DLQTopic   = "customer-events-dlq"
	Group      = "healthscore-chaos"
)

// Config is one run of the suite.
type Config struct {
	Root       string // module root, to build cmd/healthscore
	Dir        string // work dir (default: a new temp dir under /tmp, removed unless Keep)
	Keep       bool   // keep Dir (logs, AOF) after the run
	Events     int    // generated events (5% of them sent twice); default 200000
	Customers  int    // default 3000
	Partitions int    // input partitions; default 8
	Instances  int    // healthscore processes; default 3
	Rate       int    // records/s produced; default 4000 (0 in the struct means default; -1 unlimited)
	MaxBatch   int    // --max-batch of the instances; default 2000
	MaxLarge   int    // at most this many records > 1 MiB; default 20
	Seed       uint64

	KillMin, KillMax time.Duration // a random instance is SIGKILLed every KillMin..KillMax; default 1s..3s
	// Dynamic makes the instances dynamic group members. By default each
	// is a static member (--group-instance-id, KIP-345), as a deployment
	// with stable names (a StatefulSet) would run them: a killed instance
	// restarted with its id takes its partitions back without a rebalance,
	// where a dynamic one leaves a dead member that holds the group in
	// PreparingRebalance until its session times out.
	Dynamic        bool
	RedisKills     int           // SIGKILLs of redis-server, spread over the production; default 2
	RedisLose      time.Duration // after each Redis kill, cut its AOF back by this much (power-loss simulation); 0: a plain process crash
	Fsync          string        // redis appendfsync; default everysec
	Outage         time.Duration // one broker outage of this length; default 10s
	Faults         bool          // inject broker errors on produce, fetch and offset commit
	SessionTimeout time.Duration // dev-broker --max-session-timeout; default 6s
	DrainTimeout   time.Duration // time for the group to commit everything after production; default 5m
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Events, 200000)
	def(&c.Customers, 3000)
	def(&c.Partitions, 8)
	def(&c.Instances, 3)
	def(&c.Rate, 4000)
	def(&c.MaxBatch, 2000)
	def(&c.MaxLarge, 20)
	if c.KillMin == 0 {
		c.KillMin, c.KillMax = time.Second, 3*time.Second
	}
	if c.Fsync == "" {
		c.Fsync = "everysec"
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 6 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 5 * time.Minute
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
}

// Faults counts what was broken during the run.
type Faults struct {
	InstanceKills int
	RedisKills    int
	AOFBytesCut   int64
	BrokerFaults  []string
	Outages       []string
	SelfExits     int // instances that exited by themselves and were restarted
}

// Summary is the outcome of a run.
type Summary struct {
	Cfg        Config
	Expect     *Expect
	Result     Result
	Faults     Faults
	Duplicates float64 // redeliveries skipped, from the instances' metrics (lower bound)
	MetricApp  float64 // applied, from the instances' metrics (lower bound)
	Elapsed    time.Duration
	Drain      time.Duration // from the end of production to everything committed
	// DuringKills is how many input records the group had committed when
	// the kills stopped (at the end of production); Records is how many
	// the input topic held in the end.
	DuringKills, Records int64
	// StaticMembers is how many members of the group had a group instance
	// id after the drain (all of them unless Cfg.Dynamic).
	StaticMembers int
	Unclean       []string // instances that did not stop cleanly on SIGTERM
}

// Run runs the suite: build, start everything, produce while breaking
// things, drain, stop, check. Progress goes to logw. The error is for a
// suite that could not run; violations are in the summary (see Failures).
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Summary, error) {
	cfg.defaults()
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "chaos %6.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("/tmp", "hsc")
		if err != nil {
			return nil, err
		}
		cfg.Dir = d
		if !cfg.Keep {
			defer os.RemoveAll(d)
		}
	}
	logf("work dir %s, seed %d", cfg.Dir, cfg.Seed)
	bin, err := Build(ctx, cfg.Root, cfg.Dir)
	if err != nil {
		return nil, err
	}
	logf("built %s", bin)

	broker, err := StartBroker(bin, cfg.Partitions, cfg.SessionTimeout, filepath.Join(cfg.Dir, "broker.log"))
	if err != nil {
		return nil, err
	}
	defer broker.Stop()
	brokers := []string{broker.Addr}
	logf("dev-broker on %s, control %s", broker.Addr, broker.Control)

	rdir := filepath.Join(cfg.Dir, "r")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return nil, err
	}
	rds, err := StartRedis(rdir, cfg.Fsync)
	if err != nil {
		return nil, err
	}
	defer rds.Stop()
	logf("redis-server on %s (appendonly yes, appendfsync %s)", rds.Sock, cfg.Fsync)

	insts := make([]*Instance, cfg.Instances)
	for i := range insts {
		name := fmt.Sprintf("hs%d", i+1)
		args := []string{"--brokers", broker.Addr, "--redis", rds.URL(), "--group", Group,
			"--max-batch", fmt.Sprint(cfg.MaxBatch), "--log-level", "info", "--shutdown-grace", "20s"}
		if !cfg.Dynamic {
			args = append(args, "--group-instance-id", name)
		}
		insts[i] = NewInstance(name, bin, filepath.Join(cfg.Dir, name+".log"), args...)
		if err := insts[i].Start(); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, in := range insts {
			in.Kill()
		}
	}()
	membership := "static members (--group-instance-id)"
	if cfg.Dynamic {
		membership = "dynamic members"
	}
	logf("%d healthscore instances running, %s", len(insts), membership)

	model := scorer.DefaultModel()
	exp := newExpect(model)
	sum := &Summary{Cfg: cfg, Expect: exp}
	gen := newGenerator(cfg.Seed, cfg.Customers, cfg.Events, cfg.MaxLarge, time.Now())
	rate := cfg.Rate
	if rate < 0 {
		rate = 0
	}

	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	// Production, with faults until it ends.
	var sent atomic.Int64
	prodCtx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards sum.Faults
	var faultErr error
	failf := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if faultErr == nil {
			faultErr = err
		}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 7))
	var rngMu sync.Mutex
	randDur := func(lo, hi time.Duration) time.Duration {
		rngMu.Lock()
		defer rngMu.Unlock()
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	sleep := func(d time.Duration) bool {
		select {
		case <-prodCtx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	progressOf := func() float64 { return float64(sent.Load()) / float64(cfg.Events) }
	waitProgress := func(p float64) bool {
		for progressOf() < p {
			if !sleep(100 * time.Millisecond) {
				return false
			}
		}
		return true
	}

	// Instance killer, and supervisor: like a process manager, it restarts
	// instances that exited by themselves (e.g. one started during the
	// outage fails its topic check and exits).
	wg.Go(func() {
		next := time.Now().Add(randDur(cfg.KillMin, cfg.KillMax))
		for sleep(200 * time.Millisecond) {
			for _, in := range insts {
				if !in.Running() {
					mu.Lock()
					sum.Faults.SelfExits++
					mu.Unlock()
					if err := in.Start(); err != nil {
						logf("%v; retrying", err)
					}
				}
			}
			if time.Now().Before(next) {
				continue
			}
			next = time.Now().Add(randDur(cfg.KillMin, cfg.KillMax))
			rngMu.Lock()
			in := insts[rng.IntN(len(insts))]
			rngMu.Unlock()
			in.Kill()
			mu.Lock()
			sum.Faults.InstanceKills++
			mu.Unlock()
			if err := in.Start(); err != nil {
				logf("%v; retrying", err)
			}
		}
	})
	// Metrics scraper (counts of killed incarnations are kept up to their
	// last scrape) and AOF size sampler.
	wg.Go(func() {
		for sleep(50 * time.Millisecond) {
			rds.SampleAOF()
		}
	})
	scrapeStop := make(chan struct{})
	var scrapeWG sync.WaitGroup
	scrapeWG.Go(func() {
		for {
			select {
			case <-scrapeStop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			for _, in := range insts {
				in.Scrape()
			}
		}
	})
	// Redis killer: at evenly spread points of the production.
	wg.Go(func() {
		for k := 1; k <= cfg.RedisKills; k++ {
			if !waitProgress(float64(k) / float64(cfg.RedisKills+1)) {
				return
			}
			if cfg.RedisLose > 0 {
				// A power loss matters only while writes are flowing.
				for i := 0; i < 300 && rds.Growth(cfg.RedisLose) == 0; i++ {
					sleep(100 * time.Millisecond)
				}
			}
			cut, err := rds.Kill(cfg.RedisLose)
			if err != nil {
				failf(fmt.Errorf("cannot cut the AOF: %w", err))
			}
			logf("redis-server SIGKILLed (%d); AOF cut by %d bytes", k, cut)
			sleep(randDur(200*time.Millisecond, 1500*time.Millisecond))
			if err := rds.Restart(); err != nil {
				failf(err)
				return
			}
			logf("redis-server restarted from its AOF")
			mu.Lock()
			sum.Faults.RedisKills++
			sum.Faults.AOFBytesCut += cut
			mu.Unlock()
		}
	})
	// Broker faults and one outage.
	wg.Go(func() {
		type f struct{ api, err string }
		faults := []f{
			{"produce", "NOT_LEADER_FOR_PARTITION"},
			{"fetch", "NOT_LEADER_FOR_PARTITION"},
			{"offset_commit", "COORDINATOR_NOT_AVAILABLE"},
			{"produce", "REQUEST_TIMED_OUT"}, // answered after the append: a duplicate write
			{"offset_commit", "REQUEST_TIMED_OUT"},
			{"fetch", "UNKNOWN_SERVER_ERROR"},
		}
		at := []float64{0.1, 0.2, 0.3, 0.55, 0.7, 0.85}
		outageAt := 0.45
		for i := range faults {
			if cfg.Outage > 0 && at[i] > outageAt && outageAt > 0 {
				if !waitProgress(outageAt) {
					return
				}
				if err := broker.Outage(cfg.Outage, false); err != nil {
					failf(err)
					return
				}
				logf("broker outage: every request fails for %s", cfg.Outage)
				mu.Lock()
				sum.Faults.Outages = append(sum.Faults.Outages, cfg.Outage.String())
				mu.Unlock()
				outageAt = 0
				sleep(cfg.Outage)
			}
			if !cfg.Faults {
				continue
			}
			if !waitProgress(at[i]) {
				return
			}
			if err := broker.Fault(faults[i].api, faults[i].err, 5); err != nil {
				failf(err)
				return
			}
			logf("broker fault: next 5 %s requests get %s", faults[i].api, faults[i].err)
			mu.Lock()
			sum.Faults.BrokerFaults = append(sum.Faults.BrokerFaults, faults[i].api+" "+faults[i].err+" ×5")
			mu.Unlock()
		}
	})
	// Progress.
	wg.Go(func() {
		for sleep(5 * time.Second) {
			l, err := lag(prodCtx, adm, Group, InputTopic)
			ls := fmt.Sprint(l)
			if err != nil {
				ls = "unknown (" + err.Error() + ")"
			}
			mu.Lock()
			k := sum.Faults.InstanceKills
			mu.Unlock()
			logf("acknowledged %d of %d records sent, group lag %s, instance kills %d", exp.produced(), sent.Load(), ls, k)
		}
	})

	prodErr := produce(ctx, brokers, InputTopic, gen, rate, exp, &sent)
	prodEnd := time.Now()
	stopFaults()
	wg.Wait()
	// The kills stopped with the production: what the group committed by
	// now was processed while instances were being killed.
	if n, err := committedRecords(ctx, adm, Group, InputTopic); err != nil {
		logf("cannot read the committed offsets at the end of the kills: %v", err)
	} else {
		sum.DuringKills = n
	}
	if prodErr != nil {
		return nil, prodErr
	}
	if faultErr != nil {
		return nil, faultErr
	}
	logf("production done: %d records acknowledged (%d failed); faults stopped; draining", exp.Produced, exp.Failed)
	for _, in := range insts { // restart any instance that died on its own
		if !in.Running() {
			logf("%s is not running; restarting it", in.Name)
			if err := in.Start(); err != nil {
				return nil, err
			}
		}
	}
	if err := waitCommitted(ctx, adm, Group, InputTopic, cfg.DrainTimeout, func(behind int64) {
		if time.Since(prodEnd)%(5*time.Second) < time.Second {
			logf("draining: %d records behind; group: %s", behind, describeGroup(ctx, adm, Group))
		}
	}); err != nil {
		return nil, err
	}
	sum.Drain = time.Since(prodEnd)
	if sum.Records, err = committedRecords(ctx, adm, Group, InputTopic); err != nil {
		return nil, err
	}
	if sum.StaticMembers, err = staticMembers(ctx, adm, Group); err != nil {
		return nil, err
	}
	logf("group committed everything in %s; stopping instances with SIGTERM", sum.Drain.Round(time.Second))
	for _, in := range insts {
		if err := in.Term(30 * time.Second); err != nil {
			sum.Unclean = append(sum.Unclean, err.Error())
		}
	}
	close(scrapeStop)
	scrapeWG.Wait()
	for _, in := range insts {
		sum.Duplicates += in.Counter(`healthscore_events_total{result="duplicate"}`)
		sum.MetricApp += in.Counter(`healthscore_events_total{result="applied"}`)
	}

	logf("checking states, alerts and dead letters")
	rdb := redis.NewClient(rds.Options())
	defer rdb.Close()
	vctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	bands, err := checkStates(vctx, rdb, model, exp, InputTopic, &sum.Result)
	if err != nil {
		return nil, fmt.Errorf("cannot check states: %w", err)
	}
	if err := checkAlerts(vctx, brokers, AlertTopic, bands, &sum.Result); err != nil {
		return nil, fmt.Errorf("cannot check alerts: %w", err)
	}
	if err := checkHistory(vctx, rdb, bands, &sum.Result); err != nil {
		return nil, fmt.Errorf("cannot check histories: %w", err)
	}
	if err := checkDLQ(vctx, brokers, DLQTopic, &sum.Result); err != nil {
		return nil, fmt.Errorf("cannot check dead letters: %w", err)
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// KillShare is the share of the input records the group committed while
// instances were being killed: DuringKills / Records (0 without records).
func (s *Summary) KillShare() float64 {
	if s.Records <= 0 {
		return 0
	}
	return float64(s.DuringKills) / float64(s.Records)
}

// Failures lists every violated expectation; empty means the run passed.
func (s *Summary) Failures() []string {
	var f []string
	r, e := &s.Result, s.Expect
	add := func(cond bool, format string, args ...any) {
		if cond {
			f = append(f, fmt.Sprintf(format, args...))
		}
	}
	add(e.Failed > 0, "%d records could not be produced (first error: %v)", e.Failed, e.FirstErr)
	add(r.Lost > 0, "%d events lost (%d customers)", r.Lost, r.LostCustomers)
	add(r.AppliedTwice > 0, "%d events applied twice (%d customers)", r.AppliedTwice, r.TwiceCustomers)
	add(r.Applied != e.Applied, "states hold %d events, %d were sent", r.Applied, e.Applied)
	add(r.ScoreMismatches > 0, "%d customers' scores differ from the offline fold (max relative error %.3g)", r.ScoreMismatches, r.MaxRelErr)
	add(r.OffsetMismatches > 0, "%d per-partition offsets in states differ from the highest offsets sent", r.OffsetMismatches)
	add(r.PendingLeft > 0, "%d outboxes not cleared", r.PendingLeft)
	add(r.OrphanOutboxes > 0, "%d outbox keys left behind", r.OrphanOutboxes)
	add(r.Unexpected != 0, "%d unexpected customer records", r.Unexpected)
	add(r.AltViolations > 0, "%d customers' alerts do not alternate low/recovered", r.AltViolations)
	add(r.MissingAlerts > 0, "%d customers' last alert disagrees with their final band (missing alerts)", r.MissingAlerts)
	add(r.HistoryViolations > 0, "%d customers' score history disagrees with their alerts or final band", r.HistoryViolations)
	add(r.DLQBadMeta > 0, "%d dead letters without source headers", r.DLQBadMeta)
	reasons := map[string]bool{}
	for k := range e.Bad {
		reasons[k] = true
	}
	for k := range r.DLQ {
		reasons[k] = true
	}
	for k := range reasons {
		add(r.DLQ[k] != e.Bad[k], "dead letters %s: %d, bad records sent: %d", k, r.DLQ[k], e.Bad[k])
	}
	add(!s.Cfg.Dynamic && s.StaticMembers != s.Cfg.Instances, "%d of the group's members had a group instance id after the drain, want %d (static membership)", s.StaticMembers, s.Cfg.Instances)
	add(len(s.Unclean) > 0, "unclean SIGTERM exits: %s", strings.Join(s.Unclean, "; "))
	sort.Strings(f)
	return f
}

// WriteTable prints the summary table.
func (s *Summary) WriteTable(w io.Writer) {
	r, e, c := &s.Result, s.Expect, &s.Cfg
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, v any, note string) { fmt.Fprintf(tw, "%s\t%v\t  %s\n", name, v, note) }
	okv := func(n int) string {
		if n == 0 {
			return "ok"
		}
		return "FAIL"
	}
	fmt.Fprintf(w, "healthscore fault suite: %d instances, %d partitions, redis appendfsync %s, seed %d\n", c.Instances, c.Partitions, c.Fsync, c.Seed)
	row("records produced", e.Produced, fmt.Sprintf("%d generated events, %d of them sent twice, unkeyed round-robin", c.Events, e.SentTwice))
	row("good records", e.Good, fmt.Sprintf("%d customers; %d of types no signal reads, naming no segment", r.Customers, e.Ignored))
	row("expected applied", e.Applied, "offline fold of the good records the model folds")
	row("applied (in states)", r.Applied, "Σ event counts of the states decoded from Redis")
	row("applied (metrics, ≥)", int64(s.MetricApp), "incl. re-applications after a lost Redis write; killed instances count up to their last scrape")
	row("duplicates skipped (≥)", int64(s.Duplicates), "redeliveries found already applied, from the instances' metrics")
	row("lost", r.Lost, okv(r.Lost))
	row("applied twice", r.AppliedTwice, okv(r.AppliedTwice))
	row("score mismatches", r.ScoreMismatches, fmt.Sprintf("%s (max relative error %.2g, limit 1e-9)", okv(r.ScoreMismatches), r.MaxRelErr))
	row("offset mismatches", r.OffsetMismatches, okv(r.OffsetMismatches))
	row("outboxes left", r.PendingLeft, okv(r.PendingLeft))
	row("outbox keys left behind", r.OrphanOutboxes, okv(r.OrphanOutboxes))
	row("alerts (unique ids)", r.Alerts, fmt.Sprintf("%d low, %d recovered, %d records with repeats; %d customers changed band twice or more", r.Lows, r.Recovered, r.AlertCopies, r.Flapping))
	row("alternation violations", r.AltViolations, okv(r.AltViolations))
	row("missing alerts", r.MissingAlerts, fmt.Sprintf("%s (%d customers end red)", okv(r.MissingAlerts), r.RedAtEnd))
	row("history violations", r.HistoryViolations, fmt.Sprintf("%s (%d customers with daily points; changes alternate low/recovered, the newest matches the final band)", okv(r.HistoryViolations), r.HistoryDays))
	reasons := make([]string, 0, len(e.Bad))
	for k := range e.Bad {
		reasons = append(reasons, k)
	}
	for k := range r.DLQ {
		if _, ok := e.Bad[k]; !ok {
			reasons = append(reasons, k)
		}
	}
	sort.Strings(reasons)
	total := 0
	for _, k := range reasons {
		total += r.DLQ[k]
	}
	row("dead-lettered", total, fmt.Sprintf("unique by source offset; %d records with repeats", r.DLQCopies))
	for _, k := range reasons {
		st := "ok"
		if r.DLQ[k] != e.Bad[k] {
			st = "FAIL"
		}
		row("  "+k, r.DLQ[k], fmt.Sprintf("%s (sent %d)", st, e.Bad[k]))
	}
	f := &s.Faults
	membership := "static members (--group-instance-id)"
	if c.Dynamic {
		membership = "dynamic members"
	}
	row("instance SIGKILLs", f.InstanceKills, fmt.Sprintf("every %s–%s; %s", c.KillMin, c.KillMax, membership))
	row("processed during kills", fmt.Sprintf("%.0f%%", 100*s.KillShare()), fmt.Sprintf("%d of %d input records committed before the kills stopped (the rest in the drain)", s.DuringKills, s.Records))
	lose := "process crash: AOF kept"
	if c.RedisLose > 0 {
		lose = fmt.Sprintf("power-loss simulation: AOF cut back %s, %d bytes in all", c.RedisLose, f.AOFBytesCut)
	}
	row("redis SIGKILLs", f.RedisKills, lose)
	row("instance self-exits", f.SelfExits, "exited by themselves (e.g. started during the outage) and were restarted, as a process manager would")
	row("broker faults", len(f.BrokerFaults), strings.Join(f.BrokerFaults, ", "))
	row("broker outages", len(f.Outages), strings.Join(f.Outages, ", "))
	row("drain", s.Drain.Round(time.Second), "from the end of production to every offset committed")
	row("elapsed", s.Elapsed.Round(time.Second), "including the build")
	tw.Flush()
	if fs := s.Failures(); len(fs) > 0 {
		fmt.Fprintln(w, "FAILED:")
		for _, x := range fs {
			fmt.Fprintln(w, "  -", x)
		}
		for _, x := range r.Examples {
			fmt.Fprintln(w, "  e.g.", x)
		}
	} else {
		fmt.Fprintln(w, "PASSED: nothing lost, nothing applied twice, every alert present")
	}
}

// staticMembers returns how many members of group have a group instance id.
func staticMembers(ctx context.Context, adm *kadm.Client, group string) (int, error) {
	gs, err := adm.DescribeGroups(ctx, group)
	if err == nil {
		err = gs.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("cannot describe group %s: %w", group, err)
	}
	n := 0
	for _, m := range gs[group].Members {
		if m.InstanceID != nil && *m.InstanceID != "" {
			n++
		}
	}
	return n, nil
}

// describeGroup says who in the group holds which input partitions.
func describeGroup(ctx context.Context, adm *kadm.Client, group string) string {
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return err.Error()
	}
	g, ok := gs[group]
	if !ok {
		return "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s, protocol %s", g.State, g.Protocol)
	for _, m := range g.Members {
		var parts []int32
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				parts = append(parts, t.Partitions...)
			}
		}
		id := m.MemberID
		if len(id) > 8 {
			id = id[len(id)-8:]
		}
		fmt.Fprintf(&b, "; %s@%s %v", id, m.ClientHost, parts)
	}
	return b.String()
}
