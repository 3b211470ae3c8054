package webui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestNothingFromElsewhere: no file of the page names another origin (the
// SVG namespace is a name, not a fetch), and the CSP allows this origin only.
func TestNothingFromElsewhere(t *testing.T) {
	urlRE := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s"'<>)]*`)
	n := 0
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := assets.ReadFile(path)
		if err != nil {
			return err
		}
		for _, u := range urlRE.FindAllString(string(b), -1) {
			if u != "http://www.w3.org/2000/svg" {
				t.Errorf("%s names another origin: %s", path, u)
			}
		}
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("walked %d files: %v", n, err)
	}
	for _, directive := range strings.Split(csp, "; ") {
		name, sources, _ := strings.Cut(directive, " ")
		if sources != "'none'" && sources != "'self'" {
			t.Errorf("CSP %s allows %s", name, sources)
		}
	}
}

// TestHandler: files under Prefix with the CSP; a missing file is a JSON 404.
func TestHandler(t *testing.T) {
	h := Handler()
	for target, want := range map[string]int{Prefix: 200, Prefix + "app.js": 200, Prefix + "style.css": 200, Prefix + "nope.js": 404, Prefix + "index.html": 301} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if w.Code != want {
			t.Errorf("GET %s: %d, want %d", target, w.Code, want)
		}
		switch {
		case w.Code == 200 && w.Header().Get("Content-Security-Policy") != csp:
			t.Errorf("GET %s: no CSP", target)
		case w.Code == 404 && (w.Header().Get("Content-Type") != "application/json" || !strings.Contains(w.Body.String(), `"error":"no file /ui/nope.js`)):
			t.Errorf("GET %s: %s %q", target, w.Header().Get("Content-Type"), w.Body.String())
		}
	}
}
