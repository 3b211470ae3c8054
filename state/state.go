package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

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
	// is stored under its own key (OutboxKey of the customer and version),
	// written atomically with the record and deleted by ClearOutboxes once
	// acknowledged, so clearing it does not rewrite the record.
	Pending []byte
}

// Outbox names a stored outbox: the customer and the record version it was
// saved with.
type Outbox struct {
	ID      string
	Version uint64
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
	// Days are score-history days this write closes (oldest first,
	// increasing), and Changes band-change and alert entries (oldest
	// first, opaque, 1 to 65535 bytes each), both added to HistoryKey. Both are written by the save script only if the
	// compare-and-set applies, and only when Config.HistoryDays > 0.
	Days    []Day
	Changes [][]byte
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
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
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

// checkServerLua starts the scripts that are bound to a Redis server: when
// ARGV[1] is not empty it must hold the server's run_id (one run_id, or on
// Redis Cluster the run_ids of every primary, see ServerID), else the script
// stops before writing anything and fails with a RESTARTED error.
const checkServerLua = `
if ARGV[1] ~= '' then
  local id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  if not id or not string.find(ARGV[1], id, 1, true) then
    return redis.error_reply('RESTARTED the server run_id is ' .. tostring(id) .. ', not ' .. ARGV[1])
  end
end
`

// saveScript is the single-key Save: bound to a server as checkServerLua
// says (ARGV[1]), it compares the stored version bytes of record KEYS[1]
// with ARGV[2] (8 bytes, big-endian; a missing key has version 0) and only
// then stores ARGV[3], deletes the outbox of the version it replaces
// (KEYS[2], if the stored record says it has one: format byte 2) and stores
// outbox ARGV[4] (if not empty) under KEYS[3], the outbox key of the new
// version. When applied, it also adds the history days ARGV[5] and the
// changes ARGV[6] to KEYS[4], for a window of ARGV[7] days (see
// history.go). Its keys share the customer's hash tag.
// Returns 1 if applied, 0 on conflict.
var saveScript = redis.NewScript(checkServerLua + historyLua + `
local cur = redis.call('GET', KEYS[1])
if cur then
  if string.sub(cur, 2, 9) ~= ARGV[2] then return 0 end
elseif ARGV[2] ~= string.rep(string.char(0), 8) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
if cur and string.byte(cur, 1) == 2 then redis.call('DEL', KEYS[2]) end
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4]) end
history(KEYS[4], ARGV[5], ARGV[6], ARGV[7])
return 1
`)

// batchSaveScript is the multi-key Save (see Config.SingleKey). ARGV[1] is
// the run_id the writer expects the server to have ("": do not check); on
// another server it writes nothing and fails with a RESTARTED error. KEYS[1..3]
// are the band index keys of red, yellow and green (band bytes 1..3);
// ARGV[2] is the history window in days; KEYS[4..] are record keys, and
// each has ten more ARGV: the expected version
// (8 bytes, as in saveScript), the new value, the customer id, its score
// as a decimal string, the new outbox ("" for none) and the outbox keys of
// the expected version ("": known to have none, see Write.NoPrevOutbox) and
// of the new version, then the history days, the history changes and the
// history key ("" when both are empty). Each write is a compare-and-set with
// its outbox and history as in saveScript (the outbox and history keys are
// not declared: this script runs on single servers only); an applied write
// also moves the customer in the band index, so record and index change
// together. Returns one 1 (applied) or 0 (conflict) per write.
var batchSaveScript = redis.NewScript(checkServerLua + historyLua + `
local zero = string.rep(string.char(0), 8)
local out = {}
for i = 4, #KEYS do
  local j = 2 + (i - 4) * 10
  local cur = redis.call('GET', KEYS[i])
  local ok
  if cur then ok = string.sub(cur, 2, 9) == ARGV[j+1] else ok = ARGV[j+1] == zero end
  if ok then
    local val = ARGV[j+2]
    redis.call('SET', KEYS[i], val)
    if ARGV[j+6] ~= '' and cur and string.byte(cur, 1) == 2 then redis.call('DEL', ARGV[j+6]) end
    if ARGV[j+5] ~= '' then redis.call('SET', ARGV[j+7], ARGV[j+5]) end
    if ARGV[j+10] ~= '' then history(ARGV[j+10], ARGV[j+8], ARGV[j+9], ARGV[2]) end
    -- bytes 10..18: score and band; unchanged (e.g. an outbox clear),
    -- the index already holds them.
    if not cur or string.sub(cur, 10, 18) ~= string.sub(val, 10, 18) then
      local nb = string.byte(val, 18)
      local ob = 0
      if cur then ob = string.byte(cur, 18) end
      if ob ~= nb then
        for b = 1, 3 do
          if b ~= nb then redis.call('ZREM', KEYS[b], ARGV[j+3]) end
        end
      end
      if nb >= 1 and nb <= 3 then
        redis.call('ZADD', KEYS[nb], ARGV[j+4], ARGV[j+3])
      end
    end
    out[#out+1] = 1
  else
    out[#out+1] = 0
  end
end
return out
`)

// batchChunk is the number of writes per multi-key script call, and of keys
// per MGET: large enough to amortise the per-command cost, small enough that
// one call holds the server briefly (a script call of 256 writes took about
// 2 ms on the 2-core test machine, see docs/performance.md).
const batchChunk = 256

// Redis is the record store on Redis (a server, a cluster or miniredis).
// Readers use it directly; writers through a session (Bind).
type Redis struct {
	c     redis.UniversalClient
	cfg   Config
	cache *recordCache // nil: none
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
	s := &Redis{c: client, cfg: cfg}
	if cfg.Cache > 0 && !cfg.SingleKey {
		s.cache = newRecordCache(cfg.Cache)
	}
	return s, nil
}

// Key returns the Redis key of a customer's record.
func (s *Redis) Key(id string) string { return s.cfg.Prefix + "c:{" + id + "}" }

// OutboxKey returns the Redis key of the outbox saved with version of a
// customer's record. It shares the record key's hash tag.
func (s *Redis) OutboxKey(id string, version uint64) string {
	return s.cfg.Prefix + "o:{" + id + "}:" + strconv.FormatUint(version, 10)
}

// BandKey returns the Redis key of a band's sorted set.
func (s *Redis) BandKey(band string) string { return s.cfg.Prefix + "band:" + band }

// Load fetches the records of ids in one round trip (two when some have an
// outbox); missing ids get the zero Record (Version 0). It is not bound to
// a server and skips the record cache: for readers and tools. Writers load
// through a session (Bind).
func (s *Redis) Load(ctx context.Context, ids []string) ([]Record, error) {
	recs, err := s.load(ctx, ids, true, "")
	if err != nil {
		return nil, fmt.Errorf("cannot load records: %w", err)
	}
	return recs, nil
}

// load reads ids in one round trip: a pipeline of GETs in single-key mode
// (MGET cannot span cluster slots), else of MGETs of batchChunk keys. With
// outboxes, a second round trip reads the outbox keys the records name;
// without (band listings, index repair), Pending stays empty. With server
// set, each pipeline checks that it was answered by that server
// (pipeCheck); on Redis Cluster the caller checks (Session.Load).
func (s *Redis) load(ctx context.Context, ids []string, outboxes bool, server string) ([]Record, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if !s.cfg.SingleKey {
		return s.loadChunks(ctx, ids, outboxes, server)
	}
	cmds := make([]*redis.StringCmd, len(ids))
	check := func() error { return nil }
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.Key(id))
		}
		check = s.pipeCheck(ctx, p, server)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	if err := check(); err != nil {
		return nil, err
	}
	recs := make([]Record, len(ids))
	var stored []int
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var st bool
		if recs[i], st, err = decodeRecord(b); err != nil {
			return nil, fmt.Errorf("cannot decode record of %q: %w", ids[i], err)
		}
		if st {
			stored = append(stored, i)
		}
	}
	if !outboxes {
		stored = nil // the caller reads scores and bands only
	}
	if err := s.loadOutboxes(ctx, ids, recs, stored, server); err != nil {
		return nil, err
	}
	return recs, nil
}

