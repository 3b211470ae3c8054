package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/scorer"
)

// run is the state of one benchmark run.
type run struct {
	cfg    *Config
	env    *env
	id     string // unique per run: topic, group and key names
	model  *scorer.Model
	end    time.Time // time of the last preloaded event
	topics struct{ events, score, alerts, dlq, naive string }
	prefix string // Redis key prefix of the pipeline
	res    Result
	// preloadEnds are the events topic's end offsets after the preload.
	preloadEnds map[int32]int64
	// scored is the number of distinct preloaded customers with at least
	// one event a signal reads (those get a stored state).
	scored int
	// clusterProcs are the Redis Cluster nodes while the cluster phase
	// runs (their CPU is measured like the other processes').
	clusterProcs []*proc
}

// Run performs a whole run and returns its result. The servers it started
// are stopped before it returns.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid bench config: %w", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	r := &run{cfg: &cfg, id: hex.EncodeToString(b[:]), model: scorer.DefaultModel()}
	r.topics.events = "hsbench-" + r.id + "-events"
	r.topics.score = "hsbench-" + r.id + "-health"
	r.topics.alerts = "hsbench-" + r.id + "-alerts"
	r.topics.dlq = "hsbench-" + r.id + "-dlq"
	r.topics.naive = "hsbench-" + r.id + "-naive"
	// A fresh Redis gets the service's default prefix, so memory per
	// customer is what production stores; a shared one a unique prefix.
	r.prefix = "hs:"
	if cfg.RedisURL != "" {
		r.prefix = "hsbench-" + r.id + ":"
	}
	r.res = Result{Events: cfg.Events, Customers: cfg.Customers, Partitions: cfg.Partitions, Instances: cfg.Instances, LoadAverageAtStart: loadAvg()}
	if r.res.LoadAverageAtStart != "" {
		fmt.Fprintf(cfg.Log, "load average %s (nproc %d)\n", r.res.LoadAverageAtStart, nproc())
	}

	r.env, err = startEnv(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := r.env.close(); cerr != nil {
			fmt.Fprintf(cfg.Log, "cleanup: %v\n", cerr)
		}
	}()
	fmt.Fprintf(cfg.Log, "broker %s, Redis %s, run %s\n", strings.Join(r.env.brokers, ","), r.env.redisURL, r.id)
	if err := r.createTopics(ctx); err != nil {
		return nil, err
	}
	if err := r.preload(ctx); err != nil {
		return nil, err
	}
	if err := r.bare(ctx); err != nil {
		return nil, fmt.Errorf("bare: %w", err)
	}
	if err := r.pipeline(ctx); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if cfg.ClusterNodes > 0 {
		if r.env.external {
			r.note("no Redis Cluster row: the single-server row ran on an external Redis, so the ratio would compare different machines")
		} else if err := r.cluster(ctx); err != nil {
			return nil, fmt.Errorf("redis cluster: %w", err)
		}
	}
	if err := r.naive(ctx); err != nil {
		return nil, fmt.Errorf("naive: %w", err)
	}
	if err := r.offline(); err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	if r.res.BareEventsPerS > 0 {
		r.res.PipelineOverBare = r.res.PipelineEventsPerS / r.res.BareEventsPerS
	}
	if r.res.NaiveEventsPerS > 0 {
		r.res.PipelineOverNaive = r.res.PipelineEventsPerS / r.res.NaiveEventsPerS
	}
	if b, ok := r.res.capacityBasis(); ok {
		r.res.CapacityBasis, r.res.Capacity = &b, Capacity(b)
	}
	r.res.LoadAverageAtEnd = loadAvg()
	if r.env.external {
		if err := r.deleteKeys(ctx); err != nil {
			r.note("could not delete the run's keys from the external Redis: %v", err)
		}
	}
	return &r.res, nil
}

func (r *run) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	r.res.Notes = append(r.res.Notes, n)
	fmt.Fprintf(r.cfg.Log, "note: %s\n", n)
}

func (r *run) client(opts ...kgo.Opt) (*kgo.Client, error) {
	base := append([]kgo.Opt{kgo.SeedBrokers(r.env.brokers...)}, r.cfg.KafkaOpts...)
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create Kafka client: %w", err)
	}
	return cl, nil
}

// createTopics creates the run's topics (dev-broker or external broker alike).
func (r *run) createTopics(ctx context.Context) error {
	cl, err := r.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := r.topics
	res, err := kadm.NewClient(cl).CreateTopics(tctx, int32(r.cfg.Partitions), -1, nil, t.events, t.score, t.alerts, t.dlq, t.naive)
	if err != nil {
		return fmt.Errorf("cannot create topics: %w", err)
	}
	for _, tr := range res {
		if tr.Err != nil && !errors.Is(tr.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("cannot create topic %s: %w", tr.Topic, tr.Err)
		}
	}
	return nil
}

// produceAll produces every record of next (nil ends) and waits for the
// acknowledgements, counting them on b.
func (r *run) produceAll(ctx context.Context, b *bar, next func() *kgo.Record) error {
	cl, err := r.client(kgo.DefaultProduceTopic(r.topics.events), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(200_000), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return err
	}
	defer cl.Close()
	var mu sync.Mutex
	var firstErr error
	for rec := next(); rec != nil; rec = next() {
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			b.add(1)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("cannot flush producer: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return fmt.Errorf("cannot produce events: %w", firstErr)
	}
	return nil
}

// preload produces the synthetic events, keyed by customer ID.
func (r *run) preload(ctx context.Context) error {
	cfg := r.cfg
	r.end = time.Now().Add(-time.Minute).Truncate(time.Second)
	g := newGen(cfg.Seed, cfg.Events, cfg.Customers, r.end)
	seen := make([]bool, cfg.Customers)
	b := newBar(cfg.Progress, cfg.Terminal, "preload", int64(cfg.Events))
	defer b.finish()
	var buf []byte
	n := 0
	err := r.produceAll(ctx, b, func() *kgo.Record {
		if n == cfg.Events {
			return nil
		}
		n++
		buf = g.next(buf[:0])
		if len(r.model.SignalsFor(g.typ)) > 0 {
			seen[g.cust] = true
		}
		v := make([]byte, len(buf))
		copy(v, buf)
		return &kgo.Record{Key: v[g.ks:g.ke], Value: v}
	})
	for _, s := range seen {
		if s {
			r.scored++
		}
	}
	if err != nil {
		return err
	}
	cl, err := r.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, r.topics.events)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("cannot list end offsets of %s: %w", r.topics.events, err)
	}
	r.preloadEnds = map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { r.preloadEnds[o.Partition] = o.Offset })
	return nil
}

// loadAvg returns the 1, 5 and 15 minute load averages, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func nproc() int { return runtime.NumCPU() }
