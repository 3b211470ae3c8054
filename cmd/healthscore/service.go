package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/extra/redisprometheus/v9"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/consumer"
	"github.com/healthscore/healthscore/ingest"
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
	brokers, redisURL, redisPrefix, model, commitDelay    string
	topics, scoreTopic, alertTopic, dlqTopic              string
	group, groupInstanceID, httpAddr, logLevel            string
	adminHTTP, apiTokenFile, httpTLSCert, httpTLSKey      string
	producerCompression                                   string
	brokerPort, partitions, maxBatch, workers, demoCusts  int
	cacheCustomers, historyDays, stateBuckets             int
	bandCountsMaxAge                                      time.Duration
	maxCatchUp, maxCatchUpBytes                           int
	maxSkew, shutdownGrace, sweepInterval, commitInterval time.Duration
	livenessTimeout                                       time.Duration
	demo, createTopics, pprof, demoAllowExternal          bool
	kafka                                                 *kafkaFlags
	redis                                                 redisFlags
	input                                                 inputFlags
	inputDecoder                                          *ingest.Decoder // from input, once validated

	env *envFlags // which flags were set, and how
}

// envFlags registers flags whose defaults come from the environment, and
// remembers which were set: given on the command line, or by an
// environment variable that exists (even empty).
type envFlags struct {
	fs      *flag.FlagSet
	errs    []error
	envOf   map[string]string // flag name → its environment variable
	fromEnv map[string]bool   // flags whose environment variable exists
}

// note records the environment twin of a flag and whether it exists.
func (e *envFlags) note(name, env string) (string, bool) {
	if e.envOf == nil {
		e.envOf, e.fromEnv = make(map[string]string), make(map[string]bool)
	}
	e.envOf[name] = env
	v, ok := os.LookupEnv(env)
	e.fromEnv[name] = ok
	return v, ok
}

// onCommandLine reports whether the flag was given on the command line.
func (e *envFlags) onCommandLine(name string) bool {
	found := false
	e.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// isSet reports whether any of the flags was set, on the command line or by
// its environment variable (an empty value counts: it was set). Call it
// after parsing.
func (e *envFlags) isSet(names ...string) bool {
	for _, n := range names {
		if e.fromEnv[n] || e.onCommandLine(n) {
			return true
		}
	}
	return false
}

// source names where a set flag's value came from, for error messages:
// "--brokers" or "HEALTHSCORE_BROKERS".
func (e *envFlags) source(name string) string {
	if e.onCommandLine(name) || !e.fromEnv[name] {
		return "--" + name
	}
	return e.envOf[name]
}

// notEmpty returns an error when the flag was set to an empty (or blank)
// value: a missing key in a Kubernetes Secret gives an empty variable,
// which must not quietly mean "unset".
func (e *envFlags) notEmpty(name, value, what string) error {
	if e.isSet(name) && strings.Trim(value, " \t,") == "" {
		return fmt.Errorf("%s is set but empty: give %s, or leave both --%s and %s unset to start the embedded development one", e.source(name), what, name, e.envOf[name])
	}
	return nil
}

func (e *envFlags) str(p *string, name, env, def, usage string) {
	if v, ok := e.note(name, env); ok {
		def = v
	}
	e.fs.StringVar(p, name, def, usage+" (env "+env+")")
}

// secret registers a string flag whose value never shows in -h output or
// in the usage printed after a mistyped flag ("(default …)"), even when it
// came from the environment: passwords, and URLs that may hold one.
func (e *envFlags) secret(p *string, name, env, usage string) {
	if v, ok := e.note(name, env); ok {
		*p = v
	}
	e.fs.Var(secretValue{p}, name, usage+" (env "+env+")")
}

// secretValue is a flag.Value that prints as empty.
type secretValue struct{ p *string }

func (s secretValue) String() string     { return "" }
func (s secretValue) Set(v string) error { *s.p = v; return nil }

func (e *envFlags) int(p *int, name, env string, def int, usage string) {
	if v, ok := e.note(name, env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q is not an integer", env, v))
		}
		def = n
	}
	e.fs.IntVar(p, name, def, usage+" (env "+env+")")
}

