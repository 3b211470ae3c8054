package alerts

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/healthscore/healthscore/scorer"
)

// TestDocsExamples checks the event examples in docs/events.md against the
// schema the tests decode with and the id rule.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	seen := map[string]bool{}
	for _, b := range blocks {
		var ce cloudEvent
		if err := json.Unmarshal(b[1], &ce); err != nil || ce.SpecVersion == "" {
			continue // the input event example
		}
		strict(t, b[1], &ce)
		var d eventData
		strict(t, ce.Data, &d)
		want := dataKeys(ce.Type, d.Overridden != nil)
		if got := keys(t, ce.Data); !slices.Equal(got, want) {
			t.Errorf("%s example: data keys %v, want %v", ce.Type, got, want)
		}
		c := Cause{Topic: d.Cause.Topic, Partition: d.Cause.Partition, Offset: d.Cause.Offset}
		if d.Cause.Decay {
			at, err := time.Parse(time.RFC3339Nano, d.Cause.At)
			if err != nil || d.Cause.At != ce.Time {
				t.Errorf("%s example: cause.at %q, time %q", ce.Type, d.Cause.At, ce.Time)
			}
			c = Cause{Decay: true, At: at.UnixNano()}
		}
		if ce.Type == TypeDropped && (d.Baseline == nil || d.Drop == nil || scorer.Round2(*d.Baseline-d.Score) != *d.Drop) {
			t.Errorf("%s example: baseline − score is not drop", ce.Type)
		}
		if id := EventID(ce.Type, ce.Subject, c); ce.ID != id {
			t.Errorf("%s example: id %s, the rule gives %s", ce.Type, ce.ID, id)
		}
		seen[ce.Type] = true
	}
	for _, typ := range []string{TypeScoreChanged, TypeLow, TypeRecovered, TypeDropped} {
		if !seen[typ] {
			t.Errorf("docs/events.md has no %s example", typ)
		}
	}
}
