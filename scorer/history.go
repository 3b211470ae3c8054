package scorer

import (
	"math"
	"time"
)

// DayPoint is one UTC calendar day of a customer's score history: the day's
// last score and band (at the day's close for a closed day, at its latest
// evaluation for the current one) and its lowest score.
//
// The history follows the evaluation clock, the instant Step is called at
// (the latest event time, or later for decay-driven evaluations), not the
// wall clock: it is what the service published, in processing order. Scores
// are kept to hundredths, as the API shows them.
type DayPoint struct {
	Day   int64 // UTC days since 1970-01-01
	At    int64 // Unix ns of the day's last evaluation; a closed day's last nanosecond
	Score float64
	Band  Band
	Min   float64 // the day's lowest score
}

// nsPerDay is the length of a UTC day.
const nsPerDay = int64(24 * time.Hour)

// DayOf is the UTC day (days since 1970-01-01) of instant t (Unix ns).
func DayOf(t int64) int64 {
	d := t / nsPerDay
	if t%nsPerDay < 0 {
		d--
	}
	return d
}

// DayStart is the first instant (Unix ns) of UTC day d.
func DayStart(d int64) int64 { return d * nsPerDay }

// FormatDay writes day d as "2026-11-20".
func FormatDay(d int64) string { return time.Unix(0, DayStart(d)).UTC().Format(time.DateOnly) }

// Hundredths rounds a score to the hundredths the history keeps.
func Hundredths(x float64) float64 { return math.Round(x*100) / 100 }

// BeginDay prepares st's day point (st.Day) for an evaluation at instant
// at, BEFORE the events that lead to that evaluation are applied (st must
// be the state as of its last evaluation), and returns the days that this
// evaluation closes, oldest first: the stored point's day, completed to its
// close, and every following day before at's, on which the customer had no
// evaluation, filled exactly from st (the score at each day's close; its
// lowest score, see below). Of those, only the days of the window of keep
// days ending on at's day are returned (keep-1 at most). Days with no score
// are left out. NoteDay must follow, with the evaluation at at.
//
// The lowest score of a stretch with no event is the lower of the scores at
// its start and its end (an override holds its value until it expires, and
// then the score from events only falls): exact while time alone does not
// raise the score from events, which holds for models whose signals all
// have the positive direction. A negative-direction signal's sub-score rises
// as its events age, and the day's low may then fall between two
// evaluations; it is then the lowest of the scores at the day's
// evaluations, just before them, at its start and at its close.
//
// A state with no day point (HasDay false) closes nothing; NoteDay starts
// one. An evaluation at or before the point's instant (late events are
// evaluated at the clock, see Step) changes nothing here.
func (m *Model) BeginDay(st *State, at int64, keep int) []DayPoint {
	if !st.HasDay || at <= st.Day.At {
		return nil
	}
	d := &st.Day
	today := DayOf(at)
	if today <= d.Day {
		d.Min = m.lowOver(st, at, d.Min)
		return nil
	}
	var closed []DayPoint
	for day := max(d.Day, today-int64(keep)+1); day < today; day++ {
		end := DayStart(day+1) - 1
		var p DayPoint
		if day == d.Day {
			p = *d
			p.Min = m.lowOver(st, end, d.Min)
		} else {
			start := DayStart(day)
			s0, ok := m.ScoreAt(st, start)
			if !ok {
				continue
			}
			p = DayPoint{Day: day, Min: m.lowOver(st, end, Hundredths(s0))}
		}
		s, ok := m.ScoreAt(st, end)
		if !ok {
			continue
		}
		p.At, p.Score, p.Band = end, Hundredths(s), m.band(s, st.Band, m.profileFor(st.Segment).bands)
		closed = append(closed, p)
	}
	start := DayStart(today)
	*d = DayPoint{Day: today, At: start, Min: math.Inf(1)}
	if s, ok := m.ScoreAt(st, start); ok {
		d.Min = m.lowOver(st, at, Hundredths(s))
	}
	return closed
}

// lowOver is lo lowered to the score of st at b. lo already holds the
// score at the stretch's start a, so with scores from events that only fall
// with time, the lowest over [a, b] is one of the two; an override in force
// at a holds its value until it expires, and from then on the score from
// events falls again: the value is lo's, the rest ends at b.
func (m *Model) lowOver(st *State, b int64, lo float64) float64 {
	if s, ok := m.ScoreAt(st, b); ok {
		lo = min(lo, Hundredths(s))
	}
	return lo
}

// NoteDay records ev, the evaluation Step made (after BeginDay), as the
// latest point of its day: the day's last score and band, and its lowest
// score so far. An evaluation with no score ends the history (HasDay
// false) until the next one that has a score, which starts it again.
func (m *Model) NoteDay(st *State, ev *Evaluation) {
	if !ev.HasScore {
		st.HasDay, st.Day = false, DayPoint{}
		return
	}
	day := DayOf(ev.At)
	s := Hundredths(ev.Score)
	switch {
	case !st.HasDay || day > st.Day.Day:
		st.HasDay, st.Day = true, DayPoint{Day: day, Min: s}
	case day < st.Day.Day || ev.At < st.Day.At:
		return // not after the point: history never goes back
	}
	d := &st.Day
	d.At, d.Score, d.Band, d.Min = ev.At, s, ev.Band, min(d.Min, s)
}

// ApplyWithHistory is Apply for a service that keeps score history: it
// first closes the days before the instant at which ev is evaluated
// (BeginDay, with the state before ev), applies ev, then notes the score
// just after it as its day's latest (NoteDay, the band with hysteresis
// against the published one). Several events evaluated together by one
// Step (a batch) thus give the history that evaluating each on its own
// gives. The closed days are appended to closed. The instant is ev's time,
// or the customer's clock (its latest event or published instant) when ev
// is late: history never goes back.
func (m *Model) ApplyWithHistory(st *State, ev *Event, keep int, closed []DayPoint) ([]DayPoint, bool) {
	if !m.Folds(ev) {
		return closed, false
	}
	at := ev.Time
	if st.Events > 0 {
		at = max(at, st.LastEvent, st.PublishedAt)
	}
	closed = append(closed, m.BeginDay(st, at, keep)...)
	m.Apply(st, ev)
	e := Evaluation{At: at}
	if e.Score, e.HasScore = m.ScoreAt(st, at); e.HasScore {
		e.Band = m.band(e.Score, st.Band, m.profileFor(st.Segment).bands)
	}
	m.NoteDay(st, &e)
	return closed, true
}

// DropDay forgets st's day point, for a service that keeps no history: its
// states then encode as before history existed.
func (st *State) DropDay() { st.HasDay, st.Day = false, DayPoint{} }
