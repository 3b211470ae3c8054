package consumer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/healthscore/healthscore/ingest"
	"github.com/healthscore/healthscore/scorer"
)

// Event results, the values of the result label of healthscore_events_total.
const (
	ResultApplied      = "applied"
	ResultDuplicate    = "duplicate"
	ResultIgnored      = "ignored"
	ResultDeadLettered = "dead_lettered"
)

// Stages of a batch, the values of the stage label of
// healthscore_batch_stage_seconds.
const (
	StageLoad     = "load"
	StageFold     = "fold"
	StageSchedule = "schedule" // override expiries; due times are saved with the records
	StageSave     = "save"
	StageProduce  = "produce"
	StageClear    = "clear"
	StageCommit   = "commit"
)

var stageNames = []string{StageLoad, StageFold, StageSchedule, StageSave, StageProduce, StageClear, StageCommit}

// since observes the time since start in a stage's histogram and returns
// now, the start of the next stage.
func (m *metrics) since(stage string, start time.Time) time.Time {
	now := m.now()
	m.stages.WithLabelValues(stage).Observe(now.Sub(start).Seconds())
	return now
}

type metrics struct {
	events         *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	inputFormats   *prometheus.CounterVec
	outputs        *prometheus.CounterVec
	batchDuration  prometheus.Histogram
	stages         *prometheus.HistogramVec
	batchRecords   prometheus.Histogram
	batchPolls     prometheus.Histogram
	latency        prometheus.Histogram
	conflicts      prometheus.Counter
	retries        *prometheus.CounterVec
	corruptStates  prometheus.Counter
	lag            *prometheus.GaugeVec
	lagSeconds     *lagAges
	lastCommit     prometheus.Gauge
	owned          prometheus.Gauge
	moved          *prometheus.CounterVec
	modelInfo      *prometheus.GaugeVec
	rescored       *prometheus.CounterVec
	timersDue      prometheus.Gauge
	sweeperLag     prometheus.Gauge
	sweeperHeld    prometheus.Gauge
	rescorePending prometheus.Gauge
	overrides      prometheus.Gauge
	rewinds        prometheus.Counter
	now            func() time.Time // the consumer's clock (Config.Now)
}

// rebalanced counts the partitions a rebalance callback moved and sets the
// owned-partition gauge.
func (m *metrics) rebalanced(event string, ps map[string][]int32, owned int) {
	n := 0
	for _, parts := range ps {
		n += len(parts)
	}
	m.moved.WithLabelValues(event).Add(float64(n))
	m.owned.Set(float64(owned))
}

