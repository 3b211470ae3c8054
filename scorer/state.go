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
	Score     float64
	Band      Band
	Points    []float64 // per model signal; may be nil
}

// NewState returns an empty state for the model.
func (m *Model) NewState() *State {
	return &State{Signals: make([]SignalState, len(m.signals))}
}

// Apply folds one event into st and reports whether any signal read it.
// Events of types no signal reads leave st unchanged. The event's Time must be
// set. Cost: O(signals reading the event's type).
func (m *Model) Apply(st *State, ev *Event) bool {
	idx := m.byEvent[ev.Type]
	if len(idx) == 0 {
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
	st.Events++
	if ev.Segment != "" && (ev.Time > st.SegmentTime || st.Segment == "" || (ev.Time == st.SegmentTime && ev.Segment > st.Segment)) {
		st.Segment, st.SegmentTime = ev.Segment, ev.Time
	}
	return true
}

// decay is 2^(−dt/hl) for dt ≥ 0 nanoseconds and a half-life hl in ns.
func decay(dt int64, hl float64) float64 {
	if dt <= 0 {
		return 1
	}
	return math.Exp2(-float64(dt) / hl)
}
