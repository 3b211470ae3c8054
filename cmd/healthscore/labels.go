package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/healthscore/healthscore/fit"
)

// readLabels reads a labels file as `healthscore simulate` writes it: CSV
// with a header naming at least customer_id, churned (true/false) and
// churn_time (RFC 3339, empty when not churned).
// TODO: share the backtest's labels reader once it is committed.
func readLabels(path string) (fit.ChurnTimes, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open labels: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("cannot read labels %s: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, need := range []string{"customer_id", "churned", "churn_time"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s:1: the header has no %s column (want customer_id,churned,churn_time)", path, need)
		}
	}
	out := fit.ChurnTimes{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("cannot read labels: %w", err)
		}
		get := func(c string) string {
			if i := col[c]; i < len(rec) {
				return rec[i]
			}
			return ""
		}
		switch get("churned") {
		case "false":
			continue
		case "true":
		default:
			return nil, fmt.Errorf("%s:%d: churned %q is not true or false", path, line, get("churned"))
		}
		t, err := time.Parse(time.RFC3339Nano, get("churn_time"))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: churn_time %q is not RFC 3339", path, line, get("churn_time"))
		}
		out[get("customer_id")] = t.UnixNano()
	}
}
