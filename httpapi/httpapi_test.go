package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// fakeReader serves records from a map, or fails with err.
type fakeReader struct {
	recs    map[string]state.Record
	members []state.Member
	err     error
}

func (f *fakeReader) Get(_ context.Context, id string) (state.Record, error) {
	if f.err != nil {
		return state.Record{}, f.err
	}
	return f.recs[id], nil
}

func (f *fakeReader) Band(_ context.Context, _ string, limit int) ([]state.Member, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.members[:min(limit, len(f.members))], nil
}

var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// record is a stored customer with one login event an hour before now.
func record(t *testing.T, m *scorer.Model) state.Record {
	t.Helper()
	st := m.NewState()
	ev, err := scorer.DecodeEvent([]byte(`{"customer_id":"c1","type":"login","time":"2026-11-20T11:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Apply(st, &ev) {
		t.Fatal("the default model ignores login events; change the test event")
	}
	return state.Record{Version: 1, Data: m.AppendState(nil, st)}
}

type env struct {
	h      Handlers
	reader *fakeReader
	reg    *prometheus.Registry
	logs   *observer.ObservedLogs
	ready  error // the readiness check's answer
	live   error
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	m := scorer.DefaultModel()
	e := &env{reader: &fakeReader{
		recs:    map[string]state.Record{"c1": record(t, m), "bad": {Version: 3, Data: []byte{0xff, 0x01}}},
		members: []state.Member{{ID: "c7", Score: 12.345}, {ID: "c1", Score: 30}},
	}, reg: prometheus.NewRegistry()}
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	rd, err := NewReadiness([]Check{
		{Name: "kafka", Check: func(context.Context) (string, error) { return "2 partitions assigned", nil }},
		{Name: "pipeline", Check: func(context.Context) (string, error) { return "", e.ready }},
	}, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Model: func() *scorer.Model { return m }, Store: e.reader, Ready: rd, Logger: zap.New(core),
		Now: func() time.Time { return now }, Live: func() error { return e.live },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics\n") })}
	if mod != nil {
		mod(&cfg)
	}
	if e.h, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(h http.Handler, method, target string, hdr ...string) response {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return response{w.Code, w.Header(), w.Body.String()}
}

func (r response) check(t *testing.T, what string, status int, bodyHas string) {
	t.Helper()
	if r.status != status || !strings.Contains(r.body, bodyHas) {
		t.Errorf("%s: %d %s; want %d with %q", what, r.status, r.body, status, bodyHas)
	}
	if r.status >= 400 {
		var e map[string]any
		if err := json.Unmarshal([]byte(r.body), &e); err != nil {
			t.Errorf("%s: body is not JSON: %v", what, err)
		}
	}
}

func TestCustomer(t *testing.T) {
	e := newEnv(t, nil)
	r := do(e.h.API, "GET", "/v1/customers/c1")
	r.check(t, "GET /v1/customers/c1", 200, `"customer_id":"c1"`)
	var v scorer.CustomerView
	if err := json.Unmarshal([]byte(r.body), &v); err != nil || v.At != "2026-11-20T12:00:00Z" || v.Score == nil {
		t.Errorf("customer view %+v (%v): want a score at the clock's now", v, err)
	}
	do(e.h.API, "GET", "/v1/customers/c1?at=2026-11-21T00:00:00Z").check(t, "GET /v1 at a later instant", 200, `"at":"2026-11-21T00:00:00Z"`)
	do(e.h.API, "HEAD", "/v1/customers/c1").check(t, "HEAD /v1/customers/c1", 200, "")

	do(e.h.API, "GET", "/v1/customers/"+strings.Repeat("x", scorer.MaxCustomerIDLen+1)).check(t, "GET /v1 too long id", 400, "customer id must be 1 to")
	do(e.h.API, "GET", "/v1/customers/c1?at=tomorrow").check(t, "GET /v1 bad at", 400, "is not RFC 3339")
	do(e.h.API, "GET", "/v1/customers/c1?at=9999-12-31T23:59:59Z").check(t, "GET /v1 at beyond int64 nanoseconds", 400, "out of range: scores can be evaluated for the years 1678 to 2261")
	do(e.h.API, "GET", "/v1/customers/c1?at=1000-01-01T00:00:00Z").check(t, "GET /v1 at before int64 nanoseconds", 400, "out of range")
	do(e.h.API, "GET", "/v1/customers/c1?at=2026-11-20T10:00:00Z").check(t, "GET /v1 at before the last event", 400, "before the last applied event")
	do(e.h.API, "GET", "/v1/customers/nobody").check(t, "GET /v1 unknown customer", 404, "has no applied events")
	do(e.h.API, "GET", "/v1/customers/bad").check(t, "GET /v1 undecodable state", 500, "cannot decode customer state")
	e.reader.err = errors.New("connection refused")
	do(e.h.API, "GET", "/v1/customers/c1").check(t, "GET /v1 Redis down", 503, "cannot read customer state: connection refused")
	do(e.h.API, "GET", "/v1/customers/c1").check(t, "GET /v1 Redis down again", 503, "cannot read customer state: connection refused")
	if n := e.logs.FilterMessageSnippet("cannot read customer state").Len(); n != 1 {
		t.Errorf("%d warnings for two failed reads in a row, want 1 (throttled)", n)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t, nil)
	r := do(e.h.API, "GET", "/v1/customers?band=red&limit=1")
	r.check(t, "GET /v1/customers?band=red&limit=1", 200, "")
	if r.body != `{"band":"red","customers":[{"customer_id":"c7","score":12.35,"band":"red","segment":"","trend_7d":null,"trend_30d":null}]}`+"\n" {
		t.Errorf("list body %s", r.body)
	}
	do(e.h.API, "GET", "/v1/customers?band=red").check(t, "GET /v1/customers default limit", 200, `"customer_id":"c1"`)
	do(e.h.API, "GET", "/v1/customers").check(t, "GET /v1/customers without band", 400, "band must be red, yellow or green")
	do(e.h.API, "GET", "/v1/customers?band=blue").check(t, "GET /v1/customers?band=blue", 400, "band must be")
	for _, l := range []string{"0", "10001", "ten"} {
		do(e.h.API, "GET", "/v1/customers?band=red&limit="+l).check(t, "GET /v1/customers limit="+l, 400, "limit must be an integer from 1 to 10000")
	}
	e.reader.err = errors.New("connection refused")
	do(e.h.API, "GET", "/v1/customers?band=red").check(t, "GET /v1/customers Redis down", 503, "cannot list customers")
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, nil)
	r := do(e.h.API, "GET", "/v2/nothing")
	r.check(t, "GET /v2/nothing", 404, "docs/api.md")
	r = do(e.h.API, "POST", "/v1/customers/c1")
	r.check(t, "POST /v1/customers/c1", 405, "method POST is not allowed")
	if got := r.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("405 Allow: %q, want GET, HEAD", got)
	}
	r = do(e.h.API, "DELETE", "/readyz")
	r.check(t, "DELETE /readyz", 405, "not allowed")
	if got := r.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("405 Allow on /readyz: %q", got)
	}
	do(e.h.API, "GET", "/metrics").check(t, "GET /metrics", 200, "metrics")
	do(e.h.API, "GET", "/debug/pprof/").check(t, "GET /debug/pprof/ without Pprof", 404, "no route")
	if e.h.Admin != nil {
		t.Error("an admin handler without SeparateAdmin")
	}

	p := newEnv(t, func(c *Config) { c.Pprof = true })
	do(p.h.API, "GET", "/debug/pprof/").check(t, "GET /debug/pprof/ with Pprof", 200, "goroutine")
}

func TestSeparateAdmin(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SeparateAdmin, c.Pprof = true, true })
	for _, p := range []string{"/metrics", "/livez", "/healthz", "/readyz", "/debug/pprof/"} {
		do(e.h.API, "GET", p).check(t, "API GET "+p, 404, "no route")
		if r := do(e.h.Admin, "GET", p); r.status != 200 {
			t.Errorf("admin GET %s: %d %s", p, r.status, r.body)
		}
	}
	do(e.h.Admin, "GET", "/v1/customers/c1").check(t, "admin GET /v1", 404, "no route")
	do(e.h.API, "GET", "/v1/customers/c1").check(t, "API GET /v1", 200, `"customer_id":"c1"`)
}

// TestProbes: /readyz evaluates every check and healthscore_ready follows
// it; /livez fails only when Live says the process is wedged.
func TestProbes(t *testing.T) {
	e := newEnv(t, nil)
	gauge := func() float64 {
		t.Helper()
		mfs, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "healthscore_ready" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no healthscore_ready")
		return -1
	}
	if gauge() != 0 {
		t.Error("healthscore_ready is 1 before any evaluation")
	}
	r := do(e.h.API, "GET", "/readyz")
	r.check(t, "GET /readyz ready", 200, `"checks":{"kafka":"ok: 2 partitions assigned","pipeline":"ok"}`)
	if gauge() != 1 {
		t.Error("healthscore_ready is not 1 after a ready /readyz")
	}
	e.ready = errors.New("state: cannot load customers: connection refused")
	do(e.h.API, "GET", "/readyz").check(t, "GET /readyz not ready", 503, `{"ready":false,"checks":{"kafka":"ok: 2 partitions assigned","pipeline":"state: cannot load customers: connection refused"}}`)
	if gauge() != 0 {
		t.Error("healthscore_ready is not 0 after a failing /readyz")
	}

	do(e.h.API, "GET", "/livez").check(t, "GET /livez", 200, `"status":"ok"`)
	e.live = errors.New("the processing loop has not turned for 3m0s with a batch in hand")
	do(e.h.API, "GET", "/livez").check(t, "GET /livez wedged", 503, "has not turned")
	do(e.h.API, "GET", "/healthz").check(t, "GET /healthz wedged", 503, "has not turned")
}

// TestReadinessRun: without any probe, Run keeps healthscore_ready right.
func TestReadinessRun(t *testing.T) {
	reg := prometheus.NewRegistry()
	var ok = make(chan bool, 1)
	ok <- false
	state := false
	rd, err := NewReadiness([]Check{{Name: "x", Check: func(context.Context) (string, error) {
		select {
		case state = <-ok:
		default:
		}
		if !state {
			return "", errors.New("not yet")
		}
		return "", nil
	}}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rd.Run(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	ok <- true
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(rd.gauge) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("healthscore_ready did not become 1 without a probe")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("s3cret-one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	tf, err := NewTokenFile(path, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	tf.now = func() time.Time { return clock }
	e := newEnv(t, func(c *Config) { c.Token = tf.Token })

	r := do(e.h.API, "GET", "/v1/customers/c1")
	r.check(t, "GET /v1 without a token", 401, "bearer token is required")
	if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="healthscore"` {
		t.Errorf("WWW-Authenticate: %q", got)
	}
	r = do(e.h.API, "GET", "/v1/customers?band=red", "Authorization", "Bearer s3cret-two")
	r.check(t, "GET /v1 with a wrong token", 401, "not valid")
	if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate: %q", got)
	}
	do(e.h.API, "GET", "/v1/customers/c1", "Authorization", "Basic czNjcmV0LW9uZQ==").check(t, "GET /v1 with basic auth", 401, "required")
	do(e.h.API, "GET", "/v1/customers/c1", "Authorization", "Bearer s3cret-one").check(t, "GET /v1 with the token", 200, `"customer_id":"c1"`)
	do(e.h.API, "GET", "/readyz").check(t, "GET /readyz needs no token", 200, "")

	// Rotation: the new token is used once the file changes.
	if err := os.WriteFile(path, []byte("s3cret-two-longer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(CheckInterval)
	do(e.h.API, "GET", "/v1/customers/c1", "Authorization", "Bearer s3cret-two-longer").check(t, "GET /v1 with the rotated token", 200, `"customer_id":"c1"`)
	do(e.h.API, "GET", "/v1/customers/c1", "Authorization", "Bearer s3cret-one").check(t, "GET /v1 with the old token", 401, "not valid")
	// An emptied file keeps the token in use.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(CheckInterval)
	do(e.h.API, "GET", "/v1/customers/c1", "Authorization", "Bearer s3cret-two-longer").check(t, "GET /v1 after the file was emptied", 200, `"customer_id":"c1"`)

	for _, l := range append(logs.All(), e.logs.All()...) {
		if b, _ := json.Marshal(l.ContextMap()); strings.Contains(l.Message+string(b), "s3cret") {
			t.Errorf("a token was logged: %s %s", l.Message, b)
		}
	}
	if logs.FilterMessage("keeping the previous API token").Len() != 1 {
		t.Error("the emptied token file was not logged")
	}

	if err := os.WriteFile(path, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTokenFile(path, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v", err)
	}
	if _, err := NewTokenFile(filepath.Join(dir, "missing"), zap.NewNop()); err == nil {
		t.Error("missing token file accepted")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("empty Config accepted")
	}
	if _, err := NewReadiness(nil, nil); err == nil {
		t.Error("readiness without a registerer accepted")
	}
}
