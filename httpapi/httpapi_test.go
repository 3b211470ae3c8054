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
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/healthscore/healthscore/internal/openapitest"
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

func (f *fakeReader) BandWhere(_ context.Context, _ string, limit int, keep func(state.Member) bool) ([]state.Member, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []state.Member
	for _, m := range f.members {
		if len(out) < limit && (keep == nil || keep(m)) {
			out = append(out, m)
		}
	}
	return out, nil
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
	spec   error // the exchange does not match openapi.yaml
}

var (
	validatorOnce sync.Once
	validatorV    *openapitest.Validator
	validatorErr  error
)

// validator is the OpenAPI document's validator, loaded once.
func validator(t *testing.T) *openapitest.Validator {
	t.Helper()
	v, err := loadValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func loadValidator() (*openapitest.Validator, error) {
	validatorOnce.Do(func() {
		doc, err := OpenAPI()
		if err != nil {
			validatorErr = err
			return
		}
		validatorV, validatorErr = openapitest.New(doc)
	})
	return validatorV, validatorErr
}

// do serves one request. The exchange is checked against the OpenAPI
// document (openapi.yaml), and check reports a mismatch: every test here
// also holds the document to the code.
func do(h http.Handler, method, target string, hdr ...string) response {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	v, err := loadValidator()
	if err == nil {
		err = v.Check(req, w.Code, w.Header(), w.Body.Bytes())
	}
	return response{w.Code, w.Header(), w.Body.String(), err}
}

func (r response) check(t *testing.T, what string, status int, bodyHas string) {
	t.Helper()
	if r.spec != nil {
		t.Errorf("%s: %v", what, r.spec)
	}
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
		do(e.h.Admin, "GET", p).check(t, "admin GET "+p, 200, "")
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

// TestOpenAPIRoutes holds openapi.yaml to the routes: every route the
// service registers is a documented operation, every documented operation
// is served, and /openapi.json serves the document.
func TestOpenAPIRoutes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Pprof, c.SeparateAdmin = true, true })
	doc := validator(t).Doc()
	served := map[string]bool{} // "GET /path" in the document's terms
	var subtrees []string       // patterns ending in "/" serve their subtree
	for _, p := range e.h.patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok { // the catch-all 404/405 handler
			continue
		}
		path = strings.TrimSuffix(path, "{$}")
		served[method+" "+path] = true
		if strings.HasSuffix(path, "/") && path != "/" {
			subtrees = append(subtrees, method+" "+path)
		}
		item := doc.Paths.Value(path)
		if item == nil { // a path under a documented template: /debug/pprof/{profile}
			if dir, _, ok := strings.Cut(path[1:], "/"); ok {
				for tpl, it := range doc.Paths.Map() {
					if prefix, ok := strings.CutSuffix(tpl, "}"); ok && strings.HasPrefix(tpl, "/"+dir+"/") {
						if i := strings.LastIndex(prefix, "/{"); i >= 0 && strings.HasPrefix(path, tpl[:i+1]) && !strings.Contains(path[i+1:], "/") {
							item = it
							served[method+" "+tpl] = true
						}
					}
				}
			}
		}
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("route %q is not in openapi.yaml", p)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			op := method + " " + path
			ok := served[op]
			for _, sub := range subtrees {
				ok = ok || strings.HasPrefix(op, sub)
			}
			if !ok {
				t.Errorf("openapi.yaml documents %s, which no route serves", op)
			}
		}
	}

	r := do(e.h.API, "GET", "/openapi.json")
	r.check(t, "GET /openapi.json", 200, `"openapi": "3.0.3"`)
	want, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if r.body != string(want) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("/openapi.json is not the document (%s)", r.header.Get("Content-Type"))
	}
	if _, err := openapitest.New([]byte(r.body)); err != nil {
		t.Errorf("the served document does not load: %v", err)
	}
}

