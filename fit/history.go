package fit

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

// History is an event log held in memory, per customer in time order,
// strictly before a cut-off.
type History struct {
	Until     int64                     // Unix ns: every event is earlier
	Customers []string                  // sorted
	Events    map[string][]scorer.Event // per customer, by time (stable)
	Lines     int                       // non-blank lines read
	Late      int                       // valid events at or after Until, dropped unread
	BadLines  int
}

// ReadHistory reads JSONL events and keeps those strictly before until (as
// `healthscore backtest` scores at a cut-off). Later events are counted
// and dropped as soon as their time is decoded:
// nothing else of them is kept. Bad lines go to onError (may be nil) and
// are counted; the error is for I/O failures only.
func ReadHistory(inputs []offline.Input, until int64, onError func(*offline.LineError)) (*History, error) {
	h := &History{Until: until, Events: map[string][]scorer.Event{}}
	for _, in := range inputs {
		sc := bufio.NewScanner(in.R)
		sc.Buffer(make([]byte, 64<<10), offline.MaxLine+2)
		line := 0
		for sc.Scan() {
			line++
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			h.Lines++
			ev, err := scorer.DecodeEvent(b)
			if err == nil && !ev.HasTime {
				err = errors.New("missing_time: field \"time\" is required offline (RFC 3339)")
			}
			if err != nil {
				h.BadLines++
				if onError != nil {
					onError(&offline.LineError{File: in.Name, Line: line, Err: err})
				}
				continue
			}
			if ev.Time >= until {
				h.Late++
				continue
			}
			h.Events[ev.CustomerID] = append(h.Events[ev.CustomerID], ev)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", in.Name, err)
		}
	}
	h.Customers = make([]string, 0, len(h.Events))
	for id, evs := range h.Events {
		slices.SortStableFunc(evs, func(a, b scorer.Event) int { return cmp.Compare(a.Time, b.Time) })
		h.Customers = append(h.Customers, id)
	}
	sort.Strings(h.Customers)
	return h, nil
}

// before returns the prefix of evs strictly before t (evs sorted by time).
func before(evs []scorer.Event, t int64) []scorer.Event {
	n := sort.Search(len(evs), func(i int) bool { return evs[i].Time >= t })
	return evs[:n]
}
