package state

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The store: the record and write types, the configuration, and the
// Redis store with its key names. Reads are in load.go and band.go; every
// write goes through a session (session.go).

// Partition is an input topic-partition.
type Partition struct {
	Topic     string
	Partition int32
}

// Record is everything stored for one customer.
type Record struct {
	// Version is bumped by every successful Save; 0 means "not stored yet".
	Version uint64
	// Offsets holds, per input topic-partition, the highest Kafka offset
	// already applied to this customer.
	Offsets map[Partition]int64
	// Score is the last evaluated score (unrounded), used by the band index.
	Score float64
	// Band is "red", "yellow", "green" or "", used by the band index.
	Band string
	// Data is the opaque scorer state (encoded by package scorer).
	Data []byte
	// Pending is the consumer's outbox: outputs decided with this state
	// but not yet known to be acknowledged by the broker (opaque here). It
	// is written atomically with the record and deleted by ClearOutboxes
	// once acknowledged, so clearing it does not rewrite the record: in
	// multi-key mode as a range of the outbox string of the save call
	// that wrote it (CallOutboxKey(OutboxCall)), in single-key
	// mode under its own key (OutboxKey of the customer and version).
	Pending []byte
	// OutboxCall names the save call whose outbox string holds Pending
	// (multi-key mode; "" when Pending is under OutboxKey or there is
	// none). Load sets it from the record; Save ignores the caller's value
	// and sets it on each write to where it stores the new outbox (see
	// Write.Saved).
	OutboxCall string

	// outboxAt and outboxLen locate Pending in its call's outbox string
	// (format 4; both 0 for an outbox in a call's hash, format 3). Save
	// sets them with OutboxCall.
	outboxAt, outboxLen int
}

// Outbox names a stored outbox: the customer, the record version it was
// saved with and, for an outbox in a save call's string, that call ("": the
// per-version key OutboxKey(ID, Version)).
type Outbox struct {
	ID      string
	Version uint64
	Call    string
}

// Write is one compare-and-set of a customer's record.
type Write struct {
	ID string
	// Expected is the Version read by Load; the write applies only if the
	// stored version still equals it (0: only if nothing is stored).
	Expected uint64
	// Rec is the new record; its Version is ignored and Expected+1 is stored.
	Rec Record
	// SkipIndex leaves the band index alone: for writes that do not change
	// the score or band (e.g. clearing Pending).
	SkipIndex bool
	// NoPrevOutbox tells the save that the record at version Expected has
	// no outbox left to delete: it had none, or it was read back empty
	// (cleared), and an outbox key is never written again for a version
	// once saved. The save then skips the delete. False is always safe.
	NoPrevOutbox bool
	// PrevOutboxCall is the OutboxCall of the record at version Expected,
	// as loaded. The save then lowers the count of the call string the
	// stored record names (the compare-and-set guarantees it is the loaded
	// one), or for a format-3 record removes the customer's field from
	// that call's hash. Left empty for such a record (with NoPrevOutbox
	// unset, the save still lowers a string's count), a format-3 field
	// stays until that call's clear deletes the hash.
	PrevOutboxCall string
	// Days are score-history days this write closes (oldest first,
	// increasing), and Changes band-change and alert entries (oldest
	// first, opaque, 1 to 65535 bytes each), both added to HistoryKey. Both are written by the save script only if the
	// compare-and-set applies, and only when Config.HistoryDays > 0.
	Days    []Day
	Changes [][]byte
	// Due is the customer's next decay wake-up after this write (Unix ms;
	// 0: none, the schedule is left as it is). The save schedules it only
	// if the write applies: on a single server in the same script, where it
	// replaces the customer's schedule entry (even with a later time: the
	// entry is for the state this write stores); on Redis Cluster before
	// the compare-and-set and again after it, only ever moving the entry
	// earlier (see ScheduleEarlier and Release).
	Due int64
}

// Saved names the outbox an applied write stored (when Rec.Pending is set),
// for ClearOutboxes once its outputs are acknowledged. Valid after Save,
// which sets Rec.OutboxCall.
func (w Write) Saved() Outbox {
	return Outbox{ID: w.ID, Version: w.Expected + 1, Call: w.Rec.OutboxCall}
}

