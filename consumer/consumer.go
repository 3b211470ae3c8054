package consumer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/ingest"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// Store is what the pipeline needs from the state store: sessions bound to
// the Redis server they were opened on (state.Redis implements it). Every
// load, save and outbox clear of a batch goes through the one session the
// batch was started with, and fails with state.ErrServerChanged once Redis
// restarted or failed over: writes it acknowledged may be lost, so the batch
// is abandoned and consumption rewinds to the committed offsets (see
// rewind). Opening a session is also how a commit learns the server's
// identity now.
type Store interface {
	// Bind opens a session bound to the server reached now; its Server()
	// is "" when the server gives no identity (nothing is checked then).
	Bind(ctx context.Context) (state.Bound, error)
}

// Dead-letter reasons decided here (decoding reasons come from scorer).
const (
	ReasonTooLarge = "too_large"
	ReasonTimeSkew = "time_skew"
)

// Config configures a Consumer. Zero values take the documented defaults.
type Config struct {
	Brokers []string
	Topics  []string // default: customer-events
	Group   string   // default: healthscore
	// InstanceID, when set, makes this member static in the group
	// (Kafka's group.instance.id, KIP-345): a restarted process with the
	// same InstanceID takes its old assignment back without a rebalance,
	// and a member that stopped keeps its partitions until the session
	// timeout instead of leaving. It must be unique among running members.
	InstanceID string

	Model *scorer.Model
	// Input decodes the input records (ingest: native, CloudEvents,
	// Segment); default: every format detected per record, default mappings.
	Input   *ingest.Decoder
	Store   Store
	Encoder *alerts.Encoder
	// Schedule, when set, enables decay-driven rescoring: every evaluation
	// schedules the customer's next change, and a sweeper rescores the
	// customers that are due.
	Schedule Schedule

	Logger     *zap.Logger
	Registerer prometheus.Registerer

	MaxPollRecords int // records per poll, and per batch unless catching up; default 10000
	// MaxCatchUpRecords and MaxCatchUpBytes bound a catch-up batch: while
	// a poll leaves records buffered in the client (the instance lags),
	// further polls are taken into the batch in hand until it holds this
	// many records, or records of this many bytes (keys, values and
	// headers; the last poll is sized to end near it), see catchup.go.
	// Defaults: 50000 records, 32 MiB. A MaxCatchUpRecords of at most
	// MaxPollRecords (or negative) turns it off: one poll per batch.
	MaxCatchUpRecords int
	MaxCatchUpBytes   int64
	// Workers is how many groups of a batch's customers are processed
	// concurrently (split by customer id; default 4). More overlap one
	// group's Redis and broker round trips with another's scoring.
	Workers        int
	MaxSkew        time.Duration // event times further in the future go to the DLQ; default 1h
	MaxRecordBytes int           // larger records go to the DLQ; default 1 MiB
	ShutdownGrace  time.Duration // time a batch may take to finish after shutdown starts; default 30s
	LagInterval    time.Duration // how often consumer lag is measured; default 15s
	MaxBackoff     time.Duration // longest wait between retries; default 5s
	// CommitDelay is how long after a batch's state writes its offsets are
	// committed, so that Redis has made the writes durable first (AOF
	// appendfsync everysec syncs every second, and may lag a second more
	// under a slow disk): default 2s. With appendfsync always, or with no
	// persistence at all, any value is as safe; see docs/reliability.md.
	CommitDelay time.Duration
	// CommitInterval is the least time between two offset commits while
	// the consumer runs (default 100ms; negative: after every batch).
	// Small batches then share a commit (one round trip to the group
	// coordinator and one Redis run_id check instead of one per batch);
	// the offsets committed later are at most this much older, and what a
	// crash redelivers is skipped as applied. Commits at a revocation and
	// at shutdown do not wait for it.
	CommitInterval time.Duration
	SweepInterval  time.Duration // how often the sweeper looks for due customers; default 1s
	SweepLease     time.Duration // how long a claimed customer is reserved; default 30s
	SweepBatch     int           // customers claimed per shard and round; default 1000
	// Now is the consumer's one clock (default time.Now): the time decay
	// is evaluated at and events are checked for skew against, and also
	// every delay, hold and duration the package measures (commit delay,
	// sweeper hold, liveness, retry-warning throttle, stage and batch
	// durations, event→output latency and lag ages against Kafka record
	// timestamps). Nothing in the package reads time.Now directly. Waits
	// run on the runtime's timers (time.After, NewTicker, AfterFunc,
	// context timeouts) for durations computed on this clock, so under
	// testing/synctest, where time.Now and the timers share a fake clock,
	// every timing path runs in fake time; a test that sets Now by hand
	// moves decay and the consumer's deadlines together (with a clock
	// that stands still, set CommitDelay < 0: a delay on it never ends).
	Now func() time.Time
	// ProducerCompression is the codec of the output batches: "none",
	// "snappy", "lz4" or "zstd" (see ProducerCompressions); empty:
	// DefaultProducerCompression.
	ProducerCompression string
	// ClientOpts are extra franz-go options (hooks for metrics and logs,
	// TLS, SASL…). The consumer sets the group options itself.
	ClientOpts []kgo.Opt

	// Replicas, when set, holds each batch's outputs and each commit until
	// the state writes behind them reached the Redis replicas (see
	// ReplicaWaiter).
	Replicas ReplicaWaiter
	// HistoryDays is the score history's window (see history.go); 0: no
	// history (the Config's zero value; the service's flag defaults to
	// DefaultHistoryDays). The Store must be configured with the same
	// window: it is the one that writes it.
	HistoryDays int

	compression []kgo.CompressionCodec // from ProducerCompression, set by validate

	// hooks let this package's tests observe the loop (nil otherwise);
	// set before the client starts, whose callbacks read them.
	hooks *testHooks
}

