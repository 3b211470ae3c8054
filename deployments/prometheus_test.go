package deployments

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// mustReturnData names the panels whose queries must return data while
// `healthscore run --demo` runs: the core of each dashboard (throughput,
// lag, latency, bands). Panels on metrics that only some setups have
// (errors, reloads, overrides) may be empty but must not fail.
var mustReturnData = map[string][]string{
	"healthscore-service": {
		"Ready instances", "Group lag",
		"Events in by result", "Events out by type", "Evaluations by cause",
		"Lag in records per partition",
		"Batch stage latency (p99)", "Event to output latency", "Batch duration", "Records per batch",
		"Offset commits", "Rebalance effects",
		"Sweeper due and held", "Sweeper lag", "Decay rescorings",
		"Batch retries by step", "Redis client errors", "State cache hit ratio", "Redis connections",
		"Reload rescoring pending",
		"Oldest unprocessed record", "Lag in seconds per partition", "Time since last commit",
		"Model in use", "Model version per instance", "Dead letters by reason",
	},
	"healthscore-customers": {
		"Customers per band", "Red customers", "Share red", "Score changes published",
	},
}

// pendingData names panels whose metrics a coming change adds. The test
// fails once one returns data, so that it moves to mustReturnData.
var pendingData = map[string][]string{}

// mayBeEmpty names the panels that may rightly show nothing during the
// demo: errors, reloads, overrides, and alerts (they depend on the demo's
// luck within the first seconds).
var mayBeEmpty = map[string][]string{
	"healthscore-service":   {"Kafka client errors", "Model reloads by result"},
	"healthscore-customers": {"Alerts per type and hour", "Transitions into red per hour", "Overrides active"},
}

// grafanaVars are the values the live test gives the dashboards' variables.
// $__rate_interval is at least four scrape intervals (1 s here).
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "10s",
	"${datasource}", "prometheus",
	"$job", "healthscore",
	"$instance", ".*",
)

// TestDashboardsAndRulesAgainstLivePrometheus runs the real Prometheus
// (Debian package) scraping `healthscore run --demo` once a second with
// rules.yaml loaded, then runs every PromQL expression of every panel and
// rule through Prometheus' HTTP API: none may fail, the core panels must
// return data, and every rule must evaluate without error.
func TestDashboardsAndRulesAgainstLivePrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no live Prometheus")
	}
	prom := tool(t, "prometheus")
	dir := t.TempDir()
	bin := healthscoreBinary(t)

	hsAddr := startDemo(t, bin)
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	promAddr := startPrometheus(t, prom, dir, hsAddr, rules)
	api := &promAPI{base: "http://" + promAddr}

	// Wait until every core panel has data (lag is measured every 15 s).
	dashboards := loadDashboards(t)
	deadline := time.Now().Add(50 * time.Second)
	for {
		missing := missingData(t, api, dashboards)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no data after 50 s for: %s", strings.Join(missing, "; "))
		}
		time.Sleep(time.Second) // poll interval while Prometheus scrapes
	}

	// The check below can fail: a broken expression is an error.
	if _, err := api.query("sum(rate(healthscore_events_total[1m])"); err == nil {
		t.Fatal("Prometheus accepted a broken expression: the checks below check nothing")
	}
	// Every expression of every panel: no error.
	var n int
	for _, d := range dashboards {
		for _, p := range d.queryPanels() {
			for _, q := range p.Targets {
				if _, err := api.query(grafanaVars.Replace(q.Expr)); err != nil {
					t.Errorf("%s / %s / %s: %v", d.UID, p.Title, q.RefID, err)
				}
				n++
			}
		}
		// The variables' label_values queries find the demo.
		for _, label := range []string{"job", "instance"} {
			vals, err := api.labelValues(label, "healthscore_events_total")
			if err != nil || len(vals) == 0 {
				t.Errorf("%s: variable %s: values %v, %v", d.UID, label, vals, err)
			}
		}
	}
	// Every rule expression: no error, and Prometheus evaluates the group.
	for _, r := range loadRules(t) {
		if _, err := api.query(r.Expr); err != nil {
			t.Errorf("rule %s: %v", r.Alert, err)
		}
		n++
	}
	checkRuleHealth(t, api, len(loadRules(t)))
	t.Logf("%d expressions ran without error", n)
	checkMetricsDocumented(t, api)
}

// checkMetricsDocumented: every healthscore_* metric the demo exposes is in
// README.md's metrics table (client families by their prefix).
func checkMetricsDocumented(t *testing.T, api *promAPI) {
	t.Helper()
	names, err := api.labelValues("__name__", `{job="healthscore"}`)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var checked int
	for _, name := range names {
		if !strings.HasPrefix(name, "healthscore_") {
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && strings.Contains(string(readme), "`"+base+"`") {
				name = base
			}
		}
		family := name
		for _, prefix := range []string{"healthscore_kafka_", "healthscore_redis_pool_"} {
			if strings.HasPrefix(name, prefix) {
				family = prefix + "*"
			}
		}
		checked++
		if !strings.Contains(string(readme), "`"+family+"`") {
			t.Errorf("metric %s is not in README.md's metrics table", family)
		}
	}
	if checked < 20 {
		t.Errorf("only %d healthscore metrics scraped", checked)
	}
}

