package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/extra/redisprometheus/v9"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/consumer"
	"github.com/healthscore/healthscore/httpapi"
	"github.com/healthscore/healthscore/internal/demo"
	"github.com/healthscore/healthscore/internal/devbroker"
	"github.com/healthscore/healthscore/internal/modelwatch"
	"github.com/healthscore/healthscore/internal/redisconf"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// serviceFlags are the flags of `healthscore run`; each has an environment
// twin, which the flag overrides.
type serviceFlags struct {
	brokers, redisURL, redisPrefix, model, commitDelay   string
	topics, scoreTopic, alertTopic, dlqTopic             string
	group, httpAddr, logLevel                            string
	brokerPort, partitions, maxBatch, workers, demoCusts int
	cacheCustomers                                       int
	maxSkew, shutdownGrace, sweepInterval                time.Duration
	demo, createTopics, pprof                            bool
	redis                                                redisFlags
}

// envFlags registers flags whose defaults come from the environment.
type envFlags struct {
	fs   *flag.FlagSet
	errs []error
}

func (e *envFlags) str(p *string, name, env, def, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	e.fs.StringVar(p, name, def, usage+" (env "+env+")")
}

func (e *envFlags) int(p *int, name, env string, def int, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q is not an integer", env, v))
		}
		def = n
	}
	e.fs.IntVar(p, name, def, usage+" (env "+env+")")
}

func (e *envFlags) dur(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q is not a duration like 90s or 1h", env, v))
		}
		def = d
	}
	e.fs.DurationVar(p, name, def, usage+" (env "+env+")")
}

func (e *envFlags) bool(p *bool, name, env string, usage string) {
	def := false
	if v, ok := os.LookupEnv(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q is not true or false", env, v))
		}
		def = b
	}
	e.fs.BoolVar(p, name, def, usage+" (env "+env+")")
}

