package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/scorer"
)

// Bad record kinds, each with the dead-letter reason it must get.
var badKinds = []struct{ kind, reason string }{
	{"invalid JSON", scorer.ReasonInvalidJSON},
	{"missing customer_id", scorer.ReasonMissingCustomerID},
	{"missing type", scorer.ReasonMissingType},
	{"bad time", scorer.ReasonInvalidTime},
	{"non-number value", scorer.ReasonInvalidValue},
	{"value 1e999", scorer.ReasonInvalidValue},
	{"time beyond --max-skew", "time_skew"},
	{"larger than 1 MiB", "too_large"},
	{"bad UTF-8", scorer.ReasonInvalidUTF8},
	{"300-byte customer_id", scorer.ReasonInvalidCustomerID},
}

// custExpect is what one customer's state must hold: the offline fold of
// the good events of signal-read types produced for it.
type custExpect struct {
	st      *scorer.State
	n       int             // events applied offline
	offsets map[int32]int64 // per partition, the highest offset of those events
}

// Expect is what the producer sent, folded offline as it is acknowledged.
type Expect struct {
	model *scorer.Model

	mu        sync.Mutex
	cust      map[string]*custExpect
	Produced  int            // records acknowledged
	Good      int            // good records acknowledged (duplicates included)
	Applied   int            // good records the model folds (signal-read types, or naming a segment)
	Ignored   int            // good records of types no signal reads that name no segment
	SentTwice int            // events sent as two records
	Bad       map[string]int // bad records acknowledged, by expected reason
	BadKinds  map[string]int // bad records acknowledged, by kind
	Failed    int            // records whose produce failed (fate unknown)
	FirstErr  error
}

func newExpect(m *scorer.Model) *Expect {
	return &Expect{model: m, cust: map[string]*custExpect{}, Bad: map[string]int{}, BadKinds: map[string]int{}}
}

func (e *Expect) ackGood(ev *scorer.Event, partition int32, offset int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Produced++
	e.Good++
	if !e.model.Folds(ev) {
		e.Ignored++
		return
	}
	c := e.cust[ev.CustomerID]
	if c == nil {
		c = &custExpect{st: e.model.NewState(), offsets: map[int32]int64{}}
		e.cust[ev.CustomerID] = c
	}
	e.model.Apply(c.st, ev)
	c.n++
	if o, ok := c.offsets[partition]; !ok || offset > o {
		c.offsets[partition] = offset
	}
	e.Applied++
}

func (e *Expect) ackBad(kind, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Produced++
	e.Bad[reason]++
	e.BadKinds[kind]++
}

func (e *Expect) fail(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Failed++
	if e.FirstErr == nil {
		e.FirstErr = err
	}
}

func (e *Expect) produced() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.Produced
}

type inputEvent struct {
	ID         string  `json:"id"`
	CustomerID string  `json:"customer_id"`
	Type       string  `json:"type"`
	Time       string  `json:"time"`
	Value      float64 `json:"value"`
	Segment    string  `json:"segment,omitempty"`
}

// generator makes the event stream: customers alternate between healthy and
// troubled phases of 4–12 simulated days, so many cross into red and back;
// simulated time moves through Window as the stream goes, each event up to
// 36 h early (out of order); 5% of events are sent twice; every 100th record
// is bad, cycling through badKinds.
type generator struct {
	rng       *rand.Rand
	customers int
	events    int
	start     time.Time
	window    time.Duration
	maxLarge  int
	large     int
	phase     []time.Duration // per customer: phase offset
	period    []time.Duration // per customer: phase length
	segment   []string
	now       time.Time
}

func newGenerator(seed uint64, customers, events, maxLarge int, now time.Time) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), customers: customers, events: events,
		window: 30 * 24 * time.Hour, maxLarge: maxLarge, now: now}
	g.start = now.Add(-g.window - time.Hour)
	segs := []string{"", "", "enterprise", "smb"}
	for range customers {
		g.period = append(g.period, time.Duration(4+g.rng.IntN(9))*24*time.Hour)
		g.phase = append(g.phase, time.Duration(g.rng.Int64N(int64(12*24*time.Hour))))
		g.segment = append(g.segment, segs[g.rng.IntN(len(segs))])
	}
	return g
}

