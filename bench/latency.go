package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cause is an input record position, as outputs name it.
type cause struct {
	partition int32
	offset    int64
}

// LatencyRow is the event→output latency at one paced rate.
type LatencyRow struct {
	// Load is the rate as a fraction of Basis: "sustained" (the highest
	// paced rate the pipeline sustained in the same run), "bulk" (the
	// bulk rate, when no sustained rate was found or searched) or "given
	// rate" (Config.LatencyRate).
	Load     float64 `json:"load"`
	Basis    string  `json:"basis"`
	RatePerS float64 `json:"rate_per_s"`
	Seconds  float64 `json:"seconds"`
	Events   int     `json:"events"`  // paced events produced
	Samples  int     `json:"samples"` // paced events that caused an output
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	P999ms   float64 `json:"p999_ms"`
	MaxMs    float64 `json:"max_ms"`
}

// latency produces events at rate for LatencyDuration: the same mix over
// the same customers as the preloaded events, but with current times. It
// reads the score topic and matches each output to the event its
// data.cause names. An output's cause is the customer's latest event in the
// batch, so the events measured are those that caused an output (the others
// completed in the same batches); the latency is from the produce call (the
// record timestamp) to the moment the harness reads the output, which is
// after the broker acknowledged it.
func (r *run) latency(ctx context.Context, group string, row *LatencyRow) error {
	cfg := r.cfg
	rate := row.RatePerS
	total := int(rate * cfg.LatencyDuration.Seconds())
	if total < 1 {
		return fmt.Errorf("a rate of %.1f events/s for %s is no event", rate, cfg.LatencyDuration)
	}
	row.Seconds = cfg.LatencyDuration.Seconds()

	cl, err := r.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, r.topics.score)
	if err != nil {
		return fmt.Errorf("cannot list end offsets of %s: %w", r.topics.score, err)
	}
	from := map[int32]kgo.Offset{}
	var start0 int64 // outputs before the paced load
	ends.Each(func(o kadm.ListedOffset) {
		from[o.Partition] = kgo.NewOffset().At(o.Offset)
		start0 += o.Offset
	})

	var mu sync.Mutex
	sent, got := newTimesByOffset(total), newTimesByOffset(total)
	var nread int64 // output records read
	rctx, stopReader := context.WithCancel(ctx)
	defer stopReader()
	reader, err := r.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topics.score: from}))
	if err != nil {
		return err
	}
	var readerDone sync.WaitGroup
	readerDone.Go(func() {
		defer reader.Close()
		for rctx.Err() == nil {
			fs := reader.PollFetches(rctx)
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(rec *kgo.Record) {
				nread++
				if c, ok := causeOf(rec.Value); ok && c.Topic == r.topics.events {
					got.set(cause{c.Partition, c.Offset}, now)
				}
			})
			mu.Unlock()
		}
	})

	prod, err := r.client(kgo.DefaultProduceTopic(r.topics.events), kgo.ProducerLinger(2*time.Millisecond), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		stopReader()
		readerDone.Wait()
		return err
	}
	defer prod.Close()
	b := newBar(cfg.Progress, cfg.Terminal, fmt.Sprintf("latency %.0f%%", 100*row.Load), int64(total))
	var firstErr error
	g := newGen(cfg.Seed+1+uint64(1000*row.Load), total, cfg.Customers, time.Now())
	g.idPrefix = "l"
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sentN := 0
	for sentN < total && ctx.Err() == nil {
		<-tick.C
		due := min(total, int(rate*time.Since(start).Seconds())+1)
		for ; sentN < due; sentN++ {
			now := time.Now()
			v := g.nextAt(nil, now)
			prod.Produce(ctx, &kgo.Record{Key: v[g.ks:g.ke], Value: v, Timestamp: now}, func(rec *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				sent.set(cause{rec.Partition, rec.Offset}, rec.Timestamp)
			})
		}
		b.set(int64(sentN))
	}
	tick.Stop()
	b.finish()
	if err := prod.Flush(ctx); err != nil {
		return fmt.Errorf("cannot flush producer: %w", err)
	}
	// Wait until the group has committed every paced event (its outputs
	// are acknowledged then), and for the reader to catch up.
	end, err := endOffsets(ctx, adm, r.topics.events)
	if err != nil {
		return err
	}
	if err := waitProgress(ctx, func() (int64, error) { return committed(ctx, adm, group, r.topics.events) }, end); err != nil {
		return fmt.Errorf("waiting for the paced events to be committed: %w", err)
	}
	if end, err = endOffsets(ctx, adm, r.topics.score); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := nread
		mu.Unlock()
		if n >= end-start0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopReader()
	readerDone.Wait()
	if firstErr != nil {
		return fmt.Errorf("cannot produce paced events: %w", firstErr)
	}
	lat := make([]time.Duration, 0, sent.n)
	sent.each(func(c cause, at time.Time) {
		if t, ok := got.get(c); ok {
			lat = append(lat, t.Sub(at))
		}
	})
	row.Events = sent.n
	if len(lat) == 0 {
		return fmt.Errorf("no output matched any of %d paced events", sent.n)
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	row.Samples = len(lat)
	row.P50ms = ms(quantile(lat, 0.50))
	row.P99ms = ms(quantile(lat, 0.99))
	row.P999ms = ms(quantile(lat, 0.999))
	row.MaxMs = ms(lat[len(lat)-1])
	return nil
}

