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

	for _, args := range [][]string{
		{"backtest", "--events", events, "--at", "2011-03-01"},
		{"backtest", "--events", events, "--churn-if-no", "purchase"},
		{"backtest", "--churn-if-no", "purchase", "--at", "2011-03-01"},
		{"simulate"},
		{"convert", "csv", in},
		{"convert"},
	} {
		if code := run(args, nil, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
