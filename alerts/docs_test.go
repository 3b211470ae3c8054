package alerts

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
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
		want := alertKeys
		if ce.Type == TypeScoreChanged {
			want = scoreKeys
		}
		if got := keys(t, ce.Data); len(got) != len(want) {
			t.Errorf("%s example: data keys %v, want %v", ce.Type, got, want)
		}
		c := Cause{Topic: d.Cause.Topic, Partition: d.Cause.Partition, Offset: d.Cause.Offset}
		if id := EventID(ce.Type, ce.Subject, c); ce.ID != id {
			t.Errorf("%s example: id %s, the rule gives %s", ce.Type, ce.ID, id)
		}
		seen[ce.Type] = true
	}
	for _, typ := range []string{TypeScoreChanged, TypeLow, TypeRecovered} {
		if !seen[typ] {
			t.Errorf("docs/events.md has no %s example", typ)
		}
	}
}
