package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// instance is a running `healthscore run` process.
type instance struct {
	*proc
	http string // base URL of its HTTP server
}

// startInstance runs the real binary against the run's broker, Redis and
// topics, and waits for its HTTP listener. redisFlags are its Redis flags; nil
// is the run's Redis server (--redis) and key prefix.
func (r *run) startInstance(ctx context.Context, i int, group string, redisFlags ...string) (*instance, error) {
	cfg := r.cfg
	t := r.topics
	if redisFlags == nil {
		redisFlags = []string{"--redis", r.env.redisURL, "--redis-prefix", r.prefix}
	}
	args := append([]string{"run", "--brokers", strings.Join(r.env.brokers, ",")}, redisFlags...)
	cmd := exec.Command(cfg.Binary, append(args,
		"--http", "127.0.0.1:0", "--group", group,
		"--topics", t.events, "--score-topic", t.score, "--alert-topic", t.alerts, "--dlq-topic", t.dlq,
		"--max-batch", strconv.Itoa(cfg.MaxBatch), "--log-level", "info")...)
	cmd.Env = append(os.Environ(), cfg.ServiceEnv...)
	if cfg.ProfileDir != "" {
		// The service's --pprof twin; a binary without it ignores it, and
		// the harness then says the profiles are missing.
		cmd.Env = append(cmd.Env, "HEALTHSCORE_PPROF=true")
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("cannot create pipe: %w", err)
	}
	cmd.Stderr = pw
	logPath := filepath.Join(r.env.dir, fmt.Sprintf("%s-%d.log", group[strings.LastIndexByte(group, '-')+1:], i))
	p, err := startProc(fmt.Sprintf("pipeline %d", i), cmd, logPath)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		defer pr.Close()
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			_, _ = io.Copy(io.Discard, pr)
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = f.Write(append(line, '\n'))
			var l struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "HTTP listening" {
				addr <- l.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		return &instance{proc: p, http: "http://" + a}, nil
	case <-p.exited:
		return nil, fmt.Errorf("healthscore run exited before listening:\n%s", p.tail())
	case <-time.After(60 * time.Second):
		_ = p.stop(10 * time.Second)
		return nil, fmt.Errorf("healthscore run did not listen within 60 s:\n%s", p.tail())
	case <-ctx.Done():
		_ = p.stop(10 * time.Second)
		return nil, ctx.Err()
	}
}

// committed returns the sum over the partitions of topic of the group's
// committed offsets (the records committed, as topics start at 0 here).
func committed(ctx context.Context, adm *kadm.Client, group, topic string) (int64, error) {
	offs, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0, nil // not joined yet
	}
	if err != nil {
		return 0, fmt.Errorf("cannot fetch committed offsets of %s: %w", group, err)
	}
	var n int64
	for _, ps := range offs[topic] {
		if ps.Err == nil && ps.At > 0 {
			n += ps.At
		}
	}
	return n, nil
}

