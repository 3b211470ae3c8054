package ingest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
)

// Format is the input format of a topic.
type Format string

// The formats. FormatAuto detects the format of each record (see the
// package comment).
const (
	FormatAuto        Format = "auto"
	FormatNative      Format = "native"
	FormatCloudEvents Format = "cloudevents"
	FormatSegment     Format = "segment"
)

// Formats returns the valid Format values.
func Formats() []Format { return []Format{FormatAuto, FormatNative, FormatCloudEvents, FormatSegment} }

func (f Format) valid() bool { return slices.Contains(Formats(), f) }

// Paths are field paths, dotted ("context.groupId"); the first one present
// in a record wins. In YAML, a single path may be written as a string.
type Paths []string

// UnmarshalYAML accepts a string or a list of strings.
func (p *Paths) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*p = Paths{one}
		return nil
	}
	var many []string
	if err := unmarshal(&many); err != nil {
		return errors.New("customer: want a field path or a list of field paths")
	}
	*p = many
	return nil
}

// CloudEventsMapping says where the fields of an event are in a CloudEvent.
// A path is an attribute name (subject, type, id, time, or an extension
// attribute such as customerid), or data.<field>[.<field>…] inside the
// event's JSON data. An empty optional path reads nothing.
type CloudEventsMapping struct {
	Customer Paths  // required; default subject
	Type     string // required; default type
	Value    string // a number; default data.value (absent: 1)
	Segment  string // default data.segment
	ID       string // default id
	Time     string // RFC 3339; default time (absent: the record timestamp)
	// Types renames event types: incoming type → the type the model reads.
	Types map[string]string
}

// SegmentMapping says where the fields of an event are in a Segment call.
// Paths are dotted JSON paths from the top of the call (properties.value,
// context.groupId). An empty optional path reads nothing.
type SegmentMapping struct {
	Customer Paths  // required; default groupId, context.groupId, userId
	Type     string // track calls: required; default event
	Value    string // track calls: a number; default properties.value (absent: 1)
	// TrackSegment is where a track call names the segment; default none.
	TrackSegment string
	// Segment is where identify and group calls name the segment; default
	// traits.segment.
	Segment string
	ID      string // default messageId
	Time    string // RFC 3339; default timestamp (absent: the record timestamp)
	// Types renames event types (of track calls, and the identify and group
	// types): incoming type → the type the model reads.
	Types map[string]string
}

// DefaultCloudEvents returns the default mapping of CloudEvents.
func DefaultCloudEvents() CloudEventsMapping {
	return CloudEventsMapping{Customer: Paths{"subject"}, Type: "type", Value: "data.value", Segment: "data.segment", ID: "id", Time: "time"}
}

// DefaultSegment returns the default mapping of Segment calls.
func DefaultSegment() SegmentMapping {
	return SegmentMapping{Customer: Paths{"groupId", "context.groupId", "userId"}, Type: "event", Value: "properties.value",
		Segment: "traits.segment", ID: "messageId", Time: "timestamp"}
}

// Event types of the Segment calls that carry no event name: identify and
// group calls fold as events of these types (renamed by SegmentMapping.Types
// if asked), which no model needs to read: an event of an unread type that
// names a segment sets the customer's segment (scorer.Model.Folds), and one
// that names none is dropped.
const (
	SegmentIdentifyType = "identify"
	SegmentGroupType    = "group"
)

// TopicConfig is the input configuration of one topic.
type TopicConfig struct {
	Format      Format
	CloudEvents CloudEventsMapping
	Segment     SegmentMapping
}

// Config is the input configuration: a default for every topic, and
// exceptions per topic. The zero Config detects the format of each record
// and uses the default mappings.
type Config struct {
	Default TopicConfig
	Topics  map[string]TopicConfig
}

// withDefaults fills the zero fields of a mapping-less TopicConfig.
func (t TopicConfig) withDefaults() TopicConfig {
	if t.Format == "" {
		t.Format = FormatAuto
	}
	if t.CloudEvents.Customer == nil && t.CloudEvents.Type == "" {
		t.CloudEvents = DefaultCloudEvents()
	}
	if t.Segment.Customer == nil && t.Segment.Type == "" {
		t.Segment = DefaultSegment()
	}
	return t
}

// The configuration file. Pointer fields are nil when absent, so that a
// topic inherits what the file's top level (or the default) says, and an
// empty string can turn an optional field off.
type fileConfig struct {
	Format      *string                   `yaml:"format"`
	CloudEvents *fileCloudEvents          `yaml:"cloudevents"`
	Segment     *fileSegment              `yaml:"segment"`
	Topics      map[string]*fileTopicConf `yaml:"topics"`
}

type fileTopicConf struct {
	Format      *string          `yaml:"format"`
	CloudEvents *fileCloudEvents `yaml:"cloudevents"`
	Segment     *fileSegment     `yaml:"segment"`
}

type fileCloudEvents struct {
	Customer *Paths            `yaml:"customer"`
	Type     *string           `yaml:"type"`
	Value    *string           `yaml:"value"`
	Segment  *string           `yaml:"segment"`
	ID       *string           `yaml:"id"`
	Time     *string           `yaml:"time"`
	Types    map[string]string `yaml:"types"`
}

