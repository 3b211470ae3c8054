package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// sustain searches for the highest paced rate the running pipeline
// sustains (see trial for the definition), starting from half the bulk
// rate, within cfg.SustainBudget, and records it and every trial.
func (r *run) sustain(ctx context.Context, adm *kadm.Client, group string) error {
	cfg := r.cfg
	bulk := r.res.PipelineEventsPerS
	// The bulk phase's time includes starting the processes and joining
	// the group, so a short run's bulk rate can be below what paced load
	// sustains: the ceiling is twice it.
	s := rateSearch{start: bulk / 2, min: bulk / 100, max: 2 * bulk, ratio: cfg.SustainRatio, trials: cfg.SustainTrials}
	prod, err := r.client(kgo.DefaultProduceTopic(r.topics.events), kgo.ProducerLinger(2*time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxBufferedRecords(1_000_000))
	if err != nil {
		return err
	}
	defer prod.Close()
	g := newGen(cfg.Seed+2, 1<<30, cfg.Customers, time.Now())
	g.idPrefix = "s"
	deadline := time.Now().Add(cfg.SustainBudget)
	fmt.Fprintf(cfg.Log, "rate search: from %s events/s (half the bulk rate), %s windows after %s of warm-up, lag bound %s of input, at most %d trials in %s\n",
		human(s.start), cfg.SustainWindow, cfg.SustainWindow/4, cfg.LagBound, s.trials, cfg.SustainBudget)
	start := time.Now()
	n := 0
	best, trials, err := s.search(func(rate float64) (bool, string, error) {
		// A trial takes its warm-up and window, and its drain: at most
		// about as long again when it fails. The first always runs.
		if n > 0 && time.Now().Add(cfg.SustainWindow*5/2).After(deadline) {
			return false, "", errNoTrialTime
		}
		n++
		ok, why, err := r.trial(ctx, adm, group, prod, g, rate)
		if err == nil {
			verdict := "not sustained"
			if ok {
				verdict = "sustained"
			}
			fmt.Fprintf(cfg.Log, "rate search: %s events/s %s (%s)\n", human(rate), verdict, why)
		}
		return ok, why, err
	})
	r.res.RateTrials = trials
	r.res.SustainSeconds = time.Since(start).Seconds()
	if err != nil {
		return err
	}
	r.res.SustainedEventsPerS = best
	if best >= s.max {
		r.note("the rate search's ceiling (twice the bulk rate, %s events/s) was sustained: the highest sustained rate may be higher", human(s.max))
	}
	if bulk > 0 {
		r.res.SustainedOverBulk = best / bulk
	}
	return nil
}

// trial produces events at rate for a warm-up of a quarter of
// cfg.SustainWindow and then the window, sampling the group's lag (input
// records acknowledged by the broker and not yet committed by the group)
// every 200 ms during the window. The rate is sustained when, over the
// window:
//
//   - the lag never exceeds rate × cfg.LagBound (the pipeline is never
//     further behind than that much input),
//   - the lag does not grow: its least-squares trend over the window adds
//     at most half that bound, and
//   - the harness offered at least 95% of the rate (it shares the cores).
//
// It then waits until the group has committed everything, so the next
// trial starts from no lag.
func (r *run) trial(ctx context.Context, adm *kadm.Client, group string, prod *kgo.Client, g *gen, rate float64) (bool, string, error) {
	cfg := r.cfg
	warm, window := cfg.SustainWindow/4, cfg.SustainWindow
	total := int(rate * (warm + window).Seconds())
	if total < 1 {
		return false, "no event at this rate", nil
	}
	b := newBar(cfg.Progress, cfg.Terminal, "search "+human(rate)+"/s", int64(total))

	var mu sync.Mutex
	var firstErr error
	var acked atomic.Int64
	type sample struct {
		at  float64 // seconds into the window
		lag int64
	}
	var samples []sample
	var sampleErr error
	start := time.Now()
	sctx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTimer(warm)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			t.Reset(200 * time.Millisecond)
			qctx, cancel := context.WithTimeout(sctx, 5*time.Second)
			end, err := endOffsets(qctx, adm, r.topics.events)
			var done int64
			if err == nil {
				done, err = committed(qctx, adm, group, r.topics.events)
			}
			cancel()
			if sctx.Err() != nil {
				return
			}
			if err != nil {
				sampleErr = err
				return
			}
			samples = append(samples, sample{time.Since(start).Seconds() - warm.Seconds(), end - done})
		}
	})

	tick := time.NewTicker(time.Millisecond)
	sent := 0
	for sent < total && ctx.Err() == nil {
		<-tick.C
		due := min(total, int(rate*time.Since(start).Seconds())+1)
		for ; sent < due; sent++ {
			v := g.nextAt(nil, time.Now())
			prod.Produce(ctx, &kgo.Record{Key: v[g.ks:g.ke], Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				acked.Add(1)
			})
		}
		b.set(int64(sent))
	}
	tick.Stop()
	elapsed := time.Since(start)
	stopSampling()
	sampler.Wait()
	b.finish()
	if err := prod.Flush(ctx); err != nil {
		return false, "", fmt.Errorf("cannot flush producer: %w", err)
	}
	mu.Lock()
	perr := firstErr
	mu.Unlock()
	if perr != nil {
		return false, "", fmt.Errorf("cannot produce paced events: %w", perr)
	}
	if sampleErr != nil {
		return false, "", fmt.Errorf("cannot sample the group's lag: %w", sampleErr)
	}
	if err := ctx.Err(); err != nil {
		return false, "", err
	}

	bound := rate * cfg.LagBound.Seconds()
	var maxLag int64
	xs, ys := make([]float64, len(samples)), make([]float64, len(samples))
	for i, s := range samples {
		maxLag = max(maxLag, s.lag)
		xs[i], ys[i] = s.at, float64(s.lag)
	}
	growth := slope(xs, ys) * window.Seconds()
	offered := float64(sent) / elapsed.Seconds()
	ok := len(samples) >= 3 && float64(maxLag) <= bound && growth <= bound/2 && offered >= 0.95*rate
	why := fmt.Sprintf("max lag %s of bound %s, trend %+.0f over %s, offered %s/s, %d samples",
		human(float64(maxLag)), human(bound), growth, window, human(offered), len(samples))

	// Drain before the next trial (or the latency rows).
	end, err := endOffsets(ctx, adm, r.topics.events)
	if err != nil {
		return false, "", err
	}
	if err := waitProgress(ctx, func() (int64, error) { return committed(ctx, adm, group, r.topics.events) }, end); err != nil {
		return false, "", fmt.Errorf("waiting for the group to catch up after %s events/s: %w", human(rate), err)
	}
	return ok, why, nil
}

// slope returns the least-squares slope of ys over xs (0 for fewer than
// two distinct xs).
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
