// Package httpapi owns the service's HTTP surface: the customer read API
// (score and band now or at an instant, with an active override and the
// forecast; score history; band listings with segment filter and trends;
// the customers turning a band within a window; the model in use) with its
// optional bearer token, its OpenAPI document (openapi.yaml, served at
// /openapi.json), the web page's route (package webui), the metrics
// endpoint, Go profiles, and the liveness and
// readiness probes (with healthscore_ready, which mirrors /readyz). It reads
// state through a small interface and evaluates with package scorer; it
// never writes. Listeners, TLS and the choice of one or two ports are the
// caller's: New returns the handlers. See docs/api.md.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
	"github.com/healthscore/healthscore/webui"
)

// Reader is what the API needs from the state store (see state.Redis).
type Reader interface {
	Get(ctx context.Context, id string) (state.Record, error)
	// BandWhere lists the lowest members of a band (by the records'
	// scores) for which keep (nil: all) returns true, at most limit.
	BandWhere(ctx context.Context, band string, limit int, keep func(state.Member) bool) ([]state.Member, error)
	// DueBefore lists the customers whose score may need publishing at or
	// before untilMs, soonest first, at most limit, and whether there are
	// more (the schedule; see /v1/forecast).
	DueBefore(ctx context.Context, untilMs int64, limit int) ([]state.Due, bool, error)
	// Read loads records without their outboxes; missing ids get Version 0.
	Read(ctx context.Context, ids []string) ([]state.Record, error)
}

// Config configures the handlers.
type Config struct {
	Model   func() *scorer.Model // the current model
	Store   Reader
	Metrics http.Handler // served at /metrics; nil: not served
	Ready   *Readiness   // /readyz
	// Live returns an error when the process is wedged and should be
	// restarted (/livez 503); nil: always live.
	Live func() error
	// Token returns the bearer token /v1/* requires (see TokenFile); nil:
	// the API is open.
	Token func() []byte
	// Pprof serves Go profiles at /debug/pprof/.
	Pprof bool
	// SeparateAdmin serves /metrics, /debug/pprof/ and the probes on
	// Handlers.Admin instead of Handlers.API.
	SeparateAdmin bool
	Logger        *zap.Logger
	Now           func() time.Time // default time.Now
	// History reads the score history kept for HistoryDays days (see
	// history.go); nil or HistoryDays 0: history is turned off (the
	// history endpoint answers 404, listing trends are null).
	History     HistoryReader
	HistoryDays int
	// ForecastCandidates caps the customers one /v1/forecast request
	// examines; default MaxForecastCandidates.
	ForecastCandidates int
}

// Handlers are the service's HTTP handlers.
type Handlers struct {
	API   http.Handler // /v1/*, and everything else unless SeparateAdmin
	Admin http.Handler // with SeparateAdmin: /metrics, /debug/pprof/, /livez, /healthz, /readyz; else nil

	patterns []string // every route served, for the test that holds them to openapi.yaml
}

// mux is a ServeMux that remembers its patterns.
type mux struct {
	*http.ServeMux
	patterns *[]string
}

func newMux() mux { return mux{ServeMux: http.NewServeMux(), patterns: new([]string)} }

func (m mux) Handle(pattern string, h http.Handler) {
	*m.patterns = append(*m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m mux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// MaxLimit caps the limit of band listings.
const MaxLimit = 10000

// New returns the HTTP handlers.
func New(cfg Config) (Handlers, error) {
	switch {
	case cfg.Model == nil:
		return Handlers{}, errors.New("cannot create HTTP API: Model is required")
	case cfg.Store == nil:
		return Handlers{}, errors.New("cannot create HTTP API: Store is required")
	case cfg.Ready == nil:
		return Handlers{}, errors.New("cannot create HTTP API: Ready is required")
	case cfg.Logger == nil:
		return Handlers{}, errors.New("cannot create HTTP API: Logger is required")
	case cfg.ForecastCandidates < 0:
		return Handlers{}, fmt.Errorf("cannot create HTTP API: ForecastCandidates must be >= 0 (0: %d), got %d", MaxForecastCandidates, cfg.ForecastCandidates)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ForecastCandidates == 0 {
		cfg.ForecastCandidates = MaxForecastCandidates
	}
	doc, err := OpenAPI()
	if err != nil {
		return Handlers{}, fmt.Errorf("cannot create HTTP API: %w", err)
	}
	a := &api{cfg: cfg}
	apiMux := newMux()
	apiMux.Handle("GET /v1/customers/{id}", a.auth(a.customer))
	apiMux.Handle("GET /v1/customers/{id}/history", a.auth(a.history))
	apiMux.Handle("GET /v1/customers", a.auth(a.list))
	// The page and the API's description carry no data: no token.
	apiMux.Handle("GET "+webui.Prefix, webui.Handler())
	apiMux.Handle("GET /{$}", http.RedirectHandler(webui.Prefix, http.StatusFound))
	apiMux.HandleFunc("GET /openapi.json", serveBytes("application/json", doc))
	apiMux.Handle("GET /v1/forecast", a.auth(a.forecast))
	apiMux.Handle("GET /v1/model", a.auth(a.model))
	adminMux := apiMux
	if cfg.SeparateAdmin {
		adminMux = newMux()
	}
	adminMux.HandleFunc("GET /livez", a.live)
	adminMux.HandleFunc("GET /healthz", a.live)
	adminMux.HandleFunc("GET /readyz", a.ready)
	if cfg.Metrics != nil {
		adminMux.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Pprof {
		adminMux.HandleFunc("GET /debug/pprof/", pprof.Index)
		adminMux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		adminMux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		adminMux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		adminMux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		adminMux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	h := Handlers{API: apiMux}
	apiMux.HandleFunc("/", notFound(apiMux.ServeMux))
	h.patterns = *apiMux.patterns
	if cfg.SeparateAdmin {
		adminMux.HandleFunc("/", notFound(adminMux.ServeMux))
		h.Admin = adminMux
		h.patterns = append(h.patterns, *adminMux.patterns...)
	}
	return h, nil
}

// notFound answers the requests no route matched: 405 with an Allow header
// when the path has routes for other methods, else 404.
func notFound(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		probe := *r
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if m == r.Method {
				continue
			}
			probe.Method = m
			if _, pattern := mux.Handler(&probe); pattern != "" && pattern != "/" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s; the API is described in docs/api.md", r.Method, r.URL.Path))
	}
}

type api struct {
	cfg    Config
	warned atomic.Int64 // Unix ns of the last read-failure warning (throttle)
}

// warnRead logs a failed state read, at most once per 10 s: a client
// polling while Redis is down must not flood the logs (the 503 tells it).
func (a *api) warnRead(msg string, err error) {
	now := time.Now().UnixNano()
	if last := a.warned.Load(); now-last >= int64(10*time.Second) && a.warned.CompareAndSwap(last, now) {
		a.cfg.Logger.Warn(msg+" (logged at most every 10 s)", zap.Error(err))
	}
}

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

// listParams reads the limit (1 to MaxLimit, default 100) and segment
// parameters shared by the listings; on a bad one it answers 400 and
// returns false.
func listParams(w http.ResponseWriter, q url.Values) (limit int, segment string, ok bool) {
	limit = 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", MaxLimit))
			return 0, "", false
		}
		limit = n
	}
	segment = q.Get("segment")
	if len(segment) > scorer.MaxCustomerIDLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("segment must be at most %d bytes", scorer.MaxCustomerIDLen))
		return 0, "", false
	}
	return limit, segment, true
}

