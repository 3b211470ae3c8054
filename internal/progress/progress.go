// Package progress owns the progress bar of the long offline commands
// (simulate, backtest): one line on a terminal, redrawn in place, written
// only when the fraction done moves by a whole percent. It is hand-written
// (30 lines) rather than schollz/progressbar, which would bring three
// modules for the same single line.
package progress

import (
	"fmt"
	"io"
	"strings"
)

// Bar draws "label [=====>    ]  45% (164/365)" on W. The zero Bar (nil
// W) draws nothing, so callers need no condition.
type Bar struct {
	W     io.Writer
	Label string
	Total int
	last  int // last percent drawn; 0 before the first draw
	drawn bool
}

const width = 30

// Set draws the bar at done out of Total when the percent changed.
func (b *Bar) Set(done int) {
	if b == nil || b.W == nil || b.Total <= 0 {
		return
	}
	done = min(max(done, 0), b.Total)
	pct := done * 100 / b.Total
	if b.drawn && pct == b.last {
		return
	}
	b.last, b.drawn = pct, true
	n := done * width / b.Total
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	fmt.Fprintf(b.W, "\r%s [%s] %3d%% (%d/%d)", b.Label, bar, pct, done, b.Total)
}

// Done ends the bar's line, if one was drawn.
func (b *Bar) Done() {
	if b != nil && b.W != nil && b.drawn {
		fmt.Fprintln(b.W)
	}
}
