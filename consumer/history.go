package consumer

import (
	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// Score history on the write path: fold keeps the current day's point in
// the scorer state (scorer.ApplyWithHistory for each event, then
// scorer.BeginDay and scorer.NoteDay around Step), and a save that
// closes days or publishes a band change or an alert carries them
// (state.Write.Days, state.Write.Changes); the save script writes them only
// when its compare-and-set applies, so a replay appends nothing twice.

// DefaultHistoryDays is the service's default history window.
const DefaultHistoryDays = 90

// windowDays keeps the closed days within the window of keep days that
// ends on day today (a batch's events may close more).
func windowDays(ps []scorer.DayPoint, today int64, keep int) []scorer.DayPoint {
	i := 0
	for i < len(ps) && ps[i].Day <= today-int64(keep) {
		i++
	}
	return ps[i:]
}

// historyDays converts closed days for the store.
func historyDays(ps []scorer.DayPoint) []state.Day {
	if len(ps) == 0 {
		return nil
	}
	ds := make([]state.Day, len(ps))
	for i, p := range ps {
		ds[i] = state.Day{Day: p.Day, Score: p.Score, Min: p.Min, Band: p.Band.String()}
	}
	return ds
}

// historyChanges are the entries an outcome adds to the customer's last
// changes (scorer.AppendChange encodings), oldest first: a score change
// that changes the band (not a first score), then a low or recovered alert,
// then a dropped alert; each with the drivers the output events carry.
func historyChanges(o *scorer.Outcome, at int64) [][]byte {
	var types []string
	if o.Changed && o.BandChanged && !o.FirstScore {
		types = append(types, alerts.TypeScoreChanged)
	}
	switch o.Alert {
	case scorer.AlertLow:
		types = append(types, alerts.TypeLow)
	case scorer.AlertRecovered:
		types = append(types, alerts.TypeRecovered)
	}
	if o.Dropped {
		types = append(types, alerts.TypeDropped)
	}
	if len(types) == 0 || !o.Eval.HasScore {
		return nil
	}
	c := scorer.Change{At: at, Score: o.Eval.Score, Band: o.Eval.Band, PrevBand: o.PrevBand, Drivers: o.Drivers}
	out := make([][]byte, 0, len(types))
	for _, t := range types {
		c.Type = t
		b, err := scorer.AppendChange(nil, &c)
		if err != nil {
			continue // cannot happen: known types, scores 0–100, model names
		}
		out = append(out, b)
	}
	return out
}
