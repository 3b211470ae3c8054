package simulate

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

func small(seed uint64) Config {
	return Config{Customers: 200, Days: 150, Seed: seed, Horizon: 60 * day, OraclePaths: 50}
}

func TestReproducibleBySeed(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	for i, dir := range dirs {
		seed := uint64(42)
		if i == 2 {
			seed = 43
		}
		if _, err := WriteDir(small(seed), dir); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{EventsFile, LabelsFile, OracleFile} {
		a, _ := os.ReadFile(filepath.Join(dirs[0], name))
		b, _ := os.ReadFile(filepath.Join(dirs[1], name))
		c, _ := os.ReadFile(filepath.Join(dirs[2], name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: same seed, different bytes (%d, %d)", name, len(a), len(b))
		}
		if bytes.Equal(a, c) {
			t.Errorf("%s: different seeds, same bytes", name)
		}
	}
}

func TestEventsAndLabels(t *testing.T) {
	var out bytes.Buffer
	cfg := small(1)
	res, err := Run(cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	churn := map[string]int64{}
	for _, l := range res.Labels {
		if l.Churned {
			churn[l.CustomerID] = l.ChurnTime
		}
	}
	if n := len(churn); n < 10 || n > 120 {
		t.Fatalf("%d of 200 customers churned in 150 days; the process is mis-tuned", n)
	}
	types := map[string]int{}
	cancelled := map[string]int64{}
	var last int64
	sc := bufio.NewScanner(&out)
	lines := 0
	for sc.Scan() {
		lines++
		ev, err := scorer.DecodeEvent(sc.Bytes())
		if err != nil || !ev.HasTime {
			t.Fatalf("line %d: %v: %s", lines, err, sc.Text())
		}
		if ev.Time < last {
			t.Fatalf("line %d: not sorted by time", lines)
		}
		last = ev.Time
		types[ev.Type]++
		if ct, ok := cancelled[ev.CustomerID]; ok {
			t.Fatalf("line %d: event after the cancellation at %s: %s", lines, scorer.FormatTime(ct), sc.Text())
		}
		if ev.Type == TypeCancelled {
			cancelled[ev.CustomerID] = ev.Time
			if churn[ev.CustomerID] != ev.Time {
				t.Fatalf("cancellation of %s at %s, label says %s", ev.CustomerID, scorer.FormatTime(ev.Time), scorer.FormatTime(churn[ev.CustomerID]))
			}
		}
		if ev.Time < res.Config.Start.UnixNano() || ev.Time >= res.Config.Start.AddDate(0, 0, cfg.Days).UnixNano() {
			t.Fatalf("line %d: outside the simulated days", lines)
		}
	}
	if lines != res.Events || len(cancelled) != len(churn) {
		t.Fatalf("%d lines, %d events; %d cancellations, %d churned", lines, res.Events, len(cancelled), len(churn))
	}
	for _, typ := range []string{TypeLogin, TypeFeatureUsed, TypeKBViewed, TypeTicketOpened, TypeTicketEscalated, TypeNPS, TypePaymentSucceeded, TypePaymentFailed} {
		if types[typ] == 0 {
			t.Errorf("no %s events", typ)
		}
	}
}

// The oracle is calibrated: its mean risk is close to the churn rate it
// predicts, and customers it ranks riskier churn more.
func TestOracle(t *testing.T) {
	cfg := Config{Customers: 1200, Days: 150, Seed: 5, Horizon: 90 * day, OraclePaths: 30}
	res, err := Run(cfg, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	at, end := res.Config.At.UnixNano(), res.Config.At.Add(cfg.Horizon).UnixNano()
	churn := map[string]bool{}  // churned by At: must not be in the oracle
	within := map[string]bool{} // churned in (At, At+Horizon]
	for _, l := range res.Labels {
		churn[l.CustomerID] = l.Churned && l.ChurnTime <= at
		within[l.CustomerID] = l.Churned && l.ChurnTime > at && l.ChurnTime <= end
	}
	var sum, hits float64
	var hiRisk, hiChurn, loRisk, loChurn float64
	for _, r := range res.Oracle {
		if churn[r.CustomerID] {
			t.Fatalf("%s churned before At but has an oracle risk", r.CustomerID)
		}
		y := 0.0
		if within[r.CustomerID] {
			y = 1
		}
		sum += r.Risk
		hits += y
		if r.Risk > 0.2 {
			hiRisk++
			hiChurn += y
		} else {
			loRisk++
			loChurn += y
		}
	}
	n := float64(len(res.Oracle))
	if n < 900 || (sum-hits)/n > 0.03 || (hits-sum)/n > 0.03 {
		t.Fatalf("%v customers at At: mean risk %.3f, churn rate %.3f", n, sum/n, hits/n)
	}
	if hiChurn/hiRisk < 3*loChurn/loRisk {
		t.Fatalf("risk > 0.2: %.3f churn; below: %.3f", hiChurn/hiRisk, loChurn/loRisk)
	}
}

func TestConfigErrors(t *testing.T) {
	start := DefaultStart
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Customers: -1}, "customers: want 1 to 1000000"},
		{Config{Days: 4000}, "days: want 1 to 3650"},
		{Config{Start: start.Add(time.Hour)}, "start: want a midnight UTC"},
		{Config{Horizon: 36 * time.Hour}, "horizon: want whole days"},
		{Config{At: start.AddDate(-1, 0, 0)}, "at: want a midnight UTC between the start 2026-01-01"},
		{Config{OraclePaths: -2}, "oracle paths: want at least 1"},
	} {
		_, err := Run(c.cfg, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.cfg, err, c.want)
		}
	}
}