func (c *Config) validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("no Brokers: at least one broker is required")
	case c.Model == nil:
		return errors.New("no Model: it is required")
	case c.Store == nil:
		return errors.New("no Store: it is required")
	case c.Encoder == nil:
		return errors.New("no Encoder: it is required")
	case c.Logger == nil:
		return errors.New("no Logger: it is required")
	case c.Registerer == nil:
		return errors.New("no Registerer: it is required")
	}
	if len(c.Topics) == 0 {
		c.Topics = []string{"customer-events"}
	}
	if c.Input == nil {
		in, err := ingest.New(ingest.Config{})
		if err != nil {
			return err
		}
		c.Input = in
	}
	if c.Group == "" {
		c.Group = "healthscore"
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxSkew, time.Hour)
	def(&c.ShutdownGrace, 30*time.Second)
	def(&c.LagInterval, 15*time.Second)
	def(&c.MaxBackoff, 5*time.Second)
	if c.CommitDelay == 0 {
		c.CommitDelay = 2 * time.Second
	}
	if c.CommitDelay < 0 {
		c.CommitDelay = 0
	}
	switch {
	case c.CommitInterval == 0:
		c.CommitInterval = DefaultCommitInterval
	case c.CommitInterval < 0:
		c.CommitInterval = 0
	}
	def(&c.SweepInterval, time.Second)
	def(&c.SweepLease, 30*time.Second)
	if c.SweepBatch <= 0 {
		c.SweepBatch = 1000
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.HistoryDays < 0 || c.HistoryDays > state.MaxHistoryDays {
		return fmt.Errorf("invalid HistoryDays %d: must be from 0 (none) to %d", c.HistoryDays, state.MaxHistoryDays)
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 10000
	}
	if c.MaxCatchUpRecords == 0 {
		c.MaxCatchUpRecords = 50000
	}
	if c.MaxCatchUpBytes <= 0 {
		c.MaxCatchUpBytes = 32 << 20
	}
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = 1 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ProducerCompression == "" {
		c.ProducerCompression = DefaultProducerCompression
	}
	codecs, err := ProducerCompressionCodecs(c.ProducerCompression)
	if err != nil {
		return err
	}
	c.compression = codecs
	return nil
}