// timesByOffset maps input record positions to times. The paced events
// take consecutive offsets per partition, so a slice per partition does
// what a map would, with a fraction of the harness's CPU (it shares the
// cores with the pipeline).
type timesByOffset struct {
	parts map[int32]*offsetTimes
	hint  int // expected records in all
	n     int // positions set
}

type offsetTimes struct {
	base int64 // offset of t[0]
	t    []time.Time
}

func newTimesByOffset(hint int) *timesByOffset {
	return &timesByOffset{parts: make(map[int32]*offsetTimes), hint: hint}
}

func (m *timesByOffset) set(c cause, t time.Time) {
	p := m.parts[c.partition]
	if p == nil {
		p = &offsetTimes{base: c.offset, t: make([]time.Time, 0, m.hint/max(1, len(m.parts)+1))}
		m.parts[c.partition] = p
	}
	if c.offset < p.base { // not expected; keep every position anyway
		grown := make([]time.Time, int(p.base-c.offset)+len(p.t))
		copy(grown[p.base-c.offset:], p.t)
		p.base, p.t = c.offset, grown
	}
	i := int(c.offset - p.base)
	for len(p.t) <= i {
		p.t = append(p.t, time.Time{})
	}
	if p.t[i].IsZero() {
		m.n++
	}
	p.t[i] = t
}

func (m *timesByOffset) get(c cause) (time.Time, bool) {
	p := m.parts[c.partition]
	if p == nil || c.offset < p.base || c.offset-p.base >= int64(len(p.t)) {
		return time.Time{}, false
	}
	t := p.t[c.offset-p.base]
	return t, !t.IsZero()
}

func (m *timesByOffset) each(f func(cause, time.Time)) {
	for part, p := range m.parts {
		for i, t := range p.t {
			if !t.IsZero() {
				f(cause{part, p.base + int64(i)}, t)
			}
		}
	}
}

// outputCause is the data.cause of an output that an input record caused.
type outputCause struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// causeOf returns the data.cause of an output. The harness reads every
// output on the cores the pipeline runs on, so it decodes only the cause
// object (the first "cause" member: data's, as the service writes it),
// not the whole event; anything unexpected falls back to decoding it all.
func causeOf(v []byte) (outputCause, bool) {
	if i := bytes.Index(v, []byte(`"cause":{`)); i >= 0 {
		obj := v[i+len(`"cause":`):]
		if end := objectEnd(obj); end > 0 {
			var c outputCause
			if json.Unmarshal(obj[:end], &c) == nil {
				return c, true
			}
		}
	}
	var out struct {
		Data struct {
			Cause outputCause `json:"cause"`
		} `json:"data"`
	}
	if json.Unmarshal(v, &out) != nil {
		return outputCause{}, false
	}
	return out.Data.Cause, true
}

// objectEnd returns the length of the JSON object that b starts with
// (through its closing brace), or 0 if it does not end in b.
func objectEnd(b []byte) int {
	depth, inString, escaped := 0, false, false
	for i, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return 0
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
