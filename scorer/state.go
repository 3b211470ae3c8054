package scorer

import "math"

// SignalState is the folded, decayed history of one signal.
//
// S = Σ x_i·2^(−(Ref−t_i)/h) and W = Σ 2^(−(Ref−t_i)/h) over the events
// applied so far, where Ref is the latest event time the signal has seen.
// Newer events decay the sums forward to their own time; older (late) events
// are decayed back to Ref, so the result does not depend on arrival order.
type SignalState struct {
	Seen bool
	Ref  int64 // Unix ns of the latest event applied to this signal
	S, W float64
}

// State is everything the scorer keeps per customer. Its Signals slice is
// indexed like the model's signals (see Model.NewState).
type State struct {
	LastEvent   int64  // Unix ns of the latest event applied; 0 with none
	Events      uint64 // events applied
	Segment     string // segment of the latest event that named one
	SegmentTime int64  // time of that event
	Signals     []SignalState

	// Last published score, band and per-signal points, for change
	// detection, hysteresis and drivers.
	Published bool
	// PublishedAt is the instant of the last published evaluation when it
	// is later than LastEvent (a decay-driven one); stored only then.
	PublishedAt int64
	Score       float64
	Band        Band
	Points      []float64 // per model signal; may be nil

	// Trend baseline (models with a trend section): an exponentially
	// weighted average of the published scores, updated at each
	// publication (see Step), and the time of the last dropped alert.
	HasBaseline bool
	Baseline    float64
	BaselineAt  int64 // Unix ns of the publication that last updated it
	HasDropped  bool
	DroppedAt   int64 // Unix ns of the last health.dropped alert

	// Override is the latest manual override (see TypeOverride), expired
	// or not; nil when there has been none.
	Override *Override

	// Day is the current day's score-history point (see BeginDay and
	// NoteDay), kept only while HasDay: a service that keeps no history
	// never sets it.
	HasDay bool
	Day    DayPoint
}

// Override is a manual score set by a health.override event.
type Override struct {
	Value   float64 // 0–100
	By      string  // attributes.by, else the event id; may be empty
	Reason  string  // may be empty
	At      int64   // Unix ns of the override event
	Expires int64   // Unix ns; NoExpiry when it does not expire
}

// NoExpiry is Override.Expires of an override without expires_at.
const NoExpiry = math.MaxInt64

// Active reports whether o is in force at instant at: from its folding
// until it expires (at < Expires).
func (o *Override) Active(at int64) bool { return o != nil && at < o.Expires }

// newerThan orders overrides: the later event time wins; on equal times the
// larger value, then the larger by, then the larger reason, so the result
// does not depend on arrival order.
func (o *Override) newerThan(p *Override) bool {
	switch {
	case p == nil:
		return true
	case o.At != p.At:
		return o.At > p.At
	case o.Value != p.Value:
		return o.Value > p.Value
	case o.By != p.By:
		return o.By > p.By
	default:
		return o.Reason > p.Reason
	}
}

// NewState returns an empty state for the model.
func (m *Model) NewState() *State {
	return &State{Signals: make([]SignalState, len(m.signals))}
}

// Reads reports whether some signal reads events of type t, or it is
// TypeOverride.
func (m *Model) Reads(t string) bool { return t == TypeOverride || len(m.byEvent[t]) > 0 }

// Folds reports whether Apply changes a state with ev: its type is read
// (Reads), or it names a segment. A customer's segment comes from its latest
// event that names one, whatever its type (an "account_updated" event that
// announces the plan counts); an event of an unread type without a segment
// changes nothing and can be dropped.
func (m *Model) Folds(ev *Event) bool { return m.Reads(ev.Type) || ev.Segment != "" }

// Apply folds one event into st and reports whether it changed it (see
// Folds). An event of an unread type that names a segment sets the segment
// (and counts as applied, with its time as a last event); other events of
// unread types leave st unchanged. The event's Time must be set. A TypeOverride event replaces st.Override when it is newer (see
// Override). Cost: O(signals reading the event's type).
func (m *Model) Apply(st *State, ev *Event) bool {
	if ev.Type == TypeOverride {
		return m.applyOverride(st, ev)
	}
	idx := m.byEvent[ev.Type]
	if len(idx) == 0 && ev.Segment == "" {
		return false
	}
	t := ev.Time
	for _, i := range idx {
		sig := &m.signals[i]
		// x is the event's contribution to S; w to W. Only average signals
		// use W and recency signals use neither, so those stay zero.
		var x, w float64
		switch sig.Kind {
		case KindCount:
			x = 1
		case KindSum:
			x = ev.Value
		case KindAverage:
			x, w = ev.Value, 1
		}
		s := &st.Signals[i]
		switch {
		case !s.Seen:
			*s = SignalState{Seen: true, Ref: t, S: x, W: w}
		case t >= s.Ref:
			f := decay(t-s.Ref, sig.hl)
			s.S, s.W, s.Ref = s.S*f+x, s.W*f+w, t
		default:
			f := decay(s.Ref-t, sig.hl)
			s.S += x * f
			s.W += w * f
		}
	}
	if st.Events == 0 || t > st.LastEvent {
		st.LastEvent = t
	}
	if st.PublishedAt <= st.LastEvent {
		st.PublishedAt = 0 // kept only while it is later than the last event
	}
	st.Events++
	st.noteSegment(ev)
	return true
}

// noteSegment keeps the segment of the latest event that names one (on
// equal times, the larger name), whatever the event's type.
func (st *State) noteSegment(ev *Event) {
	if ev.Segment != "" && (ev.Time > st.SegmentTime || st.Segment == "" || (ev.Time == st.SegmentTime && ev.Segment > st.Segment)) {
		st.Segment, st.SegmentTime = ev.Segment, ev.Time
	}
}

func (m *Model) applyOverride(st *State, ev *Event) bool {
	o := &Override{Value: ev.Value, By: ev.By, Reason: ev.Reason, At: ev.Time, Expires: NoExpiry}
	if o.By == "" {
		o.By = ev.ID
	}
	if ev.HasExpiresAt {
		o.Expires = ev.ExpiresAt
	}
	if o.newerThan(st.Override) {
		st.Override = o
	}
	if st.Events == 0 || ev.Time > st.LastEvent {
		st.LastEvent = ev.Time
	}
	st.Events++
	st.noteSegment(ev)
	return true
}

// decay is 2^(−dt/hl) for dt ≥ 0 nanoseconds and a half-life hl in ns.
func decay(dt int64, hl float64) float64 {
	if dt <= 0 {
		return 1
	}
	return math.Exp2(-float64(dt) / hl)
}
