// Package openapitest checks HTTP exchanges against the service's OpenAPI
// document (httpapi/openapi.yaml) with kin-openapi, so that the document
// cannot drift from the code: the httpapi tests and the end-to-end suite
// send every request through a Validator. It is for tests only; the
// service never imports it.
//
// An exchange passes when its route and method are in the document, and
//   - the response's status is documented for the operation, and its
//     headers and body match that response (bodies are checked against the
//     schemas, which forbid undocumented fields);
//   - a request the document rejects (a parameter out of its schema) got a
//     4xx answer, not a success;
//   - a request to a path or method the document lacks got the service's
//     JSON 404 or 405.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Validator checks exchanges against one document.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	errSch *openapi3.Schema

	mu   sync.Mutex
	seen map[string]int // "METHOD /path status" → exchanges checked
}

var registerDecoders sync.Once

// New loads and validates the document (JSON or YAML).
func New(doc []byte) (*Validator, error) {
	registerDecoders.Do(func() {
		// The page's files and pprof's index: text, checked as strings.
		for _, ct := range []string{"text/html", "text/javascript", "text/css", "image/svg+xml"} {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
		}
	})
	l := openapi3.NewLoader()
	d, err := l.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("cannot load the OpenAPI document: %w", err)
	}
	if err := d.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
	}
	r, err := gorillamux.NewRouter(d)
	if err != nil {
		return nil, fmt.Errorf("cannot route the OpenAPI document's paths: %w", err)
	}
	es := d.Components.Schemas["Error"]
	if es == nil || es.Value == nil {
		return nil, errors.New("the OpenAPI document has no components.schemas.Error")
	}
	return &Validator{doc: d, router: r, errSch: es.Value, seen: map[string]int{}}, nil
}

// Doc returns the loaded document.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// Check validates one exchange: req as sent, and the response's status,
// header and complete body.
func (v *Validator) Check(req *http.Request, status int, header http.Header, body []byte) error {
	ctx := context.Background()
	r := req.Clone(ctx)
	r.Body = http.NoBody
	if r.Method == http.MethodHead {
		r.Method = http.MethodGet // HEAD is served wherever GET is; no body to check
	}
	// gorillamux matches the URL's host against the servers; the document's
	// server is relative ("/"), so match on the path alone.
	r.Host, r.URL.Host, r.URL.Scheme = "", "", ""
	what := fmt.Sprintf("%s %s → %d", req.Method, req.URL.RequestURI(), status)
	route, pathParams, err := v.router.FindRoute(r)
	if err != nil {
		// Not a documented operation: only the service's JSON "no route" or
		// "method not allowed" answers are right.
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s: the OpenAPI document has no such operation (%v), yet the service answered %d", what, err, status)
		}
		if status == http.StatusMethodNotAllowed && header.Get("Allow") == "" {
			return fmt.Errorf("%s: a 405 without an Allow header", what)
		}
		if req.Method != http.MethodHead {
			if err := v.checkError(header, body); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		v.count(req.Method+" (no route)", status)
		return nil
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc, // the service checks the token; 401s are checked below
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: pathParams, Route: route, Options: opts}
	if reqErr := openapi3filter.ValidateRequest(ctx, in); reqErr != nil && status < 400 {
		return fmt.Errorf("%s: the OpenAPI document rejects this request, yet the service answered %d: %v", what, status, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(body)
	if req.Method == http.MethodHead {
		// kin-openapi skips HEAD; still, the status must be documented.
		if route.Operation.Responses.Status(status) == nil {
			return fmt.Errorf("%s: status %d is not documented for %s %s", what, status, http.MethodGet, route.Path)
		}
	} else if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s: the response does not match the OpenAPI document: %v\nbody: %.2000s", what, err, body)
	}
	v.count(route.Method+" "+route.Path, status)
	return nil
}

func (v *Validator) checkError(header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("an error answered as %q, not JSON: %.200s", ct, body)
	}
	var val any
	if err := json.Unmarshal(body, &val); err != nil {
		return fmt.Errorf("an error body that is not JSON: %v: %.200s", err, body)
	}
	if err := v.errSch.VisitJSON(val); err != nil {
		return fmt.Errorf("an error body that is not {\"error\": \"…\"}: %v", err)
	}
	return nil
}

func (v *Validator) count(op string, status int) {
	v.mu.Lock()
	v.seen[fmt.Sprintf("%s %d", op, status)]++
	v.mu.Unlock()
}

// Seen returns how many exchanges were checked per "METHOD /path status"
// (the document's path template, e.g. "GET /v1/customers/{id} 200").
func (v *Validator) Seen() map[string]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]int, len(v.seen))
	for k, n := range v.seen {
		out[k] = n
	}
	return out
}

// Handler wraps h: every exchange is checked, and a mismatch fails t.
func (v *Validator) Handler(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if err := v.Check(r, rec.status, w.Header(), rec.body.Bytes()); err != nil {
			t.Error(err)
		}
	})
}

type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

// Transport wraps base (nil: http.DefaultTransport): every exchange is
// checked, and a mismatch fails t. The caller still reads the whole body.
func (v *Validator) Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read the response of %s %s: %w", req.Method, req.URL, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err := v.Check(req, resp.StatusCode, resp.Header, body); err != nil {
			t.Error(err)
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Client returns an HTTP client whose every exchange is checked (redirects
// are not followed: each one is an exchange of its own to check).
func (v *Validator) Client(t testing.TB) *http.Client {
	return &http.Client{
		Transport:     v.Transport(t, nil),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