// customerState turns one customer's read (rec, err: what the store
// answered when reading what) into the current model and the decoded state;
// otherwise it answers 503 (read failed), 404 (no applied event) or 500
// (undecodable) and returns false.
func (a *api) customerState(w http.ResponseWriter, id string, rec state.Record, err error, what string) (*scorer.Model, *scorer.State, bool) {
	if err != nil {
		a.warnRead("cannot read "+what, err)
		writeError(w, http.StatusServiceUnavailable, "cannot read "+what+": "+err.Error())
		return nil, nil, false
	}
	if rec.Version == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("customer %q has no applied events", id))
		return nil, nil, false
	}
	m := a.cfg.Model()
	st, err := m.DecodeState(rec.Data)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "cannot decode customer state: "+err.Error())
		return nil, nil, false
	}
	return m, st, true
}

func (a *api) customer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > scorer.MaxCustomerIDLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("customer id must be 1 to %d bytes", scorer.MaxCustomerIDLen))
		return
	}
	rec, err := a.cfg.Store.Get(r.Context(), id)
	m, st, ok := a.customerState(w, id, rec, err, "customer state")
	if !ok {
		return
	}
	at := a.cfg.Now().UnixNano()
	if q := r.URL.Query().Get("at"); q != "" {
		t, err := time.Parse(time.RFC3339Nano, q)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("at=%q is not RFC 3339 (e.g. 2026-11-20T10:00:00Z)", q))
			return
		}
		if t.Year() < scorer.MinYear || t.Year() > scorer.MaxYear {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("at=%s is out of range: scores can be evaluated for the years %d to %d", q, scorer.MinYear, scorer.MaxYear))
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
	Segment    string  `json:"segment"` // "" for the default
	// Trend7d and Trend30d are the score minus the day's last score 7 and
	// 30 days ago (see history.go); null without history that day.
	Trend7d  *float64 `json:"trend_7d"`
	Trend30d *float64 `json:"trend_30d"`
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	band := q.Get("band")
	if b, ok := scorer.ParseBand(band); !ok || b == scorer.BandNone {
		writeError(w, http.StatusBadRequest, "band must be red, yellow or green")
		return
	}
	limit, segment, ok := listParams(w, q)
	if !ok {
		return
	}
	m := a.cfg.Model()
	// The store reads the whole band for any listing (the index does not
	// hold current scores), so the segment is filtered in that one read.
	var keep func(state.Member) bool
	if segment != "" {
		keep = func(mem state.Member) bool {
			st, err := m.DecodeState(mem.Data)
			return err == nil && st.Segment == segment
		}
	}
	members, err := a.cfg.Store.BandWhere(r.Context(), band, limit, keep)
	if err != nil {
		a.warnRead("cannot list band", err)
		writeError(w, http.StatusServiceUnavailable, "cannot list customers: "+err.Error())
		return
	}
	items := make([]ListItem, 0, len(members))
	states := make([]*scorer.State, 0, len(members))
	for _, mem := range members {
		st, err := m.DecodeState(mem.Data)
		if err != nil {
			st = nil // listed by its record's score; no segment, no trend
		}
		seg := ""
		if st != nil {
			seg = st.Segment
		}
		items = append(items, ListItem{CustomerID: mem.ID, Score: scorer.Round2(mem.Score), Band: band, Segment: seg})
		states = append(states, st)
	}
	if err := a.trends(r.Context(), m, items, states); err != nil {
		a.warnRead("cannot read histories", err)
		writeError(w, http.StatusServiceUnavailable, "cannot read customer histories: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"band": band, "customers": items})
}

func (a *api) live(w http.ResponseWriter, _ *http.Request) {
	if a.cfg.Live != nil {
		if err := a.cfg.Live(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "wedged", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) ready(w http.ResponseWriter, r *http.Request) {
	rep := a.cfg.Ready.Evaluate(r.Context())
	status := http.StatusOK
	if !rep.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rep)
}
