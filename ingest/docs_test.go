package ingest

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestDocsExamples: the input examples of docs/events.md decode in auto
// mode (the JSON ones, and the kcat command's headers and value), and its
// configuration file example parses and shows the real defaults.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatalf("docs/events.md: %v", err)
	}
	d := mustDecoder(t, Config{})
	blocks := regexp.MustCompile("(?s)```json input\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 4 {
		t.Fatalf("docs/events.md has %d input examples, want the CloudEvent and three Segment calls", len(blocks))
	}
	for _, b := range blocks {
		ev, f, err := d.Decode(Record{Value: b[1]})
		if err != nil || f == FormatNative {
			t.Errorf("example %s: %s, %v", b[1], f, err)
			continue
		}
		checkEvent(t, ev)
	}

	sh := regexp.MustCompile("(?s)```sh\n(echo '.*?)```").FindSubmatch(doc)
	if sh == nil {
		t.Fatal("docs/events.md has no kcat example")
	}
	cmd := strings.ReplaceAll(string(sh[1]), "\\\n", " ")
	value := regexp.MustCompile(`^echo '([^']*)'`).FindStringSubmatch(cmd)
	var hs []Header
	for _, m := range regexp.MustCompile(`-H ([^= ]+)=(\S+)`).FindAllStringSubmatch(cmd, -1) {
		hs = append(hs, Header{Key: m[1], Value: []byte(m[2])})
	}
	ev, f, err := d.Decode(Record{Value: []byte(value[1]), Headers: hs})
	if err != nil || f != FormatCloudEvents || ev.CustomerID != "acme" || ev.Value != 3 || ev.Segment != "mid-market" {
		t.Errorf("kcat example: %+v, %s, %v", ev, f, err)
	}

	y := regexp.MustCompile("(?s)```yaml\n(format: .*?)```").FindSubmatch(doc)
	if y == nil {
		t.Fatal("docs/events.md has no configuration file example")
	}
	cfg, err := ParseConfig("docs/events.md", y[1])
	if err != nil {
		t.Fatal(err)
	}
	if ce := cfg.Default.CloudEvents; ce.Types == nil || len(ce.Types) != 0 {
		t.Errorf("cloudevents.types: %v", ce.Types)
	}
	cfg.Default.CloudEvents.Types, cfg.Default.Segment.Types = nil, nil
	if want := (TopicConfig{}).withDefaults(); !reflect.DeepEqual(cfg.Default, want) {
		t.Errorf("the documented defaults differ from the code's:\n doc %+v\ncode %+v", cfg.Default, want)
	}
	if tc, ok := cfg.Topics["product-analytics"]; !ok || tc.Format != FormatSegment || len(tc.Segment.Customer) != 1 || tc.Segment.ID != "messageId" {
		t.Errorf("the example topic: %+v", tc)
	}
}