type fileSegment struct {
	Customer     *Paths            `yaml:"customer"`
	Type         *string           `yaml:"type"`
	Value        *string           `yaml:"value"`
	TrackSegment *string           `yaml:"track_segment"`
	Segment      *string           `yaml:"segment"`
	ID           *string           `yaml:"id"`
	Time         *string           `yaml:"time"`
	Types        map[string]string `yaml:"types"`
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

func (f *fileCloudEvents) apply(m *CloudEventsMapping) {
	if f == nil {
		return
	}
	set(&m.Customer, f.Customer)
	set(&m.Type, f.Type)
	set(&m.Value, f.Value)
	set(&m.Segment, f.Segment)
	set(&m.ID, f.ID)
	set(&m.Time, f.Time)
	if f.Types != nil {
		m.Types = f.Types
	}
}

func (f *fileSegment) apply(m *SegmentMapping) {
	if f == nil {
		return
	}
	set(&m.Customer, f.Customer)
	set(&m.Type, f.Type)
	set(&m.Value, f.Value)
	set(&m.TrackSegment, f.TrackSegment)
	set(&m.Segment, f.Segment)
	set(&m.ID, f.ID)
	set(&m.Time, f.Time)
	if f.Types != nil {
		m.Types = f.Types
	}
}

// ConfigError is a problem of an input configuration file.
type ConfigError struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ParseConfig parses an input configuration file (YAML; see docs/events.md)
// and validates it. file names the source in errors. Fields absent from the
// file take the defaults; a topic's own block inherits, field by field, the
// file's top level.
func ParseConfig(file string, data []byte) (cfg Config, err error) {
	defer func() { // goccy/go-yaml v1.19.2 panics on some malformed inputs
		if r := recover(); r != nil {
			cfg, err = Config{}, &ConfigError{File: file, Msg: fmt.Sprintf("invalid YAML (the parser failed: %v)", r)}
		}
	}()
	var fc fileConfig
	if err := yaml.UnmarshalWithOptions(data, &fc, yaml.DisallowUnknownField(), yaml.Strict()); err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) {
			line := 0
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				line = tk.Position.Line
			}
			return Config{}, &ConfigError{File: file, Line: line, Msg: ye.GetMessage()}
		}
		return Config{}, &ConfigError{File: file, Msg: err.Error()}
	}
	def := TopicConfig{}.withDefaults()
	if fc.Format != nil {
		def.Format = Format(*fc.Format)
	}
	fc.CloudEvents.apply(&def.CloudEvents)
	fc.Segment.apply(&def.Segment)
	cfg = Config{Default: def}
	for name, t := range fc.Topics {
		tc := def
		if t != nil {
			if t.Format != nil {
				tc.Format = Format(*t.Format)
			}
			t.CloudEvents.apply(&tc.CloudEvents)
			t.Segment.apply(&tc.Segment)
		}
		if cfg.Topics == nil {
			cfg.Topics = make(map[string]TopicConfig)
		}
		cfg.Topics[name] = tc
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, &ConfigError{File: file, Msg: err.Error()}
	}
	return cfg, nil
}

// Validate checks the formats and the mapping paths of every topic, and
// names each problem with where it is (topics.NAME.segment.customer) and
// what to write instead.
func (c *Config) Validate() error {
	var errs []error
	check := func(where string, t TopicConfig) {
		t = t.withDefaults()
		if !t.Format.valid() {
			errs = append(errs, fmt.Errorf("%sformat: %q is not a format; use one of %s", where, t.Format, formatList()))
		}
		if _, err := compileCloudEvents(t.CloudEvents); err != nil {
			errs = append(errs, fmt.Errorf("%scloudevents.%w", where, err))
		}
		if _, err := compileSegment(t.Segment); err != nil {
			errs = append(errs, fmt.Errorf("%ssegment.%w", where, err))
		}
	}
	check("", c.Default)
	names := make([]string, 0, len(c.Topics))
	for n := range c.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.TrimSpace(n) == "" {
			errs = append(errs, errors.New("topics: a topic name is empty"))
			continue
		}
		check("topics."+n+".", c.Topics[n])
	}
	return errors.Join(errs...)
}

// CheckTopics reports topics the configuration names that are not among the
// input topics: a misspelt name would otherwise silently leave its topic on
// the default format.
func (c *Config) CheckTopics(inputs []string) error {
	var unknown []string
	for n := range c.Topics {
		if !slices.Contains(inputs, n) {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("the input configuration names topics that are not input topics: %s (the input topics are %s): fix the names or add them to the input topics", strings.Join(unknown, ", "), strings.Join(inputs, ", "))
}

func formatList() string {
	s := make([]string, len(Formats()))
	for i, f := range Formats() {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// ParseFormat parses a format name, such as a flag's value.
func ParseFormat(s string) (Format, error) {
	f := Format(s)
	if !f.valid() {
		return "", fmt.Errorf("%q is not an input format; use one of %s", s, formatList())
	}
	return f, nil
}
