package consumer

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/healthscore/healthscore/state"
)

// TestOneClock: the package reads the time only through Config.Now (see its
// comment); a direct time.Now, time.Since or time.Until would be a second
// clock that a test setting Now, or synctest, does not move the same way.
func TestOneClock(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "time" {
				switch sel.Sel.Name {
				case "Now", "Since", "Until":
					t.Errorf("%s: time.%s(): read the time through c.now() (Config.Now)", fset.Position(call.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("checked %d files; the test must run in the package directory", checked)
	}
}

// idleSchedule is a Schedule with nothing due that records the times it
// was asked about.
type idleSchedule struct {
	mu    sync.Mutex
	stats []int64 // nowMs of each DueStats call: one per sweep round
}

func (s *idleSchedule) Claim(context.Context, int, int64, int64, int) ([]string, error) {
	return nil, nil
}
func (s *idleSchedule) Release(context.Context, int64, int64, []state.Released) error { return nil }
func (s *idleSchedule) DueStats(_ context.Context, nowMs int64) (int64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = append(s.stats, nowMs)
	return 0, 0, nil
}
func (s *idleSchedule) Shards() int                                           { return 1 }
func (s *idleSchedule) TrackOverrides(context.Context, []state.Due) error     { return nil }
func (s *idleSchedule) ActiveOverrides(context.Context, int64) (int64, error) { return 0, nil }

func (s *idleSchedule) rounds() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.stats...)
}

// TestSweeperHoldFakeTime: after a sign of backlog, the sweeper's rounds
// wait sweepHold and then resume, to the tick, in synctest's fake time (the
// consumer's clock and its ticker both run on it; nothing sleeps for real).
func TestSweeperHoldFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 100 * time.Millisecond
		sch := &idleSchedule{}
		m, err := newMetrics(prometheus.NewRegistry(), time.Now)
		if err != nil {
			t.Fatal(err)
		}
		c := &Consumer{cfg: Config{Schedule: sch, SweepInterval: interval, Now: time.Now}, log: zap.NewNop(), metrics: m}
		start := time.Now()
		c.holdSweeper()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); c.sweep(ctx) }()

		// Just before the hold ends: the ticks came, and each waited.
		time.Sleep(sweepHold - interval/2)
		synctest.Wait()
		if r := sch.rounds(); len(r) != 0 {
			t.Fatalf("%d sweep rounds during the hold (at %v)", len(r), r)
		}
		if got := testutil.ToFloat64(m.sweeperHeld); got != 1 {
			t.Fatalf("healthscore_sweeper_held = %v during the hold, want 1", got)
		}
		// The first tick after it sweeps, at the consumer's clock.
		time.Sleep(interval)
		synctest.Wait()
		want := start.Add(sweepHold).UnixMilli()
		if r := sch.rounds(); len(r) != 1 || r[0] != want {
			t.Fatalf("sweep rounds at %v, want one at %d (the hold's end)", r, want)
		}
		if got := testutil.ToFloat64(m.sweeperHeld); got != 0 {
			t.Errorf("healthscore_sweeper_held = %v after the hold, want 0", got)
		}
		if got := c.swept.Load(); got != start.Add(sweepHold).UnixNano() {
			t.Errorf("swept = %d, want the round's start %d", got, start.Add(sweepHold).UnixNano())
		}
		cancel()
		<-done
	})
}