// Member is a customer in a band.
type Member struct {
	ID    string
	Score float64
	Data  []byte // the record's scorer state (Record.Data), e.g. for its segment
}

// ErrIndex reports that records were saved but the band index could not be
// brought up to date; it catches up at the customers' next saves.
var ErrIndex = errors.New("band index may lag")

// DefaultPrefix starts every key unless Config.Prefix says otherwise.
const DefaultPrefix = "hs:"

// Config configures a Redis store.
type Config struct {
	// Prefix starts every key (default "hs:"). It must not contain '{' or
	// '}', which would break the customer keys' hash tags.
	Prefix string
	// IndexPasses bounds how often Save re-reads records to repair the band
	// index after racing writers (default 8). Each pass costs two round
	// trips and is needed only while other writers save the same customers.
	IndexPasses int
	// Shards is the number of schedule shards (default DefaultShards). All
	// instances sharing a prefix must use the same number.
	Shards int
	// Buckets is the number of buckets customers are grouped into (default
	// DefaultBuckets; a multiple of Shards): the small keys that hold the
	// records, the band index and the schedule (layout.go). All instances
	// sharing a prefix must use the same number (CheckLayout).
	Buckets int
	// SingleKey restricts the store to commands and scripts that touch one
	// key each, as Redis Cluster requires; it is set automatically for a
	// *redis.ClusterClient. Otherwise (a single server, or a primary with
	// replicas) Save runs its compare-and-sets and band-index updates in
	// multi-key scripts, a chunk of customers per call: atomically, so the
	// index never lags, and with a fraction of the commands. All instances
	// sharing a prefix must use the same mode.
	SingleKey bool
	// Cache is how many customers' records the store keeps in memory after
	// saving them, so that loads bound to the same Redis server
	// (Session.Load) find them without a round trip (see cache.go); about
	// 300 bytes of heap each. 0: no cache. Ignored in single-key mode.
	Cache int
	// WaitReplicas is how many replicas WaitReplicas waits for
	// (AutoReplicas: those connected at the time; 0: none), and WaitTimeout
	// how long at most (default DefaultWaitTimeout).
	WaitReplicas int
	WaitTimeout  time.Duration
	// BandCountsMaxAge is how old the band counts BandCounts returns in
	// single-key mode may be (default DefaultBandCountsMaxAge; negative:
	// summed at every call): there they are a sum over every bucket.
	BandCountsMaxAge time.Duration
	// HistoryDays is how many days of score history are kept per customer
	// (see history.go); 0: none, and Save writes no history.
	HistoryDays int
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.IndexPasses == 0 {
		c.IndexPasses = 8
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultBuckets
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	if c.BandCountsMaxAge == 0 {
		c.BandCountsMaxAge = DefaultBandCountsMaxAge
	}
}

func (c Config) validate() error {
	if strings.ContainsAny(c.Prefix, "{}") {
		return fmt.Errorf("invalid Prefix %q: must not contain '{' or '}'", c.Prefix)
	}
	if c.IndexPasses < 1 {
		return fmt.Errorf("invalid IndexPasses %d: must be positive", c.IndexPasses)
	}
	if c.Shards < 1 || c.Shards > 1024 {
		return fmt.Errorf("invalid Shards %d: must be from 1 to 1024", c.Shards)
	}
	if c.Buckets < c.Shards || c.Buckets > MaxBuckets || c.Buckets%c.Shards != 0 {
		return fmt.Errorf("invalid Buckets %d: must be a multiple of Shards (%d) up to %d", c.Buckets, c.Shards, MaxBuckets)
	}
	if c.WaitReplicas < AutoReplicas {
		return fmt.Errorf("invalid WaitReplicas %d: must be AutoReplicas, 0 or more", c.WaitReplicas)
	}
	if c.WaitTimeout < 0 {
		return fmt.Errorf("invalid WaitTimeout %s: must be positive", c.WaitTimeout)
	}
	if c.HistoryDays < 0 || c.HistoryDays > MaxHistoryDays {
		return fmt.Errorf("invalid HistoryDays %d: must be from 0 (none) to %d", c.HistoryDays, MaxHistoryDays)
	}
	if c.Cache < 0 {
		return fmt.Errorf("invalid Cache %d: must be 0 (none) or more", c.Cache)
	}
	return nil
}

// batchChunk is the number of writes per multi-key script call (and of
// keys per outbox-clear script call): large enough to amortise the per-command cost, small enough that
// one call holds the server briefly (a script call of 256 writes took about
// 2 ms on the 2-core test machine, see docs/performance.md).
const batchChunk = 256

// Redis is the record store on Redis (a server, a cluster or miniredis).
// Readers use it directly; writers through a session (Bind).
type Redis struct {
	c     redis.UniversalClient
	cfg   Config
	cache *recordCache // nil: none
	// bandCounts caches single-key mode's summed band counts (band.go).
	bandCounts bandCountCache
	topics     topicCache // the topic ids (topics.go)
	acked      ackedCalls // outbox strings to delete (acked.go)
	// outboxNonce and outboxSeq name the outbox string of each save call
	// (multi-key mode, see CallOutboxKey): random per store, so that no
	// two stores, in this process or another, ever write the same one.
	outboxNonce string
	outboxSeq   atomic.Uint64
}

// NewRedis returns a store using client, which the caller keeps owning.
func NewRedis(client redis.UniversalClient, cfg Config) (*Redis, error) {
	if client == nil {
		return nil, errors.New("cannot create redis state store: client is nil")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cannot create redis state store: %w", err)
	}
	if _, ok := client.(*redis.ClusterClient); ok {
		cfg.SingleKey = true
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("cannot create redis state store: %w", err)
	}
	s := &Redis{c: client, cfg: cfg, outboxNonce: strconv.FormatUint(binary.BigEndian.Uint64(nonce[:]), 36)}
	if cfg.Cache > 0 && !cfg.SingleKey {
		s.cache = newRecordCache(cfg.Cache)
	}
	return s, nil
}

// RecordKey names where a customer's record is. In multi-key mode (the
// default) it is field id of the hash key, the customer's bucket
// <prefix>c:<bucket> (Bucket, in decimal), which holds about
// customers/Buckets records as one compact listpack (layout.go). In
// single-key mode (Redis Cluster) it is a key of its own, <prefix>c:{<id>},
// and field is "": the braces are a hash tag that the customer's history
// key shares. Every reader and writer of records names them through it.
func (s *Redis) RecordKey(id string) (key, field string) {
	if s.cfg.SingleKey {
		return s.cfg.Prefix + "c:{" + id + "}", ""
	}
	return s.cfg.Prefix + "c:" + strconv.Itoa(s.Bucket(id)), id
}

// OutboxKey returns the Redis key of the outbox saved with version of a
// customer's record in single-key mode (and by earlier versions in both
// modes). It has the hash tag of the customer's single-key record key
// (RecordKey).
func (s *Redis) OutboxKey(id string, version uint64) string {
	return s.cfg.Prefix + "o:{" + id + "}:" + strconv.FormatUint(version, 10)
}

// CallOutboxKey returns the Redis key of the outbox string of a save call
// (Record.OutboxCall; see layOutboxes; a hash, field customer id, for the
// calls of the version before). It has no hash tag: multi-key mode only.
func (s *Redis) CallOutboxKey(call string) string { return s.cfg.Prefix + "o:" + call }

// newOutboxCall names a new save call's outbox string: the store's nonce and
// a sequence number, never used before.
func (s *Redis) newOutboxCall() string {
	return s.outboxNonce + ":" + strconv.FormatUint(s.outboxSeq.Add(1), 36)
}

// BandKey returns the Redis key of a band's index in one bucket (see
// Bucket): a hash, field customer id, value "". These names never equal
// the earlier layout's <prefix>band:red|yellow|green (see CheckLayout).
func (s *Redis) BandKey(band string, bucket int) string {
	return s.bandPrefix() + band + ":" + strconv.Itoa(bucket)
}

// bandPrefix starts every band index key: BandKey is bandPrefix, band, ':'
// and bucket (the multi-key save script builds them so).
func (s *Redis) bandPrefix() string { return s.cfg.Prefix + "band:" }

// BandCountKey returns the Redis key of the band counts of multi-key mode:
// a hash, field band, value the number of entries in that band's index
// (see BandCounts).
func (s *Redis) BandCountKey() string { return s.cfg.Prefix + "bandcount" }