// TestPage: the web page's files need no token and carry a same-origin
// Content-Security-Policy; / redirects to it; unknown files are JSON 404s.
func TestPage(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Token = func() []byte { return []byte("s3cret") } })
	r := do(e.h.API, "GET", "/")
	r.check(t, "GET /", 302, "")
	if got := r.header.Get("Location"); got != "/ui/" {
		t.Errorf("GET / redirects to %q, want /ui/", got)
	}
	r = do(e.h.API, "GET", "/ui/")
	r.check(t, "GET /ui/ without a token", 200, `<script type="module" src="app.js"></script>`)
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	for file, ct := range map[string]string{"app.js": "text/javascript", "api.js": "text/javascript", "dom.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"} {
		r := do(e.h.API, "GET", "/ui/"+file)
		r.check(t, "GET /ui/"+file, 200, "")
		if got := r.header.Get("Content-Type"); !strings.HasPrefix(got, ct) {
			t.Errorf("/ui/%s: Content-Type %q, want %s", file, got, ct)
		}
	}
	// Every file the page refers to is served (no file fetched elsewhere).
	for _, f := range []string{"index.html", "app.js", "api.js", "dom.js"} {
		body := do(e.h.API, "GET", "/ui/"+strings.TrimSuffix(f, "index.html")).body
		for _, ref := range regexp.MustCompile(`(?:src|href)="([^"#]+)"|from '\./([^']+)'`).FindAllStringSubmatch(body, -1) {
			name := ref[1] + ref[2]
			if strings.Contains(name, "//") {
				t.Errorf("%s refers to %s outside the service", f, name)
				continue
			}
			do(e.h.API, "GET", "/ui/"+name).check(t, f+" refers to "+name, 200, "")
		}
	}
	do(e.h.API, "GET", "/ui/nothing.js").check(t, "GET /ui/nothing.js", 404, "no file /ui/nothing.js")
	do(e.h.API, "GET", "/ui/assets/").check(t, "GET /ui/assets/", 404, "no file")
	do(e.h.API, "GET", "/ui/index.html").check(t, "GET /ui/index.html", 301, "")
	r = do(e.h.API, "POST", "/ui/")
	r.check(t, "POST /ui/", 405, "not allowed")
	if got := r.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("POST /ui/: Allow %q", got)
	}
	do(e.h.API, "GET", "/openapi.json").check(t, "GET /openapi.json without a token", 200, "openapi")
}

// TestOpenAPIShapes: the answers of every data endpoint match the document
// (do checks each; the other tests cover the error answers).
func TestOpenAPIShapes(t *testing.T) {
	e := newEnv(t, nil)
	delete(e.reader.recs, "bad")
	do(e.h.API, "GET", "/v1/customers/c1").check(t, "GET /v1/customers/c1", 200, `"forecast":{`)
	do(e.h.API, "GET", "/v1/customers?band=yellow").check(t, "GET /v1/customers?band=yellow", 200, `"trend_7d":null`)
	do(e.h.API, "GET", "/v1/forecast?band=red&within=365d").check(t, "GET /v1/forecast", 200, `"customers":[{"customer_id":"c1"`)
	do(e.h.API, "GET", "/v1/forecast?band=yellow&within=1h").check(t, "GET /v1/forecast, none", 200, `"customers":[]`)
	do(e.h.API, "GET", "/v1/model").check(t, "GET /v1/model", 200, `"name":"b2b-saas"`)
	do(e.h.API, "GET", "/livez").check(t, "GET /livez", 200, "ok")
	do(e.h.API, "GET", "/readyz").check(t, "GET /readyz", 200, "ready")
	do(e.h.API, "GET", "/metrics").check(t, "GET /metrics", 200, "metrics")
}

