package bench

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// Capacity planning, derived from a run's measured costs per evaluation
// (one customer's load, fold, save and outputs) and bytes per customer.
// The assumptions are the constants below; docs/performance.md states them
// next to the table the full run prints.
const (
	// capDecayPerCustomerDay is the sweeper's evaluations per customer
	// and day, added to the event-driven ones (a silent customer is woken
	// when its decayed score crosses a band or moves decay_step points;
	// assumed once a day on average).
	capDecayPerCustomerDay = 1.0
	// capUtilization is the share of a core planned per process: headroom
	// for catch-up after an outage, rebalances and bursts.
	capUtilization = 0.5
	// capInstanceCores is the cores of one pipeline instance.
	capInstanceCores = 2
	// capMinInstances keeps a group available through one instance's
	// restart.
	capMinInstances = 2
	// capShardBytes is the dataset planned per Redis primary (the rest of
	// a typical 32 GiB node is for fork copy-on-write and fragmentation).
	capShardBytes = 16 << 30
)

var (
	capCustomers = []float64{1e6, 1e7, 1e8}
	capRates     = []float64{1e3, 1e4, 1e5}
)

// CapacityBasis is what a capacity table is derived from.
type CapacityBasis struct {
	// Phase is the phase the costs come from: "latency" (paced traffic,
	// the highest-load row) or "pipeline" (the bulk catch-up).
	Phase string `json:"phase"`
	// EventsPerEvaluation is that phase's events per evaluated customer.
	EventsPerEvaluation float64 `json:"events_per_evaluation"`
	// CPU per evaluation (µs) of the pipeline processes, Redis, and the
	// broker (kfake here: a real broker's cost differs; not planned).
	PipelineMicros float64 `json:"pipeline_us_per_evaluation"`
	RedisMicros    float64 `json:"redis_us_per_evaluation"`
	// ClusterFactor is Redis Cluster's CPU per event over the single
	// server's, in the bulk phases of the same run (single-key mode: a
	// script per customer, each reading INFO server for the binding);
	// applied when more than one primary is needed. 0: not measured.
	ClusterFactor float64 `json:"cluster_factor"`
	// Redis bytes per customer without and with the score history.
	BytesPerCustomer        float64 `json:"bytes_per_customer"`
	HistoryBytesPerCustomer float64 `json:"history_bytes_per_customer"`
}

// CapacityRow is the plan for one number of customers at one event rate.
type CapacityRow struct {
	Customers     float64 `json:"customers"`
	EventsPerS    float64 `json:"events_per_s"`
	EvaluationsPS float64 `json:"evaluations_per_s"`
	Instances     int     `json:"instances"`
	Partitions    int     `json:"partitions"`
	RedisCores    float64 `json:"redis_cores"`
	MemoryGiB     float64 `json:"redis_memory_gib"`
	HistoryGiB    float64 `json:"history_memory_gib"`
	// Shards is the Redis primaries needed for CPU and for memory
	// (with the history); 1 is a single server.
	Shards int `json:"redis_shards"`
}

// capacityBasis takes the costs from the latency phase when it ran (paced
// traffic is what a deployment sees most of the time), else from the bulk
// pipeline phase; ok is false when neither has CPU figures and evaluations.
func (r *Result) capacityBasis() (CapacityBasis, bool) {
	b := CapacityBasis{BytesPerCustomer: r.BytesPerCustomerNoHistory, HistoryBytesPerCustomer: r.HistoryBytesPerCustomer}
	var cpu map[string]float64
	var st *serviceStats
	var events float64
	switch {
	case len(r.LatencyCPUMicrosPerEvent) > 0 && r.LatencyService != nil && len(r.LatencyRows) > 0:
		last := r.LatencyRows[len(r.LatencyRows)-1]
		b.Phase, cpu, st, events = "latency", r.LatencyCPUMicrosPerEvent, r.LatencyService, last.RatePerS*last.Seconds
	case len(r.CPUMicrosPerEvent) > 0 && r.PipelineService != nil:
		b.Phase, cpu, st, events = "pipeline", r.CPUMicrosPerEvent, r.PipelineService, float64(r.Events)
	default:
		return b, false
	}
	evals := st.RescoredEvent + st.RescoredDecay
	if evals <= 0 || events <= 0 {
		return b, false
	}
	if single := r.CPUMicrosPerEvent["redis-server"]; single > 0 && r.ClusterRedisMicrosPerEvent > 0 {
		b.ClusterFactor = r.ClusterRedisMicrosPerEvent / single
	}
	b.EventsPerEvaluation = events / evals
	b.PipelineMicros = cpu["pipeline"] * b.EventsPerEvaluation
	b.RedisMicros = cpu["redis-server"] * b.EventsPerEvaluation
	return b, b.PipelineMicros > 0
}

