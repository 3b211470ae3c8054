package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/healthscore/healthscore/offline"
)

// offline measures `healthscore score` on one core: offline.Fold over the
// first OfflineEvents preloaded events as JSONL in memory, then rendering
// every customer's line (to io.Discard), with GOMAXPROCS 1 for the duration.
func (r *run) offline() error {
	cfg := r.cfg
	n := cfg.OfflineEvents
	if n == 0 {
		return nil
	}
	g := newGen(cfg.Seed, cfg.Events, cfg.Customers, r.end)
	var in bytes.Buffer
	var line []byte
	for range n {
		line = g.next(line[:0])
		in.Write(line)
		in.WriteByte('\n')
	}
	b := newBar(cfg.Progress, cfg.Terminal, "offline", int64(n))
	defer b.finish()
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	runtime.GC()
	debug.FreeOSMemory()
	start := time.Now()
	res, err := offline.Fold([]offline.Input{{Name: "bench", R: bytes.NewReader(in.Bytes())}}, offline.Options{Model: r.model})
	if err != nil {
		return err
	}
	if err := res.Write(io.Discard); err != nil {
		return err
	}
	el := time.Since(start)
	b.set(int64(n))
	if res.BadLines > 0 {
		return fmt.Errorf("%d bad lines", res.BadLines)
	}
	r.res.OfflineEvents = n
	r.res.OfflineEventsPerS = float64(n) / el.Seconds()
	return nil
}

// deleteKeys removes the run's keys from an external Redis.
func (r *run) deleteKeys(ctx context.Context) error {
	for _, prefix := range []string{r.prefix, "hsbench-" + r.id + "-naive:"} {
		iter := r.env.rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 1000 {
				if err := r.env.rdb.Unlink(ctx, keys...).Err(); err != nil {
					return err
				}
				keys = keys[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := r.env.rdb.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}