// DefaultCommitInterval is Config.CommitInterval's default.
const DefaultCommitInterval = 100 * time.Millisecond

// ProducerCompressions are the codecs Config.ProducerCompression accepts.
var ProducerCompressions = []string{"none", "snappy", "lz4", "zstd"}

// DefaultProducerCompression is the output batches' codec by default.
// Measured in the bench (kfake in memory on loopback, where compression
// saves no network): none cost the broker about three times the CPU per
// event of the others and made the produce step slower, snappy and lz4
// cost the same within the noise, zstd 0.5–2.5 µs per event more in the
// pipeline (of ~16). On sample output batches lz4 was 4–10% smaller than
// snappy and zstd 33–42% smaller than lz4: where network bytes cost more
// than CPU (cross-zone traffic), zstd is worth considering.
const DefaultProducerCompression = "lz4"

// ProducerCompressionCodecs returns the franz-go codec preference for a
// ProducerCompression name: the codec, then none for a broker too old to
// take it (zstd needs Kafka 2.1).
func ProducerCompressionCodecs(name string) ([]kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return []kgo.CompressionCodec{kgo.NoCompression()}, nil
	case "snappy":
		return []kgo.CompressionCodec{kgo.SnappyCompression(), kgo.NoCompression()}, nil
	case "lz4":
		return []kgo.CompressionCodec{kgo.Lz4Compression(), kgo.NoCompression()}, nil
	case "zstd":
		return []kgo.CompressionCodec{kgo.ZstdCompression(), kgo.NoCompression()}, nil
	}
	return nil, fmt.Errorf("invalid ProducerCompression %q: must be one of %s", name, strings.Join(ProducerCompressions, ", "))
}

// Consumer runs the pipeline. Create it with New and run it with Run.
type Consumer struct {
	cfg     Config
	log     *zap.Logger
	client  *kgo.Client
	metrics *metrics
	// waitMetrics measure the waits for Redis replicas (commit.go).
	waitMetrics *waitMetrics

	model      atomic.Pointer[scorer.Model]
	commits    commitQueue
	commitHold atomic.Int64 // Unix ns before which no commit is tried again (the run_id could not be read)
	committed  atomic.Int64 // Unix ns of the last successful commit (see CommitInterval)
	ready      atomic.Bool
	lastErr    atomic.Pointer[failure]
	warned     atomic.Int64 // Unix ns of the last retry warning (throttle)
	assigned   assignment
	turned     atomic.Int64 // Unix ns of the processing loop's last turn (see Live)
	busy       atomic.Bool  // a batch is in hand
	// heldUntil is the Unix ns until which the sweeper waits because a
	// recent poll left records behind (a backlog), see noteBacklog.
	heldUntil atomic.Int64
	// swept is the clock's Unix ns at the start of the last sweep round
	// that went through every shard (0: none yet). Tests wait on it to
	// know that a sweep at a given time has run.
	swept atomic.Int64

	// session is the state session batches are bound to (see
	// openSession); nil at start and after a rewind. unbound is set once
	// the server was found to give no id (warned about once).
	session atomic.Pointer[state.Bound]
	unbound atomic.Bool
	// rebalancing is set when a rebalance waits for the loop to allow it
	// (OnPartitionsCallbackBlocked), and cleared before each batch's first
	// poll: a batch in hand stops growing then (see grow).
	rebalancing atomic.Bool
	hooks       *testHooks // Config.hooks

	// stale is set when the sweeper or a rescoring pass found the current
	// session refused (Redis restarted): the loop then rewinds at its next
	// turn, as a refused batch makes it do, since no batch may come.
	stale atomic.Bool
}

