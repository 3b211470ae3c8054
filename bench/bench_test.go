package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
)

func TestGenDecodesAndRepeats(t *testing.T) {
	end := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	a, b := newGen(7, 1000, 50, end), newGen(7, 1000, 50, end)
	var la, lb []byte
	var last int64
	for i := range 1000 {
		la, lb = a.next(la[:0]), b.next(lb[:0])
		if !bytes.Equal(la, lb) {
			t.Fatalf("event %d differs for the same seed:\n%s\n%s", i, la, lb)
		}
		ev, err := scorer.DecodeEvent(la)
		if err != nil {
			t.Fatalf("event %d does not decode: %v\n%s", i, err, la)
		}
		if got := string(la[a.ks:a.ke]); got != ev.CustomerID {
			t.Fatalf("key %q, customer_id %q", got, ev.CustomerID)
		}
		if ev.Time < last || ev.Time > end.UnixNano() {
			t.Fatalf("event %d time %s out of order or after %s", i, ev.At(), end)
		}
		last = ev.Time
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0, 1}} {
		if got := quantile(d, c.q); got != c.want {
			t.Errorf("quantile(%g) = %d, want %d", c.q, got, c.want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing is not 0")
	}
}

func TestHistUpper(t *testing.T) {
	h := &hist{le: []float64{0.001, 0.01, math.Inf(1)}, cum: []float64{50, 99, 100}, sum: 1, count: 100}
	prev := &hist{le: h.le, cum: []float64{0, 0, 0}}
	d := h.sub(prev)
	if got := d.upper(0.5); got != 0.001 {
		t.Errorf("p50 bound %g, want 0.001", got)
	}
	if got := d.upper(0.99); got != 0.01 {
		t.Errorf("p99 bound %g, want 0.01", got)
	}
	if got := d.upper(0.999); !math.IsInf(got, 1) {
		t.Errorf("p99.9 bound %g, want +Inf", got)
	}
	if got := d.mean(); got != 0.01 {
		t.Errorf("mean %g, want 0.01", got)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Quick()
	c.Binary = "healthscore"
	c.setDefaults()
	if err := c.validate(); err != nil {
		t.Fatalf("quick config: %v", err)
	}
	if c.MemoryCustomers != -1 || c.Partitions != 8 || c.Instances != 1 {
		t.Errorf("quick defaults: %+v", c)
	}
	bad := c
	bad.Customers = bad.Events + 1
	if err := bad.validate(); err == nil {
		t.Error("more customers than events passed validation")
	}
	bad = c
	bad.Binary = ""
	if err := bad.validate(); err == nil {
		t.Error("missing Binary passed validation")
	}
	if len(c.LatencyLoads) != 2 || c.LatencyLoads[0] != 0.25 || c.LatencyLoads[1] != 0.5 || c.ClusterNodes != -1 || c.SustainWindow <= 0 {
		t.Errorf("quick defaults: loads %v, cluster nodes %d, sustain window %s", c.LatencyLoads, c.ClusterNodes, c.SustainWindow)
	}
	for _, loads := range [][]float64{{0.5, 0.25}, {0, 0.5}, {0.5, 1.5}} {
		bad = c
		bad.LatencyLoads = loads
		if err := bad.validate(); err == nil {
			t.Errorf("LatencyLoads %v passed validation", loads)
		}
	}
	bad = c
	bad.SustainRatio = 1
	if err := bad.validate(); err == nil {
		t.Error("SustainRatio 1 (a search that never ends by ratio) passed validation")
	}
	bad = c
	bad.LatencyRate = -1
	if err := bad.validate(); err == nil {
		t.Error("a negative LatencyRate passed validation")
	}
	full := Config{Binary: "healthscore"}
	full.setDefaults()
	if err := full.validate(); err != nil || full.ClusterNodes != 3 || full.SustainTrials != 7 {
		t.Errorf("full defaults: %v, cluster nodes %d, trials %d", err, full.ClusterNodes, full.SustainTrials)
	}
}

// TestCauseOf: the harness's shortcut to data.cause agrees with decoding
// the whole output, on outputs of the service's encoder (event ids with
// braces and quotes included) and on JSON laid out otherwise.
func TestCauseOf(t *testing.T) {
	enc, err := alerts.NewEncoder(alerts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := scorer.DefaultModel()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixNano()
	var outs [][]byte
	for i, id := range []string{"e1", `we{ird"}\id`, ""} {
		st := m.NewState()
		ev, err := scorer.DecodeEvent([]byte(`{"customer_id":"c` + strconv.Itoa(i) + `","type":"login","time":"2026-11-20T10:00:00Z"}`))
		if err != nil {
			t.Fatal(err)
		}
		m.Apply(st, &ev)
		o := m.Step(st, at)
		o.Changed = true
		recs := enc.AppendRecords(nil, &alerts.Change{CustomerID: "c", Outcome: o, Model: m, EventTime: at,
			Cause: alerts.Cause{EventID: id, Topic: "events", Partition: int32(i), Offset: int64(100 + i)}})
		if len(recs) == 0 {
			t.Fatal("no output")
		}
		outs = append(outs, recs[0].Value)
	}
	outs = append(outs, []byte(`{"data":{"score":1,"cause":{"offset":7,"partition":2,"topic":"events"}}}`),
		[]byte(`{"data": {"cause": {"topic": "events", "partition": 3, "offset": 9}}}`))
	for _, v := range outs {
		var full struct {
			Data struct {
				Cause outputCause `json:"cause"`
			} `json:"data"`
		}
		if err := json.Unmarshal(v, &full); err != nil {
			t.Fatalf("%v: %s", err, v)
		}
		got, ok := causeOf(v)
		if !ok || got != full.Data.Cause || got.Topic != "events" {
			t.Errorf("causeOf = %+v %v, decoding all gives %+v\n%s", got, ok, full.Data.Cause, v)
		}
	}
	if _, ok := causeOf([]byte(`not json`)); ok {
		t.Error("causeOf accepted invalid JSON")
	}
}

// TestTimesByOffset: set and get by partition and offset, in any order.
func TestTimesByOffset(t *testing.T) {
	m := newTimesByOffset(10)
	t0 := time.Unix(100, 0)
	for _, c := range []cause{{1, 10}, {1, 12}, {0, 5}, {1, 8}, {1, 12}} {
		m.set(c, t0.Add(time.Duration(c.offset)))
	}
	if m.n != 4 {
		t.Fatalf("n = %d, want 4", m.n)
	}
	for _, c := range []cause{{1, 10}, {1, 12}, {0, 5}, {1, 8}} {
		if got, ok := m.get(c); !ok || !got.Equal(t0.Add(time.Duration(c.offset))) {
			t.Errorf("get(%v) = %v %v", c, got, ok)
		}
	}
	for _, c := range []cause{{1, 9}, {1, 11}, {1, 13}, {0, 4}, {2, 10}} {
		if _, ok := m.get(c); ok {
			t.Errorf("get(%v) found a time never set", c)
		}
	}
	seen := 0
	m.each(func(c cause, at time.Time) {
		seen++
		if !at.Equal(t0.Add(time.Duration(c.offset))) {
			t.Errorf("each: %v at %v", c, at)
		}
	})
	if seen != 4 {
		t.Fatalf("each visited %d, want 4", seen)
	}
}

// TestCapacity checks the capacity plan's arithmetic on round figures:
// 10 µs of pipeline CPU per evaluation at 100k events/s and 1M customers
// is 100k + 11.6 decay evaluations/s, just over 1 core, so 2 instances of
// 2 cores at 50%; Redis at 5 µs is just over 0.5 core, past 50% of one
// core, so 2 primaries; and memory can need more: 100M customers at 300 B +
// 200 B is 46.6 GiB, three 16 GiB primaries.
func TestCapacity(t *testing.T) {
	rows := Capacity(CapacityBasis{PipelineMicros: 10, RedisMicros: 5, BytesPerCustomer: 300, HistoryBytesPerCustomer: 200})
	if len(rows) != 9 {
		t.Fatalf("got %d rows, want 9", len(rows))
	}
	find := func(n, rate float64) CapacityRow {
		for _, r := range rows {
			if r.Customers == n && r.EventsPerS == rate {
				return r
			}
		}
		t.Fatalf("no row for %g customers at %g events/s", n, rate)
		return CapacityRow{}
	}
	r := find(1e6, 1e5)
	if want := 1e5 + 1e6/86400; math.Abs(r.EvaluationsPS-want) > 1e-6 {
		t.Errorf("evaluations/s = %g, want %g", r.EvaluationsPS, want)
	}
	if r.Instances != 2 || r.Partitions != 8 || r.Shards != 2 {
		t.Errorf("1M at 100k/s: %d instances, %d partitions, %d shards; want 2, 8, 2 (0.5 Redis core at 50%%, rounded up past 1)", r.Instances, r.Partitions, r.Shards)
	}
	r = find(1e8, 1e3)
	if r.Shards != 3 {
		t.Errorf("100M customers at 500 B: %d shards, want 3 (46.6 GiB over 16 GiB primaries)", r.Shards)
	}
	// On Redis Cluster (more than one primary) Redis costs ClusterFactor
	// times more: 0.5 core becomes 2, four primaries at 50%.
	for _, r := range Capacity(CapacityBasis{PipelineMicros: 10, RedisMicros: 5, BytesPerCustomer: 300, ClusterFactor: 4}) {
		if r.Customers == 1e6 && r.EventsPerS == 1e5 && (r.Shards != 5 || math.Abs(r.RedisCores-4*0.5000578) > 1e-3) {
			t.Errorf("cluster factor 4 at 100k/s: %d shards, %.3f cores; want 5 shards, 2.000 cores", r.Shards, r.RedisCores)
		}
		if r.Customers == 1e6 && r.EventsPerS == 1e3 && (r.Shards != 1 || r.RedisCores > 0.01) {
			t.Errorf("cluster factor at 1k/s on one server: %d shards, %.3f cores; want 1, the single server's", r.Shards, r.RedisCores)
		}
	}
	big := Capacity(CapacityBasis{PipelineMicros: 40, RedisMicros: 20, BytesPerCustomer: 300})
	for _, r := range big {
		if r.Customers == 1e6 && r.EventsPerS == 1e5 {
			// Just over 4 cores of pipeline at 50% of 2-core
			// instances: 5 instances.
			if r.Instances != 5 || r.Partitions != 10 {
				t.Errorf("40 µs at 100k/s: %d instances, %d partitions; want 5, 10", r.Instances, r.Partitions)
			}
		}
	}
}

func TestLoopBusy(t *testing.T) {
	s := &serviceStats{Batches: 100, BatchMs: 50}
	s.setBusy(10*time.Second, 1)
	if s.LoopBusy != 0.5 {
		t.Fatalf("100 batches of 50 ms in 10 s: busy %v, want 0.5", s.LoopBusy)
	}
	if got := s.String(); !strings.Contains(got, "processing loop busy 50% of the phase") {
		t.Errorf("String() = %q, want the busy share", got)
	}
	s.setBusy(10*time.Second, 2) // two instances share the batches
	if s.LoopBusy != 0.25 {
		t.Fatalf("two instances: busy %v, want 0.25", s.LoopBusy)
	}
	s = &serviceStats{Batches: 3, BatchMs: 1}
	s.setBusy(0, 1)
	if s.LoopBusy != 0 || strings.Contains(s.String(), "busy") {
		t.Errorf("no wall time: busy %v, String %q; want it left out", s.LoopBusy, s.String())
	}
}

// TestTargetOverBare: the table holds a full-size run to issue 14's
// full-run target (0.20) and smaller runs to the quick run's (0.40).
func TestTargetOverBare(t *testing.T) {
	for _, c := range []struct {
		events int
		want   float64
	}{{20_000, 0.40}, {200_000, 0.40}, {2_000_000, 0.20}} {
		if got := TargetOverBare(c.events); got != c.want {
			t.Errorf("TargetOverBare(%d) = %g, want %g", c.events, got, c.want)
		}
		var b bytes.Buffer
		r := Result{Events: c.events, PipelineOverBare: 0.3}
		if err := r.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(">= %.2f", c.want)
		if !strings.Contains(b.String(), want) {
			t.Errorf("%d events: the table does not say %q:\n%s", c.events, want, b.String())
		}
	}
}