func newMetrics(reg prometheus.Registerer, now func() time.Time) (*metrics, error) {
	m := &metrics{
		now: now,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthscore_events_total",
			Help: "Input records processed, by result: applied, duplicate (already applied: a redelivery), ignored (no signal reads the type and it names no segment), dead_lettered.",
		}, []string{"result"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthscore_dead_letters_total",
			Help: "Input records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		inputFormats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthscore_input_records_total",
			Help: "Input records decoded, by the format they were read in (configured for their topic or detected): native, cloudevents, segment. Dead letters included; records too large to decode are not.",
		}, []string{"format"}),
		outputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthscore_outputs_total",
			Help: "Output events acknowledged by the broker, by CloudEvents type.",
		}, []string{"type"}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "healthscore_batch_duration_seconds",
			Help:    "Time to process one batch (one poll's records, or several polls' while catching up), from the end of its polls until its offsets are queued for commit (they are committed --commit-delay later).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "healthscore_batch_stage_seconds",
			Help:    "Time spent in each step of a batch, by stage: load (Redis reads), fold (scoring and output encoding), schedule (decay wake-ups), save (Redis writes), produce (until outputs are acknowledged), clear (outbox clear), commit (offset commit). Worker groups run the first six concurrently, so their sums can exceed the batch duration.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"stage"}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "healthscore_batch_records",
			Help:    "Records per processed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		batchPolls: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "healthscore_batch_polls",
			Help:    "Polls whose records make up each processed batch: 1, or more when a catch-up batch grew from records already fetched (bounded by --max-catchup-batch and --max-catchup-batch-bytes).",
			Buckets: []float64{1, 2, 3, 5, 8, 13, 21, 34},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "healthscore_event_to_output_seconds",
			Help:    "From an input record's Kafka timestamp to the acknowledgement of the output it caused.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "healthscore_state_conflicts_total",
			Help: "State writes refused by the compare-and-set because another writer saved first; the customer is reloaded and redone.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthscore_batch_retries_total",
			Help: "Batch attempts that failed and were retried, by the step that failed: state (Redis load or save), produce, commit.",
		}, []string{"step"}),
		corruptStates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "healthscore_state_decode_errors_total",
			Help: "Stored customer states that could not be decoded and were started afresh.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "healthscore_consumer_lag_records",
			Help: "Records not yet committed by the consumer group, per input partition.",
		}, []string{"topic", "partition"}),
		rescored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthscore_rescored_total",
			Help: "Customer evaluations, by cause: event (new events applied), decay (the sweeper found the customer due) or reload (the rescoring pass after a model reload).",
		}, []string{"cause"}),
		timersDue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthscore_timers_due",
			Help: "Customers whose decay-driven rescoring is due and not yet claimed, at the last sweep.",
		}),
		sweeperLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthscore_sweeper_lag_seconds",
			Help: "Now minus the oldest due time in the schedule, at the last sweep (0 when nothing is overdue).",
		}),
		sweeperHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthscore_sweeper_held",
			Help: "1 while the sweeper waits because this instance is catching up on a backlog of input records (decay is not evaluated ahead of unread events), else 0.",
		}),
		rescorePending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthscore_reload_rescore_pending",
			Help: "Customers the rescoring pass after a model reload has still to evaluate (0 when no pass runs).",
		}),
		overrides: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthscore_overrides_active",
			Help: "Customers whose score is manually overridden now (health.override), at the last sweep.",
		}),
		rewinds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "healthscore_redis_restart_rewinds_total",
			Help: "Times consumption went back to the committed offsets because Redis restarted before the batches' writes were known durable.",
		}),
		lagSeconds: newLagAges(now),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthscore_last_commit_timestamp_seconds",
			Help: "Unix time of the last successful offset commit (0: none yet).",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "healthscore_partitions_owned",
			Help: "Input partitions this instance owns in its consumer group (0 is normal when the group has more members than partitions).",
		}),
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "healthscore_rebalance_partitions_total",
			Help: "Input partitions that rebalances moved to or from this instance, by event: assigned, revoked (handed over after a commit), lost (taken without a commit: session expired).",
		}, []string{"event"}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "healthscore_model_info",
			Help: "The model in use: 1 for its name and version.",
		}, []string{"name", "version"}),
	}
	for _, c := range []prometheus.Collector{m.events, m.deadLetters, m.inputFormats, m.outputs, m.batchDuration, m.stages, m.batchRecords, m.batchPolls, m.latency, m.conflicts, m.retries, m.corruptStates, m.lag, m.lagSeconds, m.lastCommit, m.owned, m.moved, m.modelInfo, m.rescored, m.timersDue, m.sweeperLag, m.sweeperHeld, m.rescorePending, m.overrides, m.rewinds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{ResultApplied, ResultDuplicate, ResultIgnored, ResultDeadLettered} {
		m.events.WithLabelValues(r)
	}
	for _, e := range []string{"assigned", "revoked", "lost"} {
		m.moved.WithLabelValues(e)
	}
	for _, r := range append(scorer.DecodeReasons(), ReasonTooLarge, ReasonTimeSkew) {
		m.deadLetters.WithLabelValues(r)
	}
	for _, f := range ingest.Formats() {
		if f != ingest.FormatAuto { // a record is read in one format
			m.inputFormats.WithLabelValues(string(f))
		}
	}
	for _, c := range []string{"event", "decay", "reload"} {
		m.rescored.WithLabelValues(c)
	}
	for _, s := range []string{"state", "produce", "commit"} {
		m.retries.WithLabelValues(s)
	}
	for _, s := range stageNames {
		m.stages.WithLabelValues(s)
	}
	return m, nil
}

// formatCounts counts a batch's records by the input format they were read
// in, so that the counter is touched once per format and batch.
type formatCounts struct{ native, cloudEvents, segment int }

func (f *formatCounts) add(format ingest.Format) {
	switch format {
	case ingest.FormatNative:
		f.native++
	case ingest.FormatCloudEvents:
		f.cloudEvents++
	case ingest.FormatSegment:
		f.segment++
	}
}

func (m *metrics) countFormats(f *formatCounts) {
	for _, c := range []struct {
		format ingest.Format
		n      int
	}{{ingest.FormatNative, f.native}, {ingest.FormatCloudEvents, f.cloudEvents}, {ingest.FormatSegment, f.segment}} {
		if c.n > 0 {
			m.inputFormats.WithLabelValues(string(c.format)).Add(float64(c.n))
		}
	}
}

// setModel makes m the one series of healthscore_model_info.
func (m *metrics) setModel(model *scorer.Model) {
	m.modelInfo.Reset()
	m.modelInfo.WithLabelValues(model.Name, model.Version).Set(1)
}