func parseServiceFlags(args []string, stderr io.Writer) (*serviceFlags, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &serviceFlags{}
	e := &envFlags{fs: fs}
	e.str(&f.brokers, "brokers", "HEALTHSCORE_BROKERS", "", "Kafka bootstrap brokers, comma separated; empty starts an embedded in-memory broker")
	e.int(&f.brokerPort, "broker-port", "HEALTHSCORE_BROKER_PORT", 9092, "port of the embedded broker on 127.0.0.1")
	e.int(&f.partitions, "partitions", "HEALTHSCORE_PARTITIONS", 8, "partitions per topic created by the embedded broker or --create-topics")
	e.bool(&f.createTopics, "create-topics", "HEALTHSCORE_CREATE_TOPICS", "create missing topics on external brokers")
	e.str(&f.redisURL, "redis", "HEALTHSCORE_REDIS_URL", "", "Redis URL (redis://host:6379/0, rediss://…, unix:///path); empty starts an embedded in-memory Redis")
	registerRedisFlags(e, &f.redis)
	e.str(&f.redisPrefix, "redis-prefix", "HEALTHSCORE_REDIS_PREFIX", "hs:", "prefix of every Redis key")
	e.str(&f.model, "model", "HEALTHSCORE_MODEL", "", "model YAML file; empty uses the built-in model ('healthscore model show')")
	e.str(&f.topics, "topics", "HEALTHSCORE_TOPICS", "customer-events", "input topics, comma separated")
	e.str(&f.scoreTopic, "score-topic", "HEALTHSCORE_SCORE_TOPIC", "customer-health", "topic of health.score_changed events")
	e.str(&f.alertTopic, "alert-topic", "HEALTHSCORE_ALERT_TOPIC", "customer-health-alerts", "topic of health.low and health.recovered events")
	e.str(&f.dlqTopic, "dlq-topic", "HEALTHSCORE_DLQ_TOPIC", "customer-events-dlq", "dead-letter topic for bad input records")
	e.str(&f.group, "group", "HEALTHSCORE_GROUP", "healthscore", "Kafka consumer group")
	e.str(&f.httpAddr, "http", "HEALTHSCORE_HTTP", ":8080", "HTTP listen address (API, /metrics, /healthz, /readyz)")
	e.str(&f.logLevel, "log-level", "HEALTHSCORE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	e.int(&f.maxBatch, "max-batch", "HEALTHSCORE_MAX_BATCH", 10000, "most records processed per batch")
	e.int(&f.workers, "workers", "HEALTHSCORE_WORKERS", 4, "groups of a batch's customers processed concurrently")
	e.int(&f.cacheCustomers, "cache-customers", "HEALTHSCORE_CACHE_CUSTOMERS", 250000, "customers whose last saved record is kept in memory (about 300 bytes each), so loading them again needs no Redis round trip; 0: none")
	e.dur(&f.maxSkew, "max-skew", "HEALTHSCORE_MAX_SKEW", time.Hour, "events further in the future than this go to the dead-letter topic")
	e.dur(&f.shutdownGrace, "shutdown-grace", "HEALTHSCORE_SHUTDOWN_GRACE", 30*time.Second, "time the batch in hand may take to finish on SIGTERM")
	e.str(&f.commitDelay, "commit-delay", "HEALTHSCORE_COMMIT_DELAY", "auto", "commit offsets this long after their state writes, so Redis has fsynced them; auto: 2s with AOF everysec or no, at once with appendfsync always or without AOF, 2s when Redis does not say (CONFIG GET); negative: at once")
	e.dur(&f.sweepInterval, "sweep-interval", "HEALTHSCORE_SWEEP_INTERVAL", time.Second, "how often due customers are rescored as their scores decay")
	e.bool(&f.pprof, "pprof", "HEALTHSCORE_PPROF", "serve Go profiles at /debug/pprof/ on the HTTP address (do not expose publicly)")
	e.bool(&f.demo, "demo", "HEALTHSCORE_DEMO", "produce synthetic customers to the input topic (90 days replayed in a minute)")
	e.int(&f.demoCusts, "demo-customers", "HEALTHSCORE_DEMO_CUSTOMERS", 60, "customers simulated by --demo")
	if err := fs.Parse(args); err != nil {
		return nil, exitError(2)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(e.errs) > 0 {
		return nil, errors.Join(e.errs...)
	}
	return f, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return cfg.Build()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runService(args []string, stderr io.Writer) error {
	f, err := parseServiceFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing to do if stderr is gone
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, f, log); err != nil {
		log.Error("healthscore stopped with an error", zap.Error(err))
		return exitError(1)
	}
	log.Info("healthscore stopped")
	return nil
}

// serve starts the parts in order and stops them in reverse.
func serve(ctx context.Context, f *serviceFlags, log *zap.Logger) error {
	model, err := loadModel(f.model)
	if err != nil {
		return err
	}
	log.Info("model loaded", zap.String("name", model.Name), zap.String("version", model.Version), zap.Int("signals", model.Signals()))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	alertCfg := alerts.Config{ScoreTopic: f.scoreTopic, AlertTopic: f.alertTopic, DLQTopic: f.dlqTopic}
	topics := splitList(f.topics)
	if len(topics) == 0 {
		return errors.New("--topics: at least one input topic is required")
	}
	allTopics := append(append([]string(nil), topics...), f.scoreTopic, f.alertTopic, f.dlqTopic)

	// Kafka.
	brokers := splitList(f.brokers)
	if len(brokers) == 0 {
		b, err := devbroker.Start(devbroker.Config{Port: f.brokerPort, Partitions: int32(f.partitions), Topics: allTopics})
		if err != nil {
			return err
		}
		defer b.Close()
		brokers = []string{b.Addr}
		log.Warn("no --brokers given: started an embedded in-memory Kafka-compatible broker; its data is lost on exit",
			zap.String("addr", b.Addr), zap.Int("partitions", f.partitions))
	} else if err := checkTopics(ctx, brokers, allTopics, f.createTopics, int32(f.partitions), log); err != nil {
		return err
	}

	// Redis.
	rcfg := f.redis.config(f.redisURL)
	waitReplicas, err := f.redis.replicas()
	if err != nil {
		return err
	}
	var rdb redis.UniversalClient
	if !rcfg.IsSet() {
		mr, err := miniredis.Run()
		if err != nil {
			return fmt.Errorf("cannot start the embedded Redis: %w", err)
		}
		defer mr.Close()
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
		waitReplicas = 0 // miniredis has no replicas
		log.Warn("no --redis given: started an embedded in-memory Redis (miniredis); customer states are lost on exit", zap.String("addr", mr.Addr()))
	} else {
		if rdb, err = redisconf.New(rcfg, log.Named("redis")); err != nil {
			return err
		}
		log.Info("Redis client configured", zap.String("topology", string(rcfg.Topology())), zap.String("target", rcfg.Describe()))
	}
	defer rdb.Close()
	reg.MustRegister(redisprometheus.NewCollector("healthscore", "redis", rdb))
	store, err := state.NewRedis(rdb, state.Config{Prefix: f.redisPrefix, Cache: f.cacheCustomers, WaitReplicas: waitReplicas, WaitTimeout: f.redis.waitTimeout})
	if err != nil {
		return fmt.Errorf("--cache-customers or --redis-prefix: %w", err)
	}
	var replicas consumer.ReplicaWaiter
	if waitReplicas != 0 {
		replicas = store
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "healthscore_state_cache_hits_total",
			Help: "Customer records loaded from this instance's record cache (--cache-customers), without a Redis round trip.",
		}, func() float64 { h, _ := store.CacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "healthscore_state_cache_misses_total",
			Help: "Customer records loaded from Redis by loads that could use the record cache (not cached, evicted, or saved on another Redis server).",
		}, func() float64 { _, m := store.CacheStats(); return float64(m) }),
	)
	commitDelay, err := resolveCommitDelay(ctx, f.commitDelay, store, log)
	if err != nil {
		return err
	}

	enc, err := alerts.NewEncoder(alertCfg)
	if err != nil {
		return err
	}
	kmetrics := kprom.NewMetrics("healthscore_kafka", kprom.Registerer(reg), kprom.Gatherer(reg))
	cons, err := consumer.New(consumer.Config{
		Brokers: brokers, Topics: topics, Group: f.group,
		Model: model, Store: store, Encoder: enc, Schedule: store, SweepInterval: f.sweepInterval, CommitDelay: commitDelay, Replicas: replicas,
		Logger: log.Named("consumer"), Registerer: reg,
		MaxPollRecords: f.maxBatch, Workers: f.workers, MaxSkew: f.maxSkew, ShutdownGrace: f.shutdownGrace,
		ClientOpts: []kgo.Opt{kgo.WithHooks(kmetrics), kgo.WithLogger(kzap.New(log.Named("kafka"), kzap.Level(kgo.LogLevelWarn)))},
	})
	if err != nil {
		return err
	}
	reg.MustRegister(newBandCollector(store))

	handler, err := httpapi.New(httpapi.Config{
		Model: cons.Model,
		Store: store,
		// A collector that cannot answer (e.g. band counts while Redis is
		// down) must not hide the others, lag above all.
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError}),
		Logger:  log.Named("http"),
		Ready: []httpapi.Check{
			{Name: "pipeline", Check: func(context.Context) error { return cons.Ready() }},
			{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		},
	})
	if err != nil {
		return err
	}
	if f.pprof {
		outer := http.NewServeMux()
		outer.HandleFunc("/debug/pprof/", pprof.Index)
		outer.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		outer.HandleFunc("/debug/pprof/profile", pprof.Profile)
		outer.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		outer.HandleFunc("/debug/pprof/trace", pprof.Trace)
		outer.Handle("/", handler)
		handler = outer
	}
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on --http %s: %w", f.httpAddr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	log.Info("HTTP listening", zap.String("addr", ln.Addr().String()))

	var wg sync.WaitGroup
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("HTTP server: %w", err)
		}
	})
	if f.demo {
		prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topics[0]), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			return fmt.Errorf("cannot create demo producer: %w", err)
		}
		defer prod.Close()
		wg.Go(func() {
			if err := demo.Run(runCtx, demo.Config{Client: prod, Topic: topics[0], Customers: f.demoCusts, Logger: log.Named("demo")}); err != nil {
				errc <- err
			}
		})
		wg.Go(func() {
			if err := demo.Watch(runCtx, brokers, f.alertTopic, log.Named("demo")); err != nil {
				errc <- err
			}
		})
	}
	if f.model != "" {
		if err := watchModel(runCtx, &wg, f.model, model, cons, store, reg, log); err != nil {
			return err
		}
	}
	consErr := make(chan error, 1)
	go func() { consErr <- cons.Run(runCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutdown requested: finishing the batch in hand")
	case runErr = <-errc:
	case runErr = <-consErr:
		consErr <- runErr
	}
	cancel()
	runErr = errors.Join(runErr, <-consErr) // the consumer commits and leaves the group
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = srv.Shutdown(shutdownCtx) // stops accepting; in-flight requests get 5 s
	wg.Wait()
	return runErr
}

