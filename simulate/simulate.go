// Package simulate owns `healthscore simulate`: synthetic B2B SaaS event
// logs drawn from a latent health process, with the truth attached, so that
// a model (or a fit) can be measured against a known answer.
//
// Each customer has a latent health h that drifts as a random walk with a
// segment-specific drift. Every day, a customer not yet in decline starts
// to decline with probability DeclineRate(h); a declining customer's
// activity fades linearly over a quiet period of 14–60 days, then it
// cancels (its churn time) and sends nothing more. Event rates (logins,
// feature use, knowledge-base visits, tickets, escalations, NPS answers,
// monthly payments) depend on h and on the fading activity. The oracle is
// the generator's own probability that a customer alive at At churns in
// (At, At+Horizon], given its latent state at At.
//
// Output is a pure function of the Config: the same seed gives
// byte-identical files. Non-goals: producing to Kafka (internal/demo).
package simulate

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// Config configures a simulation. Zero fields take the defaults.
type Config struct {
	Customers int       // default 1000
	Days      int       // default 365
	Seed      uint64    // any value; the default 0 is a seed like another
	Start     time.Time // first day, midnight UTC; default 2026-01-01
	// At is the oracle's instant, a midnight UTC inside the simulated
	// period; default Start + Days − Horizon.
	At time.Time
	// Horizon of the oracle, whole days; default 90 days.
	Horizon time.Duration
	// OraclePaths is how many latent paths the oracle averages over; default 400.
	OraclePaths int
	// Progress, when set, is called after each simulated day.
	Progress func(day, days int)
	// IDPrefix starts every customer id (then a number of at least 3
	// digits); default "sim-".
	IDPrefix string
}

// Defaults.
const (
	DefaultCustomers   = 1000
	DefaultDays        = 365
	DefaultHorizon     = 90 * 24 * time.Hour
	DefaultOraclePaths = 400
	day                = 24 * time.Hour
)

