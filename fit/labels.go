package fit

import (
	"errors"
	"sort"

	"github.com/healthscore/healthscore/backtest"
)

// Labels says which customers churned in a window, with the definitions
// of `healthscore backtest` (docs/backtesting.md): the population at a
// cut-off is the customers with at least one event strictly before it.
type Labels interface {
	// Label reports whether customer id, in the population at at
	// (eligible), churned in the window after at. The fit only asks for
	// windows that end at its cut-off at the latest.
	Label(h *History, id string, at, horizon int64) (churned, eligible bool)
	String() string
}

func inPopulation(h *History, id string, at int64) bool {
	evs := h.Events[id]
	return len(evs) > 0 && evs[0].Time < at
}

// Inactivity labels a customer churned when it has no event of Type in
// (at, at+horizon] (`--churn-if-no TYPE`). The history ends before the
// fit's cut-off T, so for the window that ends at T an event at T exactly
// is not seen.
type Inactivity struct{ Type string }

func (l Inactivity) String() string { return "no " + l.Type + " event in the horizon" }

// Label implements Labels.
func (l Inactivity) Label(h *History, id string, at, horizon int64) (churned, eligible bool) {
	if !inPopulation(h, id, at) {
		return false, false
	}
	evs := h.Events[id]
	for i := sort.Search(len(evs), func(i int) bool { return evs[i].Time > at }); i < len(evs) && evs[i].Time <= at+horizon; i++ {
		if evs[i].Type == l.Type {
			return false, true
		}
	}
	return true, true
}

// ChurnTimes labels from a labels file (backtest.ReadLabels): a customer
// churned in the window when its churn time is in (at, at+horizon]; one
// that churned at or before at had left and is not in the population, nor
// is a customer without a label. A churn without a time cannot be placed
// in a window before the cut-off: NewChurnTimes refuses it.
type ChurnTimes map[string]backtest.Label

// NewChurnTimes checks that every churned label has a time.
func NewChurnTimes(labels map[string]backtest.Label) (ChurnTimes, error) {
	for id, l := range labels {
		if l.Churned && l.Time == 0 {
			return nil, errors.New("customer " + id + " churned without a churn_time: the fit needs every churn's time to place it before or after its cut-offs")
		}
	}
	return ChurnTimes(labels), nil
}

func (l ChurnTimes) String() string { return "churn times from the labels file" }

// Label implements Labels.
func (l ChurnTimes) Label(h *History, id string, at, horizon int64) (churned, eligible bool) {
	lab, ok := l[id]
	if !ok || !inPopulation(h, id, at) || (lab.Churned && lab.Time <= at) {
		return false, false
	}
	return lab.Churned && lab.Time <= at+horizon, true
}
