package scorer

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A valid model used as the base of the validation cases; line numbers
// matter, so edits keep them stable.
const baseModel = `name: test
version: "1"
bands: {red: 40, yellow: 70}
hysteresis: 2
change_min_delta: 1
categories:
  - name: usage
    weight: 2
    signals:
      - {event: login, kind: count, half_life: 7d, target: 10}
      - {name: ticket_opened, event: ticket, kind: count, half_life: 1d, target: 4, direction: negative}
  - name: sentiment
    weight: 1
    signals:
      - {event: nps, kind: average, half_life: 90d, min: 0, max: 10}
      - {event: pay, kind: recency, half_life: 30d}
segments:
  enterprise:
    bands: {red: 50, yellow: 75}
    weights: {usage: 3}
    targets: {login_count: 30}
`

func TestParseModelBase(t *testing.T) {
	m, err := ParseModel("model.yaml", []byte(baseModel))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "test" || m.Version != "1" || m.Bands != (Bands{40, 70}) || m.Hysteresis != 2 || m.ChangeMinDelta != 1 {
		t.Fatalf("header: %+v", m)
	}
	want := []Signal{
		{Name: "login_count", Event: "login", Kind: KindCount, HalfLife: 7 * 24 * time.Hour, Target: 10},
		{Name: "ticket_opened", Event: "ticket", Kind: KindCount, HalfLife: 24 * time.Hour, Target: 4, Negative: true},
		{Name: "nps_average", Event: "nps", Kind: KindAverage, HalfLife: 90 * 24 * time.Hour, Min: 0, Max: 10},
		{Name: "pay_recency", Event: "pay", Kind: KindRecency, HalfLife: 30 * 24 * time.Hour},
	}
	if m.Signals() != len(want) {
		t.Fatalf("signals: %d", m.Signals())
	}
	for i, w := range want {
		if m.signals[i].Signal != w {
			t.Errorf("signal %d: got %+v, want %+v", i, m.signals[i].Signal, w)
		}
		if m.SignalName(i) != w.Name {
			t.Errorf("SignalName(%d) = %q", i, m.SignalName(i))
		}
	}
	if got := m.SignalsFor("ticket"); len(got) != 1 || got[0] != 1 {
		t.Errorf("SignalsFor(ticket) = %v", got)
	}
	if got := m.SignalsFor("nope"); got != nil {
		t.Errorf("SignalsFor(nope) = %v", got)
	}
	if len(m.Categories) != 2 || m.Categories[0].Weight != 2 || len(m.Categories[1].Signals) != 2 {
		t.Errorf("categories: %+v", m.Categories)
	}
	seg := m.Segments["enterprise"]
	if seg.Bands != (Bands{50, 75}) || seg.Weights["usage"] != 3 || seg.Targets["login_count"] != 30 {
		t.Errorf("segment: %+v", seg)
	}
	// Omitted hysteresis and change_min_delta default to 0 and 1.
	m, err = ParseModel("m", []byte(strings.Replace(strings.Replace(baseModel, "hysteresis: 2\n", "", 1), "change_min_delta: 1\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Hysteresis != 0 || m.ChangeMinDelta != 1 || m.DecayStep != 5 {
		t.Errorf("defaults: hysteresis %v change_min_delta %v", m.Hysteresis, m.ChangeMinDelta)
	}
}

// TestParseModelErrors checks every validation rule with the exact
// file:line text. Each case replaces one line of baseModel (or appends).
func TestParseModelErrors(t *testing.T) {
	f := func(old, new string, want ...string) {
		t.Helper()
		if !strings.Contains(baseModel, old) {
			t.Fatalf("baseModel has no %q", old)
		}
		src := strings.Replace(baseModel, old, new, 1)
		m, err := ParseModel("model.yaml", []byte(src))
		if err == nil {
			t.Fatalf("%q -> %q: parsed, want %q", old, new, want)
		}
		if m != nil {
			t.Fatalf("model not nil on error")
		}
		var es ModelErrors
		if !errors.As(err, &es) {
			t.Fatalf("error %T is not ModelErrors", err)
		}
		if got := err.Error(); got != strings.Join(want, "\n") {
			t.Errorf("%q -> %q:\ngot\n%s\nwant\n%s", old, new, got, strings.Join(want, "\n"))
		}
	}
	const sig0 = "      - {event: login, kind: count, half_life: 7d, target: 10}\n"
	const sig1 = "      - {name: ticket_opened, event: ticket, kind: count, half_life: 1d, target: 4, direction: negative}\n"
	const avg = "      - {event: nps, kind: average, half_life: 90d, min: 0, max: 10}\n"
	const rec = "      - {event: pay, kind: recency, half_life: 30d}\n"

	// Header.
	f("name: test\n", "name: ''\n", `model.yaml:1: name: is required`)
	f("name: test\n", "", `model.yaml: name: is required`)
	f(`version: "1"`, `version: " "`, `model.yaml:2: version: is required (quote it, e.g. "2026.11.1")`)
	f("bands: {red: 40, yellow: 70}\nh", "h", `model.yaml: bands: is required, e.g. {red: 40, yellow: 70}`)
	f("bands: {red: 40, yellow: 70}\nh", "bands: {red: 0, yellow: 70}\nh", `model.yaml:3: bands: want 0 < red < yellow <= 100, got red 0, yellow 70`)
	f("bands: {red: 40, yellow: 70}\nh", "bands: {red: 70, yellow: 70}\nh", `model.yaml:3: bands: want 0 < red < yellow <= 100, got red 70, yellow 70`)
	f("bands: {red: 40, yellow: 70}\nh", "bands: {red: 40, yellow: 101}\nh", `model.yaml:3: bands: want 0 < red < yellow <= 100, got red 40, yellow 101`)
	f("bands: {red: 40, yellow: 70}\nh", "bands: {red: 40}\nh", `model.yaml:3: bands: want 0 < red < yellow <= 100, got red 40, yellow 0`)
	f("hysteresis: 2", "hysteresis: -1", `model.yaml:4: hysteresis: must be >= 0 and < 50 points, got -1`)
	f("hysteresis: 2", "hysteresis: 50", `model.yaml:4: hysteresis: must be >= 0 and < 50 points, got 50`)
	f("change_min_delta: 1", "change_min_delta: -0.5", `model.yaml:5: change_min_delta: must be between 0 and 100 points, got -0.5`)
	f("change_min_delta: 1", "change_min_delta: 101", `model.yaml:5: change_min_delta: must be between 0 and 100 points, got 101`)
	f("change_min_delta: 1", "change_min_delta: .nan", `model.yaml:5: change_min_delta: must be between 0 and 100 points, got NaN`)
	f("change_min_delta: 1\n", "change_min_delta: 1\ndecay_step: 0\n", `model.yaml:6: decay_step: must be > 0 and <= 100 points, got 0`)
	f("change_min_delta: 1\n", "change_min_delta: 1\ndecay_step: 101\n", `model.yaml:6: decay_step: must be > 0 and <= 100 points, got 101`)

	// Categories.
	f(baseModel[strings.Index(baseModel, "categories:"):strings.Index(baseModel, "segments:")], "categories: []\n",
		`model.yaml:6: categories: at least one category is required`,
		`model.yaml:10: segments "enterprise": weights: no category named "usage"`,
		`model.yaml:10: segments "enterprise": weights: at least one category must keep a weight > 0`,
		`model.yaml:11: segments "enterprise": targets: no signal named "login_count"`)
	f("  - name: sentiment\n", "  - name: usage\n", `model.yaml:12: categories[1] "usage": duplicate category name`)
	f("  - name: sentiment\n", "  - name: ''\n", `model.yaml:12: categories[1]: name is required`)
	f("    weight: 1\n", "    weight: 0\n", `model.yaml:13: categories[1] "sentiment": weight must be > 0, got 0`)
	f("    weight: 1\n", "", `model.yaml:12: categories[1] "sentiment": weight is required`)
	f(avg+rec, "      []\n", `model.yaml:15: categories[1] "sentiment": at least one signal is required`)

	// Signals.
	f(sig1, "      - {name: ticket_opened, event: ticket, kind: count, half_life: 1d, target: 0}\n",
		`model.yaml:11: signals[1] "ticket_opened": target must be > 0`)
	f(sig1, "      - {name: ticket_opened, event: ticket, kind: count, half_life: 1d, target: -3}\n",
		`model.yaml:11: signals[1] "ticket_opened": target must be > 0`)
	f(sig1, "      - {name: ticket_opened, event: ticket, kind: count, half_life: 1d}\n",
		`model.yaml:11: signals[1] "ticket_opened": target is required for count signals`)
	f(sig0, "      - {event: login, kind: sum, half_life: 7d}\n",
		`model.yaml:10: signals[0] "login_sum": target is required for sum signals`,
		`model.yaml:21: segments "enterprise": targets: no signal named "login_count"`)
	f(sig0, "      - {event: login, kind: count, half_life: 7d, target: 10, min: 1}\n",
		`model.yaml:10: signals[0] "login_count": min and max are for average signals only`)
	f(sig0, "      - {event: login, kind: total, half_life: 7d, target: 10}\n",
		`model.yaml:10: signals[0]: kind "total" is not one of count, sum, average, recency`,
		`model.yaml:21: segments "enterprise": targets: no signal named "login_count"`)
	f(sig0, "      - {event: login, half_life: 7d, target: 10}\n",
		`model.yaml:10: signals[0]: kind is required: count, sum, average or recency`,
		`model.yaml:21: segments "enterprise": targets: no signal named "login_count"`)
	f(sig0, "      - {name: x, kind: count, half_life: 7d, target: 10}\n",
		`model.yaml:10: signals[0] "x": event is required (the event type this signal reads)`,
		`model.yaml:21: segments "enterprise": targets: no signal named "login_count"`)
	f(sig0, "      - {event: login, kind: count, half_life: 7w, target: 10}\n",
		`model.yaml:10: signals[0] "login_count": half_life: "7w" needs a unit: m, h or d (e.g. 7d)`)
	f(sig0, "      - {event: login, kind: count, target: 10}\n",
		`model.yaml:10: signals[0] "login_count": half_life: is required, e.g. 7d, 12h or 30m`)
	f(sig0, "      - {event: login, kind: count, half_life: 7d, target: 10, direction: up}\n",
		`model.yaml:10: signals[0] "login_count": direction "up" is not positive or negative`)
	f(sig1, "      - {name: login_count, event: ticket, kind: count, half_life: 1d, target: 4}\n",
		`model.yaml:11: signals[1] "login_count": duplicate signal name (names default to <event>_<kind>)`)
	// Names are unique across categories too; the default name counts.
	f(rec, "      - {event: login, kind: count, half_life: 30d, target: 1}\n",
		`model.yaml:16: signals[1] "login_count": duplicate signal name (names default to <event>_<kind>)`)
	f(avg, "      - {event: nps, kind: average, half_life: 90d, min: 10, max: 10}\n",
		`model.yaml:15: signals[0] "nps_average": want min < max, got min 10, max 10`)
	f(avg, "      - {event: nps, kind: average, half_life: 90d, min: 0}\n",
		`model.yaml:15: signals[0] "nps_average": min and max are required for average signals`)
	f(avg, "      - {event: nps, kind: average, half_life: 90d, min: 0, max: 10, target: 3}\n",
		`model.yaml:15: signals[0] "nps_average": target is for count and sum signals only`)
	f(rec, "      - {event: pay, kind: recency, half_life: 30d, target: 1}\n",
		`model.yaml:16: signals[1] "pay_recency": recency signals take no target, min or max`)
	// Block style: an absent field is reported at its signal's line.
	f(sig1, "      - name: ticket_opened\n        event: ticket\n        kind: count\n        half_life: 1d\n",
		`model.yaml:11: signals[1] "ticket_opened": target is required for count signals`)
	f(sig1, "      - name: ticket_opened\n        event: ticket\n        kind: count\n        half_life: 1d\n        target: 0\n",
		`model.yaml:15: signals[1] "ticket_opened": target must be > 0`)

	// Segments.
	f("    bands: {red: 50, yellow: 75}\n", "    bands: {red: 80, yellow: 75}\n",
		`model.yaml:19: segments "enterprise" bands: want 0 < red < yellow <= 100, got red 80, yellow 75`)
	f("    weights: {usage: 3}\n", "    weights: {usage: 3, nope: 1}\n",
		`model.yaml:20: segments "enterprise": weights: no category named "nope"`)
	f("    weights: {usage: 3}\n", "    weights: {usage: -1}\n",
		`model.yaml:20: segments "enterprise": weights: "usage" must be >= 0, got -1`)
	f("    weights: {usage: 3}\n", "    weights: {usage: 0, sentiment: 0}\n",
		`model.yaml:20: segments "enterprise": weights: at least one category must keep a weight > 0`)
	f("    targets: {login_count: 30}\n", "    targets: {login_count: 0}\n",
		`model.yaml:21: segments "enterprise": targets: "login_count" must be > 0, got 0`)
	f("    targets: {login_count: 30}\n", "    targets: {nps_average: 3}\n",
		`model.yaml:21: segments "enterprise": targets: signal "nps_average" is of kind average; only count and sum signals have targets`)
	f("    targets: {login_count: 30}\n", "    targets: {nope: 3}\n",
		`model.yaml:21: segments "enterprise": targets: no signal named "nope"`)

	// Unknown fields and YAML errors.
	f("hysteresis: 2\n", "hysteresis: 2\nhysterisis: 3\n", `model.yaml:5: unknown field "hysterisis"`)
	f(sig0, "      - {event: login, kind: count, half_life: 7d, target: 10, weight: 1}\n", `model.yaml:10: unknown field "weight"`)
	f("    weight: 2\n", "    weight: 2\n    colour: red\n", `model.yaml:9: unknown field "colour"`)
	f("    weights: {usage: 3}\n", "    weights: {usage: 3}\n    hysteresis: 1\n", `model.yaml:21: unknown field "hysteresis"`)
	f("bands: {red: 40, yellow: 70}\nh", "bands: {red: 40, yellow: 70, green: 90}\nh", `model.yaml:3: unknown field "green"`)
	f("name: test\n", "name: test\nname: again\n", `model.yaml:2: mapping key "name" already defined at [1:1]`)
	f("hysteresis: 2", "hysteresis: two", "model.yaml:4: cannot unmarshal string into Go struct field yamlModel.Hysteresis of type float64")
}

func TestParseModelErrorsSortedAndAll(t *testing.T) {
	src := strings.Replace(baseModel, "    weight: 1\n", "    weight: -1\n", 1)
	src = strings.Replace(src, `version: "1"`, `version: ""`, 1)
	_, err := ParseModel("m.yaml", []byte(src))
	want := "m.yaml:2: version: is required (quote it, e.g. \"2026.11.1\")\n" +
		"m.yaml:13: categories[1] \"sentiment\": weight must be > 0, got -1"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want\n%s", err, want)
	}
}

func TestParseHalfLife(t *testing.T) {
	f := func(in string, want time.Duration) {
		t.Helper()
		got, err := ParseHalfLife(in)
		if err != nil || got != want {
			t.Fatalf("ParseHalfLife(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	f("1m", time.Minute)
	f("90m", 90*time.Minute)
	f("1.5m", 90*time.Second)
	f("12h", 12*time.Hour)
	f("0.5h", 30*time.Minute)
	f("7d", 7*24*time.Hour)
	f("1.5d", 36*time.Hour)
	f("36500d", 36500*24*time.Hour)
	bad := func(in, msg string) {
		t.Helper()
		_, err := ParseHalfLife(in)
		if err == nil || err.Error() != msg {
			t.Fatalf("ParseHalfLife(%q): got %v, want %q", in, err, msg)
		}
	}
	bad("", "is required, e.g. 7d, 12h or 30m")
	bad("7", `"7" needs a unit: m, h or d (e.g. 7d)`)
	bad("7s", `"7s" needs a unit: m, h or d (e.g. 7d)`)
	bad("7D", `"7D" needs a unit: m, h or d (e.g. 7d)`)
	bad("1w", `"1w" needs a unit: m, h or d (e.g. 7d)`)
	bad("d", `"d" is not a positive number of days`)
	bad("0d", `"0d" is not a positive number of days`)
	bad("-1h", `"-1h" is not a positive number of hours`)
	bad("xm", `"xm" is not a positive number of minutes`)
	bad(" 7d", `" 7d" is not a positive number of days`)
	bad("infd", `"infd" is not a positive number of days`)
	bad("NaNh", `"NaNh" is not a positive number of hours`)
	bad("0.5m", `"0.5m" must be between 1m and 36500d`)
	bad("36501d", `"36501d" must be between 1m and 36500d`)
}

func TestDefaultModel(t *testing.T) {
	m := DefaultModel()
	if m.Name != "b2b-saas" || m.Version != "2026.11.1" || m.Signals() != 9 || len(m.Categories) != 4 {
		t.Fatalf("default model: %s %s, %d signals, %d categories", m.Name, m.Version, m.Signals(), len(m.Categories))
	}
	if m.Bands != (Bands{40, 70}) || m.Hysteresis != 2 || m.ChangeMinDelta != 1 {
		t.Fatalf("default model header: %+v %v %v", m.Bands, m.Hysteresis, m.ChangeMinDelta)
	}
	if len(m.Segments) != 2 || m.Segments["enterprise"].Bands != (Bands{50, 75}) || m.Segments["smb"].Bands != (Bands{40, 70}) {
		t.Fatalf("segments: %+v", m.Segments)
	}
	// DefaultModelYAML returns a copy of the source, which parses to the
	// same model.
	y := DefaultModelYAML()
	y[0] = '!'
	y2 := DefaultModelYAML()
	if y2[0] == '!' {
		t.Fatal("DefaultModelYAML returns the embedded slice itself")
	}
	src, err := os.ReadFile("default_model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(y2, src) {
		t.Fatal("DefaultModelYAML differs from default_model.yaml")
	}
	m2, err := ParseModel("show.yaml", y2)
	if err != nil {
		t.Fatal(err)
	}
	if !sameModel(m, m2) {
		t.Fatal("DefaultModelYAML does not round-trip to DefaultModel")
	}
}

func sameModel(a, b *Model) bool {
	if a.Name != b.Name || a.Version != b.Version || a.Bands != b.Bands || a.Hysteresis != b.Hysteresis ||
		a.ChangeMinDelta != b.ChangeMinDelta || len(a.signals) != len(b.signals) || len(a.profiles) != len(b.profiles) ||
		a.layout != b.layout || a.layout != a.computeLayoutKey() {
		return false
	}
	for i := range a.signals {
		if a.signals[i] != b.signals[i] || a.base.targets[i] != b.base.targets[i] {
			return false
		}
	}
	for name, pa := range a.profiles {
		pb := b.profiles[name]
		if pb == nil || pa.bands != pb.bands {
			return false
		}
		for i := range pa.weights {
			if pa.weights[i] != pb.weights[i] {
				return false
			}
		}
		for i := range pa.targets {
			if pa.targets[i] != pb.targets[i] {
				return false
			}
		}
	}
	return true
}

// checkModelInvariants asserts what every parsed model guarantees.
func checkModelInvariants(t *testing.T, m *Model) {
	t.Helper()
	okBands := func(b Bands) bool { return b.Red > 0 && b.Red < b.Yellow && b.Yellow <= 100 }
	if strings.TrimSpace(m.Name) == "" || strings.TrimSpace(m.Version) == "" || !okBands(m.Bands) ||
		!(m.Hysteresis >= 0 && m.Hysteresis < 50) || !(m.ChangeMinDelta >= 0 && m.ChangeMinDelta <= 100) || len(m.Categories) == 0 {
		t.Fatalf("invalid model header: %+v", m)
	}
	names := map[string]bool{}
	n := 0
	for _, c := range m.Categories {
		if c.Name == "" || !(c.Weight > 0) || math.IsInf(c.Weight, 0) || len(c.Signals) == 0 {
			t.Fatalf("invalid category %+v", c)
		}
		for _, s := range c.Signals {
			if s.Name == "" || names[s.Name] || s.Event == "" || s.HalfLife < time.Minute || m.signals[n].Signal != s {
				t.Fatalf("invalid signal %+v", s)
			}
			names[s.Name] = true
			switch s.Kind {
			case KindCount, KindSum:
				if !(s.Target > 0) || math.IsInf(s.Target, 0) {
					t.Fatalf("invalid target %+v", s)
				}
			case KindAverage:
				if !(s.Min < s.Max) || math.IsInf(s.Min, 0) || math.IsInf(s.Max, 0) {
					t.Fatalf("invalid min/max %+v", s)
				}
			case KindRecency:
			default:
				t.Fatalf("invalid kind %+v", s)
			}
			n++
		}
	}
	if n != m.Signals() {
		t.Fatalf("signal count %d != %d", n, m.Signals())
	}
	for name, p := range m.profiles {
		total := 0.0
		for _, w := range p.weights {
			if !(w >= 0) || math.IsInf(w, 0) {
				t.Fatalf("segment %q: weight %v", name, w)
			}
			total += w
		}
		if !(total > 0) || !okBands(p.bands) {
			t.Fatalf("segment %q: %+v", name, p)
		}
		for i, tg := range p.targets {
			k := m.signals[i].Kind
			if (k == KindCount || k == KindSum) && !(tg > 0 && !math.IsInf(tg, 0)) {
				t.Fatalf("segment %q: target %v", name, tg)
			}
		}
	}
}

func FuzzParseModel(f *testing.F) {
	f.Add(DefaultModelYAML())
	f.Add([]byte(baseModel))
	seeds, _ := filepath.Glob("testdata/models/*.yaml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseModel("fuzz.yaml", data)
		if err != nil {
			if m != nil {
				t.Fatal("model and error")
			}
			var es ModelErrors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty ModelErrors", err, err)
			}
			return
		}
		checkModelInvariants(t, m)
		// A valid model scores a state with one event of every type.
		st := m.NewState()
		for i := range m.signals {
			m.Apply(st, &Event{CustomerID: "c", Type: m.signals[i].Event, Time: int64(i), Value: 1})
		}
		ev := m.Evaluate(st, int64(m.Signals()))
		if ev.HasScore && !(ev.Score >= 0 && ev.Score <= 100) {
			t.Fatalf("score %v", ev.Score)
		}
	})
}
