package scorer

import (
	"math"
	"time"
)

// CustomerView is the JSON shape of a customer's score, shared by the
// offline `healthscore score` output and the HTTP API. Scores are rounded to
// 2 decimals; the band is computed from the unrounded score.
type CustomerView struct {
	CustomerID string         `json:"customer_id"`
	Score      *float64       `json:"score"` // null when no category has data
	Band       *string        `json:"band"`  // null when there is no score
	Segment    string         `json:"segment"`
	At         string         `json:"at"`
	LastEvent  string         `json:"last_event,omitempty"`
	Events     uint64         `json:"events,omitempty"`
	Model      *ModelRef      `json:"model,omitempty"`
	Categories []CategoryView `json:"categories"`
}

// ModelRef names a model version.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// CategoryView is one category in a CustomerView.
type CategoryView struct {
	Name         string       `json:"name"`
	Score        *float64     `json:"score"` // 0–100; null without data
	Weight       float64      `json:"weight"`
	Contribution float64      `json:"contribution"` // points; they add up to the score
	Signals      []SignalView `json:"signals,omitempty"`
}

// SignalView is one signal in a CategoryView.
type SignalView struct {
	Name         string   `json:"name"`
	Sub          *float64 `json:"sub"` // 0–1 (4 decimals); null without data
	Contribution float64  `json:"contribution"`
}

// Round2 rounds to 2 decimals, the precision of every published score.
func Round2(x float64) float64 { return math.Round(x*100) / 100 }

// FormatTime formats Unix ns as RFC 3339 in UTC, with nanoseconds when set.
func FormatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// View renders an evaluation. With detail it adds signals, the last event
// time, the event count and the model reference.
func (m *Model) View(customerID string, st *State, ev *Evaluation, detail bool) CustomerView {
	v := CustomerView{CustomerID: customerID, Segment: ev.Segment, At: FormatTime(ev.At), Categories: make([]CategoryView, len(ev.Categories))}
	if ev.HasScore {
		s, b := Round2(ev.Score), ev.Band.String()
		v.Score, v.Band = &s, &b
	}
	if detail {
		v.Model = &ModelRef{Name: m.Name, Version: m.Version}
		v.Events = st.Events
		if st.Events > 0 {
			v.LastEvent = FormatTime(st.LastEvent)
		}
	}
	for i, c := range ev.Categories {
		cv := CategoryView{Name: c.Name, Weight: c.Weight, Contribution: Round2(c.Points)}
		if c.HasData {
			s := Round2(100 * c.Score)
			cv.Score = &s
		}
		if detail {
			for _, s := range c.Signals {
				sv := SignalView{Name: s.Name, Contribution: Round2(s.Points)}
				if s.HasData {
					sub := math.Round(s.Sub*1e4) / 1e4
					sv.Sub = &sub
				}
				cv.Signals = append(cv.Signals, sv)
			}
		}
		v.Categories[i] = cv
	}
	return v
}
