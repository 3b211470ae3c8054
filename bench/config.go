package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Environment variables naming external servers to use instead of starting
// them.
const (
	EnvBrokers = "HEALTHSCORE_BENCH_BROKERS" // comma-separated bootstrap brokers
	EnvRedis   = "HEALTHSCORE_BENCH_REDIS"   // Redis URL (redis://…, unix://…)
)

// Config configures a run. Zero values take the documented defaults.
type Config struct {
	// Binary is the healthscore executable run as `dev-broker` and `run`.
	Binary string
	// Brokers and RedisURL name external servers; empty starts them.
	Brokers  []string
	RedisURL string
	// KafkaOpts are client options for external brokers (TLS, SASL: see
	// internal/kafkasec), used by every client of the harness; ServiceEnv
	// is the same security as HEALTHSCORE_KAFKA_* variables for the
	// pipeline processes (kept out of their command lines).
	KafkaOpts  []kgo.Opt
	ServiceEnv []string

	Events     int // preloaded events; default 2,000,000
	Customers  int // distinct customers of the preloaded events; default 100,000
	Partitions int // partitions per topic; default 8
	Instances  int // pipeline processes (and bare consumers) in the group; default 1
	MaxBatch   int // records per poll, bare and pipeline (the service's --max-batch); default 10,000

	// NaiveEvents is the sample the naive design processes; default 20,000.
	NaiveEvents int
	// MemoryCustomers is the customer count at which Redis memory is
	// measured; when above Customers, the pipeline gets one extra event for
	// each additional customer. Default 1,000,000; 0 after defaults means
	// "the preloaded customers only" (set it to -1 for that).
	MemoryCustomers int
	// SustainWindow is the window over which a paced rate must hold the
	// group's lag (after a warm-up of a quarter of it) in the search for
	// the highest sustained rate; default 10s, negative skips the search
	// (the latency loads are then fractions of the bulk rate).
	SustainWindow time.Duration
	// SustainTrials bounds the rates the search tries; default 7.
	SustainTrials int
	// SustainBudget bounds the search's time: no trial starts that would
	// likely end after it; default 3m.
	SustainBudget time.Duration
	// SustainRatio ends the search once the highest sustained and lowest
	// failed rates are within this factor; default 1.15.
	SustainRatio float64
	// LagBound is the most lag a sustained rate may show, in seconds of
	// input at that rate; default 1s.
	LagBound time.Duration
	// LatencyDuration is how long each paced load runs; default 20s,
	// negative skips the latency measurement.
	LatencyDuration time.Duration
	// LatencyLoads are the paced rates as fractions of the sustained rate
	// (of the bulk rate when none was found), ascending; default 0.25, 0.5.
	LatencyLoads []float64
	// LatencyRate, when positive, is the rate LatencyLoads are fractions
	// of (basis "given rate"), instead of the sustained or bulk rate: two
	// builds are then compared at the same paced load.
	LatencyRate float64
	// ClusterNodes is how many local redis-server nodes in cluster mode
	// the Redis Cluster row runs the pipeline against; default 3,
	// negative skips the row.
	ClusterNodes int
	// OfflineEvents is how many events the offline fold reads; default
	// min(Events, 1,000,000).
	OfflineEvents int

	// ProfileDir, when set, receives CPU and heap profiles of the pipeline
	// process if it serves /debug/pprof.
	ProfileDir string

	// Progress receives progress bars (usually stderr); Log receives notes.
	// Both may be nil.
	Progress io.Writer
	Log      io.Writer
	// Terminal says whether Progress is a terminal (bars redraw in place).
	Terminal bool
	// Seed makes the synthetic data reproducible; default 1.
	Seed uint64
}

// Quick returns the quick configuration (about 200k events over 20k
// customers, memory at those customers, a short rate search, 10 s of paced
// load per latency row, no Redis Cluster row).
func Quick() Config {
	return Config{Events: 200_000, Customers: 20_000, MemoryCustomers: -1, NaiveEvents: 5_000,
		SustainWindow: 6 * time.Second, SustainTrials: 5, SustainBudget: 75 * time.Second, SustainRatio: 1.25,
		LatencyDuration: 10 * time.Second, ClusterNodes: -1, OfflineEvents: 200_000}
}

