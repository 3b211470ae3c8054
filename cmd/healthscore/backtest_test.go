package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConvertSimulateBacktest runs the three commands as a user would:
// convert a small Online Retail extract with the example map, backtest the
// example model on it, and backtest the built-in model on a small
// simulation with its labels and oracle.
func TestConvertSimulateBacktest(t *testing.T) {
	dir := t.TempDir()
	csv := "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n" +
		"1,A,x,2,2011-01-05 10:00:00,5,100,UK\n" +
		"1,B,x,1,2011-01-05 10:00:00,10,100,UK\n" +
		"2,A,x,1,2011-02-05 10:00:00,5,200,UK\n" +
		"C3,A,x,-1,2011-02-06 10:00:00,5,200,UK\n" +
		"4,A,x,1,2011-03-01 10:00:00,5,,UK\n" +
		"5,A,x,3,2011-04-05 10:00:00,5,100,UK\n" + // 100 buys again after the cut-off
		"6,A,x,oops,2011-04-06 10:00:00,5,300,UK\n"
	in := filepath.Join(dir, "retail.csv")
	events := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(in, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"convert", "csv", "--map", "../../examples/online-retail/map.yaml", "--out", events, in}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), in+`:8: value: column "Quantity": "oops" is not a finite number`) ||
		!strings.Contains(stderr.String(), "converted 7 rows into 4 events (1 rows without a customer skipped, 1 bad rows)") {
		t.Fatalf("convert: exit %d\n%s", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	js := filepath.Join(dir, "r.json")
	chart := filepath.Join(dir, "r.svg")
	code = run([]string{"backtest", "--model", "../../examples/online-retail/model.yaml", "--events", events, "--churn-if-no", "purchase",
		"--at", "2011-03-01", "--horizon", "90d", "--json", js, "--chart", chart}, nil, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "customers 2 (with events before the cut-off), churned 1 (50.0%)") {
		t.Fatalf("backtest: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	var rep map[string]any
	if b, err := os.ReadFile(js); err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("json: %v", err)
	}
	for _, k := range []string{"auc", "baseline_auc", "top_decile_lift", "customers", "churned"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("--json lacks %q", k)
		}
	}
	if rep["auc"] != 1.0 { // 100 spent more, bought more recently and stayed
		t.Errorf("auc %v, want 1", rep["auc"])
	}
	if b, err := os.ReadFile(chart); err != nil || !bytes.HasPrefix(b, []byte("<svg ")) {
		t.Fatalf("chart: %v", err)
	}

	sim := filepath.Join(dir, "sim")
	stderr.Reset()
	if code := run([]string{"simulate", "--customers", "60", "--days", "120", "--seed", "3", "--horizon", "30d", "--out", sim}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code = run([]string{"backtest", "--events", filepath.Join(sim, "events.jsonl"), "--labels", filepath.Join(sim, "labels.csv"),
		"--oracle", filepath.Join(sim, "oracle.csv"), "--at", "2026-04-01", "--horizon", "30d"}, nil, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "oracle") || !strings.Contains(stdout.String(), "backtest of b2b-saas") {
		t.Fatalf("backtest of the simulation: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backtest", "--events", events, "--at", "2011-03-01"}, 2, "healthscore backtest: give exactly one of --labels FILE and --churn-if-no TYPE\n"},
		{[]string{"backtest", "--events", events, "--labels", "l.csv", "--churn-if-no", "purchase", "--at", "2011-03-01"}, 2, "healthscore backtest: give exactly one of --labels FILE and --churn-if-no TYPE\n"},
		{[]string{"backtest", "--events", events, "--churn-if-no", "purchase"}, 2, "healthscore backtest: --at T is required: the cut-off, RFC 3339"},
		{[]string{"backtest", "--churn-if-no", "purchase", "--at", "2011-03-01"}, 2, "healthscore backtest: --events FILE is required\n"},
		{[]string{"backtest", "--events", events, "--churn-if-no", "purchase", "--at", "2011-03-01", "--horizon", "0d"}, 1, `healthscore backtest: --horizon: "0d" is not a positive number of days`},
		{[]string{"backtest", "--events", events, "--labels", filepath.Join(dir, "none.csv"), "--at", "2011-03-01"}, 1, "healthscore backtest: cannot open labels: "},
		{[]string{"backtest", "--events", filepath.Join(dir, "none.jsonl"), "--churn-if-no", "purchase", "--at", "2011-03-01"}, 1, "healthscore backtest: cannot open events: "},
		{[]string{"simulate"}, 2, "--out DIR is required"},
		{[]string{"convert", "csv", in}, 2, "healthscore convert csv: --map FILE is required\n"},
		{[]string{"convert"}, 2, "Usage: healthscore convert csv"},
	} {
		stderr.Reset()
		if code := run(c.args, nil, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}

// TestBacktestReadsStdin: "-" among the --events files is stdin, read in
// order with the named files; a bad line on stdin is reported as stdin:LINE.
func TestBacktestReadsStdin(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.jsonl")
	ev := func(id, day string) string {
		return `{"customer_id":"` + id + `","type":"purchase","time":"2026-` + day + `T00:00:00Z","value":10}` + "\n"
	}
	if err := os.WriteFile(file, []byte(ev("a", "01-05")+ev("a", "03-05")), 0o644); err != nil {
		t.Fatal(err)
	}
	stdin := strings.NewReader(ev("b", "01-07") + "not json\n")
	var stdout, stderr bytes.Buffer
	code := run([]string{"backtest", "--events", file, "-", "--churn-if-no", "purchase", "--at", "2026-02-01", "--horizon", "60d"}, stdin, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "customers 2 (with events before the cut-off), churned 1 (50.0%)") ||
		!strings.Contains(stderr.String(), "stdin:2: ") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
}