// endOffsets returns the sum of topic's end offsets.
func endOffsets(ctx context.Context, adm *kadm.Client, topics ...string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, fmt.Errorf("cannot list end offsets: %w", err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// waitCommitted waits until group has committed want records of the events
// topic, counting on b.
func (r *run) waitCommitted(ctx context.Context, adm *kadm.Client, group string, want int64, b *bar, insts []*instance) error {
	return r.waitCount(ctx, want, b, insts, func(ctx context.Context) (int64, error) {
		return committed(ctx, adm, group, r.topics.events)
	})
}

// waitCount waits until count reaches want, showing it on b, and fails as
// soon as one of insts has exited.
func (r *run) waitCount(ctx context.Context, want int64, b *bar, insts []*instance, count func(context.Context) (int64, error)) error {
	return waitProgress(ctx, func() (int64, error) {
		for _, in := range insts {
			select {
			case <-in.exited:
				return 0, fmt.Errorf("%s exited:\n%s", in.name, in.tail())
			default:
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := count(qctx)
		if err == nil {
			b.set(n)
		}
		return n, err
	}, want)
}

// startInstances starts cfg.Instances service processes in group (with
// redisFlags, see startInstance); stop stops those started, also when one
// failed to start.
func (r *run) startInstances(ctx context.Context, group string, redisFlags ...string) (insts []*instance, stop func(), err error) {
	stop = func() {
		for _, in := range insts {
			_ = in.stop(60 * time.Second)
		}
	}
	for i := range r.cfg.Instances {
		in, err := r.startInstance(ctx, i, group, redisFlags...)
		if err != nil {
			return insts, stop, err
		}
		insts = append(insts, in)
	}
	return insts, stop, nil
}

// pipeline runs the real binary over the preloaded events and measures the
// wall time from starting the processes until the group's committed offsets
// reach the end offsets; then Redis memory per customer, then latency under
// paced load.
func (r *run) pipeline(ctx context.Context) error {
	cfg := r.cfg
	cl, err := r.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if r.env.external {
		r.note("Redis is external: used_memory growth includes anything else writing to it")
	}
	memBefore, err := r.env.usedMemory(ctx)
	if err != nil {
		return err
	}
	if !r.env.external {
		if err := r.env.rdb.ConfigResetStat(ctx).Err(); err != nil {
			return fmt.Errorf("cannot reset Redis stats: %w", err)
		}
	}
	group := "hsbench-" + r.id + "-pipeline"
	total := int64(cfg.Events)

	b := newBar(cfg.Progress, cfg.Terminal, "pipeline", total)
	start := time.Now()
	insts, stopInsts, err := r.startInstances(ctx, group)
	defer stopInsts()
	if err != nil {
		b.finish()
		return err
	}
	cpu0 := r.cpuSnapshot(nil)
	var profDone chan bool
	if cfg.ProfileDir != "" {
		profDone = make(chan bool, 1)
		go func() { profDone <- r.profileCPU(ctx, insts[0].http) }()
	}
	err = r.waitCommitted(ctx, adm, group, total, b, insts)
	el := time.Since(start)
	b.finish()
	if err != nil {
		return err
	}
	r.res.CPUMicrosPerEvent = perEvent(cpu0, r.cpuSnapshot(insts), total)
	if !r.env.external {
		if cs, err := r.commandStats(ctx); err != nil {
			r.note("%v", err)
		} else {
			r.res.RedisCommands = cs
		}
	}
	r.res.PipelineSeconds = el.Seconds()
	r.res.PipelineEventsPerS = float64(total) / el.Seconds()
	if hs, err := scrapeAll(ctx, insts); err != nil {
		r.note("%v", err)
	} else {
		r.res.PipelineService = stats(nil, hs)
	}
	if n, err := endOffsets(ctx, adm, r.topics.score, r.topics.alerts); err == nil {
		r.res.PipelineOutputs = n
	}
	if n, err := endOffsets(ctx, adm, r.topics.dlq); err == nil && n > 0 {
		r.note("%d records went to the dead-letter topic", n)
	}
	if profDone != nil && <-profDone {
		r.profileHeap(ctx, insts[0].http)
	}

	// Without extra customers, memory is measured now, on the states the
	// bulk phase left (the paced events below add history to them).
	extra := cfg.MemoryCustomers - cfg.Customers
	memAfter := int64(-1)
	if extra <= 0 {
		if memAfter, err = r.env.usedMemory(ctx); err != nil {
			return err
		}
		r.sampleMemory(ctx, cfg.Customers)
	}

	// The rate search and latency before memory: the paced load runs
	// against the customers whose bulk rate it starts from, not after
	// --memory-customers have made the sorted sets up to 10 times larger
	// and displaced them from the record cache (a different system than
	// the one the rate was measured on).
	if cfg.SustainWindow > 0 {
		if err := r.sustain(ctx, adm, group); err != nil {
			return fmt.Errorf("rate search: %w", err)
		}
	}
	if cfg.LatencyDuration > 0 {
		if err := r.latencyRows(ctx, group, insts); err != nil {
			return err
		}
	}

	// Memory: the preloaded customers, then (if asked) more customers with
	// one event each.
	customers := r.scored
	if extra > 0 {
		base, err := endOffsets(ctx, adm, r.topics.events) // the preload and the paced events
		if err != nil {
			return err
		}
		if err := r.produceExtra(ctx, extra); err != nil {
			return err
		}
		bm := newBar(cfg.Progress, cfg.Terminal, "memory", base+int64(extra))
		bm.set(base)
		err = r.waitCommitted(ctx, adm, group, base+int64(extra), bm, insts)
		bm.finish()
		if err != nil {
			return err
		}
		customers += extra
		if memAfter, err = r.env.usedMemory(ctx); err != nil {
			return err
		}
		r.sampleMemory(ctx, customers)
	}
	r.res.MemoryCustomers = customers
	r.res.MemoryBytes = memAfter - memBefore
	r.res.BytesPerCustomer = float64(r.res.MemoryBytes) / float64(max(customers, 1))
	r.res.BytesPerCustomerNoHistory = r.res.BytesPerCustomer - r.res.HistoryBytesPerCustomer

	for _, in := range insts {
		if err := in.stop(60 * time.Second); err != nil {
			r.note("%v", err)
		} else if !in.cmd.ProcessState.Success() {
			r.note("%s exited with %s", in.name, in.cmd.ProcessState)
		}
	}
	return nil
}

// latencyRows measures the latency at each of cfg.LatencyLoads times the
// sustained rate (the bulk rate without one). The service's histograms,
// the CPU per event and the profiles are of the last (highest) row, whose
// figures are also the result's top-level latency figures.
func (r *run) latencyRows(ctx context.Context, group string, insts []*instance) error {
	cfg := r.cfg
	basis, base := "sustained", r.res.SustainedEventsPerS
	switch {
	case cfg.LatencyRate > 0:
		basis, base = "given rate", cfg.LatencyRate
	case base <= 0:
		basis, base = "bulk", r.res.PipelineEventsPerS
		if cfg.SustainWindow > 0 {
			r.note("no paced rate was sustained: the latency loads are fractions of the bulk rate")
		}
	}
	for i, load := range cfg.LatencyLoads {
		row := LatencyRow{Load: load, Basis: basis, RatePerS: load * base}
		if i < len(cfg.LatencyLoads)-1 {
			if err := r.latency(ctx, group, &row); err != nil {
				return fmt.Errorf("latency at %.0f%%: %w", 100*load, err)
			}
			r.res.LatencyRows = append(r.res.LatencyRows, row)
			continue
		}
		scraped := time.Now()
		before, err := scrapeAll(ctx, insts)
		if err != nil {
			r.note("%v", err)
		}
		var latProf chan bool
		if cfg.ProfileDir != "" {
			latProf = make(chan bool, 1)
			go func() {
				secs := max(1, min(10, int(cfg.LatencyDuration.Seconds())-2))
				latProf <- r.fetchProfile(ctx, insts[0].http+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), "cpu-latency.pprof", time.Duration(secs+30)*time.Second)
			}()
		}
		if !r.env.external {
			if err := r.env.rdb.ConfigResetStat(ctx).Err(); err != nil {
				return fmt.Errorf("cannot reset Redis stats: %w", err)
			}
		}
		cpuLat := r.cpuSnapshot(insts)
		stopHarnessProf := r.profileHarness("cpu-harness-latency.pprof")
		err = r.latency(ctx, group, &row)
		stopHarnessProf()
		if err != nil {
			return fmt.Errorf("latency at %.0f%%: %w", 100*load, err)
		}
		r.res.LatencyRows = append(r.res.LatencyRows, row)
		r.res.LatencyCPUMicrosPerEvent = perEvent(cpuLat, r.cpuSnapshot(insts), int64(row.RatePerS*row.Seconds))
		if !r.env.external {
			if cs, err := r.commandStats(ctx); err != nil {
				r.note("%v", err)
			} else {
				r.res.LatencyRedisCommands = cs
			}
		}
		if latProf != nil && <-latProf {
			fmt.Fprintf(cfg.Log, "wrote %s\n", filepath.Join(cfg.ProfileDir, "cpu-latency.pprof"))
		}
		if after, err := scrapeAll(ctx, insts); err != nil {
			r.note("%v", err)
		} else if before != nil {
			r.res.LatencyService = stats(before, after)
			r.res.LatencyService.setBusy(time.Since(scraped), len(insts))
		}
		r.res.LatencyLoad, r.res.LatencyBasis = row.Load, row.Basis
		r.res.LatencyRatePerS, r.res.LatencySeconds = row.RatePerS, row.Seconds
		r.res.LatencyEvents, r.res.LatencySamples = row.Events, row.Samples
		r.res.P50ms, r.res.P99ms, r.res.P999ms, r.res.MaxMs = row.P50ms, row.P99ms, row.P999ms, row.MaxMs
	}
	return nil
}

// sampleMemory records the MEMORY USAGE breakdown of the state's layout
// for the given number of customers.
func (r *run) sampleMemory(ctx context.Context, customers int) {
	if ms, err := r.memorySample(ctx, customers, 200); err != nil {
		r.note("%v", err)
	} else {
		r.res.MemoryDetail = ms
	}
}

// produceExtra produces one login event for each of n customers beyond the
// preloaded ones, at the time of the last preloaded event.
func (r *run) produceExtra(ctx context.Context, n int) error {
	b := newBar(r.cfg.Progress, r.cfg.Terminal, "preload+", int64(n))
	defer b.finish()
	at := r.end.UTC().Format(time.RFC3339Nano)
	i := 0
	return r.produceAll(ctx, b, func() *kgo.Record {
		if i == n {
			return nil
		}
		c := r.cfg.Customers + i
		i++
		v := []byte(`{"id":"m` + strconv.Itoa(i) + `","customer_id":"`)
		ks := len(v)
		v = appendCustomer(v, c)
		ke := len(v)
		v = append(v, `","type":"login","time":"`+at+`","segment":"`+segments[c%len(segments)]+`"}`...)
		return &kgo.Record{Key: v[ks:ke], Value: v}
	})
}

// profileCPU fetches a CPU profile of the pipeline while it works, if the
// service serves /debug/pprof.
func (r *run) profileCPU(ctx context.Context, base string) bool {
	secs := 10
	if r.cfg.Events < 500_000 {
		secs = 2
	}
	if !r.fetchProfile(ctx, base+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), "cpu-pipeline.pprof", time.Duration(secs+30)*time.Second) {
		return false
	}
	fmt.Fprintf(r.cfg.Log, "wrote %s\n", filepath.Join(r.cfg.ProfileDir, "cpu-pipeline.pprof"))
	return true
}

func (r *run) profileHeap(ctx context.Context, base string) {
	if r.fetchProfile(ctx, base+"/debug/pprof/heap", "heap-pipeline.pprof", 30*time.Second) {
		fmt.Fprintf(r.cfg.Log, "wrote %s\n", filepath.Join(r.cfg.ProfileDir, "heap-pipeline.pprof"))
	}
}

// profileHarness writes a CPU profile of the harness itself (it produces
// the paced load and reads every output, on the same cores) until the
// returned function is called; a no-op without --cpuprofile.
func (r *run) profileHarness(name string) (stop func()) {
	if r.cfg.ProfileDir == "" {
		return func() {}
	}
	path := filepath.Join(r.cfg.ProfileDir, name)
	if err := os.MkdirAll(r.cfg.ProfileDir, 0o755); err != nil {
		r.note("profile %s: %v", name, err)
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		r.note("profile %s: %v", name, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		r.note("profile %s: %v", name, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			r.note("profile %s: %v", name, err)
			return
		}
		fmt.Fprintf(r.cfg.Log, "wrote %s\n", path)
	}
}

func (r *run) fetchProfile(ctx context.Context, url, name string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		r.note("profile %s: %v", name, err)
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.note("profile %s: %v", name, err)
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.note("no %s: the service answers %s for %s (this binary has no --pprof / HEALTHSCORE_PPROF)",
			name, resp.Status, strings.TrimPrefix(url, "http://"))
		return false
	}
	if err := os.MkdirAll(r.cfg.ProfileDir, 0o755); err != nil {
		r.note("profile %s: %v", name, err)
		return false
	}
	f, err := os.Create(filepath.Join(r.cfg.ProfileDir, name))
	if err != nil {
		r.note("profile %s: %v", name, err)
		return false
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		r.note("profile %s: %v", name, err)
		return false
	}
	return true
}