// watchModel reloads the model on SIGHUP or when its file changes, and then
// rescores every indexed customer in the background (one pass at a time; a
// newer reload restarts it).
func watchModel(ctx context.Context, wg *sync.WaitGroup, path string, model *scorer.Model, cons *consumer.Consumer, store *state.Redis, reg prometheus.Registerer, log *zap.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	passes := make(chan struct{}, 1)
	w, err := modelwatch.New(modelwatch.Config{Path: path, Reload: hup, Current: model, Logger: log.Named("model"), Registerer: reg,
		OnLoad: func(m *scorer.Model) {
			cons.SetModel(m)
			select {
			case passes <- struct{}{}:
			default: // a pass is pending already; it will use the newest model
			}
		}})
	if err != nil {
		return err
	}
	wg.Go(func() { defer signal.Stop(hup); w.Run(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-passes:
			}
			n, err := cons.RescoreAll(ctx, store)
			if err != nil && ctx.Err() == nil {
				log.Error("rescoring after the model reload stopped", zap.Int("rescored", n), zap.Error(err))
				continue
			}
			log.Info("rescored every indexed customer with the reloaded model", zap.Int("customers", n))
		}
	})
	return nil
}

// checkTopics verifies that every topic exists on external brokers, creating
// the missing ones when asked to.
func checkTopics(ctx context.Context, brokers, topics []string, create bool, partitions int32, log *zap.Logger) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("cannot create Kafka admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	details, err := adm.ListTopics(tctx, topics...)
	if err != nil {
		return fmt.Errorf("cannot list topics on %v: %w", brokers, err)
	}
	var missing []string
	for _, t := range topics {
		if d, ok := details[t]; !ok || d.Err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if !create {
		return fmt.Errorf("topics %v do not exist on %v: create them, or pass --create-topics", missing, brokers)
	}
	res, err := adm.CreateTopics(tctx, partitions, -1, nil, missing...)
	if err != nil {
		return fmt.Errorf("cannot create topics %v: %w", missing, err)
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("cannot create topic %s: %w", r.Topic, r.Err)
		}
	}
	log.Info("created topics", zap.Strings("topics", missing), zap.Int32("partitions", partitions))
	return nil
}

