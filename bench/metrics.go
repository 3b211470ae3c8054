package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// hist is a Prometheus histogram read from /metrics.
type hist struct {
	le         []float64 // bucket upper bounds, ascending, +Inf last
	cum        []float64 // cumulative counts
	sum, count float64
}

// scrapeHists reads the histograms named in names from a /metrics page. A
// name may carry labels to pick one series of a histogram vector, as in
// `healthscore_batch_stage_seconds{stage="load"}`. A name that is a counter
// series gets its value as sum and count.
func scrapeHists(ctx context.Context, url string, names ...string) (map[string]*hist, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot scrape %s: %s", url, resp.Status)
	}
	out := make(map[string]*hist, len(names))
	for _, n := range names {
		out[n] = &hist{}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sp]
		for n, h := range out {
			base, labels, _ := strings.Cut(n, "{")
			bucket, sum, count := base+"_bucket{", base+"_sum", base+"_count"
			if labels != "" {
				labels = strings.TrimSuffix(labels, "}")
				bucket += labels + ","
				sum += "{" + labels + "}"
				count += "{" + labels + "}"
			}
			switch {
			case strings.HasPrefix(series, bucket):
				i := strings.Index(series, `le="`)
				if i < 0 {
					continue
				}
				rest := series[i+4:]
				le, err := strconv.ParseFloat(rest[:strings.IndexByte(rest, '"')], 64)
				if err != nil {
					continue
				}
				h.le, h.cum = append(h.le, le), append(h.cum, v)
			case series == n:
				h.sum, h.count = v, v
			case series == sum:
				h.sum = v
			case series == count:
				h.count = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", url, err)
	}
	for _, h := range out {
		sort.Sort(h)
	}
	return out, nil
}

func (h *hist) Len() int           { return len(h.le) }
func (h *hist) Less(i, j int) bool { return h.le[i] < h.le[j] }
func (h *hist) Swap(i, j int) {
	h.le[i], h.le[j] = h.le[j], h.le[i]
	h.cum[i], h.cum[j] = h.cum[j], h.cum[i]
}

// sub returns h minus an earlier scrape of the same histogram.
func (h *hist) sub(prev *hist) *hist {
	d := &hist{le: h.le, cum: make([]float64, len(h.cum)), sum: h.sum - prev.sum, count: h.count - prev.count}
	for i := range h.cum {
		d.cum[i] = h.cum[i]
		if i < len(prev.cum) {
			d.cum[i] -= prev.cum[i]
		}
	}
	return d
}

// upper returns the upper bound of the bucket holding the q-quantile
// (+Inf if it is in the last bucket, NaN when empty).
func (h *hist) upper(q float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	for i, c := range h.cum {
		if c >= q*h.count {
			return h.le[i]
		}
	}
	return math.Inf(1)
}

func (h *hist) mean() float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	return h.sum / h.count
}

// Names of the service's histograms the harness reads.
const (
	metricLatency      = "healthscore_event_to_output_seconds"
	metricBatchSeconds = "healthscore_batch_duration_seconds"
	metricBatchRecords = "healthscore_batch_records"
	metricStage        = "healthscore_batch_stage_seconds"
)

// stages are the values of the stage label of metricStage, in batch order.
var stages = []string{"load", "fold", "schedule", "save", "produce", "clear", "commit"}

func stageMetric(stage string) string { return metricStage + `{stage="` + stage + `"}` }

// Evaluations by cause (a counter): events, or the sweeper's decay checks.
const (
	metricRescoredEvent = `healthscore_rescored_total{cause="event"}`
	metricRescoredDecay = `healthscore_rescored_total{cause="decay"}`
	metricConflicts     = `healthscore_state_conflicts_total`
	metricCacheHits     = `healthscore_state_cache_hits_total`
	metricCacheMisses   = `healthscore_state_cache_misses_total`
)

// scrapeAll scrapes every instance and adds their histograms up.
func scrapeAll(ctx context.Context, insts []*instance) (map[string]*hist, error) {
	var total map[string]*hist
	for _, in := range insts {
		names := []string{metricLatency, metricBatchSeconds, metricBatchRecords, metricRescoredEvent, metricRescoredDecay,
			metricConflicts, metricCacheHits, metricCacheMisses}
		for _, s := range stages {
			names = append(names, stageMetric(s))
		}
		hs, err := scrapeHists(ctx, in.http+"/metrics", names...)
		if err != nil {
			return nil, err
		}
		if total == nil {
			total = hs
			continue
		}
		for n, h := range hs {
			t := total[n]
			if len(t.cum) != len(h.cum) {
				continue
			}
			for i := range h.cum {
				t.cum[i] += h.cum[i]
			}
			t.sum += h.sum
			t.count += h.count
		}
	}
	return total, nil
}

