package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bar is a progress bar on a writer. On a terminal it redraws in place every
// 200 ms; elsewhere it prints one line when done.
type bar struct {
	w        io.Writer
	term     bool
	label    string
	total    int64
	n        atomic.Int64
	start    time.Time
	stop     chan struct{}
	done     sync.WaitGroup
	finished atomic.Bool
}

func newBar(w io.Writer, term bool, label string, total int64) *bar {
	b := &bar{w: w, term: term, label: label, total: total, start: time.Now(), stop: make(chan struct{})}
	if term {
		b.done.Go(func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-b.stop:
					return
				case <-t.C:
					b.draw()
				}
			}
		})
	}
	return b
}

func (b *bar) add(n int64) { b.n.Add(n) }
func (b *bar) set(n int64) { b.n.Store(n) }

func (b *bar) line() string {
	n := b.n.Load()
	el := time.Since(b.start)
	rate := float64(n) / max(el.Seconds(), 1e-9)
	if b.total <= 0 {
		return fmt.Sprintf("%-10s %s %s/s %5.1fs", b.label, human(float64(n)), human(rate), el.Seconds())
	}
	frac := min(float64(n)/float64(b.total), 1)
	const width = 30
	full := int(frac * width)
	return fmt.Sprintf("%-10s [%s%s] %3.0f%% %s/%s %s/s %5.1fs", b.label,
		strings.Repeat("=", full), strings.Repeat(" ", width-full), 100*frac,
		human(float64(n)), human(float64(b.total)), human(rate), el.Seconds())
}

func (b *bar) draw() { fmt.Fprintf(b.w, "\r%s\x1b[K", b.line()) }

// finish draws the final state and ends the line.
func (b *bar) finish() {
	if b.finished.Swap(true) {
		return
	}
	close(b.stop)
	b.done.Wait()
	if b.term {
		b.draw()
		fmt.Fprintln(b.w)
	} else {
		fmt.Fprintln(b.w, b.line())
	}
}

// human formats n with a k/M suffix.
func human(n float64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", n/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.0fk", n/1e3)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", n/1e3)
	default:
		return fmt.Sprintf("%.0f", n)
	}
}
