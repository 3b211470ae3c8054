// Package webui owns the at-risk web page: the static files (HTML, CSS and
// JavaScript modules, embedded in the binary) that the service serves under
// /ui/. The page carries no data of its own: it reads everything from the
// read API (/v1/*) in the browser, with the API token when one is
// configured, so the files need none. Nothing is fetched from elsewhere
// (the Content-Security-Policy allows this origin only), and there is no
// build step: the files in assets/ are what the browser gets. See
// docs/api.md, "Web page".
package webui

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the page is served under.
const Prefix = "/ui/"

// csp allows this origin only: no inline scripts, no fonts, scripts or
// styles from a CDN, and data calls to this service only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page's files under Prefix. The files change only
// with the binary, so browsers revalidate them (no-cache) rather than keep
// a stale copy after an upgrade.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has assets/
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if name == "" {
			name = "index.html"
		}
		if fi, err := fs.Stat(sub, name); err != nil || fi.IsDir() {
			// JSON like every other error of the service (FileServer's
			// would be text).
			h.Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			body, _ := json.Marshal(map[string]string{"error": "no file " + r.URL.Path + " in the web page; it starts at " + Prefix})
			_, _ = w.Write(append(body, '\n'))
			return
		}
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
