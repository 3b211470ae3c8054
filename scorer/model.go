package scorer

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Kind is how a signal turns its events into a sub-score.
type Kind uint8

// Signal kinds.
const (
	KindCount   Kind = iota + 1 // decayed number of events against a target
	KindSum                     // decayed sum of event values against a target
	KindAverage                 // decayed mean of event values between min and max
	KindRecency                 // decay since the latest event
)

var kindNames = map[Kind]string{KindCount: "count", KindSum: "sum", KindAverage: "average", KindRecency: "recency"}

func (k Kind) String() string { return kindNames[k] }

// Band is a colour band. The zero value means "no band yet".
type Band uint8

// Bands, worst first: a larger value is healthier.
const (
	BandNone Band = iota
	BandRed
	BandYellow
	BandGreen
)

var bandNames = [...]string{"", "red", "yellow", "green"}

func (b Band) String() string {
	if int(b) < len(bandNames) {
		return bandNames[b]
	}
	return "invalid"
}

// ParseBand is the inverse of Band.String.
func ParseBand(s string) (Band, bool) {
	for i, n := range bandNames {
		if n == s {
			return Band(i), true
		}
	}
	return BandNone, false
}

// Bands are the score boundaries: score < Red is red, < Yellow is yellow,
// else green.
type Bands struct {
	Red    float64 `yaml:"red"`
	Yellow float64 `yaml:"yellow"`
}

// Signal reads one event type.
type Signal struct {
	Name     string
	Event    string
	Kind     Kind
	HalfLife time.Duration
	Target   float64 // count and sum
	Min, Max float64 // average
	Negative bool    // direction: negative (sub becomes 1 - sub)
}

// Category is a weighted group of signals.
type Category struct {
	Name    string
	Weight  float64
	Signals []Signal
}

// Segment holds the overrides of one customer segment.
type Segment struct {
	Bands   Bands
	Weights map[string]float64 // category name -> weight
	Targets map[string]float64 // signal name -> target
}

// Trend configures the trend alert: the score fell at least DropPoints
// below the customer's baseline, an exponentially weighted average of its
// published scores with half-life BaselineHalfLife; at most one alert per
// Cooldown.
type Trend struct {
	DropPoints       float64
	BaselineHalfLife time.Duration
	Cooldown         time.Duration
}

// Model is a validated health model. It is immutable once parsed and safe for
// concurrent use.
type Model struct {
	Name           string
	Version        string
	Bands          Bands
	Hysteresis     float64
	ChangeMinDelta float64
	// DecayStep is how far (in points) the score may decay from the last
	// published score before a timer republishes it; see NextChange.
	DecayStep float64
	// Trend configures health.dropped alerts; nil when the model has none.
	Trend      *Trend
	Categories []Category
	Segments   map[string]Segment

	signals  []compiledSignal // all signals, in category order
	byEvent  map[string][]int // event type -> indexes into signals
	byKey    map[uint32]int   // signal key -> index, for decoding state
	layout   uint32           // see computeLayoutKey
	profiles map[string]*profile
	base     profile
	source   []byte // the file as parsed
}

type compiledSignal struct {
	Signal
	category int
	hl       float64 // half-life in nanoseconds
	key      uint32  // see signalKey
}

// profile is the effective parameters for one segment.
type profile struct {
	bands   Bands
	weights []float64 // per category
	targets []float64 // per signal
}

//go:embed default_model.yaml
var defaultModelYAML []byte

// DefaultModelYAML returns the source of the built-in B2B SaaS model.
func DefaultModelYAML() []byte { return bytes.Clone(defaultModelYAML) }

// DefaultModel returns the built-in model. It panics only if the embedded
// file is invalid, which tests rule out.
func DefaultModel() *Model {
	m, err := ParseModel("default_model.yaml", defaultModelYAML)
	if err != nil {
		panic(err)
	}
	return m
}

// Source returns the model file as parsed (nil for a model not built by
// ParseModel). The caller must not modify it.
func (m *Model) Source() []byte { return m.source }

