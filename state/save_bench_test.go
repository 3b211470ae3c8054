package state_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/internal/testenv"
	"github.com/healthscore/healthscore/state"
)

// BenchmarkSaveScript saves chunks of 256 writes of customers already
// stored (the shape of a live batch: one evaluation each, the band
// unchanged) and reports what Redis spent on them: redis-µs/write is the
// EVALSHA time INFO commandstats counts, per write. Its cases add the parts
// of a write one at a time: the compare-and-set alone, then a due time (the
// schedule entry and its bucket's bound), an outbox for every fourth write,
// and a closed history day. It measures the save script, not the client:
// compare script variants with it in alternating runs, and confirm a win
// with the bench harness.
func BenchmarkSaveScript(b *testing.B) {
	const customers, chunk = 50_000, 256
	for _, bc := range []struct {
		name              string
		due, outbox, hist bool
	}{
		{"cas", false, false, false},
		{"cas+due", true, false, false},
		{"cas+due+outbox", true, true, false},
		{"cas+due+outbox+history-day", true, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, prefix := testenv.Redis(b)
			s, err := state.NewRedis(c, state.Config{Prefix: prefix, HistoryDays: 90})
			if err != nil {
				b.Fatal(err)
			}
			sess, err := s.Bind(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 150)
			versions := make([]uint64, customers)
			write := func(i, round int) state.Write {
				w := state.Write{ID: fmt.Sprintf("c%06d", i), Expected: versions[i], NoPrevOutbox: true,
					Rec: state.Record{Score: 50, Band: state.BandYellow, Data: data}}
				if bc.due {
					w.Due = 1_800_000_000_000 + int64(i)
				}
				if bc.outbox && i%4 == 0 {
					w.Rec.Pending = data[:120]
				}
				if bc.hist {
					w.Days = []state.Day{{Day: 20000 + int64(round), Score: 50, Min: 40, Band: state.BandYellow}}
				}
				return w
			}
			save := func(ws []state.Write, first int) {
				applied, err := appliedOf(sess.Save(b.Context(), ws))
				if err != nil {
					b.Fatal(err)
				}
				for k, ok := range applied {
					if !ok {
						b.Fatalf("write of %s lost its compare-and-set", ws[k].ID)
					}
					versions[first+k]++
				}
			}
			for start := 0; start < customers; start += 10_000 {
				ws := make([]state.Write, 10_000)
				for k := range ws {
					ws[k] = write(start+k, 0)
				}
				save(ws, start)
			}
			before := evalshaUsec(b, c)
			next, writes, round := 0, 0, 1
			for b.Loop() {
				ws := make([]state.Write, chunk)
				for k := range ws {
					ws[k] = write(next+k, round)
				}
				save(ws, next)
				writes += chunk
				if next += chunk; next+chunk > customers {
					next, round = 0, round+1
				}
			}
			b.ReportMetric((evalshaUsec(b, c)-before)/float64(writes), "redis-µs/write")
		})
	}
}

// evalshaUsec is the server's total EVALSHA time so far, in µs.
func evalshaUsec(b *testing.B, c *redis.Client) float64 {
	info, err := c.Info(b.Context(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
			for f := range strings.SplitSeq(rest, ",") {
				if v, ok := strings.CutPrefix(f, "usec="); ok {
					n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
					return n
				}
			}
		}
	}
	b.Fatal("INFO commandstats has no EVALSHA time")
	return 0
}