// Smoke returns the smallest useful configuration, for CI.
func Smoke() Config {
	return Config{Events: 20_000, Customers: 2_000, MemoryCustomers: -1, NaiveEvents: 1_000,
		SustainWindow: 2 * time.Second, SustainTrials: 3, SustainBudget: 15 * time.Second, SustainRatio: 2,
		LatencyDuration: 2 * time.Second, ClusterNodes: -1, OfflineEvents: 20_000}
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Events, 2_000_000)
	def(&c.Customers, 100_000)
	def(&c.Partitions, 8)
	def(&c.Instances, 1)
	def(&c.MaxBatch, 10_000)
	def(&c.NaiveEvents, 20_000)
	def(&c.MemoryCustomers, 1_000_000)
	def(&c.OfflineEvents, min(c.Events, 1_000_000))
	if c.LatencyDuration == 0 {
		c.LatencyDuration = 20 * time.Second
	}
	if c.SustainWindow == 0 {
		c.SustainWindow = 10 * time.Second
	}
	def(&c.SustainTrials, 7)
	if c.SustainBudget == 0 {
		c.SustainBudget = 3 * time.Minute
	}
	if c.SustainRatio == 0 {
		c.SustainRatio = 1.15
	}
	if c.LagBound == 0 {
		c.LagBound = time.Second
	}
	if len(c.LatencyLoads) == 0 {
		c.LatencyLoads = []float64{0.25, 0.5}
	}
	def(&c.ClusterNodes, 3)
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

func (c *Config) validate() error {
	switch {
	case c.Binary == "":
		return errors.New("no Binary: the healthscore executable is required")
	case (len(c.KafkaOpts) > 0 || len(c.ServiceEnv) > 0) && len(c.Brokers) == 0:
		return errors.New("KafkaOpts and ServiceEnv are for external brokers: the harness's own broker is plaintext")
	case c.Events < 1:
		return fmt.Errorf("invalid Events: must be positive, got %d", c.Events)
	case c.Customers < 1 || c.Customers > c.Events:
		return fmt.Errorf("invalid Customers: must be between 1 and Events (%d), got %d", c.Events, c.Customers)
	case c.Partitions < 1:
		return fmt.Errorf("invalid Partitions: must be positive, got %d", c.Partitions)
	case c.Instances < 1:
		return fmt.Errorf("invalid Instances: must be positive, got %d", c.Instances)
	case c.MaxBatch < 1:
		return fmt.Errorf("invalid MaxBatch: must be positive, got %d", c.MaxBatch)
	case c.NaiveEvents < 1:
		return fmt.Errorf("invalid NaiveEvents: must be positive, got %d", c.NaiveEvents)
	case !slices.IsSorted(c.LatencyLoads) || c.LatencyLoads[0] <= 0 || c.LatencyLoads[len(c.LatencyLoads)-1] > 1:
		return fmt.Errorf("invalid LatencyLoads: must be ascending fractions in (0, 1], got %v", c.LatencyLoads)
	case c.SustainWindow > 0 && (c.SustainTrials < 1 || c.SustainRatio <= 1 || c.LagBound <= 0 || c.SustainBudget <= 0):
		return fmt.Errorf("invalid rate search: SustainTrials (%d) and SustainBudget (%s) must be positive, SustainRatio (%g) above 1, LagBound (%s) positive",
			c.SustainTrials, c.SustainBudget, c.SustainRatio, c.LagBound)
	case c.LatencyRate < 0:
		return fmt.Errorf("invalid LatencyRate: must not be negative, got %g", c.LatencyRate)
	case c.OfflineEvents < 0:
		return fmt.Errorf("invalid OfflineEvents: must not be negative, got %d", c.OfflineEvents)
	}
	c.NaiveEvents = min(c.NaiveEvents, c.Events)
	return nil
}
