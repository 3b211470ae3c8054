package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

// ModelView is the /v1/model answer: the model in use (after a reload, the
// reloaded one), its parameters as the scorer applies them (defaults
// filled in) and its file as loaded.
type ModelView struct {
	Name           string             `json:"name"`
	Version        string             `json:"version"`
	Bands          BandsView          `json:"bands"`
	Hysteresis     float64            `json:"hysteresis"`
	ChangeMinDelta float64            `json:"change_min_delta"`
	DecayStep      float64            `json:"decay_step"`
	Trend          *TrendView         `json:"trend"` // null without a trend section
	Categories     []ModelCategory    `json:"categories"`
	Segments       []ModelSegmentView `json:"segments"` // by name
	YAML           string             `json:"yaml"`
}

// BandsView is a model's band boundaries: red below RedBelow, green at or
// above GreenAtOrAbove, yellow between (before hysteresis).
type BandsView struct {
	RedBelow       float64 `json:"red_below"`
	GreenAtOrAbove float64 `json:"green_at_or_above"`
}

// TrendView is a model's trend section (health.dropped alerts).
type TrendView struct {
	DropPoints       float64 `json:"drop_points"`
	BaselineHalfLife string  `json:"baseline_half_life"`
	Cooldown         string  `json:"cooldown"`
}

// ModelCategory is one category of the model, with its base weight.
type ModelCategory struct {
	Name    string        `json:"name"`
	Weight  float64       `json:"weight"`
	Signals []ModelSignal `json:"signals"`
}

// ModelSignal is one signal of the model. Target is set for count and sum
// signals (null otherwise), Min and Max for average signals.
type ModelSignal struct {
	Name            string   `json:"name"`
	Event           string   `json:"event"`
	Kind            string   `json:"kind"`
	Direction       string   `json:"direction"` // positive or negative
	HalfLife        string   `json:"half_life"` // as in the model file's style, e.g. "7d", "36h"
	HalfLifeSeconds float64  `json:"half_life_seconds"`
	Target          *float64 `json:"target"`
	Min             *float64 `json:"min"`
	Max             *float64 `json:"max"`
}

// ModelSegmentView is one segment and what it overrides: its bands (the
// base bands when it sets none), and the category weights and signal
// targets it sets (only those).
type ModelSegmentView struct {
	Name    string             `json:"name"`
	Bands   BandsView          `json:"bands"`
	Weights map[string]float64 `json:"weights"`
	Targets map[string]float64 `json:"targets"`
}

// formatDuration writes a duration the way model files do: whole days as
// "7d", whole hours as "36h", whole minutes as "90m", else Go's form.
func formatDuration(d time.Duration) string {
	switch {
	case d > 0 && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return d.String()
	}
}

// NewModelView describes m.
func NewModelView(m *scorer.Model) ModelView {
	v := ModelView{Name: m.Name, Version: m.Version, Bands: BandsView{RedBelow: m.Bands.Red, GreenAtOrAbove: m.Bands.Yellow},
		Hysteresis: m.Hysteresis, ChangeMinDelta: m.ChangeMinDelta, DecayStep: m.DecayStep,
		Categories: make([]ModelCategory, len(m.Categories)), Segments: []ModelSegmentView{}, YAML: string(m.Source())}
	if t := m.Trend; t != nil {
		v.Trend = &TrendView{DropPoints: t.DropPoints, BaselineHalfLife: formatDuration(t.BaselineHalfLife), Cooldown: formatDuration(t.Cooldown)}
	}
	for i, c := range m.Categories {
		mc := ModelCategory{Name: c.Name, Weight: c.Weight, Signals: make([]ModelSignal, len(c.Signals))}
		for k, s := range c.Signals {
			ms := ModelSignal{Name: s.Name, Event: s.Event, Kind: s.Kind.String(), Direction: "positive",
				HalfLife: formatDuration(s.HalfLife), HalfLifeSeconds: s.HalfLife.Seconds()}
			if s.Negative {
				ms.Direction = "negative"
			}
			switch s.Kind {
			case scorer.KindCount, scorer.KindSum:
				ms.Target = &s.Target
			case scorer.KindAverage:
				ms.Min, ms.Max = &s.Min, &s.Max
			}
			mc.Signals[k] = ms
		}
		v.Categories[i] = mc
	}
	names := make([]string, 0, len(m.Segments))
	for name := range m.Segments {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		seg := m.Segments[name]
		sv := ModelSegmentView{Name: name, Bands: BandsView{RedBelow: seg.Bands.Red, GreenAtOrAbove: seg.Bands.Yellow},
			Weights: map[string]float64{}, Targets: map[string]float64{}}
		for k, w := range seg.Weights {
			sv.Weights[k] = w
		}
		for k, t := range seg.Targets {
			sv.Targets[k] = t
		}
		v.Segments = append(v.Segments, sv)
	}
	return v
}

// model serves GET /v1/model.
func (a *api) model(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, NewModelView(a.cfg.Model()))
}
