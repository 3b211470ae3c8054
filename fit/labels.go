package fit

import "sort"

// Labels says which customers churned in a window. The population at a
// cut-off is the customers with at least one event at or before it that
// had not churned by then.
type Labels interface {
	// Label reports whether customer id, in the population at at
	// (eligible), churned in (at, at+horizon]. The fit only asks for
	// windows that end at its cut-off at the latest.
	Label(h *History, id string, at, horizon int64) (churned, eligible bool)
	String() string
}

// Inactivity labels a customer churned when it has no event of Type in the
// window (`--churn-if-no TYPE`).
type Inactivity struct{ Type string }

func (l Inactivity) String() string { return "no " + l.Type + " event in the horizon" }

// Label implements Labels.
func (l Inactivity) Label(h *History, id string, at, horizon int64) (churned, eligible bool) {
	evs := h.Events[id]
	i := sort.Search(len(evs), func(i int) bool { return evs[i].Time > at })
	if i == 0 {
		return false, false
	}
	for ; i < len(evs) && evs[i].Time <= at+horizon; i++ {
		if evs[i].Type == l.Type {
			return false, true
		}
	}
	return true, true
}

// ChurnTimes labels from known churn instants (a labels file): customer →
// churn time in Unix ns; customers not in the map never churned. A customer
// that churned at or before the cut-off is not in its population.
type ChurnTimes map[string]int64

func (l ChurnTimes) String() string { return "churn times from the labels file" }

// Label implements Labels.
func (l ChurnTimes) Label(h *History, id string, at, horizon int64) (churned, eligible bool) {
	evs := h.Events[id]
	if len(evs) == 0 || evs[0].Time > at {
		return false, false
	}
	ct, ok := l[id]
	if !ok {
		return false, true
	}
	if ct <= at {
		return false, false
	}
	return ct <= at+horizon, true
}
