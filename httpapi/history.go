package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// HistoryReader is what the score history needs from the state store (see
// state.Redis.GetWithHistory): one round trip per customer, one for a
// listing's trends.
type HistoryReader interface {
	GetWithHistory(ctx context.Context, id string) (state.Record, state.History, error)
	Histories(ctx context.Context, ids []string) ([]state.History, error)
}

// HistoryView is the JSON shape of GET /v1/customers/{id}/history.
type HistoryView struct {
	CustomerID string              `json:"customer_id"`
	WindowDays int                 `json:"window_days"`
	From       string              `json:"from"`
	To         string              `json:"to"`
	Points     []HistoryPoint      `json:"points"`  // oldest first
	Changes    []scorer.ChangeView `json:"changes"` // newest first
}

// HistoryPoint is one day of a HistoryView.
type HistoryPoint struct {
	Day   string  `json:"day"`
	Score float64 `json:"score"` // the day's last
	Band  string  `json:"band"`  // of the day's last score
	Min   float64 `json:"min"`   // the day's lowest
}

// errHistoryOff is the 404 of the history endpoint when it is turned off.
const errHistoryOff = "score history is turned off (--history-days 0)"

// historyOn reports whether score history is kept.
func (a *api) historyOn() bool { return a.cfg.History != nil && a.cfg.HistoryDays > 0 }

func (a *api) history(w http.ResponseWriter, r *http.Request) {
	if !a.historyOn() {
		writeError(w, http.StatusNotFound, errHistoryOff)
		return
	}
	id := r.PathValue("id")
	if id == "" || len(id) > scorer.MaxCustomerIDLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("customer id must be 1 to %d bytes", scorer.MaxCustomerIDLen))
		return
	}
	now := a.cfg.Now().UnixNano()
	today := scorer.DayOf(now)
	window := int64(a.cfg.HistoryDays)
	q := r.URL.Query()
	from, hasFrom, err := parseDay(q.Get("from"), "from")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	to, hasTo, err := parseDay(q.Get("to"), "to")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !hasTo {
		to = max(today, from)
	}
	if !hasFrom {
		from = to - window + 1
	}
	if from > to {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("from=%s is after to=%s", scorer.FormatDay(from), scorer.FormatDay(to)))
		return
	}
	rec, h, err := a.cfg.History.GetWithHistory(r.Context(), id)
	m, st, ok := a.customerState(w, id, rec, err, "customer history")
	if !ok {
		return
	}
	v := HistoryView{CustomerID: id, WindowDays: a.cfg.HistoryDays, From: scorer.FormatDay(from), To: scorer.FormatDay(to),
		Points: []HistoryPoint{}, Changes: []scorer.ChangeView{}}
	for _, p := range points(m, st, h.Days, now, a.cfg.HistoryDays) {
		if p.Day >= from && p.Day <= to {
			v.Points = append(v.Points, HistoryPoint{Day: scorer.FormatDay(p.Day), Score: p.Score, Band: p.Band, Min: p.Min})
		}
	}
	for _, b := range h.Changes {
		if c, err := scorer.DecodeChange(b); err == nil { // (a corrupt entry is left out)
			v.Changes = append(v.Changes, c.View())
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// points is a customer's history as served at instant now: the stored
// days, then the days since its last evaluation, filled from st as the next
// evaluation would close them (scorer.BeginDay), and today's point so far
// (st evaluated at now), limited to the window of window days ending today.
// st is changed.
func points(m *scorer.Model, st *scorer.State, stored []state.Day, now int64, window int) []state.Day {
	at := max(now, st.LastEvent, st.PublishedAt)
	if st.HasDay {
		at = max(at, st.Day.At)
	}
	today := scorer.DayOf(at)
	first := today - int64(window) + 1
	out := make([]state.Day, 0, min(len(stored)+2, window))
	for _, d := range stored {
		if d.Day >= first && d.Day < today {
			out = append(out, d)
		}
	}
	var next int64 = first
	if len(out) > 0 {
		next = out[len(out)-1].Day + 1
	}
	add := func(p scorer.DayPoint) {
		if p.Day >= next && p.Day >= first {
			out = append(out, state.Day{Day: p.Day, Score: p.Score, Min: p.Min, Band: p.Band.String()})
			next = p.Day + 1
		}
	}
	for _, p := range m.BeginDay(nil, st, at, window) {
		add(p)
	}
	ev := m.Evaluate(st, at)
	m.NoteDay(st, &ev)
	if st.HasDay {
		add(st.Day)
	}
	return out
}

// parseDay parses a history bound: a day ("2026-11-20") or an RFC 3339
// instant, which means its UTC day. "" is no bound.
func parseDay(s, name string) (day int64, ok bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return 0, false, fmt.Errorf("%s=%q is neither a day (e.g. 2026-11-20) nor an RFC 3339 instant (e.g. 2026-11-20T10:00:00Z)", name, s)
		}
	}
	t = t.UTC()
	if t.Year() < scorer.MinYear || t.Year() > scorer.MaxYear {
		return 0, false, fmt.Errorf("%s=%s is out of range: days from the years %d to %d", name, s, scorer.MinYear, scorer.MaxYear)
	}
	return scorer.DayOf(t.UnixNano()), true, nil
}

// trendDays are the listing's trends: score now minus the day's last score
// that many days ago.
var trendDays = [2]int64{7, 30}

// trends fills the listing's trend_7d and trend_30d from the history (one
// round trip); they stay null when history is off or has no point that day.
func (a *api) trends(ctx context.Context, m *scorer.Model, items []ListItem, states []*scorer.State) error {
	if !a.historyOn() || len(items) == 0 {
		return nil
	}
	ids := make([]string, len(items))
	for i := range items {
		ids[i] = items[i].CustomerID
	}
	hs, err := a.cfg.History.Histories(ctx, ids)
	if err != nil {
		return err
	}
	now := a.cfg.Now().UnixNano()
	for i := range items {
		if states[i] == nil {
			continue
		}
		ps := points(m, states[i], hs[i].Days, now, a.cfg.HistoryDays)
		today := scorer.DayOf(now)
		for k, n := range trendDays {
			for _, p := range ps {
				if p.Day == today-n {
					t := scorer.Round2(items[i].Score - p.Score)
					if k == 0 {
						items[i].Trend7d = &t
					} else {
						items[i].Trend30d = &t
					}
				}
			}
		}
	}
	return nil
}