// loadOutboxes reads the outboxes of the records at indexes stored (format
// 2) in one more round trip. A missing one was cleared after the record was
// read: its outputs are acknowledged.
func (s *Redis) loadOutboxes(ctx context.Context, ids []string, recs []Record, stored []int, server string) error {
	if len(stored) == 0 {
		return nil
	}
	keys := make([]string, len(stored))
	for k, i := range stored {
		keys[k] = s.OutboxKey(ids[i], recs[i].Version)
	}
	vals := make([]*redis.StringCmd, len(keys))
	check := func() error { return nil }
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, key := range keys {
			vals[k] = p.Get(ctx, key)
		}
		check = s.pipeCheck(ctx, p, server)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("cannot read outboxes: %w", err)
	}
	if err := check(); err != nil {
		return err
	}
	for k, i := range stored {
		b, err := vals[k].Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return fmt.Errorf("cannot read outbox of %q: %w", ids[i], err)
		default:
			recs[i].Pending = b
		}
	}
	return nil
}

func (s *Redis) loadChunks(ctx context.Context, ids []string, outboxes bool, server string) ([]Record, error) {
	var cmds []*redis.SliceCmd
	check := func() error { return nil }
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		keys := make([]string, 0, min(len(ids), batchChunk))
		for start := 0; start < len(ids); start += batchChunk {
			keys = keys[:0]
			for _, id := range ids[start:min(start+batchChunk, len(ids))] {
				keys = append(keys, s.Key(id))
			}
			cmds = append(cmds, p.MGet(ctx, keys...))
		}
		check = s.pipeCheck(ctx, p, server)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := check(); err != nil {
		return nil, err
	}
	recs := make([]Record, len(ids))
	var stored []int
	i := 0
	for _, cmd := range cmds {
		for _, v := range cmd.Val() {
			switch v := v.(type) {
			case nil: // missing: the zero Record
			case string:
				r, st, err := decodeRecord([]byte(v))
				if err != nil {
					return nil, fmt.Errorf("cannot decode record of %q: %w", ids[i], err)
				}
				recs[i] = r
				if st {
					stored = append(stored, i)
				}
			default:
				return nil, fmt.Errorf("cannot read record of %q: unexpected MGET reply %T", ids[i], v)
			}
			i++
		}
	}
	if i != len(ids) {
		return nil, fmt.Errorf("MGET returned %d values for %d keys", i, len(ids))
	}
	if !outboxes {
		stored = nil // the caller reads scores and bands only
	}
	if err := s.loadOutboxes(ctx, ids, recs, stored, server); err != nil {
		return nil, err
	}
	return recs, nil
}

