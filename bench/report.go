package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Targets of issues 6 and 14 (reported against, never tuned to).
const (
	// Issue 14: pipeline / bare in the quick run (and smaller runs); in
	// runs the size of the full run, TargetFullPipelineOverBare (its
	// batches hold fewer events per customer: see TargetOverBare).
	TargetPipelineOverBare     = 0.40
	TargetFullPipelineOverBare = 0.20
	TargetPipelineOverNaive    = 150
	TargetP99ms                = 100
	// Issue 14: Redis bytes per customer at 1M customers, the score
	// history excluded (it is reported beside).
	TargetBytesPerCustomer = 250
	TargetOfflinePerS      = 1e6
	// Issue 14: Redis Cluster throughput over single-server in one run.
	TargetClusterOverSingle = 0.5
)

// TargetOverBare is issue 14's pipeline / bare target for a run of the
// given size: the full run's (2M events) from a million events on, the
// quick run's below.
func TargetOverBare(events int) float64 {
	if events >= 1_000_000 {
		return TargetFullPipelineOverBare
	}
	return TargetPipelineOverBare
}

// Result holds every figure of a run. Rates are events per second.
type Result struct {
	Events     int `json:"events"`
	Customers  int `json:"customers"`
	Partitions int `json:"partitions"`
	Instances  int `json:"instances"`

	BareEventsPerS     float64 `json:"bare_events_per_s"`
	BareSeconds        float64 `json:"bare_seconds"`
	PipelineEventsPerS float64 `json:"pipeline_events_per_s"`
	PipelineSeconds    float64 `json:"pipeline_seconds"`
	// PipelineOutputs is how many output records the bulk run produced.
	PipelineOutputs   int64   `json:"pipeline_outputs"`
	NaiveEvents       int     `json:"naive_events"`
	NaiveEventsPerS   float64 `json:"naive_events_per_s"`
	PipelineOverBare  float64 `json:"pipeline_over_bare"`
	PipelineOverNaive float64 `json:"pipeline_over_naive"`

	// The highest paced rate the pipeline sustained (see Config.LagBound),
	// as found by the rate search; 0 if none or not searched.
	SustainedEventsPerS float64     `json:"sustained_events_per_s"`
	SustainedOverBulk   float64     `json:"sustained_over_bulk"`
	SustainSeconds      float64     `json:"sustain_seconds"` // the search's wall time
	RateTrials          []rateTrial `json:"rate_trials,omitempty"`
	// LatencyRows are the latency at each paced load (Config.LatencyLoads).
	LatencyRows []LatencyRow `json:"latency_rows,omitempty"`
	// The last (highest-load) row's figures, as before the rows existed.
	LatencyLoad     float64 `json:"latency_load"`
	LatencyBasis    string  `json:"latency_basis"`
	LatencyRatePerS float64 `json:"latency_rate_per_s"`
	LatencySeconds  float64 `json:"latency_seconds"`
	LatencyEvents   int     `json:"latency_events"`  // paced events produced
	LatencySamples  int     `json:"latency_samples"` // paced events that caused an output
	P50ms           float64 `json:"p50_ms"`
	P99ms           float64 `json:"p99_ms"`
	P999ms          float64 `json:"p999_ms"`
	MaxMs           float64 `json:"max_ms"`

	// The pipeline over the preloaded events against a local Redis Cluster
	// of ClusterNodes primaries, in the same run; 0 nodes: not measured.
	ClusterNodes      int     `json:"cluster_nodes"`
	ClusterEventsPerS float64 `json:"cluster_events_per_s"`
	ClusterSeconds    float64 `json:"cluster_seconds"`
	ClusterOverSingle float64 `json:"cluster_over_single"`
	// CPU time of the cluster's nodes together per preloaded event of the
	// cluster phase (µs), to set against the single server's in the
	// pipeline phase (CPUMicrosPerEvent["redis-server"]).
	ClusterRedisMicrosPerEvent float64 `json:"cluster_redis_cpu_us_per_event"`

	MemoryCustomers  int     `json:"memory_customers"`
	MemoryBytes      int64   `json:"memory_bytes"` // used_memory growth
	BytesPerCustomer float64 `json:"bytes_per_customer"`
	// The score history's share of BytesPerCustomer (MEMORY USAGE of the
	// history keys of a sample of customers) and the rest.
	HistoryBytesPerCustomer   float64 `json:"history_bytes_per_customer"`
	BytesPerCustomerNoHistory float64 `json:"bytes_per_customer_without_history"`

	// CPU time per event of each process in the pipeline phase (µs),
	// including the harness polling the group's offsets.
	CPUMicrosPerEvent map[string]float64 `json:"cpu_us_per_event,omitempty"`
	// The same, in the latency phase (the harness produces the paced load
	// and decodes every output there).
	LatencyCPUMicrosPerEvent map[string]float64 `json:"latency_cpu_us_per_event,omitempty"`
	// Redis INFO commandstats after the pipeline phase, busiest first.
	RedisCommands []string `json:"redis_commands,omitempty"`
	// The same during the last (highest) latency row.
	LatencyRedisCommands []string `json:"latency_redis_commands,omitempty"`
	// The same summed over the Redis Cluster nodes after the cluster phase.
	ClusterRedisCommands []string `json:"cluster_redis_commands,omitempty"`
	MemoryDetail         string   `json:"memory_detail,omitempty"`
	// What the service's own histograms said in the bulk and latency phases.
	PipelineService *serviceStats `json:"pipeline_service,omitempty"`
	LatencyService  *serviceStats `json:"latency_service,omitempty"`

	// The capacity plan derived from this run's costs (capacity.go).
	CapacityBasis *CapacityBasis `json:"capacity_basis,omitempty"`
	Capacity      []CapacityRow  `json:"capacity,omitempty"`

	OfflineEvents      int      `json:"offline_events"`
	OfflineEventsPerS  float64  `json:"offline_events_per_s"`
	LoadAverageAtStart string   `json:"load_average_at_start,omitempty"`
	LoadAverageAtEnd   string   `json:"load_average_at_end,omitempty"`
	Notes              []string `json:"notes,omitempty"`
}

