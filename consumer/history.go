package consumer

import (
	"encoding/json"
	"slices"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// Score history on the write path: fold keeps the current day's point in
// the scorer state (scorer.BeginDay, scorer.NoteDay), and a save that
// closes days or publishes a band change or an alert carries them
// (state.Write.Days, state.Write.Changes); the save script writes them only
// when its compare-and-set applies, so a replay appends nothing twice.

// DefaultHistoryDays is the service's default history window.
const DefaultHistoryDays = 90

// cloneState copies st deeply enough for Apply not to change the copy
// (Apply changes signals in place and replaces Override).
func cloneState(st *scorer.State) *scorer.State {
	c := *st
	c.Signals = slices.Clone(st.Signals)
	return &c
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

// Change is a stored band change or alert, the JSON the history endpoint
// serves in "changes" (see docs/api.md).
type Change struct {
	Type     string          `json:"type"`
	Time     string          `json:"time"`
	Score    float64         `json:"score"`
	Band     string          `json:"band"`
	PrevBand *string         `json:"prev_band"`
	Drivers  []scorer.Driver `json:"drivers"`
}

// historyChanges are the entries an outcome adds to the customer's last
// changes, oldest first: a score change that changes the band (not a first
// score), then a low or recovered alert, then a dropped alert; each with
// the drivers the output events carry.
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
	c := Change{Time: scorer.FormatTime(at), Score: scorer.Round2(o.Eval.Score), Band: o.Eval.Band.String(), Drivers: make([]scorer.Driver, len(o.Drivers))}
	if o.PrevBand != scorer.BandNone {
		pb := o.PrevBand.String()
		c.PrevBand = &pb
	}
	for i, d := range o.Drivers {
		d.Points = scorer.Round2(d.Points)
		c.Drivers[i] = d
	}
	out := make([][]byte, 0, len(types))
	for _, t := range types {
		c.Type = t
		b, err := json.Marshal(c)
		if err != nil {
			continue // cannot happen: plain strings and finite numbers
		}
		out = append(out, b)
	}
	return out
}