// Get fetches one record, as Load; a missing id gets the zero Record.
func (s *Redis) Get(ctx context.Context, id string) (Record, error) {
	recs, err := s.load(ctx, []string{id}, true, "")
	if err != nil {
		return Record{}, fmt.Errorf("cannot get record: %w", err)
	}
	return recs[0], nil
}

func (s *Redis) compareAndSet(ctx context.Context, server string, ws []Write, vals [][]byte) ([]bool, error) {
	applied := make([]bool, len(ws))
	days, changes, err := s.historyArgsAll(ws)
	if err != nil {
		return nil, err
	}
	err = s.evalEach(ctx, saveScript, len(ws), func(i int) ([]string, []any) {
		w := &ws[i]
		keys := []string{s.Key(w.ID), s.OutboxKey(w.ID, w.Expected), s.OutboxKey(w.ID, w.Expected+1), s.HistoryKey(w.ID)}
		return keys, []any{server, binary.BigEndian.AppendUint64(nil, w.Expected), vals[i], w.Rec.Pending, days[i], changes[i], s.cfg.HistoryDays}
	}, func(i int, cmd *redis.Cmd) error {
		n, err := cmd.Int()
		if redis.HasErrorPrefix(err, "RESTARTED") {
			// Writes before this one may have applied: the caller
			// abandons the whole batch and re-reads.
			return fmt.Errorf("%w: %w", ErrServerChanged, err)
		}
		if err != nil {
			return fmt.Errorf("write of %q: %w", ws[i].ID, err)
		}
		applied[i] = n == 1
		return nil
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

// evalEach runs script n times, with the keys and arguments args gives for
// each call, all calls in one pipeline: one round trip, and a second only
// to load the script into a server that does not have it (NOSCRIPT: the
// call was not executed, so running it again is safe). done gets each
// call's result, in order; its first error ends evalEach.
func (s *Redis) evalEach(ctx context.Context, script *redis.Script, n int, args func(i int) ([]string, []any), done func(i int, cmd *redis.Cmd) error) error {
	todo := make([]int, n)
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		cmds := make([]*redis.Cmd, len(todo))
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range todo {
				keys, argv := args(i)
				cmds[j] = script.EvalSha(ctx, p, keys, argv...)
			}
			return nil
		})
		var retry []int
		for j, i := range todo {
			if attempt == 0 && redis.HasErrorPrefix(cmds[j].Err(), "NOSCRIPT") {
				retry = append(retry, i)
				continue
			}
			if derr := done(i, cmds[j]); derr != nil {
				return derr
			}
		}
		if err != nil && len(retry) == 0 {
			return err
		}
		if len(retry) > 0 {
			if err := script.Load(ctx, s.c).Err(); err != nil {
				return fmt.Errorf("cannot load script: %w", err)
			}
		}
		todo = retry
	}
	return nil
}