// WriteJSON writes r to path, indented.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write result: %w", err)
	}
	return nil
}

func sustainedTrials(ts []rateTrial) int {
	n := 0
	for _, t := range ts {
		if t.Sustained {
			n++
		}
	}
	return n
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// WriteTable prints the result as one aligned table.
func (r *Result) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "healthscore bench: %s events over %s customers, %d partitions, %d pipeline instance(s)\n\n",
		human(float64(r.Events)), human(float64(r.Customers)), r.Partitions, r.Instances)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tresult\ttarget\t")
	fmt.Fprintln(tw, "-------\t------\t------\t")
	fmt.Fprintf(tw, "bare consume+decode (limit)\t%s events/s (%s in %.2f s)\t\t\n", human(r.BareEventsPerS), human(float64(r.Events)), r.BareSeconds)
	fmt.Fprintf(tw, "pipeline to committed offsets\t%s events/s (%s in %.2f s, %s outputs)\t\t\n", human(r.PipelineEventsPerS), human(float64(r.Events)), r.PipelineSeconds, human(float64(r.PipelineOutputs)))
	fmt.Fprintf(tw, "naive per-event\t%s events/s (first %s events)\t\t\n", human(r.NaiveEventsPerS), human(float64(r.NaiveEvents)))
	target := TargetOverBare(r.Events)
	fmt.Fprintf(tw, "pipeline / bare\t%.2f\t>= %.2f %s\t\n", r.PipelineOverBare, target, verdict(r.PipelineOverBare >= target))
	fmt.Fprintf(tw, "pipeline / naive\t%.0f\t>= %d %s\t\n", r.PipelineOverNaive, TargetPipelineOverNaive, verdict(r.PipelineOverNaive >= TargetPipelineOverNaive))
	if r.ClusterNodes > 0 {
		fmt.Fprintf(tw, "pipeline on Redis Cluster (%d nodes)\t%s events/s (%s in %.2f s)\t\t\n", r.ClusterNodes, human(r.ClusterEventsPerS), human(float64(r.Events)), r.ClusterSeconds)
		fmt.Fprintf(tw, "cluster / single server\t%.2f\t>= %.1f %s\t\n", r.ClusterOverSingle, TargetClusterOverSingle, verdict(r.ClusterOverSingle >= TargetClusterOverSingle))
		if single := r.CPUMicrosPerEvent["redis-server"]; single > 0 && r.ClusterRedisMicrosPerEvent > 0 {
			fmt.Fprintf(tw, "Redis CPU per event, cluster / single server\t%.1f / %.1f µs (%.1f×)\t\t\n", r.ClusterRedisMicrosPerEvent, single, r.ClusterRedisMicrosPerEvent/single)
		}
	}
	switch {
	case r.SustainedEventsPerS > 0:
		fmt.Fprintf(tw, "highest sustained paced rate\t%s events/s (%.2f of bulk; lag bound held in %d of %d trials, %.0f s)\t\t\n",
			human(r.SustainedEventsPerS), r.SustainedOverBulk, sustainedTrials(r.RateTrials), len(r.RateTrials), r.SustainSeconds)
	case len(r.RateTrials) > 0:
		fmt.Fprintf(tw, "highest sustained paced rate\tnone of %d rates tried\t\t\n", len(r.RateTrials))
	}
	for _, l := range r.LatencyRows {
		target, v := "", ""
		if l.Basis == "sustained" && l.Load == 0.5 {
			target, v = fmt.Sprintf("p99 < %d ms", TargetP99ms), verdict(l.P99ms < TargetP99ms)
		}
		fmt.Fprintf(tw, "latency p50 / p99 / p99.9 at %.0f%% of %s\t%.1f / %.1f / %.1f ms (max %.1f) at %s events/s for %.0f s; %s of %s events caused an output\t%s %s\t\n",
			100*l.Load, l.Basis, l.P50ms, l.P99ms, l.P999ms, l.MaxMs, human(l.RatePerS), l.Seconds, human(float64(l.Samples)), human(float64(l.Events)), target, v)
	}
	if len(r.LatencyRows) == 0 {
		fmt.Fprintf(tw, "latency\tnot measured\tp99 < %d ms\t\n", TargetP99ms)
	}
	fmt.Fprintf(tw, "Redis memory per customer\t%.0f bytes without the score history, %.0f with it (used_memory +%s B at %s customers)\t<= %d %s\t\n",
		r.BytesPerCustomerNoHistory, r.BytesPerCustomer, human(float64(r.MemoryBytes)), human(float64(r.MemoryCustomers)), TargetBytesPerCustomer, verdict(r.BytesPerCustomerNoHistory <= TargetBytesPerCustomer))
	fmt.Fprintf(tw, "offline score, one core\t%s events/s (%s events)\t>= 1M %s\t\n", human(r.OfflineEventsPerS), human(float64(r.OfflineEvents)), verdict(r.OfflineEventsPerS >= TargetOfflinePerS))
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.PipelineService != nil {
		fmt.Fprintf(w, "\npipeline phase: %s\n", r.PipelineService)
	}
	if len(r.CPUMicrosPerEvent) > 0 {
		fmt.Fprintf(w, "pipeline phase CPU per event (µs): %s\n", formatPerEvent(r.CPUMicrosPerEvent))
	}
	writeCommands(w, "pipeline phase Redis", r.RedisCommands, 4)
	writeCommands(w, fmt.Sprintf("cluster phase Redis (%d nodes)", r.ClusterNodes), r.ClusterRedisCommands, 6)
	if len(r.RateTrials) > 0 {
		ts := make([]string, len(r.RateTrials))
		for i, t := range r.RateTrials {
			v := "not sustained"
			if t.Sustained {
				v = "sustained"
			}
			ts[i] = fmt.Sprintf("%s/s %s (%s)", human(t.Rate), v, t.Why)
		}
		fmt.Fprintf(w, "rate search: %s\n", strings.Join(ts, "; "))
	}
	if r.LatencyService != nil {
		fmt.Fprintf(w, "latency phase: %s\n", r.LatencyService)
	}
	if len(r.LatencyCPUMicrosPerEvent) > 0 {
		fmt.Fprintf(w, "latency phase CPU per event (µs): %s\n", formatPerEvent(r.LatencyCPUMicrosPerEvent))
	}
	writeCommands(w, "latency phase Redis", r.LatencyRedisCommands, 6)
	if r.MemoryDetail != "" {
		fmt.Fprintf(w, "memory: %s\n", r.MemoryDetail)
	}
	if r.CapacityBasis != nil {
		if err := writeCapacity(w, *r.CapacityBasis, r.Capacity); err != nil {
			return err
		}
	}
	if r.LoadAverageAtStart != "" {
		fmt.Fprintf(w, "\nload average: %s at start, %s at end (nproc %d)\n", r.LoadAverageAtStart, r.LoadAverageAtEnd, nproc())
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", strings.TrimSpace(n))
	}
	return nil
}

// writeCommands prints the first n of a phase's Redis commands (busiest
// first), a line each.
func writeCommands(w io.Writer, phase string, cmds []string, n int) {
	for _, c := range cmds[:min(n, len(cmds))] {
		fmt.Fprintf(w, "%s: %s\n", phase, c)
	}
}