// DefaultStart is the first simulated day by default.
var DefaultStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *Config) defaults() error {
	if c.Customers == 0 {
		c.Customers = DefaultCustomers
	}
	if c.Days == 0 {
		c.Days = DefaultDays
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	if c.Horizon == 0 {
		c.Horizon = DefaultHorizon
	}
	if c.IDPrefix == "" {
		c.IDPrefix = "sim-"
	}
	if c.OraclePaths == 0 {
		c.OraclePaths = DefaultOraclePaths
	}
	if c.At.IsZero() {
		c.At = c.Start.Add(time.Duration(c.Days)*day - c.Horizon)
	}
	return c.validate()
}

func (c *Config) validate() error {
	switch {
	case c.Customers < 1 || c.Customers > 1_000_000:
		return fmt.Errorf("customers: want 1 to 1000000, got %d", c.Customers)
	case c.Days < 1 || c.Days > 3650:
		return fmt.Errorf("days: want 1 to 3650, got %d", c.Days)
	case c.Start.UTC() != c.Start.UTC().Truncate(day):
		return fmt.Errorf("start: want a midnight UTC, got %s", c.Start.Format(time.RFC3339))
	case c.Horizon < day || c.Horizon%day != 0:
		return fmt.Errorf("horizon: want whole days (e.g. 90d), got %s", c.Horizon)
	case c.At.UTC() != c.At.UTC().Truncate(day) || c.At.Before(c.Start) || c.At.After(c.Start.Add(time.Duration(c.Days)*day)):
		return fmt.Errorf("at: want a midnight UTC between the start %s and the end of the simulated days, got %s",
			c.Start.Format(time.DateOnly), c.At.Format(time.RFC3339))
	case c.OraclePaths < 1:
		return fmt.Errorf("oracle paths: want at least 1, got %d", c.OraclePaths)
	}
	return nil
}

// Label is one customer's truth.
type Label struct {
	CustomerID string
	Segment    string
	Churned    bool  // cancelled within the simulated days
	ChurnTime  int64 // Unix ns of the cancellation; 0 when not churned
}

// Risk is the oracle's churn probability of a customer alive at At.
type Risk struct {
	CustomerID string
	Risk       float64 // P(churn in (At, At+Horizon] | latent state at At)
}

// Result is the truth of a simulation.
type Result struct {
	Config Config // with defaults applied
	Labels []Label
	Oracle []Risk // customers alive at At, in customer order
	Events int    // events written
}

// segment parameters.
type segment struct {
	name  string
	share float64 // of customers
	size  float64 // activity multiplier
	mu    float64 // mean initial health
	drift float64 // health drift per day
}

var segments = []segment{
	{"enterprise", 0.2, 2, 1.0, 0.002},
	{"mid-market", 0.4, 1, 0.6, 0},
	{"smb", 0.4, 0.5, 0.2, -0.004},
}

const (
	healthNoise  = 0.05 // standard deviation of the daily health step
	declineDrop  = 0.03 // health lost per day while declining
	quietMin     = 14.0 // days of fading activity before a cancellation
	quietMax     = 60.0
	healthBound  = 3.0
	paymentEvery = 30 // days
)

// DeclineRate is the daily probability that a customer of health h starts
// to decline: 0.0015·e^(−1.5h) (≈ 0.03% at h = 1, 0.15% at h = 0, 0.7% at h = −1).
func DeclineRate(h float64) float64 { return min(0.0015*math.Exp(-1.5*h), 1) }

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// customer is one simulated account.
type customer struct {
	id        string
	seg       *segment
	rng       *rand.Rand
	h         float64
	declining bool
	start     float64 // day the decline started (fractional)
	cancelAt  float64 // day of the cancellation (fractional)
	cancelled bool
	churnTime int64 // Unix ns of the cancellation event
	payDay    int   // day of the month-cycle of its payments
	seq       int   // events so far, for ids
}

func (c *customer) step() {
	c.h += c.seg.drift + healthNoise*c.rng.NormFloat64()
	if c.declining {
		c.h -= declineDrop
	}
	c.h = min(max(c.h, -healthBound), healthBound)
}

type event struct {
	t     int64
	cust  int
	seq   int
	typ   string
	value float64
}

// Event is one simulated event (the input event schema of docs/model.md).
type Event struct {
	ID, CustomerID, Type, Segment string
	Time                          int64 // Unix ns, whole seconds
	Value                         float64
}

// Generate simulates and calls emit with every event in time order (then
// customer, then the customer's sequence). emit must not keep ev. An
// error from emit stops the simulation and is returned.
func Generate(cfg Config, emit func(ev *Event) error) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("invalid simulation: %w", err)
	}
	res := &Result{Config: cfg}
	width := max(3, len(strconv.Itoa(cfg.Customers)))
	cs := make([]*customer, cfg.Customers)
	for i := range cs {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		c := &customer{id: fmt.Sprintf("%s%0*d", cfg.IDPrefix, width, i+1), rng: rng}
		r := rng.Float64()
		for k := range segments {
			c.seg = &segments[k]
			if r -= segments[k].share; r < 0 {
				break
			}
		}
		c.h = c.seg.mu + 0.8*rng.NormFloat64()
		c.payDay = rng.IntN(paymentEvery)
		cs[i] = c
	}
	atDay := int(cfg.At.Sub(cfg.Start) / day)
	horizon := int(cfg.Horizon / day)
	var evs []event
	var out Event
	for d := 0; d <= cfg.Days; d++ {
		if d == atDay {
			res.Oracle = oracle(cs, cfg, d, horizon)
		}
		if d == cfg.Days {
			break
		}
		evs = evs[:0]
		dayStart := cfg.Start.Add(time.Duration(d) * day).UnixNano()
		for i, c := range cs {
			evs = c.day(i, d, dayStart, evs)
		}
		slices.SortFunc(evs, func(a, b event) int {
			return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.cust, b.cust), cmp.Compare(a.seq, b.seq))
		})
		for _, e := range evs {
			c := cs[e.cust]
			out = Event{ID: c.id + "-" + strconv.Itoa(e.seq), CustomerID: c.id, Type: e.typ, Segment: c.seg.name, Time: e.t, Value: e.value}
			if err := emit(&out); err != nil {
				return nil, err
			}
		}
		res.Events += len(evs)
		if cfg.Progress != nil {
			cfg.Progress(d+1, cfg.Days)
		}
	}
	for _, c := range cs {
		l := Label{CustomerID: c.id, Segment: c.seg.name, Churned: c.cancelled}
		if c.cancelled {
			l.ChurnTime = c.churnTime
		}
		res.Labels = append(res.Labels, l)
	}
	return res, nil
}