// serviceStats is what the service's own histograms say about a phase.
type serviceStats struct {
	BatchRecords float64 `json:"batch_records_mean"`
	BatchMs      float64 `json:"batch_ms_mean"`
	Batches      float64 `json:"batches"`
	// Event-to-output latency as the service measures it (input record
	// timestamp to output acknowledged), as bucket upper bounds.
	P50msUpTo float64 `json:"event_to_output_p50_ms_upto"`
	P99msUpTo float64 `json:"event_to_output_p99_ms_upto"`
	// StageMs is the time spent per stage (milliseconds summed over the
	// phase's batches and worker groups).
	StageMs map[string]float64 `json:"stage_ms,omitempty"`
	// Evaluations by cause: after events, and by the sweeper (decay).
	RescoredEvent float64 `json:"rescored_event"`
	RescoredDecay float64 `json:"rescored_decay"`
	// Compare-and-set conflicts (customers redone) and record cache use.
	Conflicts   float64 `json:"conflicts"`
	CacheHits   float64 `json:"cache_hits"`
	CacheMisses float64 `json:"cache_misses"`
	// LoopBusy is the share of the phase's wall time the instances'
	// processing loops spent in batches (0 when not measured): near 1,
	// each batch starts as the last ends, and events queue for the loop.
	LoopBusy float64 `json:"loop_busy,omitempty"`
}

// setBusy sets LoopBusy from the phase's wall time and the instances
// that shared its batches.
func (s *serviceStats) setBusy(wall time.Duration, instances int) {
	if wall > 0 && instances > 0 {
		s.LoopBusy = s.Batches * s.BatchMs / 1000 / (wall.Seconds() * float64(instances))
	}
}

// stats computes serviceStats from two scrapes (before may be nil).
func stats(before, after map[string]*hist) *serviceStats {
	d := func(n string) *hist {
		if before == nil || before[n] == nil {
			return after[n]
		}
		return after[n].sub(before[n])
	}
	recs, secs, lat := d(metricBatchRecords), d(metricBatchSeconds), d(metricLatency)
	js := func(v float64) float64 { // JSON has no NaN or Inf
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return -1
		}
		return v
	}
	st := &serviceStats{
		BatchRecords: js(recs.mean()), BatchMs: js(1000 * secs.mean()), Batches: recs.count,
		P50msUpTo: js(1000 * lat.upper(0.5)), P99msUpTo: js(1000 * lat.upper(0.99)),
	}
	if after[metricRescoredEvent] != nil && after[metricRescoredDecay] != nil {
		st.RescoredEvent = d(metricRescoredEvent).sum
		st.RescoredDecay = d(metricRescoredDecay).sum
	}
	for name, v := range map[string]*float64{metricConflicts: &st.Conflicts, metricCacheHits: &st.CacheHits, metricCacheMisses: &st.CacheMisses} {
		if after[name] != nil {
			*v = d(name).sum
		}
	}
	for _, s := range stages {
		if h := after[stageMetric(s)]; h != nil && h.count > 0 {
			if st.StageMs == nil {
				st.StageMs = make(map[string]float64)
			}
			st.StageMs[s] = 1000 * d(stageMetric(s)).sum
		}
	}
	return st
}

func (s *serviceStats) String() string {
	bound := func(ms float64) string {
		if ms < 0 {
			return "beyond the last bucket"
		}
		return fmt.Sprintf("<= %g ms", ms)
	}
	out := fmt.Sprintf("%.0f batches of %.0f records on average, %.1f ms each; event-to-output (service histogram, from the record timestamp) p50 %s, p99 %s",
		s.Batches, s.BatchRecords, s.BatchMs, bound(s.P50msUpTo), bound(s.P99msUpTo))
	if s.LoopBusy > 0 {
		out += fmt.Sprintf(" (the processing loop busy %.0f%% of the phase)", 100*s.LoopBusy)
	}
	out += fmt.Sprintf("; %.0f evaluations after events, %.0f by the sweeper; %.0f conflicts; record cache %.0f hits, %.0f misses",
		s.RescoredEvent, s.RescoredDecay, s.Conflicts, s.CacheHits, s.CacheMisses)
	if len(s.StageMs) > 0 && s.Batches > 0 {
		out += "; ms per batch by stage (summed over worker groups):"
		for _, st := range stages {
			if ms, ok := s.StageMs[st]; ok {
				out += fmt.Sprintf(" %s %.1f", st, ms/s.Batches)
			}
		}
	}
	return out
}
