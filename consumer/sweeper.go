package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/healthscore/healthscore/state"
)

// Schedule is what the sweeper needs from the schedule store (see
// state.Redis).
type Schedule interface {
	Claim(ctx context.Context, shard int, nowMs, leaseUntilMs int64, limit int) ([]string, error)
	Release(ctx context.Context, nowMs, leaseUntilMs int64, ds []state.Released) error
	DueStats(ctx context.Context, nowMs int64) (due, oldestMs int64, err error)
	Shards() int
	TrackOverrides(ctx context.Context, ds []state.Due) error
	ActiveOverrides(ctx context.Context, nowMs int64) (int64, error)
}

// sweep rescores due customers every SweepInterval until ctx ends. Claims
// are leased, so several instances sweep the same shards safely: a customer
// is claimed by one of them at a time, and the compare-and-set on its state
// keeps a sweeper whose lease ran out from publishing over a newer state.
// The cost of a round grows with the customers due, not with the customers
// scheduled. Rounds wait while the consumer is catching up on a backlog
// (see noteBacklog).
func (c *Consumer) sweep(ctx context.Context) {
	t := time.NewTicker(c.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.held() {
			c.metrics.sweeperHeld.Set(1)
			continue
		}
		c.metrics.sweeperHeld.Set(0)
		if err := c.sweepOnce(ctx); err != nil && ctx.Err() == nil {
			c.fail("sweep", err)
		}
	}
}

// held reports whether sweeping waits for the consumer to catch up.
func (c *Consumer) held() bool { return c.now().UnixNano() < c.heldUntil.Load() }

// sweepOnce claims and rescores every customer due now, shard by shard.
func (c *Consumer) sweepOnce(ctx context.Context) error {
	sch := c.cfg.Schedule
	now := c.cfg.Now()
	nowMs := now.UnixMilli()
	if due, oldest, err := sch.DueStats(ctx, nowMs); err == nil {
		c.metrics.timersDue.Set(float64(due))
		lag := 0.0
		if oldest > 0 && oldest < nowMs {
			lag = float64(nowMs-oldest) / 1000
		}
		c.metrics.sweeperLag.Set(lag)
	}
	if n, err := sch.ActiveOverrides(ctx, nowMs); err == nil {
		c.metrics.overrides.Set(float64(n))
	}
	n := sch.Shards()
	first := rand.IntN(n) // spread instances over the shards
	for k := range n {
		shard := (first + k) % n
		for {
			if c.held() {
				return nil // a backlog appeared during the round
			}
			lease := c.cfg.Now().Add(c.cfg.SweepLease).UnixMilli()
			ids, err := sch.Claim(ctx, shard, nowMs, lease, c.cfg.SweepBatch)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
			b := &batch{customers: make([]*customerBatch, len(ids))}
			for i, id := range ids {
				b.customers[i] = &customerBatch{id: id, decayAt: now.UnixNano()}
			}
			// The batch context ends with shutdown; an unfinished claim is
			// taken again when its lease ends.
			sess, err := c.openSession(ctx)
			if err != nil {
				return err
			}
			if err := c.processFlushed(ctx, sess, b); err != nil {
				c.refused(sess, err)
				return err
			}
			dues := make([]state.Released, len(ids))
			for i, cb := range b.customers {
				dues[i] = state.Released{ID: cb.id, At: cb.nextDue, Version: cb.version}
			}
			if err := sch.Release(ctx, nowMs, lease, dues); err != nil {
				return err
			}
			c.log.Debug("swept due customers", zap.Int("shard", shard), zap.Int("customers", len(ids)))
			if len(ids) < c.cfg.SweepBatch {
				break
			}
		}
	}
	c.swept.Store(now.UnixNano())
	return nil
}

// Lister lists the customers of a band's index (see state.Redis.BandIDs).
type Lister interface {
	BandIDs(ctx context.Context, band string) ([]string, error)
}

// RescoreAll evaluates every customer in the band index with the current
// model, at the current time, and publishes what changed (cause
// model_reload), in batches of SweepBatch. Progress is the gauge
// healthscore_reload_rescore_pending. It returns the customers rescored.
// The list is taken first, so customers that change band during the pass
// are neither skipped nor done twice.
func (c *Consumer) RescoreAll(ctx context.Context, l Lister) (int, error) {
	var ids []string
	for _, band := range state.Bands {
		b, err := l.BandIDs(ctx, band)
		if err != nil {
			return 0, err
		}
		ids = append(ids, b...)
	}
	defer c.metrics.rescorePending.Set(0)
	at := c.cfg.Now().UnixNano()
	done := 0
	for len(ids) > 0 {
		c.metrics.rescorePending.Set(float64(len(ids)))
		n := min(len(ids), c.cfg.SweepBatch)
		b := &batch{customers: make([]*customerBatch, n)}
		for i, id := range ids[:n] {
			b.customers[i] = &customerBatch{id: id, decayAt: at, reload: true}
		}
		sess, err := c.openSession(ctx)
		if err != nil {
			return done, err
		}
		if err := c.processFlushed(ctx, sess, b); err != nil {
			c.refused(sess, err)
			return done, err
		}
		done += n
		ids = ids[n:]
	}
	return done, nil
}

// refused handles a sweep's or rescoring pass's failure: when the session
// was refused because Redis restarted since it was opened, and it is still
// the current one, the main loop is told to rewind (see Consumer.stale).
// Otherwise, on an idle consumer, nothing would ever open a new session and
// every later round would be refused too: no decay alert would be published
// until an event arrived.
func (c *Consumer) refused(sess state.Bound, err error) {
	if !errors.Is(err, state.ErrServerChanged) {
		return
	}
	cur := c.session.Load()
	if cur == nil {
		return // rewound meanwhile: the next round opens a new session
	}
	// A session the loop opened since is not stale. Implementations are
	// pointers in practice; one that cannot be compared is taken as current
	// (an extra rewind only costs a redelivery).
	if reflect.TypeOf(sess).Comparable() && reflect.TypeOf(*cur).Comparable() && *cur != sess {
		return
	}
	c.stale.Store(true)
}

// processFlushed is process for batches without offsets to commit (sweeps,
// rescoring passes): the outboxes their outputs left are deleted before it
// returns, since no commit flushes them (see commitPending).
func (c *Consumer) processFlushed(ctx context.Context, sess state.Bound, b *batch) error {
	if err := c.process(ctx, sess, b); err != nil {
		return err
	}
	if err := sess.Flush(ctx); err != nil {
		return fmt.Errorf("cannot delete acknowledged outboxes: %w", err)
	}
	return nil
}