// New validates cfg and creates the Kafka client. Nothing is consumed until
// Run.
func New(cfg Config) (*Consumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cannot create consumer: %w", err)
	}
	m, err := newMetrics(cfg.Registerer, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("cannot register consumer metrics: %w", err)
	}
	wm, err := newWaitMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("cannot register consumer metrics: %w", err)
	}
	c := &Consumer{cfg: cfg, log: cfg.Logger, metrics: m, waitMetrics: wm, hooks: cfg.hooks}
	c.model.Store(cfg.Model)
	m.setModel(cfg.Model)
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the batch is committed, so a partition is
		// never revoked with work in flight.
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Output batches keep franz-go's default bound, 1,000,012 bytes
		// before compression, which fits Kafka's default max.message.bytes
		// however they compress. A larger bound (16 MiB before) lets one
		// partition's share of a big poll exceed the topic's limit even
		// compressed, and the broker refuses such a batch whole. Measured
		// against 16 MiB in the bench: no more CPU per event.
		kgo.ProducerBatchCompression(cfg.compression...),
		kgo.ProducerLinger(0),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, p map[string][]int32) {
			c.assigned.assign(p)
			c.metrics.lagSeconds.assign(p)
			_, n := c.Assignment()
			c.metrics.rebalanced("assigned", p, n)
			c.log.Info("partitions assigned", zap.Any("partitions", p), zap.Int("owned", n))
			if c.hooks != nil && c.hooks.assigned != nil {
				c.hooks.assigned(p)
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, p map[string][]int32) {
			c.log.Info("partitions revoked", zap.Any("partitions", p))
			c.commitPending(ctx, true, nil) // the next owner starts from here
			if c.hooks != nil && c.hooks.revoked != nil {
				c.hooks.revoked(p)
			}
			c.assigned.revoke(p, false)
			c.metrics.lagSeconds.revoke(p)
			_, n := c.Assignment()
			c.metrics.rebalanced("revoked", p, n)
		}),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) {
			c.rebalancing.Store(true)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, p map[string][]int32) {
			c.log.Warn("partitions lost", zap.Any("partitions", p))
			c.assigned.revoke(p, true)
			c.metrics.lagSeconds.revoke(p)
			_, n := c.Assignment()
			c.metrics.rebalanced("lost", p, n)
		}),
	}, cfg.ClientOpts...)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	c.client, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot create Kafka client: %w", err)
	}
	c.lastErr.Store(&failure{msg: errNotStarted.Error()})
	return c, nil
}

// now reads the consumer's clock (Config.Now); see Config.Now.
func (c *Consumer) now() time.Time { return c.cfg.Now() }

// Model returns the model in use.
func (c *Consumer) Model() *scorer.Model { return c.model.Load() }

// SetModel replaces the model. Batches that started keep the model they
// started with; customers are rescored with the new one on their next event
// or timer, or by RescoreAll.
func (c *Consumer) SetModel(m *scorer.Model) {
	if m != nil {
		c.model.Store(m)
		c.metrics.setModel(m)
	}
}

// Ready returns nil when the last step of the pipeline succeeded (a batch,
// a commit, a fetch), else why not.
func (c *Consumer) Ready() error {
	if c.ready.Load() {
		return nil
	}
	f := c.lastErr.Load()
	if f.step == "" {
		return errors.New(f.msg)
	}
	return errors.New(f.step + ": " + f.msg)
}

// Client returns the Kafka client (for admin calls and health checks).
func (c *Consumer) Client() *kgo.Client { return c.client }