// record returns the i-th record(s): one, or two identical ones for a
// duplicated event. kind is "" for a good event.
func (g *generator) record(i int) (vals [][]byte, kind, reason string) {
	if i%100 == 50 {
		k := badKinds[(i/100)%len(badKinds)]
		if k.reason == "too_large" {
			if g.large >= g.maxLarge {
				k = badKinds[0]
			} else {
				g.large++
			}
		}
		return [][]byte{g.bad(k.kind)}, k.kind, k.reason
	}
	c := g.rng.IntN(g.customers)
	t := g.start.Add(time.Duration(float64(g.window) * float64(i) / float64(g.events)))
	t = t.Add(-time.Duration(g.rng.Int64N(int64(36 * time.Hour))))
	troubled := ((t.Sub(g.start)+g.phase[c])/g.period[c])%2 == 1
	ev := inputEvent{ID: fmt.Sprintf("ev-%d", i), CustomerID: fmt.Sprintf("cust-%05d", c), Time: t.UTC().Format(time.RFC3339Nano), Value: 1, Segment: g.segment[c]}
	r := g.rng.IntN(100)
	switch {
	case r < 5:
		ev.Type = "page_viewed" // no signal reads it
	case !troubled && r < 50:
		ev.Type = "login"
	case !troubled && r < 75:
		ev.Type = "feature_used"
	case !troubled && r < 82:
		ev.Type, ev.Value = "nps_submitted", float64(7+g.rng.IntN(4))
	case !troubled && r < 92:
		ev.Type = "kb_viewed"
	case !troubled:
		ev.Type = "payment_succeeded"
	case r < 40:
		ev.Type = "ticket_opened"
	case r < 60:
		ev.Type = "ticket_escalated"
	case r < 72:
		ev.Type, ev.Value = "nps_submitted", float64(g.rng.IntN(4))
	case r < 90:
		ev.Type = "payment_failed"
	default:
		ev.Type = "login"
	}
	b, _ := json.Marshal(ev)
	if g.rng.IntN(20) == 0 {
		return [][]byte{b, b}, "", ""
	}
	return [][]byte{b}, "", ""
}

func (g *generator) bad(kind string) []byte {
	ts := g.now.Add(-time.Hour).UTC().Format(time.RFC3339)
	switch kind {
	case "invalid JSON":
		return []byte(`{"customer_id":"cust-00001","type":"login"`)
	case "missing customer_id":
		return []byte(`{"type":"login","time":"` + ts + `"}`)
	case "missing type":
		return []byte(`{"customer_id":"cust-00001","time":"` + ts + `"}`)
	case "bad time":
		return []byte(`{"customer_id":"cust-00001","type":"login","time":"yesterday"}`)
	case "non-number value":
		return []byte(`{"customer_id":"cust-00001","type":"login","value":"a lot"}`)
	case "value 1e999":
		return []byte(`{"customer_id":"cust-00001","type":"login","value":1e999}`)
	case "time beyond --max-skew":
		// 48 h ahead of the suite's start: beyond the default 1 h skew for
		// any run shorter than two days.
		return []byte(`{"customer_id":"cust-00001","type":"login","time":"` + g.now.Add(48*time.Hour).UTC().Format(time.RFC3339) + `"}`)
	case "larger than 1 MiB":
		return []byte(`{"customer_id":"cust-00001","type":"login","attributes":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`)
	case "bad UTF-8":
		return []byte("{\"customer_id\":\"cust-\xff\",\"type\":\"login\"}")
	case "300-byte customer_id":
		return []byte(`{"customer_id":"` + strings.Repeat("c", 300) + `","type":"login"}`)
	}
	panic("unknown bad kind " + kind)
}

// produce sends the generated stream at about rate records/s (0: as fast as
// possible), unkeyed and round-robin over partitions, and folds what is
// acknowledged into exp.
func produce(ctx context.Context, brokers []string, topic string, g *generator, rate int, exp *Expect, sent *atomic.Int64) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(16<<20),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	if err != nil {
		return fmt.Errorf("cannot create producer: %w", err)
	}
	defer cl.Close()
	start := time.Now()
	n := 0
	for i := 0; i < g.events; i++ {
		vals, kind, reason := g.record(i)
		for _, v := range vals {
			n++
			rec := &kgo.Record{Value: v}
			if kind != "" {
				cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
					if err != nil {
						exp.fail(err)
						return
					}
					exp.ackBad(kind, reason)
				})
				continue
			}
			ev, err := scorer.DecodeEvent(v)
			if err != nil {
				return fmt.Errorf("generated a bad good event %s: %w", v, err)
			}
			cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
				if err != nil {
					exp.fail(err)
					return
				}
				exp.ackGood(&ev, r.Partition, r.Offset)
			})
		}
		if len(vals) == 2 {
			exp.mu.Lock()
			exp.SentTwice++
			exp.mu.Unlock()
		}
		sent.Store(int64(n))
		if rate > 0 && n%200 == 0 {
			if d := time.Duration(float64(n)/float64(rate)*float64(time.Second)) - time.Since(start); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("cannot flush producer: %w", err)
	}
	return nil
}
