package scorer

import (
	"math"
	"time"
)

// CustomerView is the JSON shape of a customer's score, shared by the
// offline `healthscore score` output and the HTTP API. Scores are rounded to
// 2 decimals; the band is computed from the unrounded score.
type CustomerView struct {
	CustomerID string   `json:"customer_id"`
	Score      *float64 `json:"score"` // null when no category has data
	Band       *string  `json:"band"`  // null when there is no score
	// EventScore and EventBand are what the events give (the categories add
	// up to EventScore); equal to Score and Band unless an override is in
	// force. EventBand has the hysteresis against the last published band,
	// as the pipeline would publish it if the override ended at At.
	EventScore *float64       `json:"event_score"`
	EventBand  *string        `json:"event_band"`
	Override   *OverrideView  `json:"override"` // null unless in force at At
	Forecast   ForecastView   `json:"forecast"`
	Segment    string         `json:"segment"`
	At         string         `json:"at"`
	LastEvent  string         `json:"last_event,omitempty"`
	Events     uint64         `json:"events,omitempty"`
	Model      *ModelRef      `json:"model,omitempty"`
	Categories []CategoryView `json:"categories"`
}

// OverrideView is a manual override in force (see TypeOverride).
type OverrideView struct {
	Score     float64 `json:"score"`
	By        string  `json:"by"`
	Reason    string  `json:"reason"`
	SetAt     string  `json:"set_at"`
	ExpiresAt *string `json:"expires_at"` // null: no expiry
}

// ForecastView is a Forecast: with no further event, the first instant
// after At at which the band becomes yellow or worse, and red; null when
// already there or not within HorizonDays.
type ForecastView struct {
	YellowAt    *string `json:"yellow_at"`
	RedAt       *string `json:"red_at"`
	HorizonDays int     `json:"horizon_days"`
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
	if ev.HasComputed {
		s, b := Round2(ev.Computed), m.band(ev.Computed, st.Band, m.profileFor(st.Segment).bands).String()
		v.EventScore, v.EventBand = &s, &b
	}
	if o := ev.Override; o != nil {
		ov := &OverrideView{Score: Round2(o.Value), By: o.By, Reason: o.Reason, SetAt: FormatTime(o.At)}
		if o.Expires != NoExpiry {
			e := FormatTime(o.Expires)
			ov.ExpiresAt = &e
		}
		v.Override = ov
	}
	v.Forecast = m.Forecast(st, ev.At).View()
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

// View renders a forecast.
func (f Forecast) View() ForecastView {
	v := ForecastView{HorizonDays: int(ForecastHorizon / (24 * time.Hour))}
	if f.HasYellow {
		s := FormatTime(f.YellowAt)
		v.YellowAt = &s
	}
	if f.HasRed {
		s := FormatTime(f.RedAt)
		v.RedAt = &s
	}
	return v
}