// Run consumes until ctx is cancelled, then finishes the batch in hand
// (within ShutdownGrace), commits it, leaves the group and closes the
// client. It returns nil after a clean shutdown.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.client.Close() // leaves the group
	var wg sync.WaitGroup
	lagCtx, stopLag := context.WithCancel(ctx)
	wg.Go(func() { c.measureLag(lagCtx) })
	if c.cfg.Schedule != nil {
		wg.Go(func() { c.sweep(lagCtx) })
	}
	defer func() { stopLag(); wg.Wait() }()
	// The loop's retries (of a batch's steps, of commits) count as turns
	// for Live; the sweeper's, started above, do not.
	ctx = context.WithValue(ctx, mainLoopKey{}, true)

	c.log.Info("consumer started", zap.Strings("topics", c.cfg.Topics), zap.String("group", c.cfg.Group))
	c.ready.Store(true) // nothing has failed yet; Kafka errors will say otherwise
	for {
		c.turn()
		c.rebalancing.Store(false)
		fetches := c.poll(ctx)
		c.turn()
		if ctx.Err() != nil && fetches.Empty() {
			// Commit what is processed once it is durable, then leave:
			// every poll blocks rebalances until AllowRebalance, and
			// leaving the group at Close is one.
			gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ShutdownGrace)
			c.commitPending(gctx, true, nil)
			cancel()
			c.client.AllowRebalance()
			c.log.Info("consumer stopping: shutdown requested", c.totals()...)
			return nil
		}
		if c.stale.Swap(false) {
			c.rewind(nil, fetches.Records()) // the polled records are fetched again
			c.client.AllowRebalance()
			continue
		}
		if c.commitPending(ctx, false, fetches.Records()) {
			c.client.AllowRebalance() // the polled records are fetched again
			continue
		}
		if fetches.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		fetches, polls := c.grow(ctx, fetches)
		fetchFailed := false
		fetches.EachError(func(t string, p int32, err error) {
			// Canceled: shutdown; DeadlineExceeded: poll's wait for a due
			// commit ended. Neither is a broker problem.
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				fetchFailed = true
				c.fail("fetch", fmt.Errorf("cannot fetch %s/%d: %w", t, p, err))
			}
		})
		if f := c.lastErr.Load(); !fetchFailed && f.step == "fetch" {
			c.ready.Store(true) // fetching works again
		}
		recs := fetches.Records()
		// A batch that grew was polled with records buffered behind it,
		// even if it took them all.
		behind := c.noteBacklog(fetches) || polls > 1
		if len(recs) > 0 {
			c.metrics.lagSeconds.polled(fetches)
			if behind {
				// Held while the batch is in hand, however long it takes
				// (a catch-up batch can take longer than sweepHold), and
				// sweepHold after it.
				c.heldUntil.Store(math.MaxInt64)
			}
			err := c.handle(ctx, recs, polls)
			if behind {
				c.holdSweeper()
			}
			if c.hooks != nil && c.hooks.batch != nil {
				c.hooks.batch(recs)
			}
			if err == nil {
				c.metrics.lagSeconds.processed(fetches)
			}
			if errors.Is(err, state.ErrServerChanged) {
				c.rewind(nil, recs) // the batch is fetched again from the committed offsets
				c.client.AllowRebalance()
				continue
			}
			if err != nil {
				c.client.AllowRebalance()
				c.log.Warn("batch abandoned at shutdown; it will be redelivered", zap.Error(err))
				return nil
			}
		}
		c.client.AllowRebalance()
	}
}

// noteBacklog records whether the batch's polls (merged: see grow) left
// records behind: fetched and buffered in the client but not returned yet,
// or not even fetched (in a polled partition, the high watermark is past
// the last record returned).
// While it does, this instance is catching up (after downtime, a deploy, a
// backfill) and the sweeper waits: evaluating decay at the wall clock for a
// customer whose events are still unread would publish a false drop, then a
// recovery when the events are applied. The wait lasts while a batch found
// behind is in hand (Run) and until polls have found no backlog for
// sweepHold after it, because a single poll can miss one: the buffer may
// run dry while another partition's fetch is still in flight.
func (c *Consumer) noteBacklog(fs kgo.Fetches) (behind bool) {
	behind = c.client.BufferedFetchRecords() > 0
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 && p.HighWatermark > p.Records[n-1].Offset+1 {
			behind = true
		}
	})
	if behind {
		c.holdSweeper()
	}
	return behind
}

// holdSweeper makes the sweeper wait from now until sweepHold (at least a
// SweepInterval) has passed.
func (c *Consumer) holdSweeper() {
	c.heldUntil.Store(c.now().Add(max(sweepHold, c.cfg.SweepInterval)).UnixNano())
}

// sweepHold is how long after the last sign of a backlog the sweeper still
// waits.
const sweepHold = time.Second