// TestErrorPaths covers the error answers not covered above: every one is
// JSON, documented, and says what to fix without echoing a secret.
func TestErrorPaths(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Token = func() []byte { return []byte("s3cret") } })
	auth := []string{"Authorization", "Bearer s3cret"}
	for _, tc := range []struct {
		method, target string
		hdr            []string
		status         int
		want           string
	}{
		{"GET", "/v1/customers?band=red", nil, 401, "bearer token is required"},
		{"GET", "/v1/customers/c1", []string{"Authorization", "Bearer "}, 401, "bearer token is required"},
		{"GET", "/v1/customers/c1", []string{"Authorization", "bearer s3cret"}, 401, "bearer token is required"},
		{"GET", "/v1/customers/c1", []string{"Authorization", "Bearer wrong-s3cret-guess"}, 401, "the bearer token is not valid"},
		{"GET", "/v1/customers/nobody", nil, 401, "bearer token is required"}, // no existence leak without a token
		{"GET", "/v1/customers/nobody", auth, 404, `customer \"nobody\" has no applied events`},
		{"GET", "/v1/customers/c1?at=2026-13-01T00:00:00Z", auth, 400, "is not RFC 3339"},
		{"GET", "/v1/customers/c1?at=2262-04-12T00:00:00Z", auth, 400, "out of range"},
		{"GET", "/v1/customers?band=", auth, 400, "band must be red, yellow or green"},
		{"GET", "/v1/customers?band=RED", auth, 400, "band must be red, yellow or green"},
		{"GET", "/v1/customers?band=red&limit=-1", auth, 400, "limit must be an integer from 1 to 10000"},
		{"GET", "/v1/customers?band=red&limit=1.5", auth, 400, "limit must be"},
		{"GET", "/v1/customers/c1/history", nil, 401, "bearer token is required"},
		{"GET", "/v1/customers/c1/history", auth, 404, "score history is turned off (--history-days 0)"},
		{"GET", "/v1/forecast?band=red", nil, 401, "bearer token is required"},
		{"GET", "/v1/forecast", auth, 400, "band must be yellow or red"},
		{"GET", "/v1/forecast?band=green", auth, 400, "band must be yellow or red"},
		{"GET", "/v1/forecast?band=red&within=0d", auth, 400, `within=\"0d\" must be a whole number of hours or days from 1h to 365d`},
		{"GET", "/v1/forecast?band=red&within=2w", auth, 400, "must be a whole number of hours or days"},
		{"GET", "/v1/forecast?band=red&within=366d", auth, 400, "from 1h to 365d"},
		{"GET", "/v1/forecast?band=red&limit=0", auth, 400, "limit must be an integer from 1 to 10000"},
		{"GET", "/v1/forecast?band=red&segment=" + strings.Repeat("s", 257), auth, 400, "segment must be at most 256 bytes"},
		{"GET", "/v1/customers?band=red&segment=" + strings.Repeat("s", 257), auth, 400, "segment must be at most 256 bytes"},
		{"GET", "/v1/model", nil, 401, "bearer token is required"},
		{"GET", "/v1/nothing", auth, 404, "no route for GET /v1/nothing; the API is described in docs/api.md"},
		{"GET", "/v1/nothing", nil, 404, "no route"},
		{"GET", "/v1/customers/c1/nothing", auth, 404, "no route"},
		{"PUT", "/v1/customers", auth, 405, "method PUT is not allowed on /v1/customers; allowed: GET, HEAD"},
		{"DELETE", "/v1/customers/c1", nil, 405, "allowed: GET, HEAD"},
		{"POST", "/openapi.json", nil, 405, "allowed: GET, HEAD"},
		{"POST", "/", nil, 405, "allowed: GET, HEAD"},
		{"PATCH", "/metrics", nil, 405, "allowed: GET, HEAD"},
	} {
		what := tc.method + " " + tc.target
		r := do(e.h.API, tc.method, tc.target, tc.hdr...)
		r.check(t, what, tc.status, tc.want)
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", what, ct)
		}
		if tc.status == 405 && r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: Allow %q", what, r.header.Get("Allow"))
		}
		if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="healthscore"`) {
			t.Errorf("%s: WWW-Authenticate %q", what, r.header.Get("WWW-Authenticate"))
		}
		if strings.Contains(r.body, "s3cret") {
			t.Errorf("%s: the answer echoes a token: %s", what, r.body)
		}
	}
	// Redis down and an undecodable state, with the token.
	do(e.h.API, "GET", "/v1/customers/bad", auth...).check(t, "undecodable state", 500, "cannot decode customer state")
	e.reader.err = errors.New("dial unix /run/redis.sock: connect: no such file or directory")
	do(e.h.API, "GET", "/v1/customers/c1", auth...).check(t, "Redis down", 503, "cannot read customer state: dial unix")
	do(e.h.API, "GET", "/v1/customers?band=yellow", auth...).check(t, "Redis down, list", 503, "cannot list customers: dial unix")
	do(e.h.API, "GET", "/v1/forecast?band=red", auth...).check(t, "Redis down, forecast", 503, "cannot list customers: dial unix")
	do(e.h.API, "GET", "/v1/customers/c1").check(t, "Redis down, no token", 401, "bearer token is required")
	// HEAD answers the status of GET (net/http drops the body).
	do(e.h.API, "HEAD", "/v1/customers/c1", auth...).check(t, "HEAD with Redis down", 503, "")
}