// Signals returns the number of signals (the length of State signal slices).
func (m *Model) Signals() int { return len(m.signals) }

// SignalsFor returns the indexes of the signals that read event type t; nil
// when no signal reads it.
func (m *Model) SignalsFor(t string) []int { return m.byEvent[t] }

// SignalName returns the name of signal i.
func (m *Model) SignalName(i int) string { return m.signals[i].Name }

// ModelError is one problem found in a model file, with its position.
type ModelError struct {
	File string
	Line int // 0 when unknown
	Path string
	Msg  string
}

func (e ModelError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ModelErrors is every problem found in a model file, in file order.
type ModelErrors []ModelError

func (es ModelErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// The YAML shape. Pointers tell "absent" from zero.
type yamlModel struct {
	Name           string                 `yaml:"name"`
	Version        string                 `yaml:"version"`
	Bands          *Bands                 `yaml:"bands"`
	Hysteresis     *float64               `yaml:"hysteresis"`
	ChangeMinDelta *float64               `yaml:"change_min_delta"`
	DecayStep      *float64               `yaml:"decay_step"`
	Trend          *yamlTrend             `yaml:"trend"`
	Categories     []yamlCategory         `yaml:"categories"`
	Segments       map[string]yamlSegment `yaml:"segments"`
}

type yamlTrend struct {
	DropPoints       *float64 `yaml:"drop_points"`
	BaselineHalfLife string   `yaml:"baseline_half_life"`
	Cooldown         string   `yaml:"cooldown"`
}

type yamlCategory struct {
	Name    string       `yaml:"name"`
	Weight  *float64     `yaml:"weight"`
	Signals []yamlSignal `yaml:"signals"`
}

type yamlSignal struct {
	Name      string   `yaml:"name"`
	Event     string   `yaml:"event"`
	Kind      string   `yaml:"kind"`
	HalfLife  string   `yaml:"half_life"`
	Target    *float64 `yaml:"target"`
	Min       *float64 `yaml:"min"`
	Max       *float64 `yaml:"max"`
	Direction string   `yaml:"direction"`
}

type yamlSegment struct {
	Bands   *Bands             `yaml:"bands"`
	Weights map[string]float64 `yaml:"weights"`
	Targets map[string]float64 `yaml:"targets"`
}

// ParseModel parses and validates a model. file names the source in errors.
// The error, when not nil, is a ModelErrors listing every problem with its
// line.
func ParseModel(file string, data []byte) (*Model, error) {
	var y yamlModel
	if err := safeYAML(func() error {
		return yaml.UnmarshalWithOptions(data, &y, yaml.DisallowUnknownField(), yaml.Strict())
	}); err != nil {
		return nil, ModelErrors{yamlError(file, err)}
	}
	v := validator{file: file}
	var f *ast.File
	if safeYAML(func() (err error) { f, err = parser.ParseBytes(data, 0); return err }) == nil {
		v.ast = f
	}
	m := v.model(&y)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
		return nil, v.errs
	}
	m.source = bytes.Clone(data)
	return m, nil
}

// safeYAML runs a call into the YAML library, turning a panic into an
// error: goccy/go-yaml v1.19.2 dereferences nil on some malformed inputs
// (found by FuzzParseModel), and a bad model file must be reported, not crash
// the process.
func safeYAML(call func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid YAML (the parser failed: %v)", r)
		}
	}()
	return call()
}

func yamlError(file string, err error) ModelError {
	var ye yaml.Error
	if errors.As(err, &ye) {
		line := 0
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			line = tk.Position.Line
		}
		return ModelError{File: file, Line: line, Msg: ye.GetMessage()}
	}
	return ModelError{File: file, Msg: err.Error()}
}

type validator struct {
	file string
	ast  *ast.File
	errs ModelErrors
}

