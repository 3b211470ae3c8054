package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

// writeShopLog writes a small purchase log: customers buy at their own
// rate and half of them stop for good at a random day.
func writeShopLog(t *testing.T, path string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	for c := range 200 {
		rate := math.Exp(rng.NormFloat64() - 2)
		stop := 400.0
		if rng.IntN(2) == 0 {
			stop = rng.Float64() * 400
		}
		for d := rng.Float64() * 150; d < stop; d += rng.ExpFloat64() / rate {
			line, _ := json.Marshal(map[string]any{"customer_id": fmt.Sprintf("c%03d", c), "type": "purchase",
				"time": t0.Add(time.Duration(d * float64(24*time.Hour))).Format(time.RFC3339), "value": math.Round(rng.Float64()*1e4) / 100})
			b.Write(append(line, '\n'))
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFitCommand: `healthscore fit` writes a model that `model check`
// accepts and a JSON report; `model diff` compares it with the start model;
// wrong flags say what to fix.
func TestFitCommand(t *testing.T) {
	dir := t.TempDir()
	events, out, report := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "fitted.yaml"), filepath.Join(dir, "report.json")
	writeShopLog(t, events)
	var stdout, stderr bytes.Buffer
	args := []string{"fit", "--events", events, "--churn-if-no", "purchase", "--at", "2026-11-01T00:00:00Z", "--horizon", "60d", "--out", out, "--report", report}
	if code := run(args, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("fit: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "validation AUC: before ") {
		t.Errorf("fit output lacks the AUCs:\n%s", stdout.String())
	}
	var rep struct {
		Before float64 `json:"validate_auc_before"`
		After  float64 `json:"validate_auc_after"`
	}
	if data, err := os.ReadFile(report); err != nil || json.Unmarshal(data, &rep) != nil || rep.After <= 0.5 {
		t.Errorf("report %s: %v, %+v", report, err, rep)
	}
	stdout.Reset()
	if code := run([]string{"model", "check", out}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), ": ok: model b2b-saas version 2026.11.1-fit.20261101") {
		t.Errorf("model check: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	start := filepath.Join(dir, "start.yaml")
	if err := os.WriteFile(start, scorer.DefaultModelYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"model", "diff", start, out, "--events", events, "--at", "2026-11-01T00:00:00Z"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "band changes: ") {
		t.Errorf("model diff: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"fit", "--events", events, "--churn-if-no", "purchase", "--at", "2026-11-01T00:00:00Z"}, 2, "healthscore fit: --out FILE is required\n"},
		{[]string{"fit", "--events", events, "--at", "2026-11-01T00:00:00Z", "--out", out}, 2, "healthscore fit: give exactly one of --labels FILE and --churn-if-no TYPE\n"},
		{[]string{"fit", "--churn-if-no", "purchase", "--at", "2026-11-01T00:00:00Z", "--out", out}, 2, "healthscore fit: --events FILE is required\n"},
		{[]string{"fit", "--events", events, "--churn-if-no", "purchase", "--out", out}, 2, "healthscore fit: --at T is required: the cut-off, RFC 3339"},
		{[]string{"fit", "--events", events, "--churn-if-no", "purchase", "--at", "2026-11-01", "--out", out, events}, 2, `healthscore fit: unexpected argument "` + events + `": give event files with --events`},
		{[]string{"fit", "--events", events, "--churn-if-no", "purchase", "--at", "yesterday", "--out", out}, 1, `--at "yesterday" is neither RFC 3339`},
		{[]string{"fit", "--events", events, "--churn-if-no", "purchase", "--at", "2026-11-01", "--horizon", "90", "--out", out}, 1, `healthscore fit: --horizon: "90" needs a unit: m, h or d`},
		{[]string{"fit", "--events", "-", "--churn-if-no", "purchase", "--at", "2026-11-01", "--out", out}, 1, "healthscore fit: cannot read events from stdin here: give a FILE instead of -"},
		{[]string{"fit", "--events", events, "--churn-if-no", "purchase", "--at", "2026-03-01T00:00:00Z", "--out", out}, 1, "needs both churned and retained customers"},
		{[]string{"model", "diff", start, out}, 2, "healthscore model diff: --events FILE is required\n"},
		{[]string{"model", "diff", start, out, "--events", "-"}, 1, "healthscore model: cannot read events from stdin here: give a FILE instead of -"},
	} {
		stderr.Reset()
		if code := run(c.args, nil, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}
