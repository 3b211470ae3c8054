package httpapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Check is one readiness check. It returns nil when its part is ready, with
// an optional detail (e.g. "4 partitions assigned"), or why not.
type Check struct {
	Name  string
	Check func(context.Context) (detail string, err error)
}

// Report is the outcome of a readiness evaluation, the body of /readyz.
type Report struct {
	Ready bool `json:"ready"`
	// Checks maps each check's name to "ok" (or "ok: detail") or to the
	// reason it is not ready.
	Checks map[string]string `json:"checks"`
}

// Readiness evaluates the readiness checks for /readyz and keeps
// healthscore_ready equal to the outcome of the last evaluation: every
// /readyz request evaluates, and so does Run, periodically, so that the
// gauge is right when nobody probes.
type Readiness struct {
	checks  []Check
	timeout time.Duration
	gauge   prometheus.Gauge
}

// ReadyTimeout bounds one evaluation of the readiness checks.
const ReadyTimeout = 2 * time.Second

// NewReadiness registers healthscore_ready (0 until the first evaluation).
func NewReadiness(checks []Check, reg prometheus.Registerer) (*Readiness, error) {
	if reg == nil {
		return nil, errors.New("cannot create readiness: Registerer is required")
	}
	for _, c := range checks {
		if c.Name == "" || c.Check == nil {
			return nil, fmt.Errorf("cannot create readiness: check %q has no name or no function", c.Name)
		}
	}
	r := &Readiness{checks: checks, timeout: ReadyTimeout, gauge: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "healthscore_ready",
		Help: "1 when the service is ready (every /readyz check passes), else 0; evaluated by every /readyz request and every few seconds.",
	})}
	if err := reg.Register(r.gauge); err != nil {
		return nil, fmt.Errorf("cannot register healthscore_ready: %w", err)
	}
	return r, nil
}

// Evaluate runs every check (within ReadyTimeout) and sets healthscore_ready.
func (r *Readiness) Evaluate(ctx context.Context) Report {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	rep := Report{Ready: true, Checks: make(map[string]string, len(r.checks))}
	for _, c := range r.checks {
		detail, err := c.Check(ctx)
		switch {
		case err != nil:
			rep.Checks[c.Name], rep.Ready = err.Error(), false
		case detail != "":
			rep.Checks[c.Name] = "ok: " + detail
		default:
			rep.Checks[c.Name] = "ok"
		}
	}
	if rep.Ready {
		r.gauge.Set(1)
	} else {
		r.gauge.Set(0)
	}
	return rep
}

// Run evaluates every interval until ctx ends, starting at once.
func (r *Readiness) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.Evaluate(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
