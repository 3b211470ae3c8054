package openapitest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/healthscore/healthscore/httpapi"
	"github.com/healthscore/healthscore/internal/openapitest"
)

const doc = `
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /items:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [n]
                properties: {n: {type: integer}}
        "400":
          description: bad
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Error"}
components:
  schemas:
    Error:
      type: object
      additionalProperties: false
      required: [error]
      properties: {error: {type: string}}
`

func TestCheck(t *testing.T) {
	v, err := openapitest.New([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		method, target string
		status         int
		header         http.Header
		body           string
		wantErr        string // "" passes
	}{
		{"GET", "/items", 200, jsonHdr, `{"n": 1}`, ""},
		{"GET", "/items?limit=5", 200, jsonHdr, `{"n": 1}`, ""},
		{"HEAD", "/items", 200, jsonHdr, ``, ""},
		{"GET", "/items", 200, jsonHdr, `{"n": 1, "extra": true}`, "does not match"},
		{"GET", "/items", 200, jsonHdr, `{"n": "one"}`, "does not match"},
		{"GET", "/items", 200, jsonHdr, `not json`, "does not match"},
		{"GET", "/items", 418, jsonHdr, `{"error": "teapot"}`, "does not match"},
		{"HEAD", "/items", 418, jsonHdr, ``, "not documented"},
		{"GET", "/items?limit=0", 200, jsonHdr, `{"n": 1}`, "rejects this request"},
		{"GET", "/items?limit=0", 400, jsonHdr, `{"error": "limit must be at least 1"}`, ""},
		{"GET", "/items?limit=0", 400, jsonHdr, `{"message": "x"}`, "does not match"},
		{"GET", "/nothing", 404, jsonHdr, `{"error": "no route"}`, ""},
		{"GET", "/nothing", 200, jsonHdr, `{"n": 1}`, "no such operation"},
		{"GET", "/nothing", 404, http.Header{"Content-Type": {"text/plain"}}, `404 page not found`, "not JSON"},
		{"GET", "/nothing", 404, jsonHdr, `{"error": 1}`, "not {\"error\""},
		{"POST", "/items", 405, http.Header{"Content-Type": {"application/json"}, "Allow": {"GET, HEAD"}}, `{"error": "method POST is not allowed"}`, ""},
		{"POST", "/items", 405, jsonHdr, `{"error": "method POST is not allowed"}`, "without an Allow header"},
	} {
		req := httptest.NewRequest(tc.method, tc.target, nil)
		err := v.Check(req, tc.status, tc.header, []byte(tc.body))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s %s → %d %s: %v", tc.method, tc.target, tc.status, tc.body, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s %s → %d %s: %v, want an error with %q", tc.method, tc.target, tc.status, tc.body, err, tc.wantErr)
		}
	}
	if got := v.Seen()["GET /items 200"]; got != 3 { // the two passing GETs and the HEAD
		t.Errorf("Seen counts %d exchanges of GET /items 200, want 3", got)
	}
}

// recordTB records the errors a check reports.
type recordTB struct {
	testing.TB
	errs []string
}

func (r *recordTB) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

// TestClientAndHandler: both wrappers check each exchange and leave the
// body readable.
func TestClientAndHandler(t *testing.T) {
	v, err := openapitest.New([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	served := `{"n": 1, "extra": 2}`
	rec := &recordTB{TB: t}
	srv := httptest.NewServer(v.Handler(rec, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, served)
	})))
	defer srv.Close()
	cl := &recordTB{TB: t}
	resp, err := v.Client(cl).Get(srv.URL + "/items")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != served {
		t.Errorf("body %q after the check, want %q", body, served)
	}
	if len(rec.errs) != 1 || len(cl.errs) != 1 || !strings.Contains(cl.errs[0], `property "extra" is unsupported`) {
		t.Errorf("handler errors %q, client errors %q; want one each about the extra property", rec.errs, cl.errs)
	}
}

// TestServiceDocument: the service's own document loads and validates.
func TestServiceDocument(t *testing.T) {
	d, err := httpapi.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	v, err := openapitest.New(d)
	if err != nil {
		t.Fatal(err)
	}
	if v.Doc().Paths.Value("/v1/customers/{id}") == nil {
		t.Error("no /v1/customers/{id} in the document")
	}
}
