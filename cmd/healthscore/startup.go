package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/consumer"
	"github.com/healthscore/healthscore/httpapi"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// dependency is what the probes know about Kafka or Redis while the
// service starts: nil once connected, else why it is not yet.
type dependency struct {
	waiting atomic.Pointer[string]
}

func (d *dependency) set(why string) { d.waiting.Store(&why) }
func (d *dependency) connected()     { d.waiting.Store(nil) }

// err returns why the dependency is not connected yet, or nil.
func (d *dependency) err() error {
	if w := d.waiting.Load(); w != nil {
		return errors.New(*w)
	}
	return nil
}

// startup is the service's state as the probes and the API see it while
// it starts and runs.
type startup struct {
	model *scorer.Model // until the consumer runs
	kafka dependency
	redis dependency
	ping  atomic.Pointer[func(context.Context) error] // Redis PING, once a client exists
	store atomic.Pointer[state.Redis]
	cons  atomic.Pointer[consumer.Consumer]
}

func newStartup(model *scorer.Model) *startup {
	st := &startup{model: model}
	st.kafka.set("connecting to Kafka")
	st.redis.set("not connected yet: Kafka first")
	return st
}

func (st *startup) setRedis(ping func(context.Context) error) { st.ping.Store(&ping) }

// started hands the running consumer (and its store) to the probes and
// the API.
func (st *startup) started(c *consumer.Consumer, store *state.Redis) {
	st.store.Store(store)
	st.cons.Store(c)
}

// checks are the readiness checks of /readyz.
func (st *startup) checks() []httpapi.Check {
	return []httpapi.Check{
		{Name: "kafka", Check: func(context.Context) (string, error) {
			if err := st.kafka.err(); err != nil {
				return "", err
			}
			c := st.cons.Load()
			if c == nil {
				return "", errors.New("connected; the consumer is not started yet")
			}
			joined, n := c.Assignment()
			if !joined {
				return "", fmt.Errorf("joining consumer group %s", c.Group())
			}
			// A member may own no partition (more members than
			// partitions): it is ready to take some at the next rebalance.
			return fmt.Sprintf("member of group %s, %d partitions assigned", c.Group(), n), nil
		}},
		{Name: "redis", Check: func(ctx context.Context) (string, error) {
			if err := st.redis.err(); err != nil {
				return "", err
			}
			ping := st.ping.Load()
			if ping == nil {
				return "", errors.New("not connected yet")
			}
			if err := (*ping)(ctx); err != nil {
				return "", fmt.Errorf("PING: %w", err)
			}
			return "", nil
		}},
		{Name: "pipeline", Check: func(context.Context) (string, error) {
			c := st.cons.Load()
			if c == nil {
				return "", errors.New("not started")
			}
			return "", c.Ready()
		}},
	}
}

// live is /livez: only a wedged processing loop fails it.
func (st *startup) live(timeout time.Duration) func() error {
	return func() error {
		if c := st.cons.Load(); c != nil {
			return c.Live(timeout)
		}
		return nil // starting: waiting for Kafka or Redis is not being wedged
	}
}

// currentModel is the model in use (the consumer's once it runs).
func (st *startup) currentModel() *scorer.Model {
	if c := st.cons.Load(); c != nil {
		return c.Model()
	}
	return st.model
}

// errStarting answers API reads before Redis is connected.
var errStarting = errors.New("the service is starting: Redis is not connected yet")

// Get, BandWhere, DueBefore and Read make startup the API's httpapi.Reader: the store once
// connected.
func (st *startup) Get(ctx context.Context, id string) (state.Record, error) {
	if s := st.store.Load(); s != nil {
		return s.Get(ctx, id)
	}
	return state.Record{}, errStarting
}

func (st *startup) BandWhere(ctx context.Context, band string, limit int, keep func(state.Member) bool) ([]state.Member, error) {
	if s := st.store.Load(); s != nil {
		return s.BandWhere(ctx, band, limit, keep)
	}
	return nil, errStarting
}

// GetWithHistory and Histories make startup the API's
// httpapi.HistoryReader: the store once connected.
func (st *startup) GetWithHistory(ctx context.Context, id string) (state.Record, state.History, error) {
	if s := st.store.Load(); s != nil {
		return s.GetWithHistory(ctx, id)
	}
	return state.Record{}, state.History{}, errStarting
}

func (st *startup) Histories(ctx context.Context, ids []string) ([]state.History, error) {
	if s := st.store.Load(); s != nil {
		return s.Histories(ctx, ids)
	}
	return nil, errStarting
}

func (st *startup) DueBefore(ctx context.Context, untilMs int64, limit int) ([]state.Due, bool, error) {
	if s := st.store.Load(); s != nil {
		return s.DueBefore(ctx, untilMs, limit)
	}
	return nil, false, errStarting
}

