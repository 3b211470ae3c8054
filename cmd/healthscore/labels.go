package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/healthscore/healthscore/fit"
)

// readLabels reads a labels file: one JSON object per line,
// {"customer_id": "...", "churned": true, "churn_time": "RFC 3339"}.
// TODO: use the backtest's labels reader once it exists.
func readLabels(path string) (fit.ChurnTimes, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open labels: %w", err)
	}
	defer f.Close()
	out := fit.ChurnTimes{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		var l struct {
			CustomerID string `json:"customer_id"`
			Churned    bool   `json:"churned"`
			ChurnTime  string `json:"churn_time"`
		}
		if len(sc.Bytes()) == 0 {
			continue
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.CustomerID == "" {
			return nil, fmt.Errorf("%s:%d: want {\"customer_id\":..., \"churned\":..., \"churn_time\":...}", path, line)
		}
		if !l.Churned {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, l.ChurnTime)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: churn_time %q is not RFC 3339", path, line, l.ChurnTime)
		}
		out[l.CustomerID] = t.UnixNano()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read labels: %w", err)
	}
	return out, nil
}
