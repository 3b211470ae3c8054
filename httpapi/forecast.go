package httpapi

import (
	"cmp"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

// MaxForecastCandidates is the default of Config.ForecastCandidates, the
// cap on the customers one /v1/forecast request examines: those due
// soonest in the schedule. Beyond it the answer says complete: false, and
// is exact only for customers turning before exact_until.
const MaxForecastCandidates = 10000

// forecastPage is how many records one pipelined read loads.
const forecastPage = 500

// maxWithin is the longest /v1/forecast window: the forecast's horizon.
const maxWithin = scorer.ForecastHorizon

// ForecastItem is one customer in a /v1/forecast answer.
type ForecastItem struct {
	CustomerID string  `json:"customer_id"`
	Score      float64 `json:"score"` // now
	Band       string  `json:"band"`  // now
	Segment    string  `json:"segment"`
	At         string  `json:"at"` // when it turns the requested band
}

// ForecastList is the /v1/forecast answer.
type ForecastList struct {
	Band   string `json:"band"`
	Within string `json:"within"`
	// From is the instant forecast from (now); the window is (From,
	// From + Within].
	From string `json:"from"`
	// Complete is false when more than Config.ForecastCandidates
	// customers were due in the window: the list is then exact for customers
	// turning before ExactUntil, and may miss later ones.
	Complete   bool           `json:"complete"`
	ExactUntil string         `json:"exact_until"`
	Customers  []ForecastItem `json:"customers"`
}

var withinRE = regexp.MustCompile(`^([1-9][0-9]{0,5})([hd])$`)

// parseWithin parses a window like "36h" or "7d" (1h to 365d).
func parseWithin(s string) (time.Duration, bool) {
	m := withinRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.Atoi(m[1])
	d := time.Duration(n) * time.Hour
	if m[2] == "d" {
		d *= 24
	}
	return d, d >= time.Hour && d <= maxWithin
}

// forecast serves GET /v1/forecast?band=&within=&limit=&segment=: the
// customers not yet in band (yellow: yellow or red) who turn band within the
// window if nothing more happens, soonest first.
//
// Candidates come from the schedule: a silent customer is due at or before
// every instant its score needs publishing, in particular before its band
// changes, so every customer that can turn band by now + within is due by
// then. Their records are read in pipelined pages, each is forecast
// (scorer.Model.Reach), and those that get there in the window are kept.
func (a *api) forecast(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bandName := q.Get("band")
	target, ok := scorer.ParseBand(bandName)
	if !ok || (target != scorer.BandRed && target != scorer.BandYellow) {
		writeError(w, http.StatusBadRequest, "band must be yellow or red (yellow means yellow or red)")
		return
	}
	within := "7d"
	if s := q.Get("within"); s != "" {
		within = s
	}
	win, ok := parseWithin(within)
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("within=%q must be a whole number of hours or days from 1h to %dd, e.g. 36h or 7d", within, int(maxWithin/(24*time.Hour))))
		return
	}
	limit, segment, ok := listParams(w, q)
	if !ok {
		return
	}

	m := a.cfg.Model()
	now := a.cfg.Now().UnixNano()
	end := now + int64(win)
	untilMs := (end + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	dues, more, err := a.cfg.Store.DueBefore(r.Context(), untilMs, a.cfg.ForecastCandidates)
	if err != nil {
		a.warnRead("cannot read the schedule", err)
		writeError(w, http.StatusServiceUnavailable, "cannot list customers: "+err.Error())
		return
	}
	out := ForecastList{Band: bandName, Within: within, From: scorer.FormatTime(now), Complete: !more,
		ExactUntil: scorer.FormatTime(end), Customers: []ForecastItem{}}
	if more {
		// Customers not examined are due no earlier than the last examined
		// one, and turn no earlier than they are due.
		out.ExactUntil = scorer.FormatTime(dues[len(dues)-1].At * int64(time.Millisecond))
	}
	type found struct {
		item ForecastItem
		at   int64
	}
	var hits []found
	ids := make([]string, 0, forecastPage)
	for start := 0; start < len(dues); start += forecastPage {
		ids = ids[:0]
		for _, d := range dues[start:min(start+forecastPage, len(dues))] {
			ids = append(ids, d.ID)
		}
		recs, err := a.cfg.Store.Read(r.Context(), ids)
		if err != nil {
			a.warnRead("cannot read customer states", err)
			writeError(w, http.StatusServiceUnavailable, "cannot read customer states: "+err.Error())
			return
		}
		for i, rec := range recs {
			if rec.Version == 0 {
				continue // removed since it was scheduled
			}
			st, err := m.DecodeState(rec.Data)
			if err != nil {
				a.warnRead("cannot decode a customer state for the forecast", fmt.Errorf("customer %q: %w", ids[i], err))
				continue
			}
			if segment != "" && st.Segment != segment {
				continue
			}
			at := max(now, st.LastEvent) // event times may run slightly ahead of this clock
			score, band, ok := m.BandAt(st, at)
			if !ok || band <= target {
				continue
			}
			t, ok := m.Reach(st, at, target, time.Duration(end-at))
			if !ok {
				continue
			}
			hits = append(hits, found{ForecastItem{CustomerID: ids[i], Score: scorer.Round2(score), Band: band.String(),
				Segment: st.Segment, At: scorer.FormatTime(t)}, t})
		}
	}
	slices.SortFunc(hits, func(x, y found) int {
		if c := cmp.Compare(x.at, y.at); c != 0 {
			return c
		}
		return strings.Compare(x.item.CustomerID, y.item.CustomerID)
	})
	for _, h := range hits[:min(limit, len(hits))] {
		out.Customers = append(out.Customers, h.item)
	}
	writeJSON(w, http.StatusOK, out)
}
