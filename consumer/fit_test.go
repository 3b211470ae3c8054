package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/fit"
	"github.com/healthscore/healthscore/offline"
	"github.com/healthscore/healthscore/scorer"
)

// TestFittedModelInStream fits a model with package fit (as `healthscore
// fit` does), streams the same events through the consumer with it, and
// checks that every stored customer scores exactly as `healthscore score`
// (package offline) scores it: same score and band.
func TestFittedModelInStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var lines [][]byte
	for c := range 60 {
		rate := math.Exp(rng.NormFloat64() - 1.5)
		stop := 300.0
		if rng.IntN(2) == 0 {
			stop = rng.Float64() * 300
		}
		for d := rng.Float64() * 100; d < stop; d += rng.ExpFloat64() / rate {
			typ := "purchase"
			if rng.IntN(8) == 0 {
				typ = "return"
			}
			b, _ := json.Marshal(map[string]any{"customer_id": fmt.Sprintf("c%02d", c), "type": typ,
				"time": t0.Add(time.Duration(d * float64(24*time.Hour))).Format(time.RFC3339Nano), "value": math.Round(rng.Float64()*50000) / 100})
			lines = append(lines, b)
		}
	}
	at := t0.Add(300 * 24 * time.Hour)
	input := func() []offline.Input {
		return []offline.Input{{Name: "events.jsonl", R: bytes.NewReader(bytes.Join(lines, []byte("\n")))}}
	}
	h, err := fit.ReadHistory(input(), at.UnixNano(), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := fit.Fit(h, fit.Config{Start: scorer.DefaultModel(), At: at.UnixNano(), Horizon: 60 * 24 * time.Hour,
		Labels: fit.Inactivity{Type: "purchase"}, MinCustomers: 5})
	if err != nil {
		t.Fatal(err)
	}
	model, err := scorer.ParseModel("fitted.yaml", res.YAML) // what the service loads
	if err != nil {
		t.Fatal(err)
	}
	off, err := offline.Fold(input(), offline.Options{Model: model, At: at.UnixNano(), HasAt: true})
	if err != nil || off.BadLines > 0 {
		t.Fatalf("offline fold: %v, %d bad lines", err, off.BadLines)
	}

	hs := newHarness(t)
	hs.model = model
	recs := make([]*kgo.Record, len(lines))
	for i, l := range lines {
		recs[i] = &kgo.Record{Value: l}
	}
	hs.produce(recs...)
	hs.run("fitted")
	if len(off.States) < 50 {
		t.Fatalf("only %d customers scored offline", len(off.States))
	}
	for id, want := range off.States {
		rec, err := hs.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := model.DecodeState(rec.Data)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		ge, we := model.Evaluate(got, at.UnixNano()), model.Evaluate(want, at.UnixNano())
		if !ge.HasScore || math.Abs(ge.Score-we.Score) > 1e-9 || model.RawBand(ge.Score, "") != model.RawBand(we.Score, "") {
			t.Errorf("%s: stream score %v (%v), offline %v (%v)", id, ge.Score, ge.HasScore, we.Score, we.HasScore)
		}
	}
}