// handle processes one batch to committed offsets. It retries every failure
// with backoff; it gives up only when shutdown has started and the grace
// period is over, or when the group refuses the commit because this member
// lost its generation (see lostGeneration).
func (c *Consumer) handle(ctx context.Context, recs []*kgo.Record, polls int) error {
	start := c.now()
	c.busy.Store(true)
	defer c.busy.Store(false)
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.cfg.ShutdownGrace, cancel)
		<-bctx.Done()
		t.Stop()
	})
	defer stop()

	b := c.decode(recs)
	var sess state.Bound
	if err := c.retry(bctx, "state", func() (err error) { sess, err = c.openSession(bctx); return err }); err != nil {
		return err
	}
	if err := c.process(bctx, sess, b); err != nil {
		return err
	}
	// The batch's writes were all made on the session's server ("" when
	// it gives no id): its offsets are committed only if Redis is still
	// that server then.
	now := c.now()
	c.commits.add(recs, sess.Server(), now)
	c.metrics.batchDuration.Observe(now.Sub(start).Seconds())
	c.metrics.batchRecords.Observe(float64(len(recs)))
	c.metrics.batchPolls.Observe(float64(polls))
	return nil
}

// testHooks let tests observe the processing loop (Consumer.hooks).
type testHooks struct {
	grow     func(records int)          // before each poll that grows a batch of records (in the loop)
	batch    func(recs []*kgo.Record)   // after a batch was processed (in the loop, before AllowRebalance)
	revoked  func(p map[string][]int32) // after OnPartitionsRevoked committed
	assigned func(p map[string][]int32) // in OnPartitionsAssigned
}

// lostGeneration reports a commit refused because the member is no longer
// part of the group's current generation (evicted, or a rebalance started).
func lostGeneration(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.RebalanceInProgress) || errors.Is(err, kerr.FencedInstanceID) ||
		errors.Is(err, kerr.StaleMemberEpoch)
}

// fail records a failure for readiness and logs it, throttled to one
// warning per 10 s.
func (c *Consumer) fail(step string, err error) {
	c.ready.Store(false)
	c.lastErr.Store(&failure{step: step, msg: err.Error()})
	if now := c.now().UnixNano(); now-c.warned.Load() >= int64(10*time.Second) {
		c.warned.Store(now)
		c.log.Warn("pipeline step failed; retrying", zap.String("step", step), zap.Error(err))
	}
}

// retry runs fn until it succeeds or ctx ends, with capped exponential
// backoff.
func (c *Consumer) retry(ctx context.Context, step string, fn func() error) error {
	backoff := 50 * time.Millisecond
	for {
		if isMainLoop(ctx) {
			c.turn()
		}
		err := fn()
		if err == nil {
			c.ready.Store(true)
			return nil
		}
		if errors.Is(err, state.ErrServerChanged) {
			return err // not retried: the batch must be abandoned
		}
		c.metrics.retries.WithLabelValues(step).Inc()
		c.fail(step, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot %s: %w (gave up at shutdown)", step, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

func (c *Consumer) measureLag(ctx context.Context) {
	adm := kadm.NewClient(c.client)
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lags, err := adm.Lag(ctx, c.cfg.Group)
		if err != nil {
			continue // the fetch path reports broker trouble
		}
		for _, gl := range lags {
			for topic, ps := range gl.Lag {
				for p, l := range ps {
					if l.Err == nil && l.Lag >= 0 {
						c.metrics.lag.WithLabelValues(topic, strconv.Itoa(int(p))).Set(float64(l.Lag))
					}
				}
			}
		}
	}
}

// totals are this process's event counts, for the log line at shutdown (the
// last word on what it applied, after the final scrape of its metrics).
func (c *Consumer) totals() []zap.Field {
	var fs []zap.Field
	for _, r := range []string{ResultApplied, ResultDuplicate, ResultIgnored, ResultDeadLettered} {
		var m dto.Metric
		if err := c.metrics.events.WithLabelValues(r).Write(&m); err == nil {
			fs = append(fs, zap.Int64("events_"+r, int64(m.GetCounter().GetValue())))
		}
	}
	return fs
}