// saveChunks runs the writes through batchSaveScript, batchChunk writes per
// call, all calls in one pipeline (see evalEach).
func (s *Redis) saveChunks(ctx context.Context, server string, ws []Write, vals [][]byte) ([]bool, error) {
	bandKeys := make([]string, len(Bands))
	for i, b := range Bands {
		bandKeys[i] = s.BandKey(b)
	}
	type chunk struct {
		start, end int
		keys       []string
		args       []any
	}
	days, changes, err := s.historyArgsAll(ws)
	if err != nil {
		return nil, err
	}
	var chunks []*chunk
	for start := 0; start < len(ws); start += batchChunk {
		c := &chunk{start: start, end: min(start+batchChunk, len(ws))}
		c.keys = append(make([]string, 0, len(bandKeys)+c.end-c.start), bandKeys...)
		c.args = append(make([]any, 0, 2+10*(c.end-c.start)), server, s.cfg.HistoryDays)
		for i := c.start; i < c.end; i++ {
			w := &ws[i]
			prevOutbox, newOutbox := "", ""
			if !w.NoPrevOutbox {
				prevOutbox = s.OutboxKey(w.ID, w.Expected)
			}
			if len(w.Rec.Pending) > 0 {
				newOutbox = s.OutboxKey(w.ID, w.Expected+1)
			}
			c.keys = append(c.keys, s.Key(w.ID))
			histKey := ""
			if len(days[i]) > 0 || len(changes[i]) > 0 {
				histKey = s.HistoryKey(w.ID)
			}
			c.args = append(c.args, binary.BigEndian.AppendUint64(nil, w.Expected), vals[i], w.ID,
				strconv.FormatFloat(w.Rec.Score, 'g', -1, 64), w.Rec.Pending, prevOutbox, newOutbox,
				days[i], changes[i], histKey)
		}
		chunks = append(chunks, c)
	}
	applied := make([]bool, len(ws))
	err = s.evalEach(ctx, batchSaveScript, len(chunks), func(i int) ([]string, []any) {
		return chunks[i].keys, chunks[i].args
	}, func(i int, cmd *redis.Cmd) error {
		c := chunks[i]
		res, err := cmd.Int64Slice()
		switch {
		case err == nil && len(res) == c.end-c.start:
			for k, n := range res {
				applied[c.start+k] = n == 1
			}
			return nil
		case err == nil:
			return fmt.Errorf("save script returned %d results for %d writes", len(res), c.end-c.start)
		case redis.HasErrorPrefix(err, "RESTARTED"):
			// Chunks before this one may have applied: the caller
			// abandons the whole batch and re-reads.
			return fmt.Errorf("%w: %w", ErrServerChanged, err)
		default:
			return fmt.Errorf("writes of %q…: %w", ws[c.start].ID, err)
		}
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

// clearScript deletes KEYS, on the server whose run_id is ARGV[1] only
// ("": any), like batchSaveScript.
var clearScript = redis.NewScript(checkServerLua + `
return redis.call('DEL', unpack(KEYS))
`)

func (s *Redis) clearChunks(ctx context.Context, server string, obs []Outbox) error {
	var chunks [][]string
	for start := 0; start < len(obs); start += batchChunk {
		keys := make([]string, 0, min(len(obs)-start, batchChunk))
		for _, o := range obs[start:min(start+batchChunk, len(obs))] {
			keys = append(keys, s.OutboxKey(o.ID, o.Version))
		}
		chunks = append(chunks, keys)
	}
	return s.evalEach(ctx, clearScript, len(chunks), func(i int) ([]string, []any) {
		return chunks[i], []any{server}
	}, clearDone)
}

func clearDone(_ int, cmd *redis.Cmd) error {
	switch err := cmd.Err(); {
	case err == nil:
		return nil
	case redis.HasErrorPrefix(err, "RESTARTED"):
		return fmt.Errorf("cannot clear outboxes: %w: %w", ErrServerChanged, err)
	default:
		return fmt.Errorf("cannot clear outboxes: %w", err)
	}
}

// index moves the applied writes' customers to their new band, then re-reads
// their records and repeats for any that another writer saved meanwhile, so
// that the last index write for a customer is always for its latest record.
func (s *Redis) index(ctx context.Context, ws []Write, applied []bool) error {
	type entry struct {
		id      string
		version uint64
		band    string
		score   float64
	}
	var todo []entry
	for i, w := range ws {
		if applied[i] && !w.SkipIndex {
			todo = append(todo, entry{w.ID, w.Expected + 1, w.Rec.Band, w.Rec.Score})
		}
	}
	for pass := 0; len(todo) > 0; pass++ {
		if pass == s.cfg.IndexPasses {
			return fmt.Errorf("%d customers still changing after %d passes", len(todo), pass)
		}
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, e := range todo {
				for _, b := range Bands {
					if b == e.band {
						p.ZAdd(ctx, s.BandKey(b), redis.Z{Score: e.score, Member: e.id})
					} else {
						p.ZRem(ctx, s.BandKey(b), e.id)
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		ids := make([]string, len(todo))
		for i, e := range todo {
			ids[i] = e.id
		}
		recs, err := s.load(ctx, ids, false, "")
		if err != nil {
			return err
		}
		var next []entry
		seen := map[string]bool{}
		for i, e := range todo {
			if r := recs[i]; r.Version != e.version && !seen[e.id] {
				seen[e.id] = true
				next = append(next, entry{e.id, r.Version, r.Band, r.Score})
			}
		}
		todo = next
	}
	return nil
}

// Band lists members of a band, lowest score first, at most limit. It pages through the band's sorted set and keeps
// only candidates whose record is still in the band, reporting the record's
// score; the result is sorted by that score.
func (s *Redis) Band(ctx context.Context, band string, limit int) ([]Member, error) {
	if !slices.Contains(Bands, band) {
		return nil, fmt.Errorf("cannot list band %q: unknown band", band)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("cannot list band %q: limit must be positive, got %d", band, limit)
	}
	var out []Member
	seen := map[string]bool{}
	for start := int64(0); len(out) < limit; start += int64(limit) {
		ids, err := s.c.ZRange(ctx, s.BandKey(band), start, start+int64(limit)-1).Result()
		if err != nil {
			return nil, fmt.Errorf("cannot list band %q: %w", band, err)
		}
		if len(ids) == 0 {
			break
		}
		recs, err := s.load(ctx, ids, false, "")
		if err != nil {
			return nil, fmt.Errorf("cannot list band %q: %w", band, err)
		}
		for i, r := range recs {
			if r.Band == band && !seen[ids[i]] && len(out) < limit {
				seen[ids[i]] = true
				out = append(out, Member{ID: ids[i], Score: r.Score, Data: r.Data})
			}
		}
		if len(ids) < limit {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b Member) int {
		if a.Score != b.Score {
			if a.Score < b.Score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}