// AppendJSON appends ev as one JSON line (with its newline). Ids, types
// and segments of the simulator need no escaping.
func (ev *Event) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"id":"`...)
	buf = append(buf, ev.ID...)
	buf = append(buf, `","customer_id":"`...)
	buf = append(buf, ev.CustomerID...)
	buf = append(buf, `","type":"`...)
	buf = append(buf, ev.Type...)
	buf = append(buf, `","time":"`...)
	buf = time.Unix(0, ev.Time).UTC().AppendFormat(buf, time.RFC3339)
	buf = append(buf, `","value":`...)
	buf = strconv.AppendFloat(buf, ev.Value, 'g', -1, 64)
	buf = append(buf, `,"segment":"`...)
	buf = append(buf, ev.Segment...)
	return append(buf, "\"}\n"...)
}

// Run simulates and writes the events, sorted by time (then customer, then
// sequence), as JSON lines to w.
func Run(cfg Config, w io.Writer) (*Result, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	var buf []byte
	res, err := Generate(cfg, func(ev *Event) error {
		buf = ev.AppendJSON(buf[:0])
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("cannot write events: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("cannot write events: %w", err)
	}
	return res, nil
}

// Event types the simulator writes.
const (
	TypeLogin            = "login"
	TypeFeatureUsed      = "feature_used"
	TypeKBViewed         = "kb_viewed"
	TypeTicketOpened     = "ticket_opened"
	TypeTicketEscalated  = "ticket_escalated"
	TypeNPS              = "nps_submitted"
	TypePaymentSucceeded = "payment_succeeded"
	TypePaymentFailed    = "payment_failed"
	TypeCancelled        = "subscription_cancelled"
)

// day appends customer i's events of day d and advances its latent state.
func (c *customer) day(i, d int, dayStart int64, evs []event) []event {
	if c.cancelled {
		return evs
	}
	if !c.declining && c.rng.Float64() < DeclineRate(c.h) {
		c.declining = true
		c.start = float64(d) + c.rng.Float64()
		c.cancelAt = c.start + quietMin + (quietMax-quietMin)*c.rng.Float64()
	}
	activity := 1.0
	end := float64(d + 1)
	if c.declining {
		mid := float64(d) + 0.5
		activity = max(0.5-0.45*(mid-c.start)/(c.cancelAt-c.start), 0.05) // halves at once, then fades
		if mid < c.start {
			activity = 1
		}
		end = min(end, c.cancelAt)
	}
	s := sigmoid(c.h)
	size := c.seg.size
	// add appends an event at fractional day at, unless it falls after the
	// cancellation; times are whole seconds.
	add := func(typ string, value float64, at float64) {
		if at >= end {
			return
		}
		c.seq++
		sec := int64((at - float64(d)) * float64(day/time.Second))
		evs = append(evs, event{t: dayStart + sec*int64(time.Second), cust: i, seq: c.seq, typ: typ, value: value})
	}
	poisson := func(typ string, rate float64) {
		for range c.poisson(rate) {
			add(typ, 1, float64(d)+c.rng.Float64())
		}
	}
	poisson(TypeLogin, size*activity*s)
	poisson(TypeFeatureUsed, size*activity*1.5*s*s)
	poisson(TypeKBViewed, size*0.15*activity)
	poisson(TypeTicketOpened, size*0.05*(1+3*sigmoid(-2*c.h)))
	poisson(TypeTicketEscalated, size*0.01*sigmoid(-2*c.h))
	if c.rng.Float64() < 1.0/45 {
		nps := math.Round(min(max(5+2.5*c.h+1.5*c.rng.NormFloat64(), 0), 10))
		add(TypeNPS, nps, float64(d)+c.rng.Float64())
	}
	if d%paymentEvery == c.payDay {
		typ := TypePaymentSucceeded
		if c.rng.Float64() < 0.02+0.3*sigmoid(-2*c.h-1) {
			typ = TypePaymentFailed
		}
		add(typ, 500*size, float64(d)+0.25)
	}
	if c.declining && c.cancelAt < float64(d+1) {
		c.cancelled, end = true, math.Inf(1)
		add(TypeCancelled, 1, c.cancelAt)
		c.churnTime = evs[len(evs)-1].t
	}
	c.step()
	return evs
}

// poisson draws a Poisson variate (Knuth; rates here are small).
func (c *customer) poisson(rate float64) int {
	if rate <= 0 {
		return 0
	}
	l, k, p := math.Exp(-rate), 0, 1.0
	for {
		p *= c.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// oracle computes, at the start of day d, the churn probability over the
// next horizon days of every customer not yet cancelled. A declining
// customer's cancellation day is already drawn: its risk is 0 or 1. For the
// others it averages, over paths of the latent health, the exact
// probability that a decline starts on some day j and its quiet period
// (uniform in [14, 60] days, starting at a uniform instant of day j) ends
// within the horizon. Paths use their own random streams, so the oracle
// never changes the simulated events.
func oracle(cs []*customer, cfg Config, d, horizon int) []Risk {
	var out []Risk
	for i, c := range cs {
		if c.cancelled {
			continue
		}
		r := Risk{CustomerID: c.id}
		switch {
		case c.declining:
			if c.cancelAt <= float64(d+horizon) {
				r.Risk = 1
			}
		default:
			rng := rand.New(rand.NewPCG(cfg.Seed^0x6f7261636c65, uint64(i)))
			var total float64
			for range cfg.OraclePaths {
				h, survive, p := c.h, 1.0, 0.0
				for j := range horizon {
					q := DeclineRate(h)
					p += survive * q * quietWithin(float64(horizon-j))
					survive *= 1 - q
					h = min(max(h+c.seg.drift+healthNoise*rng.NormFloat64(), -healthBound), healthBound)
				}
				total += p
			}
			r.Risk = total / float64(cfg.OraclePaths)
		}
		out = append(out, r)
	}
	return out
}

// quietWithin is P(u + Q <= x) for u uniform in [0, 1) and Q uniform in
// [quietMin, quietMax]: a decline starting at a uniform instant of a day
// ends within x days of that day's start.
func quietWithin(x float64) float64 {
	// P = ∫0^1 F(x − u) du with F the CDF of Q: average F at a few points.
	const n = 16
	var s float64
	for k := range n {
		u := (float64(k) + 0.5) / n
		s += min(max((x-u-quietMin)/(quietMax-quietMin), 0), 1)
	}
	return s / n
}

// WriteLabels writes labels as CSV: customer_id,segment,churned,churn_time
// (RFC 3339, empty when not churned).
func WriteLabels(w io.Writer, labels []Label) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"customer_id", "segment", "churned", "churn_time"})
	for _, l := range labels {
		t := ""
		if l.Churned {
			t = time.Unix(0, l.ChurnTime).UTC().Format(time.RFC3339)
		}
		_ = cw.Write([]string{l.CustomerID, l.Segment, strconv.FormatBool(l.Churned), t})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("cannot write labels: %w", err)
	}
	return nil
}

// WriteOracle writes the oracle as CSV: customer_id,at,horizon_days,risk.
func WriteOracle(w io.Writer, cfg Config, risks []Risk) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"customer_id", "at", "horizon_days", "risk"})
	at := cfg.At.UTC().Format(time.RFC3339)
	hd := strconv.Itoa(int(cfg.Horizon / day))
	for _, r := range risks {
		_ = cw.Write([]string{r.CustomerID, at, hd, strconv.FormatFloat(r.Risk, 'f', 6, 64)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("cannot write the oracle: %w", err)
	}
	return nil
}

// File names WriteDir writes.
const (
	EventsFile = "events.jsonl"
	LabelsFile = "labels.csv"
	OracleFile = "oracle.csv"
)

// WriteDir runs the simulation into dir (created if needed): events.jsonl,
// labels.csv and oracle.csv.
func WriteDir(cfg Config, dir string) (*Result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the output directory: %w", err)
	}
	create := func(name string, write func(io.Writer) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("cannot create %s: %w", name, err)
		}
		err = write(f)
		return errors.Join(err, f.Close())
	}
	var res *Result
	if err := create(EventsFile, func(w io.Writer) (err error) { res, err = Run(cfg, w); return err }); err != nil {
		return nil, err
	}
	if err := create(LabelsFile, func(w io.Writer) error { return WriteLabels(w, res.Labels) }); err != nil {
		return nil, err
	}
	if err := create(OracleFile, func(w io.Writer) error { return WriteOracle(w, res.Config, res.Oracle) }); err != nil {
		return nil, err
	}
	return res, nil
}
