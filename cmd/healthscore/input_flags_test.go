package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthscore/healthscore/ingest"
)

// TestInputFlags: --input-format and --input-config (and their environment
// twins) are checked at start, with errors that say what to fix, and give
// the consumer the decoder they describe.
func TestInputFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "format: native\ntopics:\n  seg: {format: segment}\n")
	typo := write("typo.yaml", "topics:\n  segmnet: {format: segment}\n")
	bad := write("bad.yaml", "cloudevents:\n  customer: subject.id\n")
	for _, tc := range []struct {
		env     map[string]string
		args    []string
		wantErr string
		formats map[string]ingest.Format // topic → format, when valid
	}{
		{formats: map[string]ingest.Format{"customer-events": ingest.FormatAuto}},
		{args: []string{"--input-format", "cloudevents"}, formats: map[string]ingest.Format{"customer-events": ingest.FormatCloudEvents}},
		{env: map[string]string{"HEALTHSCORE_INPUT_FORMAT": "json"}, wantErr: `HEALTHSCORE_INPUT_FORMAT: "json" is not an input format; use one of auto, native, cloudevents, segment`},
		{args: []string{"--topics", "customer-events,seg", "--input-config", good},
			formats: map[string]ingest.Format{"customer-events": ingest.FormatNative, "seg": ingest.FormatSegment}},
		{args: []string{"--topics", "customer-events,seg", "--input-config", good, "--input-format", "auto"},
			formats: map[string]ingest.Format{"customer-events": ingest.FormatAuto, "seg": ingest.FormatSegment}},
		{env: map[string]string{"HEALTHSCORE_INPUT_CONFIG": typo}, wantErr: "names topics that are not input topics: segmnet"},
		{args: []string{"--input-config", bad}, wantErr: "bad.yaml: cloudevents.customer: \"subject.id\": a CloudEvents attribute has no fields"},
		{args: []string{"--input-config", filepath.Join(dir, "missing.yaml")}, wantErr: "--input-config: cannot read the input configuration"},
	} {
		for _, n := range []string{"HEALTHSCORE_INPUT_FORMAT", "HEALTHSCORE_INPUT_CONFIG"} {
			t.Setenv(n, "")
			os.Unsetenv(n)
		}
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		f, err := parseServiceFlags(tc.args, io.Discard)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v %v: %v; want %q", tc.env, tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v %v: %v", tc.env, tc.args, err)
			continue
		}
		for topic, want := range tc.formats {
			if got := f.inputDecoder.Format(topic); got != want {
				t.Errorf("%v %v: topic %s has format %s, want %s", tc.env, tc.args, topic, got, want)
			}
		}
	}
}
