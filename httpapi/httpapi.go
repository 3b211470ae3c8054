// Package httpapi owns the service's HTTP surface: the customer read API
// (score and band now or at an instant, and band listings), the metrics
// endpoint and the liveness and readiness probes. It reads state through a
// small interface and evaluates with package scorer; it never writes.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// Reader is what the API needs from the state store.
type Reader interface {
	Get(ctx context.Context, id string) (state.Record, error)
	Band(ctx context.Context, band string, limit int) ([]state.Member, error)
}

// Check is a readiness check: nil when ready.
type Check struct {
	Name  string
	Check func(context.Context) error
}

// Config configures the handler.
type Config struct {
	Model   func() *scorer.Model // the current model
	Store   Reader
	Metrics http.Handler // served at /metrics
	Ready   []Check
	Logger  *zap.Logger
	Now     func() time.Time // default time.Now
}

// MaxLimit caps the limit of band listings.
const MaxLimit = 10000

// New returns the HTTP handler.
func New(cfg Config) (http.Handler, error) {
	switch {
	case cfg.Model == nil:
		return nil, errors.New("cannot create HTTP API: Model is required")
	case cfg.Store == nil:
		return nil, errors.New("cannot create HTTP API: Store is required")
	case cfg.Logger == nil:
		return nil, errors.New("cannot create HTTP API: Logger is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/customers/{id}", a.customer)
	mux.HandleFunc("GET /v1/customers", a.list)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.ready)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s; see docs/api.md", r.Method, r.URL.Path))
	})
	return mux, nil
}

type api struct{ cfg Config }

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing to do
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func (a *api) customer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > scorer.MaxCustomerIDLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("customer id must be 1 to %d bytes", scorer.MaxCustomerIDLen))
		return
	}
	rec, err := a.cfg.Store.Get(r.Context(), id)
	if err != nil {
		a.cfg.Logger.Warn("cannot read customer state", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "cannot read customer state: "+err.Error())
		return
	}
	if rec.Version == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("customer %q has no applied events", id))
		return
	}
	m := a.cfg.Model()
	st, err := m.DecodeState(rec.Data)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "cannot decode customer state: "+err.Error())
		return
	}
	at := a.cfg.Now().UnixNano()
	if q := r.URL.Query().Get("at"); q != "" {
		t, err := time.Parse(time.RFC3339Nano, q)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("at=%q is not RFC 3339 (e.g. 2026-11-20T10:00:00Z)", q))
			return
		}
		if at = t.UnixNano(); at < st.LastEvent {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("at=%s is before the last applied event (%s); scores cannot be evaluated in the past", q, scorer.FormatTime(st.LastEvent)))
			return
		}
	} else if at < st.LastEvent {
		at = st.LastEvent // event times may run slightly ahead of this clock
	}
	ev := m.Evaluate(st, at)
	writeJSON(w, http.StatusOK, m.View(id, st, &ev, true))
}

// ListItem is one customer in a band listing.
type ListItem struct {
	CustomerID string  `json:"customer_id"`
	Score      float64 `json:"score"`
	Band       string  `json:"band"`
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	band := q.Get("band")
	if b, ok := scorer.ParseBand(band); !ok || b == scorer.BandNone {
		writeError(w, http.StatusBadRequest, "band must be red, yellow or green")
		return
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", MaxLimit))
			return
		}
		limit = n
	}
	members, err := a.cfg.Store.Band(r.Context(), band, limit)
	if err != nil {
		a.cfg.Logger.Warn("cannot list band", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "cannot list customers: "+err.Error())
		return
	}
	items := make([]ListItem, len(members))
	for i, m := range members {
		items[i] = ListItem{CustomerID: m.ID, Score: scorer.Round2(m.Score), Band: band}
	}
	writeJSON(w, http.StatusOK, map[string]any{"band": band, "customers": items})
}

func (a *api) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	for _, c := range a.cfg.Ready {
		if err := c.Check(ctx); err != nil {
			checks[c.Name], ok = err.Error(), false
		} else {
			checks[c.Name] = "ok"
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ok, "checks": checks})
}