// bandCollector reports customers per band from the band index at scrape
// time.
type bandCollector struct {
	store *state.Redis
	desc  *prometheus.Desc
}

func newBandCollector(s *state.Redis) *bandCollector {
	return &bandCollector{store: s, desc: prometheus.NewDesc("healthscore_customers", "Customers per band, from the band index.", []string{"band"}, nil)}
}

func (c *bandCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *bandCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.BandCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, b := range []string{"red", "yellow", "green"} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[b]), b)
	}
}

// resolveCommitDelay turns --commit-delay into the consumer's CommitDelay.
// "auto" waits only where waiting makes a write durable: with AOF and
// appendfsync everysec (or no, left to the OS) it is 2 s; with appendfsync
// always a reply already means fsynced, and without AOF nothing would be
// durable however long one waited, so offsets are committed at once. When
// Redis does not answer CONFIG GET (managed services often rename it), it is
// 2 s. The settings are read once, at start.
func resolveCommitDelay(ctx context.Context, flagValue string, store *state.Redis, log *zap.Logger) (time.Duration, error) {
	const safe = 2 * time.Second
	if flagValue != "auto" {
		d, err := time.ParseDuration(flagValue)
		if err != nil {
			return 0, fmt.Errorf("--commit-delay %q: want auto or a duration such as 2s (negative: commit at once)", flagValue)
		}
		if d == 0 {
			d = -1 // 0 means "the default" to the consumer; the flag means at once
		}
		return d, nil
	}
	p, err := store.Persistence(ctx)
	if err != nil {
		log.Info("commit delay 2s: the Redis persistence settings are unknown", zap.Error(err))
		return safe, nil
	}
	d, why := safe, "appendfsync "+p.AppendFsync+": acknowledged writes reach the disk within about 2 s"
	switch {
	case !p.AppendOnly:
		d, why = -1, "no AOF: waiting would not make the writes durable"
	case p.AppendFsync == "always":
		d, why = -1, "appendfsync always: acknowledged writes are on disk"
	}
	log.Info("commit delay resolved", zap.Duration("commit_delay", max(d, 0)), zap.String("reason", why))
	return d, nil
}