// Capacity derives the plan for 1M, 10M and 100M customers at 1k, 10k and
// 100k events/s from b, assuming one evaluation per event (paced traffic
// rarely brings a customer two events in one batch; the measured phase's
// events per evaluation is reported, not used) plus the sweeper's. Where
// one Redis server is not enough (CPU or memory), the Redis cores are
// those of a Cluster (b.ClusterFactor times the single server's).
func Capacity(b CapacityBasis) []CapacityRow {
	var rows []CapacityRow
	for _, n := range capCustomers {
		for _, rate := range capRates {
			evals := rate + n*capDecayPerCustomerDay/86400
			pipeCores := evals * b.PipelineMicros / 1e6
			inst := max(capMinInstances, int(math.Ceil(pipeCores/(capInstanceCores*capUtilization))))
			redisCores := evals * b.RedisMicros / 1e6
			mem := n * b.BytesPerCustomer
			hist := n * b.HistoryBytesPerCustomer
			shards := max(1, int(math.Ceil(redisCores/capUtilization)), int(math.Ceil((mem+hist)/capShardBytes)))
			if shards > 1 && b.ClusterFactor > 0 {
				// More than one primary is Redis Cluster, whose
				// single-key mode costs more per evaluation.
				redisCores *= b.ClusterFactor
				shards = max(shards, int(math.Ceil(redisCores/capUtilization)))
			}
			rows = append(rows, CapacityRow{
				Customers: n, EventsPerS: rate, EvaluationsPS: evals,
				Instances: inst, Partitions: max(8, 2*inst),
				RedisCores: redisCores, MemoryGiB: mem / (1 << 30), HistoryGiB: hist / (1 << 30),
				Shards: shards,
			})
		}
	}
	return rows
}

// writeCapacity prints the capacity table and its basis.
func writeCapacity(w io.Writer, b CapacityBasis, rows []CapacityRow) error {
	cluster := "Redis Cluster's cost not measured: single-server cost assumed throughout"
	if b.ClusterFactor > 0 {
		cluster = fmt.Sprintf("%.1f× that on Redis Cluster (bulk phases), used where more than one primary is needed", b.ClusterFactor)
	}
	fmt.Fprintf(w, "\ncapacity plan, derived from the %s phase: %.1f µs of pipeline CPU and %.1f µs of Redis CPU per evaluation (%.2f events each there), %s; %.0f B per customer + %.0f B of history; assumes one evaluation per event + %.0f per customer a day, %.0f%% of each core, %d-core instances, %d GiB per Redis primary\n",
		b.Phase, b.PipelineMicros, b.RedisMicros, b.EventsPerEvaluation, cluster, b.BytesPerCustomer, b.HistoryBytesPerCustomer,
		capDecayPerCustomerDay, 100*capUtilization, capInstanceCores, capShardBytes>>30)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "customers\tevents/s\tevaluations/s\tinstances\tpartitions\tRedis cores\tRedis GiB\t+ history GiB\tRedis primaries\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.2f\t%.1f\t%.1f\t%d\t\n", human(r.Customers), human(r.EventsPerS), human(r.EvaluationsPS),
			r.Instances, r.Partitions, r.RedisCores, r.MemoryGiB, r.HistoryGiB, r.Shards)
	}
	return tw.Flush()
}