func (st *startup) Read(ctx context.Context, ids []string) ([]state.Record, error) {
	if s := st.store.Load(); s != nil {
		return s.Read(ctx, ids)
	}
	return nil, errStarting
}

// Start-up retries: the first wait is startBackoff, doubling up to
// maxStartBackoff; a failure is logged at once, then at most every
// startLogEvery.
const (
	startBackoff    = 250 * time.Millisecond
	maxStartBackoff = 5 * time.Second
	startLogEvery   = 30 * time.Second
	startAttempt    = 15 * time.Second // longest single attempt
)

// waitFor runs try until it succeeds or ctx ends, with backoff; meanwhile
// d says "waiting for <what>: <last error>" to the probes.
func waitFor(ctx context.Context, d *dependency, what string, log *zap.Logger, try func(context.Context) error) error {
	d.set("waiting for " + what)
	backoff := startBackoff
	var logged time.Time
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, startAttempt)
		err := try(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("connected after waiting", zap.String("to", what), zap.Int("attempts", attempt))
			}
			d.connected()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.set(fmt.Sprintf("waiting for %s: %v", what, err))
		if time.Since(logged) >= startLogEvery {
			logged = time.Now()
			log.Warn("cannot connect yet; retrying", zap.String("to", what), zap.Int("attempt", attempt), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxStartBackoff)
	}
}

// startHTTP builds the handlers and starts the listeners: --http (with TLS
// when configured) and --admin-http when set. The readiness gauge is
// evaluated every readyEvery from now on. stop shuts them down; errc
// reports a listener that failed while serving.
func startHTTP(ctx context.Context, f *serviceFlags, st *startup, reg *prometheus.Registry, log *zap.Logger) (stop func(), errc <-chan error, err error) {
	readiness, err := httpapi.NewReadiness(st.checks(), reg)
	if err != nil {
		return nil, nil, err
	}
	cfg := httpapi.Config{
		Model: st.currentModel, Store: st, Ready: readiness, Live: st.live(f.livenessTimeout),
		// A collector that cannot answer (e.g. band counts while Redis is
		// down) must not hide the others, lag above all.
		Metrics:       promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError}),
		Pprof:         f.pprof,
		SeparateAdmin: f.adminHTTP != "",
		Logger:        log.Named("http"),
		History:       st,
		HistoryDays:   f.historyDays,
	}
	if f.apiTokenFile != "" {
		tf, err := httpapi.NewTokenFile(f.apiTokenFile, log.Named("http"))
		if err != nil {
			return nil, nil, fmt.Errorf("--api-token-file: %w", err)
		}
		cfg.Token = tf.Token
	}
	h, err := httpapi.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	var tlsCfg *tls.Config
	if f.httpTLSCert != "" {
		cf, err := httpapi.NewCertFiles(f.httpTLSCert, f.httpTLSKey, log.Named("http"))
		if err != nil {
			return nil, nil, fmt.Errorf("--http-tls-cert/--http-tls-key: %w", err)
		}
		tlsCfg = &tls.Config{GetCertificate: cf.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	type listener struct {
		flag, addr string
		h          http.Handler
		tls        *tls.Config
	}
	ls := []listener{{"--http", f.httpAddr, h.API, tlsCfg}}
	if h.Admin != nil {
		ls = append(ls, listener{"--admin-http", f.adminHTTP, h.Admin, nil})
	}
	var srvs []*http.Server
	var wg sync.WaitGroup
	ec := make(chan error, len(ls))
	shutdown := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range srvs {
			_ = s.Shutdown(sctx) // stops accepting; in-flight requests get 5 s
		}
		wg.Wait()
	}
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			shutdown()
			return nil, nil, fmt.Errorf("cannot listen on %s %s: %w", l.flag, l.addr, err)
		}
		scheme := "http"
		if l.tls != nil {
			ln, scheme = tls.NewListener(ln, l.tls), "https"
		}
		srv := &http.Server{Handler: l.h, ReadHeaderTimeout: 5 * time.Second}
		srvs = append(srvs, srv)
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				ec <- fmt.Errorf("HTTP server on %s: %w", l.flag, err)
			}
		})
		msg := "HTTP listening"
		if l.flag == "--admin-http" {
			msg = "admin HTTP listening"
		}
		log.Info(msg, zap.String("addr", ln.Addr().String()), zap.String("scheme", scheme), zap.Bool("api_token", cfg.Token != nil && l.flag == "--http"))
	}
	rctx, cancel := context.WithCancel(ctx)
	wg.Go(func() { readiness.Run(rctx, readyEvery) })
	return func() { cancel(); shutdown() }, ec, nil
}

// readyEvery is how often healthscore_ready is evaluated without a probe.
const readyEvery = 5 * time.Second

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version the binary was built from is used.
var version string

// newBuildInfo is healthscore_build_info{version,goversion} 1.
func newBuildInfo() prometheus.Collector {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "unknown"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "healthscore_build_info",
		Help:        "1, labelled with the healthscore version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": v, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