// missingData returns the core panels that return no data yet. Every
// panel must be in exactly one of mustReturnData, pendingData, mayBeEmpty;
// a pending panel that returns data fails the test.
func missingData(t *testing.T, api *promAPI, dashboards []dashboardFile) []string {
	t.Helper()
	var missing []string
	found := 0
	for _, d := range dashboards {
		for _, p := range d.queryPanels() {
			must := containsString(mustReturnData[d.UID], p.Title)
			pending := containsString(pendingData[d.UID], p.Title)
			if n := btoi(must) + btoi(pending) + btoi(containsString(mayBeEmpty[d.UID], p.Title)); n != 1 {
				t.Fatalf("%s / %s: in %d of mustReturnData, pendingData, mayBeEmpty; put it in exactly one", d.UID, p.Title, n)
			}
			if !must && !pending {
				continue
			}
			found++
			var any bool
			for _, q := range p.Targets {
				res, err := api.query(grafanaVars.Replace(q.Expr))
				if err != nil {
					t.Fatalf("%s / %s: %v", d.UID, p.Title, err)
				}
				any = any || len(res) > 0
			}
			switch {
			case pending && any:
				t.Errorf("%s / %s returns data now: move it from pendingData to mustReturnData", d.UID, p.Title)
			case must && !any:
				missing = append(missing, d.UID+" / "+p.Title)
			}
		}
	}
	want := 0
	for _, m := range []map[string][]string{mustReturnData, pendingData} {
		for _, ts := range m {
			want += len(ts)
		}
	}
	if found != want {
		t.Fatalf("mustReturnData and pendingData name %d panels, the dashboards have %d of them: a title changed", want, found)
	}
	return missing
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkRuleHealth(t *testing.T, api *promAPI, want int) {
	t.Helper()
	// rules.yaml evaluates its group every 30 s, and Prometheus places a
	// group's first evaluation anywhere within its interval (an offset from
	// the group's hash): wait for one whole interval and a margin.
	deadline := time.Now().Add(45 * time.Second)
	for {
		var body struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name           string    `json:"name"`
						Health         string    `json:"health"`
						LastError      string    `json:"lastError"`
						LastEvaluation time.Time `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := api.get("/api/v1/rules", nil, &body); err != nil {
			t.Fatal(err)
		}
		var got, evaluated int
		for _, g := range body.Data.Groups {
			for _, r := range g.Rules {
				got++
				if r.LastEvaluation.IsZero() || r.Health == "unknown" {
					continue
				}
				evaluated++
				if r.Health != "ok" {
					t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
				}
			}
		}
		if got != want {
			t.Fatalf("Prometheus loaded %d rules, rules.yaml has %d", got, want)
		}
		if evaluated == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d rules evaluated", evaluated, want)
		}
		time.Sleep(500 * time.Millisecond) // rules evaluate every 1 s here
	}
}

type promAPI struct{ base string }

func (a *promAPI) get(path string, q url.Values, v any) error {
	u := a.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var status struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(body, &status); err != nil {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	if status.Status != "success" {
		return fmt.Errorf("GET %s: %s", path, status.Error)
	}
	return json.Unmarshal(body, v)
}

// query runs an instant query and returns its result (vector or scalar).
func (a *promAPI) query(expr string) ([]json.RawMessage, error) {
	var body struct {
		Data struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := a.get("/api/v1/query", url.Values{"query": {expr}}, &body); err != nil {
		return nil, fmt.Errorf("%s: %w", expr, err)
	}
	if body.Data.ResultType == "scalar" {
		return []json.RawMessage{body.Data.Result}, nil
	}
	var res []json.RawMessage
	if err := json.Unmarshal(body.Data.Result, &res); err != nil {
		return nil, fmt.Errorf("%s: result %s: %w", expr, body.Data.Result, err)
	}
	return res, nil
}

func (a *promAPI) labelValues(label, match string) ([]string, error) {
	var body struct {
		Data []string `json:"data"`
	}
	err := a.get("/api/v1/label/"+label+"/values", url.Values{"match[]": {match}}, &body)
	return body.Data, err
}

// startDemo runs `healthscore run --demo` (embedded broker on a free port,
// embedded Redis) and returns its HTTP address.
func startDemo(t *testing.T, bin string) string {
	t.Helper()
	cmd := exec.Command(bin, "run", "--demo", "--broker-port", "0", "--http", "127.0.0.1:0")
	return startLogged(t, cmd, "healthscore", func(line string) (string, bool) {
		var l struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "HTTP listening" {
			return l.Addr, true
		}
		return "", false
	})
}

// startPrometheus runs Prometheus on a free loopback port with its data in
// dir, scraping target every second and evaluating rules every second.
func startPrometheus(t *testing.T, prom, dir, target, rules string) string {
	t.Helper()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: healthscore
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prom, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	startLogged(t, cmd, "prometheus", nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus not ready on %s after 20 s", addr)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startLogged starts cmd, keeps its stderr for the failure report, stops it
// with SIGTERM (then SIGKILL) at cleanup, and, with find, waits for the
// stderr line from which find extracts a value.
func startLogged(t *testing.T, cmd *exec.Cmd, name string, find func(string) (string, bool)) string {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	var mu sync.Mutex
	var logs strings.Builder
	found := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if find != nil {
				if v, ok := find(sc.Text()); ok {
					select {
					case found <- v:
					default:
					}
				}
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		select {
		case <-exited:
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("%s stderr:\n%s", name, logs.String())
			mu.Unlock()
		}
	})
	if find == nil {
		return ""
	}
	select {
	case v := <-found:
		return v
	case <-exited:
		t.Fatalf("%s exited before it was ready", name)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready within 60 s", name)
	}
	return ""
}
