// Package browser tests the web page (/ui/) in a real browser: Debian's
// chromium, headless, driven by chromedp against the real healthscore
// binary fed with seeded events. It is its own Go module so that chromedp
// stays out of the service's go.mod; scripts/test.sh runs it with
// HEALTHSCORE_REQUIRE_BROWSER=1. Without chromium it skips, saying so.
package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/httpapi"
	"github.com/healthscore/healthscore/internal/openapitest"
)

// EnvRequireBrowser makes a missing chromium a failure instead of a skip.
const EnvRequireBrowser = "HEALTHSCORE_REQUIRE_BROWSER"

const token = "browser-t0ken-value"

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(EnvRequireBrowser) == "1" {
		t.Fatalf("no chromium on PATH and %s=1 (Debian: apt-get install chromium)", EnvRequireBrowser)
	}
	t.Skipf("skipping the browser test: no chromium on PATH (Debian: apt-get install chromium; %s=1 makes this a failure)", EnvRequireBrowser)
	return ""
}

// service is a running `healthscore run` with the embedded broker and Redis.
type service struct {
	base    string // http://127.0.0.1:port
	brokers string
	client  *http.Client // with the token; checks every exchange against the OpenAPI document
	logs    strings.Builder
	mu      sync.Mutex
}

func (s *service) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// start builds the binary and runs it with an API token, the embedded
// broker (on a free port) and the embedded Redis.
func start(t *testing.T) *service {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "healthscore")
	build := exec.Command("go", "build", "-race", "-o", bin, "./cmd/healthscore")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--http", "127.0.0.1:0", "--broker-port", "0", "--partitions", "2",
		"--api-token-file", tokFile, "--log-level", "info")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HEALTHSCORE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &service{}
	type addrs struct{ http, broker string }
	found := make(chan addrs, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var a addrs
		sent := false
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			switch {
			case l.Msg == "HTTP listening":
				a.http = l.Addr
			case strings.Contains(l.Msg, "embedded in-memory Kafka-compatible broker"):
				a.broker = l.Addr
			}
			if !sent && a.http != "" && a.broker != "" {
				found <- a
				sent = true
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		waited := make(chan error, 1)
		go func() { <-done; waited <- cmd.Wait() }()
		select {
		case err := <-waited:
			if err != nil {
				t.Errorf("healthscore exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("healthscore did not stop within 30 s of SIGINT")
		}
		if t.Failed() {
			t.Logf("healthscore logs:\n%s", s.log())
		}
	})
	select {
	case a := <-found:
		s.base, s.brokers = "http://"+a.http, a.broker
	case <-done:
		t.Fatalf("healthscore exited before listening:\n%s", s.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("healthscore did not listen within 60 s:\n%s", s.log())
	}
	doc, err := httpapi.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	v, err := openapitest.New(doc)
	if err != nil {
		t.Fatal(err)
	}
	s.client = v.Client(t)
	return s
}

// get decodes GET path (with the token) into out; it returns the status.
func (s *service) get(t *testing.T, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// seed produces 60 days of events for 16 customers: some stay active,
// others go silent, open tickets and fail payments at different times, so
// the bands, trends and band changes vary. It returns the number of records.
func seed(t *testing.T, brokers string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic("customer-events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	now := time.Now().UTC().Truncate(time.Hour)
	segments := []string{"", "enterprise", "smb"}
	var recs []*kgo.Record
	n := 0
	add := func(id, typ string, at time.Time, value float64, segment string) {
		n++
		ev := map[string]any{"id": fmt.Sprintf("bt-%d", n), "customer_id": id, "type": typ, "time": at.Format(time.RFC3339)}
		if value != 0 {
			ev["value"] = value
		}
		if segment != "" {
			ev["segment"] = segment
		}
		b, _ := json.Marshal(ev)
		recs = append(recs, &kgo.Record{Key: []byte(id), Value: b})
	}
	for i := range 16 {
		id := fmt.Sprintf("cust-%02d", i+1)
		seg := segments[i%3]
		silent := i * 3 // days of silence before now
		for d := 60; d >= 0; d-- {
			at := now.Add(-time.Duration(d)*24*time.Hour - time.Duration(i)*time.Minute - time.Hour)
			if d == 60 {
				add(id, "payment_succeeded", at, 0, seg)
				add(id, "nps_submitted", at, float64(3+i%8), "")
			}
			if d < silent && i%2 == 1 {
				continue
			}
			if d < silent/2 {
				continue
			}
			add(id, "login", at, 0, "")
			if d%2 == 0 {
				add(id, "feature_used", at.Add(time.Minute), 0, "")
			}
			if d == 30 {
				add(id, "payment_succeeded", at, 0, "")
			}
		}
		if i%4 == 3 {
			for k := range 3 {
				add(id, "ticket_opened", now.Add(-time.Duration(10+k)*time.Hour), 0, "")
			}
			add(id, "payment_failed", now.Add(-2*time.Hour), 0, "")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	// Wait for the service to commit every record: then its state, history
	// and band listings hold them all.
	adm := kadm.NewClient(cl)
	for {
		ends, err1 := adm.ListEndOffsets(ctx, "customer-events")
		committed, err2 := adm.FetchOffsets(ctx, "healthscore")
		if err1 == nil && err2 == nil {
			behind := int64(0)
			ends.Each(func(o kadm.ListedOffset) {
				if c, ok := committed.Lookup("customer-events", o.Partition); !ok {
					behind += o.Offset
				} else if c.At < o.Offset {
					behind += o.Offset - c.At
				}
			})
			if behind == 0 {
				return len(recs)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the service did not commit the %d seeded records within 30 s", len(recs))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// console collects what the page writes to the console.
type console struct {
	mu     sync.Mutex
	errors []string
}

func (c *console) listen(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, string(a.Value)+a.Description)
		}
		msg = fmt.Sprintf("console.%s: %s", e.Type, strings.Join(parts, " "))
	case *log.EventEntryAdded:
		if e.Entry.Level != log.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL)
	default:
		return
	}
	c.mu.Lock()
	c.errors = append(c.errors, msg)
	c.mu.Unlock()
}

func (c *console) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errors
	c.errors = nil
	return out
}

type row struct {
	ID    string `json:"id"`
	Score string `json:"score"`
	Band  string `json:"band"`
}

type listItem struct {
	CustomerID string  `json:"customer_id"`
	Score      float64 `json:"score"`
	Band       string  `json:"band"`
}

// atRisk is what the page's list must show: red and yellow, lowest score
// first (the API's order breaks ties), as the page formats them.
func (s *service) atRisk(t *testing.T) []row {
	t.Helper()
	return s.listed(t, "", "red", "yellow")
}

// listed is the page's list for bands, filtered by segment ("": all).
func (s *service) listed(t *testing.T, segment string, bands ...string) []row {
	t.Helper()
	var all []listItem
	for _, band := range bands {
		var l struct{ Customers []listItem }
		path := "/v1/customers?band=" + band + "&limit=100"
		if segment != "" {
			path += "&segment=" + url.QueryEscape(segment)
		}
		if code := s.get(t, path, &l); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		all = append(all, l.Customers...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Score < all[j].Score })
	rows := make([]row, len(all))
	for i, c := range all {
		rows[i] = row{c.CustomerID, fmt.Sprintf("%.2f", c.Score), c.Band}
	}
	return rows
}

type driver struct {
	Category string  `json:"category"`
	Signal   string  `json:"signal"`
	Points   float64 `json:"points"`
}

type change struct {
	Type    string   `json:"type"`
	Time    string   `json:"time"`
	Drivers []driver `json:"drivers"`
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitView waits until the page has rendered the view of path (main's
// data-ready attribute).
func waitView(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	sel := fmt.Sprintf(`main[data-ready=%q]`, path)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(sel)); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main').outerHTML`))
		t.Fatalf("the view %s did not render: %v\n%.3000s", path, err, html)
	}
}

const readRows = `[...document.querySelectorAll('#at-risk tbody tr')].map(tr => ({
	id: tr.dataset.customerId, score: tr.querySelector('td.score').textContent,
	band: tr.querySelector('.band').textContent}))`

// TestPage: the at-risk list equals the API's, a customer page shows the
// API's score and drivers, the views work by keyboard, the page asks for
// the token and then works, and the console stays free of errors.
func TestPage(t *testing.T) {
	exe := chromium(t)
	s := start(t)
	n := seed(t, s.brokers)
	t.Logf("%d events seeded", n)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	var con console
	if err := chromedp.Listen(ctx, con.listen); err != nil {
		t.Fatalf("cannot start chromium: %v", err)
	}
	// One deadline for the whole browser session.
	ctx, cancelRun := context.WithTimeout(ctx, 90*time.Second)
	defer cancelRun()

	// 1. / redirects to the page; its first data call gets a 401, so it asks
	// for the token; with it, the list renders.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.base+"/"), chromedp.WaitVisible("#token-input")); err != nil {
		t.Fatalf("the page did not ask for the token: %v", err)
	}
	if got := eval[string](t, ctx, `location.pathname`); got != "/ui/" {
		t.Errorf("/ led to %s, want /ui/", got)
	}
	if got := eval[string](t, ctx, `document.activeElement.id`); got != "token-input" {
		t.Errorf("focus is on %q while the token is asked, want the token field", got)
	}
	// A wrong token is refused and asked for again; the right one works.
	if err := chromedp.Do(ctx, chromedp.SendKeys("#token-input", "not-the-token"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('token-dialog').open &&
		document.getElementById('token-why').textContent.includes('not accepted')`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("a wrong token was not refused and asked for again: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys("#token-input", token+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitView(t, ctx, "/")
	for _, e := range con.take() { // the 401s that made the page ask
		if !strings.Contains(e, "401") {
			t.Errorf("console error before the token was given: %s", e)
		}
	}
	if got := eval[string](t, ctx, `sessionStorage.getItem('healthscore.api-token')`); got != token {
		t.Errorf("the token kept in sessionStorage is %q", got)
	}

	// 2. The list equals the API's: same ids, order, scores and bands. The
	// sweeper may rescore between two reads, so the page must equal the API
	// read just before or just after it.
	var shown []row
	for attempt := 0; ; attempt++ {
		before := s.atRisk(t)
		shown = eval[[]row](t, ctx, readRows)
		after := s.atRisk(t)
		if slices.Equal(shown, before) || slices.Equal(shown, after) {
			break
		}
		if attempt == 3 {
			t.Fatalf("the page's list differs from the API's:\npage %v\nAPI  %v", shown, after)
		}
		if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		waitView(t, ctx, "/")
	}
	if len(shown) < 3 {
		t.Fatalf("only %d customers at risk: the seeded events should make more red or yellow", len(shown))
	}
	t.Logf("at risk: %d customers, as the API says", len(shown))

	// 3. Keyboard: Tab reaches the first customer's link (with a visible
	// focus ring) and Enter opens its page, with the focus on its heading.
	first := shown[0].ID
	reached := false
	for range 30 {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		if eval[string](t, ctx, `document.activeElement.getAttribute('href') || ''`) == "#/customers/"+url.PathEscape(first) {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatalf("30 presses of Tab did not reach the link of %s", first)
	}
	if outline := eval[string](t, ctx, `getComputedStyle(document.activeElement).outlineStyle`); outline == "none" {
		t.Error("the focused link has no visible focus (outline none)")
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitView(t, ctx, "/customers/"+url.PathEscape(first))
	if got := eval[string](t, ctx, `document.activeElement.tagName + ' ' + document.activeElement.textContent`); got != "H1 Customer "+first {
		t.Errorf("focus after opening the customer: %q, want its heading", got)
	}

	// 4. The customer page shows the API's score and band, and the drivers
	// of the API's last changes.
	checkCustomer(t, ctx, s, first)
	// A customer with band changes, for the drivers (the list's first may
	// have none within the window).
	var withChanges string
	for _, r := range shown {
		var h struct{ Changes []change }
		if s.get(t, "/v1/customers/"+url.PathEscape(r.ID)+"/history", &h) == 200 && len(h.Changes) > 0 && len(h.Changes[0].Drivers) > 0 {
			withChanges = r.ID
			break
		}
	}
	if withChanges == "" {
		t.Fatal("no customer at risk has a band change with drivers: the seeded events should make some")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.base+"/ui/#/customers/"+url.PathEscape(withChanges))); err != nil {
		t.Fatal(err)
	}
	waitView(t, ctx, "/customers/"+url.PathEscape(withChanges))
	checkCustomer(t, ctx, s, withChanges)
	if got := eval[int](t, ctx, `document.querySelectorAll('#hist-title ~ svg.chart circle').length`); got == 0 {
		t.Error("the history chart has no points")
	}

	// 5. The other views, through the navigation links.
	checkForecast(t, ctx, s)
	if err := chromedp.Do(ctx, chromedp.Click(`nav a[href="#/model"]`)); err != nil {
		t.Fatal(err)
	}
	waitView(t, ctx, "/model")
	var m struct{ Name, Version string }
	switch code := s.get(t, "/v1/model", &m); code {
	case 200:
		if got := eval[string](t, ctx, `document.querySelector('main h1').textContent`); got != "Model "+m.Name+" "+m.Version {
			t.Errorf("the model page's heading is %q, want the API's %s %s", got, m.Name, m.Version)
		}
	case 404:
		if eval[int](t, ctx, `document.querySelectorAll('[data-state="not-available"]').length`) == 0 {
			t.Error("without /v1/model the model page does not say it is not available")
		}
	default:
		t.Errorf("GET /v1/model: %d", code)
	}

	// 6. The list's filters: a segment, then red only; each shows what the
	// API lists with the same filter.
	if err := chromedp.Do(ctx, chromedp.Click(`nav a[href="#/"]`)); err != nil {
		t.Fatal(err)
	}
	waitView(t, ctx, "/")
	for _, f := range []struct {
		id, value, query, segment string
		bands                     []string
	}{
		{"f-segment", "enterprise", "segment=enterprise", "enterprise", []string{"red", "yellow"}},
		{"f-band", "red", "band=red&segment=enterprise", "enterprise", []string{"red"}},
		{"f-segment", "", "band=red", "", []string{"red"}},
	} {
		js := fmt.Sprintf(`(() => { const s = document.getElementById(%q); s.value = %q; s.dispatchEvent(new Event('change')); return s.value; })()`, f.id, f.value)
		if got := eval[string](t, ctx, js); got != f.value {
			t.Fatalf("the filter %s has no option %q", f.id, f.value)
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := chromedp.Do(wctx, chromedp.WaitReady(fmt.Sprintf(`#results[data-query=%q]`, f.query)))
		cancel()
		if err != nil {
			t.Fatalf("the list filtered by %s did not render: %v", f.query, err)
		}
		shown := eval[[]row](t, ctx, readRows)
		want := s.listed(t, f.segment, f.bands...)
		if !slices.Equal(shown, want) && !slices.Equal(shown, s.listed(t, f.segment, f.bands...)) {
			t.Errorf("filtered by %s the page shows %v, the API %v", f.query, shown, want)
		}
		if len(want) == 0 {
			t.Errorf("filtered by %s the API lists no one: the seeded events should give some", f.query)
		}
		if got := eval[string](t, ctx, `location.hash`); got != "#/?"+f.query {
			t.Errorf("the address keeps the filters as %s, want #/?%s", got, f.query)
		}
	}

	for _, e := range con.take() {
		t.Errorf("console error: %s", e)
	}
}

// checkCustomer compares the open customer page with the API.
func checkCustomer(t *testing.T, ctx context.Context, s *service, id string) {
	t.Helper()
	path := "/v1/customers/" + url.PathEscape(id)
	var c struct {
		Score *float64
		Band  *string
	}
	var hist struct{ Changes []change }
	shownScore := eval[string](t, ctx, `document.getElementById('score').textContent`)
	shownBand := eval[string](t, ctx, `document.querySelector('#band .band').textContent`)
	// The score decays with the clock: the page must show the API's score of
	// just before or just after it rendered.
	var want []string
	for range 2 {
		if code := s.get(t, path, &c); code != 200 || c.Score == nil {
			t.Fatalf("GET %s: %d %+v", path, code, c)
		}
		want = append(want, fmt.Sprintf("%.2f", *c.Score))
	}
	if shownScore != want[0] && shownScore != want[1] {
		t.Errorf("%s: the page shows score %s, the API %v", id, shownScore, want)
	}
	if shownBand != *c.Band {
		t.Errorf("%s: the page shows band %s, the API %s", id, shownBand, *c.Band)
	}
	switch code := s.get(t, path+"/history", &hist); code {
	case 200:
	case 404:
		return
	default:
		t.Fatalf("GET %s/history: %d", path, code)
	}
	type shownChange struct {
		Type    string `json:"type"`
		Time    string `json:"time"`
		Drivers []struct {
			Category string `json:"category"`
			Signal   string `json:"signal"`
			Points   string `json:"points"`
		} `json:"drivers"`
	}
	got := eval[[]shownChange](t, ctx, `[...document.querySelectorAll('#changes > li')].map(li => ({
		type: li.dataset.type, time: li.dataset.time,
		drivers: [...li.querySelectorAll('.driver')].map(d => ({category: d.dataset.category, signal: d.dataset.signal, points: d.dataset.points}))}))`)
	if len(got) != len(hist.Changes) {
		t.Fatalf("%s: the page shows %d changes, the API has %d", id, len(got), len(hist.Changes))
	}
	t.Logf("%s: score %s, %d changes with their drivers, as the API says", id, shownScore, len(got))
	for i, ch := range hist.Changes {
		g := got[i]
		if g.Type != ch.Type || g.Time != ch.Time || len(g.Drivers) != len(ch.Drivers) {
			t.Errorf("%s: change %d on the page %+v, in the API %+v", id, i, g, ch)
			continue
		}
		for j, d := range ch.Drivers {
			var p float64
			_, err := fmt.Sscan(g.Drivers[j].Points, &p)
			if g.Drivers[j].Category != d.Category || g.Drivers[j].Signal != d.Signal || err != nil || math.Abs(p-d.Points) > 1e-9 {
				t.Errorf("%s: change %d driver %d on the page %+v, in the API %+v", id, i, j, g.Drivers[j], d)
			}
		}
	}
}

// checkForecast opens "Turning red soon" from the navigation and compares
// it with GET /v1/forecast (or expects "not available" without it).
func checkForecast(t *testing.T, ctx context.Context, s *service) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Click(`nav a[href="#/forecast"]`)); err != nil {
		t.Fatal(err)
	}
	waitView(t, ctx, "/forecast")
	// The window's end moves with the clock: the page must show what the
	// API lists just before or just after it was read.
	read := func() (code int, ids []string) {
		var f struct {
			Customers []struct {
				CustomerID string `json:"customer_id"`
				At         string `json:"at"`
			}
		}
		code = s.get(t, "/v1/forecast?band=red&within=7d&limit=100", &f)
		for _, c := range f.Customers {
			ids = append(ids, c.CustomerID+" "+c.At)
		}
		return code, ids
	}
	code, want := read()
	switch code {
	case 200:
	case 404:
		if eval[int](t, ctx, `document.querySelectorAll('[data-state="not-available"]').length`) == 0 {
			t.Error("without /v1/forecast the view does not say it is not available")
		}
		return
	default:
		t.Fatalf("GET /v1/forecast: %d", code)
	}
	got := eval[[]string](t, ctx, `[...document.querySelectorAll('#forecast tbody tr')].map(tr => tr.dataset.customerId + ' ' + tr.querySelector('time').getAttribute('datetime'))`)
	if _, again := read(); strings.Join(got, ",") != strings.Join(want, ",") && strings.Join(got, ",") != strings.Join(again, ",") {
		t.Errorf("turning red soon: the page shows %v, the API %v", got, again)
	}
	if len(want) == 0 && eval[int](t, ctx, `document.querySelectorAll('[data-state="empty"]').length`) == 0 {
		t.Error("an empty forecast is not said to be empty")
	}
	t.Logf("turning red within 7 days: %d customers, as the API says", len(want))
	if len(want) == 0 && eval[int](t, ctx, `document.querySelectorAll('[data-state="empty"]').length`) == 0 {
		t.Error("an empty forecast is not said to be empty")
	}
}
