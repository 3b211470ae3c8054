package ingest

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/healthscore/healthscore/scorer"
)

// testdataFiles returns the files of testdata/dir, by name.
func testdataFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata/%s: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// parseBinary reads a binary-mode test record: "key: value" header lines,
// a blank line, then the value (without its final newline).
func parseBinary(b []byte) Record {
	head, value, _ := bytes.Cut(b, []byte("\n\n"))
	var r Record
	for _, l := range strings.Split(string(head), "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok {
			r.Headers = append(r.Headers, Header{Key: k, Value: []byte(v)})
		}
	}
	r.Value = bytes.TrimSuffix(value, []byte("\n"))
	return r
}

// TestTestdata: every valid_* record of each format decodes, in auto mode
// and with its topic's format configured, to the same event; every bad_*
// one fails with a reason of the list.
func TestTestdata(t *testing.T) {
	auto := mustDecoder(t, Config{})
	for _, dir := range []string{"cloudevents", "binary", "segment"} {
		format := FormatCloudEvents
		if dir == "segment" {
			format = FormatSegment
		}
		configured := mustDecoder(t, Config{Default: TopicConfig{Format: format}})
		for name, b := range testdataFiles(t, dir) {
			r := Record{Value: bytes.TrimSpace(b)}
			if dir == "binary" {
				r = parseBinary(b)
			}
			ev, f, err := auto.Decode(r)
			ev2, _, err2 := configured.Decode(r)
			switch {
			case strings.HasPrefix(name, "valid_"):
				if err != nil || f != format || err2 != nil || ev != ev2 {
					t.Errorf("%s/%s: %+v, %s, %v; configured: %+v, %v", dir, name, ev, f, err, ev2, err2)
				}
				checkEvent(t, ev)
			default:
				de, ok := scorer.AsDecodeError(err)
				de2, ok2 := scorer.AsDecodeError(err2)
				if !ok || !ok2 || de.Reason != de2.Reason || !slices.Contains(scorer.DecodeReasons(), de.Reason) {
					t.Errorf("%s/%s: %v; configured: %v", dir, name, err, err2)
				}
			}
		}
	}
}

// checkEvent asserts what the pipeline relies on of a decoded event, and
// that it means the same as a native event: encoded as one, it decodes to
// itself.
func checkEvent(t *testing.T, ev scorer.Event) {
	t.Helper()
	if ev.CustomerID == "" || len(ev.CustomerID) > scorer.MaxCustomerIDLen || ev.Type == "" || ev.Type == scorer.TypeOverride ||
		math.IsNaN(ev.Value) || math.IsInf(ev.Value, 0) {
		t.Fatalf("decoded an event the pipeline cannot take: %+v", ev)
	}
	native := map[string]any{"customer_id": ev.CustomerID, "type": ev.Type, "value": ev.Value}
	if ev.ID != "" {
		native["id"] = ev.ID
	}
	if ev.Segment != "" {
		native["segment"] = ev.Segment
	}
	if ev.HasTime {
		native["time"] = scorer.FormatTime(ev.Time)
	}
	b, err := json.Marshal(native)
	if err != nil {
		t.Fatal(err)
	}
	back, err := scorer.DecodeEvent(b)
	if err != nil || back != ev {
		t.Fatalf("as a native event %s decodes to %+v, %v; want %+v", b, back, err, ev)
	}
}

func checkError(t *testing.T, err error) {
	t.Helper()
	de, ok := scorer.AsDecodeError(err)
	if !ok || !slices.Contains(scorer.DecodeReasons(), de.Reason) || de.Detail == "" {
		t.Fatalf("error %v (%T) is not a DecodeError with a listed reason and a detail", err, err)
	}
}

func fuzzDecoders(t testing.TB) map[Format]*Decoder {
	out := map[Format]*Decoder{}
	for _, f := range Formats() {
		out[f] = mustDecoder(t, Config{Default: TopicConfig{Format: f}})
	}
	return out
}

// fuzzRecord decodes r with every decoder: none panics, each either fails
// with a listed reason or gives a sound event, twice alike.
func fuzzRecord(t *testing.T, ds map[Format]*Decoder, r Record) {
	for _, d := range ds {
		ev, f, err := d.Decode(r)
		if err != nil {
			checkError(t, err)
			continue
		}
		if ev2, f2, err2 := d.Decode(r); ev2 != ev || f2 != f || err2 != nil {
			t.Fatalf("decoding twice: %+v %s, then %+v %s %v", ev, f, ev2, f2, err2)
		}
		checkEvent(t, ev)
	}
}

func FuzzDecodeCloudEventsStructured(f *testing.F) {
	for _, b := range testdataFiles(f, "cloudevents") {
		f.Add(b, true)
	}
	ds := fuzzDecoders(f)
	f.Fuzz(func(t *testing.T, value []byte, withContentType bool) {
		r := Record{Value: value}
		if withContentType {
			r.Headers = hdrs("content-type", mediaCloudEventsJSON)
		}
		fuzzRecord(t, ds, r)
	})
}

func FuzzDecodeCloudEventsBinary(f *testing.F) {
	for _, b := range testdataFiles(f, "binary") {
		f.Add(b)
	}
	ds := fuzzDecoders(f)
	f.Fuzz(func(t *testing.T, rec []byte) {
		fuzzRecord(t, ds, parseBinary(rec))
	})
}

func FuzzDecodeSegment(f *testing.F) {
	for _, b := range testdataFiles(f, "segment") {
		f.Add(b)
	}
	ds := fuzzDecoders(f)
	f.Fuzz(func(t *testing.T, value []byte) {
		fuzzRecord(t, ds, Record{Value: value})
	})
}

// FuzzDecodeAuto: detection over native events too (scorer's seeds), and a
// native record decodes in auto mode exactly as scorer.DecodeEvent does.
func FuzzDecodeAuto(f *testing.F) {
	for _, dir := range []string{"cloudevents", "segment"} {
		for _, b := range testdataFiles(f, dir) {
			f.Add(b)
		}
	}
	paths, _ := filepath.Glob("../scorer/testdata/events/*")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	auto := mustDecoder(f, Config{})
	f.Fuzz(func(t *testing.T, value []byte) {
		ev, format, err := auto.Decode(Record{Value: value})
		nev, nerr := scorer.DecodeEvent(value)
		if nerr == nil && (format != FormatNative || err != nil || ev != nev) {
			t.Fatalf("a native event read as %s: %+v, %v; native: %+v", format, ev, err, nev)
		}
		if err != nil {
			checkError(t, err)
		} else if format != FormatNative {
			checkEvent(t, ev)
		}
	})
}