func (e *envFlags) dur(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := e.note(name, env); ok {
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
	if v, ok := e.note(name, env); ok {
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
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: healthscore [run] [flags]

Runs the service: consumes customer events from Kafka, keeps customer states in
Redis, publishes score changes and alerts, and serves the HTTP API and probes.
Without --brokers and --redis (flag and environment both unset) it starts an
embedded in-memory broker and Redis, for development; --demo adds synthetic
customers. Every flag has an environment twin; the flag wins.

`)
		fs.PrintDefaults()
	}
	f := &serviceFlags{}
	e := &envFlags{fs: fs}
	f.env = e
	e.str(&f.brokers, "brokers", "HEALTHSCORE_BROKERS", "", "Kafka bootstrap brokers, comma separated; unset (flag and env) starts an embedded in-memory broker, set but empty is an error")
	e.int(&f.brokerPort, "broker-port", "HEALTHSCORE_BROKER_PORT", 9092, "port of the embedded broker on 127.0.0.1")
	e.int(&f.partitions, "partitions", "HEALTHSCORE_PARTITIONS", 8, "partitions per topic created by the embedded broker or --create-topics")
	e.bool(&f.createTopics, "create-topics", "HEALTHSCORE_CREATE_TOPICS", "create missing topics on external brokers")
	e.secret(&f.redisURL, "redis", "HEALTHSCORE_REDIS_URL", "Redis URL (redis://host:6379/0, rediss://…, unix:///path); unset (this, --redis-cluster and --redis-sentinel, flag and env) starts an embedded in-memory Redis, set but empty is an error")
	registerRedisFlags(e, &f.redis)
	e.str(&f.redisPrefix, "redis-prefix", "HEALTHSCORE_REDIS_PREFIX", "hs:", "prefix of every Redis key")
	e.str(&f.model, "model", "HEALTHSCORE_MODEL", "", "model YAML file; empty uses the built-in model ('healthscore model show')")
	e.str(&f.topics, "topics", "HEALTHSCORE_TOPICS", "customer-events", "input topics, comma separated")
	e.str(&f.scoreTopic, "score-topic", "HEALTHSCORE_SCORE_TOPIC", "customer-health", "topic of health.score_changed events")
	e.str(&f.alertTopic, "alert-topic", "HEALTHSCORE_ALERT_TOPIC", "customer-health-alerts", "topic of health.low, health.recovered and health.dropped events")
	e.str(&f.dlqTopic, "dlq-topic", "HEALTHSCORE_DLQ_TOPIC", "customer-events-dlq", "dead-letter topic for bad input records")
	e.str(&f.group, "group", "HEALTHSCORE_GROUP", "healthscore", "Kafka consumer group")
	e.str(&f.groupInstanceID, "group-instance-id", "HEALTHSCORE_GROUP_INSTANCE_ID", "", "static group membership (Kafka group.instance.id): a restart with the same id takes its partitions back without a rebalance; unique per running instance (e.g. the pod name of a StatefulSet); a stopped instance keeps its partitions until its session times out; empty: a dynamic member")
	e.str(&f.httpAddr, "http", "HEALTHSCORE_HTTP", ":8080", "HTTP listen address of the API (/v1/*), and of /metrics, /livez, /readyz unless --admin-http is set")
	e.str(&f.adminHTTP, "admin-http", "HEALTHSCORE_ADMIN_HTTP", "", "separate listen address of /metrics, /livez, /healthz, /readyz and /debug/pprof/ (then not served on --http); empty: all on --http")
	e.str(&f.apiTokenFile, "api-token-file", "HEALTHSCORE_API_TOKEN_FILE", "", "file holding the bearer token that /v1/* requires (re-read when it changes); empty: the API is open")
	e.str(&f.httpTLSCert, "http-tls-cert", "HEALTHSCORE_HTTP_TLS_CERT", "", "PEM certificate (chain) file: serve --http over TLS (with --http-tls-key)")
	e.str(&f.httpTLSKey, "http-tls-key", "HEALTHSCORE_HTTP_TLS_KEY", "", "PEM private key file of --http-tls-cert")
	e.dur(&f.livenessTimeout, "liveness-timeout", "HEALTHSCORE_LIVENESS_TIMEOUT", 2*time.Minute, "/livez fails when the processing loop has not turned for this long while it has records in hand")
	e.str(&f.logLevel, "log-level", "HEALTHSCORE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	e.int(&f.maxBatch, "max-batch", "HEALTHSCORE_MAX_BATCH", 10000, "most records per poll, and per batch unless catching up (see --max-catchup-batch)")
	e.int(&f.maxCatchUp, "max-catchup-batch", "HEALTHSCORE_MAX_CATCHUP_BATCH", 50000, "while the instance lags (records already fetched wait after a poll), further polls join the batch in hand up to this many records: more events per customer evaluated; at most --max-batch (e.g. 0): one poll per batch")
	e.int(&f.maxCatchUpBytes, "max-catchup-batch-bytes", "HEALTHSCORE_MAX_CATCHUP_BATCH_BYTES", 32<<20, "a catch-up batch also stops growing at records of this many bytes (keys, values, headers): the memory bound")
	e.int(&f.workers, "workers", "HEALTHSCORE_WORKERS", 4, "groups of a batch's customers processed concurrently")
	e.str(&f.producerCompression, "producer-compression", "HEALTHSCORE_PRODUCER_COMPRESSION", consumer.DefaultProducerCompression, "compression of the output batches: "+strings.Join(consumer.ProducerCompressions, ", "))
	e.int(&f.stateBuckets, "state-buckets", "HEALTHSCORE_STATE_BUCKETS", state.DefaultBuckets, "buckets customers are grouped into in Redis (records, band index, schedule): about customers/64, a multiple of 16; every instance sharing --redis-prefix must use the same value, fixed when the prefix is first used")
	e.dur(&f.bandCountsMaxAge, "band-counts-max-age", "HEALTHSCORE_BAND_COUNTS_MAX_AGE", state.DefaultBandCountsMaxAge, "on Redis Cluster, how old the healthscore_customers counts may be (each is a sum over every bucket); 0s: summed at every scrape")
	e.int(&f.cacheCustomers, "cache-customers", "HEALTHSCORE_CACHE_CUSTOMERS", 250000, "customers whose last saved record is kept in memory (about 300 bytes each), so loading them again needs no Redis round trip; 0: none")
	e.int(&f.historyDays, "history-days", "HEALTHSCORE_HISTORY_DAYS", consumer.DefaultHistoryDays, fmt.Sprintf("days of score history kept per customer (one point a day, about 4 bytes each, and its last band changes and alerts), served at /v1/customers/{id}/history; 0: none, and no history is written; at most %d", state.MaxHistoryDays))
	e.dur(&f.maxSkew, "max-skew", "HEALTHSCORE_MAX_SKEW", time.Hour, "events further in the future than this go to the dead-letter topic")
	e.dur(&f.shutdownGrace, "shutdown-grace", "HEALTHSCORE_SHUTDOWN_GRACE", 30*time.Second, "time the batch in hand may take to finish on SIGTERM")
	e.str(&f.commitDelay, "commit-delay", "HEALTHSCORE_COMMIT_DELAY", "auto", "commit offsets this long after their state writes, so Redis has fsynced them; auto: 2s with AOF everysec or no, at once with appendfsync always or without AOF, 2s when Redis does not say (CONFIG GET); negative: at once")
	e.dur(&f.commitInterval, "commit-interval", "HEALTHSCORE_COMMIT_INTERVAL", consumer.DefaultCommitInterval, "least time between two offset commits, so that small batches share one; 0: commit after every batch")
	e.dur(&f.sweepInterval, "sweep-interval", "HEALTHSCORE_SWEEP_INTERVAL", time.Second, "how often due customers are rescored as their scores decay")
	e.bool(&f.pprof, "pprof", "HEALTHSCORE_PPROF", "serve Go profiles at /debug/pprof/ on the admin (or HTTP) address (do not expose publicly)")
	e.bool(&f.demo, "demo", "HEALTHSCORE_DEMO", "produce synthetic customers to the input topic (90 days replayed in a minute)")
	e.bool(&f.demoAllowExternal, "demo-allow-external", "HEALTHSCORE_DEMO_ALLOW_EXTERNAL", "allow --demo to produce its synthetic events to external brokers (--brokers)")
	e.int(&f.demoCusts, "demo-customers", "HEALTHSCORE_DEMO_CUSTOMERS", 60, "customers simulated by --demo")
	f.kafka = registerKafkaFlags(e)
	f.input.register(e)
	if err := fs.Parse(args); err != nil {
		return nil, flagError(err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(e.errs) > 0 {
		return nil, errors.Join(e.errs...)
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// validate checks the flags that need no connection.
func (f *serviceFlags) validate() error {
	e := f.env
	if err := e.notEmpty("brokers", f.brokers, "the Kafka bootstrap brokers (host:9092,…)"); err != nil {
		return err
	}
	for _, r := range []struct{ name, value, what string }{
		{"redis", f.redisURL, "the Redis URL (redis://host:6379/0)"},
		{"redis-cluster", f.redis.cluster, "the Redis Cluster seed addresses (host:6379,…)"},
		{"redis-sentinel", f.redis.sentinel, "the Sentinel addresses (host:26379,…)"},
	} {
		if err := e.notEmpty(r.name, r.value, r.what); err != nil {
			return err
		}
	}
	// What needs no connection is checked now, not after waiting for Kafka.
	if e.isSet(redisTopologyFlags...) {
		rcfg := f.redis.config(f.redisURL)
		if err := rcfg.Validate(); err != nil {
			return err
		}
	}
	if _, err := f.redis.replicas(); err != nil {
		return err
	}
	if _, _, err := parseCommitDelay(f.commitDelay); err != nil {
		return err
	}
	if f.maxCatchUp < 0 || f.maxCatchUpBytes <= 0 {
		return fmt.Errorf("invalid --max-catchup-batch %d or --max-catchup-batch-bytes %d: records must be 0 or more, bytes more than 0", f.maxCatchUp, f.maxCatchUpBytes)
	}
	if f.demo && e.isSet("brokers") && !f.demoAllowExternal {
		return fmt.Errorf("--demo would produce synthetic customer events to the input topic on %s (from %s): pass --demo-allow-external to confirm, or leave --brokers unset for the embedded broker", f.brokers, e.source("brokers"))
	}
	if (f.httpTLSCert == "") != (f.httpTLSKey == "") {
		return errors.New("--http-tls-cert and --http-tls-key go together: give both, or neither")
	}
	if f.historyDays < 0 || f.historyDays > state.MaxHistoryDays {
		return fmt.Errorf("--history-days must be from 0 (no history) to %d, got %d", state.MaxHistoryDays, f.historyDays)
	}
	if !slices.Contains(consumer.ProducerCompressions, f.producerCompression) {
		return fmt.Errorf("--producer-compression must be one of %s, got %q", strings.Join(consumer.ProducerCompressions, ", "), f.producerCompression)
	}
	if f.livenessTimeout <= 0 {
		return fmt.Errorf("--liveness-timeout must be positive, got %s", f.livenessTimeout)
	}
	if len(splitList(f.topics)) == 0 {
		return errors.New("--topics: at least one input topic is required")
	}
	in, err := f.input.decoder(splitList(f.topics))
	if err != nil {
		return err
	}
	f.inputDecoder = in
	return nil
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

// serve starts the parts in order and stops them in reverse: the HTTP
// listeners first (the probes answer while the rest waits for its
// dependencies), then Kafka, Redis and the consumer. Kafka and Redis are
// waited for, with backoff, until they answer; a shutdown request during
// the wait ends serve at once, without an error.
func serve(ctx context.Context, f *serviceFlags, log *zap.Logger) error {
	model, err := loadModel(f.model)
	if err != nil {
		return err
	}
	log.Info("model loaded", zap.String("name", model.Name), zap.String("version", model.Version), zap.Int("signals", model.Signals()))
	reg := newRegistry()
	st := newStartup(model)

	stopHTTP, httpErr, err := startHTTP(ctx, f, st, reg, log)
	if err != nil {
		return err
	}
	defer stopHTTP()

	kc, err := connectKafka(ctx, f, st, log)
	if err != nil {
		return stoppedWhileStarting(ctx, err, log)
	}
	defer kc.close()

	rp, err := connectRedis(ctx, f, st, reg, log)
	if err != nil {
		return stoppedWhileStarting(ctx, err, log)
	}
	defer rp.close()

	cons, err := newConsumer(f, model, kc, rp, reg, log)
	if err != nil {
		return err
	}
	st.started(cons, rp.store)
	return runParts(ctx, f, kc, model, cons, rp.store, reg, httpErr, log)
}

// stoppedWhileStarting turns the error of a wait that a shutdown request
// ended into a clean stop.
func stoppedWhileStarting(ctx context.Context, err error, log *zap.Logger) error {
	if ctx.Err() != nil {
		log.Info("shutdown requested while starting")
		return nil
	}
	return err
}

// newRegistry returns the metrics registry with the Go, process and build
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo())
	return reg
}

// allTopics are the input topics and the output topics.
func (f *serviceFlags) allTopics() []string {
	return append(splitList(f.topics), f.scoreTopic, f.alertTopic, f.dlqTopic)
}

// kafkaConn is where the Kafka clients connect: the brokers and the
// options every client needs (TLS, SASL).
type kafkaConn struct {
	brokers []string
	opts    []kgo.Opt
	close   func() // stops the embedded broker, if any
}

// connectKafka starts the embedded broker when --brokers is unset, or else
// waits until the external brokers answer and have the topics (creating
// them with --create-topics).
func connectKafka(ctx context.Context, f *serviceFlags, st *startup, log *zap.Logger) (kafkaConn, error) {
	embedded := !f.env.isSet("brokers")
	opts, err := f.kafka.clientOpts(embedded, log)
	if err != nil {
		return kafkaConn{}, err
	}
	if embedded {
		b, err := devbroker.Start(devbroker.Config{Port: f.brokerPort, Partitions: int32(f.partitions), Topics: f.allTopics()})
		if err != nil {
			return kafkaConn{}, err
		}
		log.Warn("no --brokers given: started an embedded in-memory Kafka-compatible broker; its data is lost on exit",
			zap.String("addr", b.Addr), zap.Int("partitions", f.partitions))
		st.kafka.connected()
		return kafkaConn{brokers: []string{b.Addr}, opts: opts, close: b.Close}, nil
	}
	kc := kafkaConn{brokers: splitList(f.brokers), opts: opts, close: func() {}}
	err = waitFor(ctx, &st.kafka, "Kafka at "+strings.Join(kc.brokers, ","), log, func(ctx context.Context) error {
		return checkTopics(ctx, kc.brokers, f.allTopics(), f.createTopics, int32(f.partitions), log, kc.opts...)
	})
	return kc, err
}

// redisParts are the Redis client and what is built on it.
type redisParts struct {
	rdb         redis.UniversalClient
	store       *state.Redis
	replicas    consumer.ReplicaWaiter // nil: offsets wait for no replica
	commitDelay time.Duration
	close       func()
}

// redisTopologyFlags are the flags that name an external Redis; when none
// is set, the embedded one starts.
var redisTopologyFlags = []string{"redis", "redis-cluster", "redis-sentinel"}

// connectRedis starts the embedded Redis when no Redis is configured, or
// else connects to the configured server, Cluster or Sentinel primary, then
// waits until it answers a PING and resolves --commit-delay from its
// settings.
func connectRedis(ctx context.Context, f *serviceFlags, st *startup, reg prometheus.Registerer, log *zap.Logger) (*redisParts, error) {
	waitReplicas, err := f.redis.replicas()
	if err != nil {
		return nil, err
	}
	rp := &redisParts{close: func() {}}
	var where string
	if !f.env.isSet(redisTopologyFlags...) {
		mr, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("cannot start the embedded Redis: %w", err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
		rp.rdb, rp.close = rdb, func() { rdb.Close(); mr.Close() }
		waitReplicas = 0 // miniredis has no replicas
		log.Warn("no --redis given: started an embedded in-memory Redis (miniredis); customer states are lost on exit", zap.String("addr", mr.Addr()))
		where = "the embedded Redis"
	} else {
		rcfg := f.redis.config(f.redisURL)
		rdb, err := redisconf.New(rcfg, log.Named("redis"))
		if err != nil {
			return nil, err
		}
		rp.rdb, rp.close = rdb, func() { rdb.Close() }
		log.Info("Redis client configured", zap.String("topology", string(rcfg.Topology())), zap.String("target", rcfg.Describe()))
		where = "Redis at " + rcfg.Describe()
	}
	reg.MustRegister(redisprometheus.NewCollector("healthscore", "redis", rp.rdb))
	store, err := state.NewRedis(rp.rdb, state.Config{Prefix: f.redisPrefix, Buckets: f.stateBuckets, BandCountsMaxAge: bandCountsMaxAge(f.bandCountsMaxAge), Cache: f.cacheCustomers, WaitReplicas: waitReplicas, WaitTimeout: f.redis.waitTimeout, HistoryDays: f.historyDays})
	if err != nil {
		rp.close()
		return nil, fmt.Errorf("--cache-customers, --state-buckets or --redis-prefix: %w", err)
	}
	rp.store = store
	if waitReplicas != 0 {
		rp.replicas = store
	}
	registerCacheMetrics(reg, store)
	st.setRedis(func(ctx context.Context) error { return rp.rdb.Ping(ctx).Err() })
	err = waitFor(ctx, &st.redis, where, log, func(ctx context.Context) error {
		if err := rp.rdb.Ping(ctx).Err(); err != nil {
			return err
		}
		rp.commitDelay, err = resolveCommitDelay(ctx, f.commitDelay, store, log)
		return err
	})
	if err == nil {
		err = checkLayout(ctx, store, log)
	}
	if err != nil {
		rp.close()
		return nil, err
	}
	return rp, nil
}

func registerCacheMetrics(reg prometheus.Registerer, store *state.Redis) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "healthscore_state_cache_hits_total",
			Help: "Customer records loaded from this instance's record cache (--cache-customers), without a Redis round trip.",
		}, func() float64 { h, _ := store.CacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "healthscore_state_cache_misses_total",
			Help: "Customer records loaded from Redis by loads that could use the record cache (not cached, evicted, or saved on another Redis server).",
		}, func() float64 { _, m := store.CacheStats(); return float64(m) }),
		newBandCollector(store),
	)
}

// newConsumer builds the pipeline on the connected parts.
func newConsumer(f *serviceFlags, model *scorer.Model, kc kafkaConn, rp *redisParts, reg *prometheus.Registry, log *zap.Logger) (*consumer.Consumer, error) {
	enc, err := alerts.NewEncoder(alerts.Config{ScoreTopic: f.scoreTopic, AlertTopic: f.alertTopic, DLQTopic: f.dlqTopic})
	if err != nil {
		return nil, err
	}
	kmetrics := kprom.NewMetrics("healthscore_kafka", kprom.Registerer(reg), kprom.Gatherer(reg))
	return consumer.New(consumer.Config{
		Brokers: kc.brokers, Topics: splitList(f.topics), Group: f.group, InstanceID: f.groupInstanceID,
		Model: model, Input: f.inputDecoder, Store: rp.store, Encoder: enc, Schedule: rp.store, SweepInterval: f.sweepInterval, CommitDelay: rp.commitDelay, CommitInterval: everyBatchIfZero(f.commitInterval), Replicas: rp.replicas,
		Logger: log.Named("consumer"), Registerer: reg,
		MaxPollRecords: f.maxBatch, MaxCatchUpRecords: catchUpRecords(f.maxCatchUp), MaxCatchUpBytes: int64(f.maxCatchUpBytes), Workers: f.workers, MaxSkew: f.maxSkew, ShutdownGrace: f.shutdownGrace, HistoryDays: f.historyDays,
		ProducerCompression: f.producerCompression,
		ClientOpts:          append([]kgo.Opt{kgo.WithHooks(kmetrics), kgo.WithLogger(kzap.New(log.Named("kafka"), kzap.Level(kgo.LogLevelWarn)))}, kc.opts...),
	})
}

// catchUpRecords maps --max-catchup-batch to the consumer's bound, whose
// zero value means the default: 0 turns catch-up batches off.
func catchUpRecords(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// runParts runs the consumer (and the demo and the model watcher) until ctx ends
// or a part fails, then stops them: the consumer commits and leaves the
// group.
func runParts(ctx context.Context, f *serviceFlags, kc kafkaConn, model *scorer.Model, cons *consumer.Consumer, store *state.Redis, reg prometheus.Registerer, httpErr <-chan error, log *zap.Logger) error {
	var wg sync.WaitGroup
	runCtx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	errc := make(chan error, 4)
	topics := splitList(f.topics)
	if f.demo {
		prod, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kc.brokers...), kgo.DefaultProduceTopic(topics[0]), kgo.ProducerLinger(5 * time.Millisecond)}, kc.opts...)...)
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
			if err := demo.Watch(runCtx, kc.brokers, f.alertTopic, log.Named("demo"), kc.opts...); err != nil {
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
	case runErr = <-httpErr:
	case runErr = <-consErr:
		consErr <- runErr
	}
	cancel()
	return errors.Join(runErr, <-consErr) // the consumer commits and leaves the group
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
func checkTopics(ctx context.Context, brokers, topics []string, create bool, partitions int32, log *zap.Logger, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return fmt.Errorf("cannot create Kafka admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	details, err := adm.ListTopics(tctx, topics...)
	if errors.Is(err, kerr.TopicAuthorizationFailed) {
		return fmt.Errorf("not authorized to describe topics %v (all or some of them) on %v: grant the Kafka user Read on the input topics and Write on the output topics (each implies Describe; see docs/production-kafka.md)", topics, brokers)
	}
	if err != nil {
		return fmt.Errorf("cannot list topics on %v: %w", brokers, err)
	}
	var missing, denied []string
	for _, t := range topics {
		switch d, ok := details[t]; {
		case ok && errors.Is(d.Err, kerr.TopicAuthorizationFailed):
			denied = append(denied, t)
		case !ok || d.Err != nil:
			missing = append(missing, t)
		}
	}
	if len(denied) > 0 {
		return fmt.Errorf("not authorized to describe topics %v (all or some of them) on %v: grant the Kafka user Read on the input topics and Write on the output topics (each implies Describe; see docs/production-kafka.md)", denied, brokers)
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

// everyBatchIfZero maps --commit-interval 0 (commit after every batch) to
// the consumer's negative CommitInterval (its 0 is the default).
func everyBatchIfZero(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// parseCommitDelay parses --commit-delay: auto, or a duration (0 or
// negative: at once, which the consumer spells -1).
func parseCommitDelay(flagValue string) (d time.Duration, auto bool, err error) {
	if flagValue == "auto" {
		return 0, true, nil
	}
	d, err = time.ParseDuration(flagValue)
	if err != nil {
		return 0, false, fmt.Errorf("--commit-delay %q: want auto or a duration such as 2s (negative: commit at once)", flagValue)
	}
	if d == 0 {
		d = -1 // 0 means "the default" to the consumer; the flag means at once
	}
	return d, false, nil
}

// bandCountsMaxAge maps --band-counts-max-age to state.Config's, where 0
// means the default and a negative age none.
func bandCountsMaxAge(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// checkLayout records or checks the state layout (--state-buckets) and warns
// when the server's listpack limits would make the buckets several times
// larger. It runs once Redis answers, outside waitFor's retries: a layout
// conflict does not go away by waiting.
func checkLayout(ctx context.Context, store *state.Redis, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, startAttempt)
	defer cancel()
	lp, err := store.CheckLayout(ctx)
	if err != nil {
		return err
	}
	if lp.HashValue == 0 {
		log.Info("cannot read the Redis listpack limits (CONFIG GET not allowed); set them as docs/production-redis.md says")
	}
	if lp.Advice != "" {
		log.Warn("Redis listpack limits too low for the state layout: "+lp.Advice,
			zap.Int("hash_max_listpack_entries", lp.HashEntries), zap.Int("hash_max_listpack_value", lp.HashValue),
			zap.Int("zset_max_listpack_entries", lp.ZsetEntries))
	}
	return nil
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
	if d, auto, err := parseCommitDelay(flagValue); err != nil || !auto {
		return d, err
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
