package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/scorer"
)

// stallTimeout ends a phase that makes no progress for this long.
const stallTimeout = 60 * time.Second

// bare measures the limit: Instances consumers in a fresh group, each
// polling batches of MaxBatch records like the pipeline (one goroutine per
// client, rebalances blocked while a batch is in hand) and decoding every
// record with scorer.DecodeEvent — and nothing else: no state, no outputs,
// no commits.
func (r *run) bare(ctx context.Context) error {
	cfg := r.cfg
	total := int64(cfg.Events)
	b := newBar(cfg.Progress, cfg.Terminal, "bare", total)
	defer b.finish()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var count, bad atomic.Int64
	var doneAt atomic.Pointer[time.Time] // when the last record was decoded
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Instances)
	start := time.Now()
	for range cfg.Instances {
		cl, err := r.client(
			kgo.ConsumerGroup("hsbench-"+r.id+"-bare"),
			kgo.ConsumeTopics(r.topics.events),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer cl.Close()
			for ctx.Err() == nil {
				fs := cl.PollRecords(ctx, cfg.MaxBatch)
				fs.EachError(func(t string, p int32, err error) {
					if ctx.Err() == nil {
						select {
						case errc <- fmt.Errorf("cannot fetch %s/%d: %w", t, p, err):
						default:
						}
					}
				})
				n := 0
				fs.EachRecord(func(rec *kgo.Record) {
					if _, err := scorer.DecodeEvent(rec.Value); err != nil {
						bad.Add(1)
					}
					n++
				})
				cl.AllowRebalance()
				b.add(int64(n))
				if c := count.Add(int64(n)); c >= total && c-int64(n) < total {
					now := time.Now()
					doneAt.Store(&now)
					cancel()
				}
			}
		})
	}
	err := waitProgress(ctx, func() (int64, error) {
		select {
		case err := <-errc:
			return 0, err
		default:
			return count.Load(), nil
		}
	}, total)
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}
	el := doneAt.Load().Sub(start)
	if n := bad.Load(); n > 0 {
		return fmt.Errorf("%d records did not decode", n)
	}
	r.res.BareSeconds = el.Seconds()
	r.res.BareEventsPerS = float64(total) / el.Seconds()
	return nil
}

// waitProgress polls progress every 20 ms until it reaches total. It fails
// when progress stalls for stallTimeout or ctx ends before total.
func waitProgress(ctx context.Context, progress func() (int64, error), total int64) error {
	last, lastAt := int64(-1), time.Now()
	for {
		n, err := progress()
		if err != nil {
			return err
		}
		if n >= total {
			return nil
		}
		if n != last {
			last, lastAt = n, time.Now()
		} else if time.Since(lastAt) > stallTimeout {
			return fmt.Errorf("stalled at %d of %d events for %s", n, total, stallTimeout)
		}
		select {
		case <-ctx.Done():
			if n, err := progress(); err == nil && n >= total {
				return nil
			}
			return fmt.Errorf("stopped at %d of %d events: %w", n, total, context.Cause(ctx))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
