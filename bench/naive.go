package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
)

// naive measures what a first attempt would do, one event at a time: GET
// the customer's state, fold the event with the scorer, SET the state, and
// produce the output (the same outputs the pipeline decides, encoded by the
// same encoder) synchronously, before the next event. It reads the first
// NaiveEvents records of the events topic. It keeps no offsets and commits
// nothing, which only flatters it.
func (r *run) naive(ctx context.Context) error {
	cfg := r.cfg
	total := cfg.NaiveEvents
	enc, err := alerts.NewEncoder(alerts.Config{ScoreTopic: r.topics.naive, AlertTopic: r.topics.naive, DLQTopic: r.topics.dlq})
	if err != nil {
		return err
	}
	cl, err := r.client(
		kgo.ConsumeTopics(r.topics.events),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	m := r.model
	prefix := "hsbench-" + r.id + "-naive:"
	b := newBar(cfg.Progress, cfg.Terminal, "naive", int64(total))
	defer b.finish()
	var outs []*kgo.Record
	var buf []byte
	n := 0
	start := time.Now()
	for n < total {
		fs := cl.PollRecords(ctx, 500)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("cannot fetch: %w", err)
		}
		for _, rec := range fs.Records() {
			if n == total {
				break
			}
			n++
			b.add(1)
			ev, err := scorer.DecodeEvent(rec.Value)
			if err != nil {
				return fmt.Errorf("cannot decode %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
			}
			if !ev.HasTime {
				ev.Time = rec.Timestamp.UnixNano()
			}
			key := prefix + ev.CustomerID
			st := m.NewState()
			data, err := r.env.rdb.Get(ctx, key).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return fmt.Errorf("cannot get state: %w", err)
			default:
				if st, err = m.DecodeState(data); err != nil {
					return fmt.Errorf("cannot decode state of %s: %w", ev.CustomerID, err)
				}
			}
			if !m.Apply(st, &ev) {
				continue // a type no signal reads
			}
			o := m.Step(st, st.LastEvent)
			buf = m.AppendState(buf[:0], st)
			if err := r.env.rdb.Set(ctx, key, buf, 0).Err(); err != nil {
				return fmt.Errorf("cannot set state: %w", err)
			}
			if !o.Changed && o.Alert == scorer.AlertNone {
				continue
			}
			outs = enc.AppendRecords(outs[:0], &alerts.Change{
				CustomerID: ev.CustomerID, Outcome: o, Model: m, EventTime: st.LastEvent,
				Cause: alerts.Cause{EventID: ev.ID, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset},
			})
			for _, out := range outs {
				if err := cl.ProduceSync(ctx, out).FirstErr(); err != nil {
					return fmt.Errorf("cannot produce output: %w", err)
				}
			}
		}
	}
	el := time.Since(start)
	r.res.NaiveEvents = total
	r.res.NaiveEventsPerS = float64(total) / el.Seconds()
	return nil
}