// errorf records a problem at a YAML path like $.categories[0].weight; label
// is how the message names the element.
func (v *validator) errorf(path, label, format string, args ...any) {
	v.errs = append(v.errs, ModelError{File: v.file, Line: v.line(path), Path: label, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) line(path string) int {
	if v.ast == nil {
		return 0
	}
	for p := path; p != "$" && p != ""; {
		var n ast.Node
		if safeYAML(func() error {
			yp, err := yaml.PathString(p)
			if err == nil {
				n, err = yp.FilterFile(v.ast)
			}
			return err
		}) == nil && n != nil {
			if tk := n.GetToken(); tk != nil && tk.Position != nil {
				return tk.Position.Line
			}
		}
		// Fall back to the parent element (the field may be absent).
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func (v *validator) bands(path, label string, b *Bands) {
	if !finite(b.Red) || !finite(b.Yellow) || b.Red <= 0 || b.Red >= b.Yellow || b.Yellow > 100 {
		v.errorf(path, label, "want 0 < red < yellow <= 100, got red %v, yellow %v", b.Red, b.Yellow)
	}
}

func (v *validator) model(y *yamlModel) *Model {
	m := &Model{Name: y.Name, Version: y.Version, ChangeMinDelta: 1, DecayStep: DefaultDecayStep, byEvent: map[string][]int{}, profiles: map[string]*profile{}}
	if strings.TrimSpace(y.Name) == "" {
		v.errorf("$.name", "name", "is required")
	}
	if strings.TrimSpace(y.Version) == "" {
		v.errorf("$.version", "version", "is required (quote it, e.g. \"2026.11.1\")")
	}
	if y.Bands == nil {
		v.errorf("$.bands", "bands", "is required, e.g. {red: 40, yellow: 70}")
	} else {
		m.Bands = *y.Bands
		v.bands("$.bands", "bands", y.Bands)
	}
	if y.Hysteresis != nil {
		m.Hysteresis = *y.Hysteresis
		if !finite(m.Hysteresis) || m.Hysteresis < 0 || m.Hysteresis >= 50 {
			v.errorf("$.hysteresis", "hysteresis", "must be >= 0 and < 50 points, got %v", m.Hysteresis)
		}
	}
	if y.ChangeMinDelta != nil {
		m.ChangeMinDelta = *y.ChangeMinDelta
		if !finite(m.ChangeMinDelta) || m.ChangeMinDelta < 0 || m.ChangeMinDelta > 100 {
			v.errorf("$.change_min_delta", "change_min_delta", "must be between 0 and 100 points, got %v", m.ChangeMinDelta)
		}
	}
	if y.DecayStep != nil {
		m.DecayStep = *y.DecayStep
		if !finite(m.DecayStep) || m.DecayStep <= 0 || m.DecayStep > 100 {
			v.errorf("$.decay_step", "decay_step", "must be > 0 and <= 100 points, got %v", m.DecayStep)
		}
	}
	if y.Trend != nil {
		m.Trend = v.trend(y.Trend)
	}
	if len(y.Categories) == 0 {
		v.errorf("$.categories", "categories", "at least one category is required")
	}
	catIdx := map[string]int{}
	sigIdx := map[string]int{}
	for ci, yc := range y.Categories {
		path := fmt.Sprintf("$.categories[%d]", ci)
		label := fmt.Sprintf("categories[%d] %q", ci, yc.Name)
		c := Category{Name: yc.Name}
		switch {
		case yc.Name == "":
			v.errorf(path+".name", fmt.Sprintf("categories[%d]", ci), "name is required")
		case catIdx[yc.Name] > 0:
			v.errorf(path+".name", label, "duplicate category name")
		}
		catIdx[yc.Name] = ci + 1
		if yc.Weight == nil {
			v.errorf(path+".weight", label, "weight is required")
		} else if c.Weight = *yc.Weight; !finite(c.Weight) || c.Weight <= 0 {
			v.errorf(path+".weight", label, "weight must be > 0, got %v", c.Weight)
		}
		if len(yc.Signals) == 0 {
			v.errorf(path+".signals", label, "at least one signal is required")
		}
		for si, ys := range yc.Signals {
			s := v.signal(fmt.Sprintf("%s.signals[%d]", path, si), si, ys)
			spath := fmt.Sprintf("%s.signals[%d]", path, si)
			if sigIdx[s.Name] > 0 {
				v.errorf(spath+".name", fmt.Sprintf("signals[%d] %q", si, s.Name), "duplicate signal name (names default to <event>_<kind>)")
			}
			m.signals = append(m.signals, compiledSignal{Signal: s, category: ci, hl: float64(s.HalfLife)})
			sigIdx[s.Name] = len(m.signals)
			m.byEvent[s.Event] = append(m.byEvent[s.Event], len(m.signals)-1)
			c.Signals = append(c.Signals, s)
		}
		m.Categories = append(m.Categories, c)
	}
	m.byKey = make(map[uint32]int, len(m.signals))
	for i := range m.signals {
		s := &m.signals[i]
		s.key = signalKey(&s.Signal)
		if _, dup := m.byKey[s.key]; dup {
			v.errorf("$.categories", "categories", "signal %q: internal key collision; rename the signal", s.Name)
		}
		m.byKey[s.key] = i
	}
	m.layout = m.computeLayoutKey()
	m.base = profile{bands: m.Bands, weights: make([]float64, len(m.Categories)), targets: make([]float64, len(m.signals))}
	for i, c := range m.Categories {
		m.base.weights[i] = c.Weight
	}
	for i, s := range m.signals {
		m.base.targets[i] = s.Target
	}
	names := make([]string, 0, len(y.Segments))
	for name := range y.Segments {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ys := y.Segments[name]
		path := "$.segments." + name
		label := fmt.Sprintf("segments %q", name)
		if name == "" {
			v.errorf("$.segments", "segments", "segment names must not be empty")
		}
		p := &profile{bands: m.base.bands, weights: append([]float64(nil), m.base.weights...), targets: append([]float64(nil), m.base.targets...)}
		seg := Segment{Bands: m.Bands, Weights: ys.Weights, Targets: ys.Targets}
		if ys.Bands != nil {
			p.bands, seg.Bands = *ys.Bands, *ys.Bands
			v.bands(path+".bands", label+" bands", ys.Bands)
		}
		for cname, w := range ys.Weights {
			ci := catIdx[cname] - 1
			switch {
			case ci < 0:
				v.errorf(path+".weights."+cname, label, "weights: no category named %q", cname)
			case !finite(w) || w < 0:
				v.errorf(path+".weights."+cname, label, "weights: %q must be >= 0, got %v", cname, w)
			default:
				p.weights[ci] = w
			}
		}
		for sname, t := range ys.Targets {
			si := sigIdx[sname] - 1
			switch {
			case si < 0:
				v.errorf(path+".targets."+sname, label, "targets: no signal named %q", sname)
			case m.signals[si].Kind != KindCount && m.signals[si].Kind != KindSum:
				v.errorf(path+".targets."+sname, label, "targets: signal %q is of kind %s; only count and sum signals have targets", sname, m.signals[si].Kind)
			case !finite(t) || t <= 0:
				v.errorf(path+".targets."+sname, label, "targets: %q must be > 0, got %v", sname, t)
			default:
				p.targets[si] = t
			}
		}
		total := 0.0
		for _, w := range p.weights {
			total += w
		}
		if total <= 0 {
			v.errorf(path+".weights", label, "weights: at least one category must keep a weight > 0")
		}
		if m.Segments == nil {
			m.Segments = map[string]Segment{}
		}
		m.Segments[name] = seg
		m.profiles[name] = p
	}
	return m
}

func (v *validator) trend(y *yamlTrend) *Trend {
	t := &Trend{}
	if y.DropPoints == nil {
		v.errorf("$.trend.drop_points", "trend", "drop_points is required, e.g. 15")
	} else if t.DropPoints = *y.DropPoints; !finite(t.DropPoints) || t.DropPoints <= 0 || t.DropPoints > 100 {
		v.errorf("$.trend.drop_points", "trend", "drop_points must be > 0 and <= 100 points, got %v", t.DropPoints)
	}
	var err error
	if t.BaselineHalfLife, err = ParseHalfLife(y.BaselineHalfLife); err != nil {
		v.errorf("$.trend.baseline_half_life", "trend", "baseline_half_life: %v", err)
	}
	if t.Cooldown, err = ParseHalfLife(y.Cooldown); err != nil {
		v.errorf("$.trend.cooldown", "trend", "cooldown: %v", err)
	}
	return t
}

func (v *validator) signal(path string, si int, ys yamlSignal) Signal {
	s := Signal{Name: ys.Name, Event: ys.Event}
	label := func() string {
		if s.Name != "" {
			return fmt.Sprintf("signals[%d] %q", si, s.Name)
		}
		return fmt.Sprintf("signals[%d]", si)
	}
	switch ys.Kind {
	case "count":
		s.Kind = KindCount
	case "sum":
		s.Kind = KindSum
	case "average":
		s.Kind = KindAverage
	case "recency":
		s.Kind = KindRecency
	case "":
		v.errorf(path+".kind", label(), "kind is required: count, sum, average or recency")
	default:
		v.errorf(path+".kind", label(), "kind %q is not one of count, sum, average, recency", ys.Kind)
	}
	if s.Name == "" && s.Event != "" && s.Kind != 0 {
		s.Name = s.Event + "_" + s.Kind.String()
	}
	if s.Event == "" {
		v.errorf(path+".event", label(), "event is required (the event type this signal reads)")
	}
	hl, err := ParseHalfLife(ys.HalfLife)
	if err != nil {
		v.errorf(path+".half_life", label(), "half_life: %v", err)
	}
	s.HalfLife = hl
	switch ys.Direction {
	case "", "positive":
	case "negative":
		s.Negative = true
	default:
		v.errorf(path+".direction", label(), "direction %q is not positive or negative", ys.Direction)
	}
	switch s.Kind {
	case KindCount, KindSum:
		if ys.Target == nil {
			v.errorf(path+".target", label(), "target is required for %s signals", s.Kind)
		} else if s.Target = *ys.Target; !finite(s.Target) || s.Target <= 0 {
			v.errorf(path+".target", label(), "target must be > 0")
		}
		if ys.Min != nil || ys.Max != nil {
			v.errorf(path+".min", label(), "min and max are for average signals only")
		}
	case KindAverage:
		if ys.Min == nil || ys.Max == nil {
			v.errorf(path+".max", label(), "min and max are required for average signals")
		} else if s.Min, s.Max = *ys.Min, *ys.Max; !finite(s.Min) || !finite(s.Max) || s.Min >= s.Max {
			v.errorf(path+".max", label(), "want min < max, got min %v, max %v", s.Min, s.Max)
		}
		if ys.Target != nil {
			v.errorf(path+".target", label(), "target is for count and sum signals only")
		}
	case KindRecency:
		if ys.Target != nil || ys.Min != nil || ys.Max != nil {
			v.errorf(path+".target", label(), "recency signals take no target, min or max")
		}
	}
	return s
}

// ParseHalfLife parses a half-life like "90m", "12h", "7d" or "1.5d".
func ParseHalfLife(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("is required, e.g. 7d, 12h or 30m")
	}
	unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("%q needs a unit: m, h or d (e.g. 7d)", s)
	}
	n, err := strconv.ParseFloat(s[:len(s)-1], 64)
	if err != nil || !finite(n) || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive number of %s", s, map[time.Duration]string{time.Minute: "minutes", time.Hour: "hours", 24 * time.Hour: "days"}[unit])
	}
	d := n * float64(unit)
	if d < float64(time.Minute) || d > float64(100*365*24*time.Hour) {
		return 0, fmt.Errorf("%q must be between 1m and 36500d", s)
	}
	return time.Duration(d), nil
}

// profileFor returns the effective parameters for a segment.
func (m *Model) profileFor(segment string) *profile {
	if p, ok := m.profiles[segment]; ok {
		return p
	}
	return &m.base
}
