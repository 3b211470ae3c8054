package state

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The schedule holds, for customers whose score will need publishing with
// no new event (decay crossing a band or moving decay_step points), the
// instant that happens. It has two levels per shard N (Shards shards), all
// of whose keys share the hash tag {N}, so every script touches one Redis
// Cluster slot:
//
//   - bucket sorted sets <prefix>due:{N}:<bucket> (member = customer id,
//     score = due Unix ms), one per bucket of the shard (bucket =
//     Bucket(id), N = bucket % Shards): about 60 members each at 1M
//     customers, so Redis keeps them as compact listpacks;
//   - one sorted set <prefix>due:{N}:min per shard (member = bucket number,
//     score = a lower bound of that bucket's earliest due time). A bucket
//     with members always has an entry; the bound may be lower than the
//     bucket's true minimum (after a release moved or removed its earliest
//     member), never higher, so a due customer is always found by looking
//     at the buckets whose bound has passed; a bound too low only costs a
//     look (the claim then sets it exactly).
//
// The claim, DueStats and DueBefore scripts find their buckets in :min and
// so read keys they are not given (the shard's buckets): those are in the
// slot of the key they are given, which Redis Cluster allows (checked on
// redis-server 7.0).
//
// Due times may be earlier than necessary (a harmless wake-up: the sweeper
// evaluates, publishes nothing and reschedules), never later: event batches
// only move a due time earlier (ZADD LT), and the sweeper, which holds a
// claim, sets it exactly unless an event batch moved it meanwhile.

// DefaultShards is the number of schedule shards.
const DefaultShards = 16

// Due is one schedule entry.
type Due struct {
	ID string
	At int64 // Unix ms
}

// Shard returns the schedule shard of a customer: its bucket modulo the
// number of shards.
func (s *Redis) Shard(id string) int { return s.Bucket(id) % s.cfg.Shards }

// Shards returns the number of schedule shards.
func (s *Redis) Shards() int { return s.cfg.Shards }

// dueShardPrefix is the prefix of every schedule key of a shard, with its
// hash tag: <prefix>due:{N}:.
func (s *Redis) dueShardPrefix(shard int) string {
	return s.duePrefix() + strconv.Itoa(shard) + "}:"
}

// duePrefix starts every schedule key: dueShardPrefix is duePrefix, the
// shard and "}:" (the batch save script builds them so).
func (s *Redis) duePrefix() string { return s.cfg.Prefix + "due:{" }

// DueKey returns the Redis key of a schedule bucket (a sorted set of its
// customers by due time), in shard bucket % Shards.
func (s *Redis) DueKey(bucket int) string {
	return s.dueShardPrefix(bucket%s.cfg.Shards) + strconv.Itoa(bucket)
}

// DueMinKey returns the Redis key of a shard's bucket index: a sorted set
// of its scheduled buckets by a lower bound of their earliest due time.
func (s *Redis) DueMinKey(shard int) string { return s.dueShardPrefix(shard) + "min" }

// scheduleScript moves customers earlier in the buckets KEYS[2..] of one
// shard and their bounds in the shard's index KEYS[1]. ARGV holds, for each
// bucket key in order: its bucket number, the number n of its entries, then
// n pairs of due Unix ms and customer id. Each entry is ZADD LT into its
// bucket; the bound of a bucket where one changed is lowered (ZADD LT, one
// command for the shard) to the least of its entries, so a bound stays at
// or below its bucket's minimum. A bucket where nothing changed keeps its
// minimum and its bound.
var scheduleScript = redis.NewScript(`
local a = 1
local bounds = {}
for j = 2, #KEYS do
  local b, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local lo, los
  local changed = 0
  for c = 0, n - 1, 200 do
    local zs = {}
    for i = c, math.min(n, c + 200) - 1 do
      local sc = ARGV[a + 2 * i]
      zs[#zs + 1] = sc
      zs[#zs + 1] = ARGV[a + 2 * i + 1]
      local v = tonumber(sc)
      if not lo or v < lo then lo, los = v, sc end
    end
    changed = changed + redis.call('ZADD', KEYS[j], 'LT', 'CH', unpack(zs))
  end
  a = a + 2 * n
  if changed > 0 then
    bounds[#bounds + 1] = los
    bounds[#bounds + 1] = b
  end
end
if #bounds > 0 then redis.call('ZADD', KEYS[1], 'LT', unpack(bounds)) end
return 1
`)

// ScheduleEarlier sets each customer's due time, unless it already has an
// earlier one: one pipelined round trip of one script per shard touched
// (per batchChunk customers of a shard), which lowers the bucket index
// with the entries.
func (s *Redis) ScheduleEarlier(ctx context.Context, ds []Due) error {
	if len(ds) == 0 {
		return nil
	}
	calls := s.scheduleCalls(ds)
	err := s.evalEach(ctx, scheduleScript, len(calls), func(i int) ([]string, []any) {
		return calls[i].keys, calls[i].argv
	}, func(_ int, cmd *redis.Cmd) error { return cmd.Err() })
	if err != nil {
		return fmt.Errorf("cannot schedule customers: %w", err)
	}
	return nil
}

// scriptCall is the keys and arguments of one script call.
type scriptCall struct {
	keys []string
	argv []any
}

// scheduleCalls lays ds out for scheduleScript: one entry per customer, its
// earliest (one ZADD LT naming a member twice keeps the earlier on Redis
// but the last on miniredis), grouped by bucket and the buckets by shard,
// each shard's buckets cut into calls of about batchChunk entries (a bucket
// is never split). A sort, not maps: a batch schedules tens of thousands.
func (s *Redis) scheduleCalls(ds []Due) []scriptCall {
	type entry struct {
		order, bucket int // order: shard first, then bucket
		Due
	}
	shards := s.cfg.Shards
	es := make([]entry, len(ds))
	for i, d := range ds {
		b := s.Bucket(d.ID)
		es[i] = entry{(b%shards)*s.cfg.Buckets + b, b, d}
	}
	slices.SortFunc(es, func(a, b entry) int {
		if a.order != b.order {
			return cmp.Compare(a.order, b.order)
		}
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return cmp.Compare(a.At, b.At)
	})
	var calls []scriptCall
	var cur *scriptCall
	n := 0
	for i := 0; i < len(es); {
		b := es[i].bucket
		if cur == nil || n >= batchChunk || b%shards != es[i-1].bucket%shards {
			calls = append(calls, scriptCall{keys: []string{s.DueMinKey(b % shards)}})
			cur, n = &calls[len(calls)-1], 0
		}
		cur.keys = append(cur.keys, s.DueKey(b))
		count := len(cur.argv) + 1
		cur.argv = append(cur.argv, b, 0)
		entries := 0
		for ; i < len(es) && es[i].bucket == b; i++ {
			if i > 0 && es[i-1].bucket == b && es[i-1].ID == es[i].ID {
				continue // a later time of the same customer
			}
			cur.argv = append(cur.argv, es[i].At, es[i].ID)
			entries++
		}
		cur.argv[count] = entries
		n += entries
	}
	return calls
}

// claimScript takes up to ARGV[3] customers due at or before ARGV[1] from
// the shard whose bucket index is KEYS[1] (bucket keys ARGV[4]..<bucket>),
// moves them to ARGV[2] (the claim's expiry, after ARGV[1]) and returns
// them. It visits the buckets whose bound has passed, earliest bound
// first; each visited bucket's bound is then set to its exact minimum
// (removed when it is empty). A visited bucket leaves the passed bounds
// (its due customers are leased past ARGV[1]) unless the limit is reached,
// so the loop ends. A claimed customer whose sweeper dies is claimed again
// when the lease ends.
var claimScript = redis.NewScript(`
local left = tonumber(ARGV[3])
local out = {}
while left > 0 do
  local bs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
  if #bs == 0 then break end
  local k = ARGV[4] .. bs[1]
  local ids = redis.call('ZRANGEBYSCORE', k, '-inf', ARGV[1], 'LIMIT', 0, left)
  for _, id in ipairs(ids) do
    redis.call('ZADD', k, ARGV[2], id)
    out[#out + 1] = id
  end
  left = left - #ids
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', KEYS[1], bs[1])
  else
    redis.call('ZADD', KEYS[1], first[2], bs[1])
  end
end
return out
`)

// Claim takes up to limit customers of a shard due at or before nowMs, and
// leases them until leaseUntilMs, which must be after nowMs.
func (s *Redis) Claim(ctx context.Context, shard int, nowMs, leaseUntilMs int64, limit int) ([]string, error) {
	if leaseUntilMs <= nowMs {
		return nil, fmt.Errorf("cannot claim due customers of shard %d: the lease (%d) must end after now (%d)", shard, leaseUntilMs, nowMs)
	}
	ids, err := claimScript.Run(ctx, s.c, []string{s.DueMinKey(shard)}, nowMs, leaseUntilMs, limit, s.dueShardPrefix(shard)).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("cannot claim due customers of shard %d: %w", shard, err)
	}
	return ids, nil
}

// releaseScript sets a claimed member ARGV[3] of bucket KEYS[1] to due time
// ARGV[2] (or removes it when ARGV[2] is "-") only if its score is still
// the claim's ARGV[1] (an event batch that moved it earlier meanwhile wins)
// and, when ARGV[5] is not empty, the customer's record (field ARGV[3] of
// the record hash ARGV[5]) still has version ARGV[6] (8 bytes; a missing
// record has version 0): a save that applied since the sweeper read the
// record set the entry for the state it stored, which the release must not
// replace. A new due time lowers the bucket's bound (member ARGV[4] of the
// shard's index KEYS[2]) to it; a removal leaves the bound, which stays a
// lower bound. Returns 1 when released, 0 when the entry moved, 2 when the
// record did.
var releaseScript = redis.NewScript(luaCodec.Replace(`
local cur = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not cur or tonumber(cur) ~= tonumber(ARGV[1]) then return 0 end
if ARGV[5] ~= '' then
  local rec = redis.call('HGET', ARGV[5], ARGV[3])
  local v = string.rep(string.char(0), $VERSION_LEN)
  if rec then v = string.sub(rec, $VERSION_FIRST, $VERSION_LAST) end
  if v ~= ARGV[6] then return 2 end
end
if ARGV[2] == '-' then
  redis.call('ZREM', KEYS[1], ARGV[3])
else
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[2], 'LT', ARGV[2], ARGV[4])
end
return 1
`))

// Released is a claimed customer the sweeper evaluated: its next due time
// (Unix ms, 0: none) for the record version it evaluated.
type Released struct {
	ID      string
	At      int64
	Version uint64
}

// Release ends claims taken at leaseUntilMs by a sweep at nowMs: each
// customer is rescheduled to its At, or unscheduled when At is 0, unless a
// save applied since the sweeper read the record at Version, whose due
// time stays. On a single server the release script checks the version
// (one pipelined round trip). On Redis Cluster the record is in another
// slot: the release applies, then the records are read, and a customer
// whose record moved on is woken again at nowMs (ScheduleEarlier), to be
// evaluated as it is now. With Session.Save's second schedule after its
// compare-and-set, a save's due time is never lost to a release: a save
// whose second schedule runs after the release lowers what the release
// set, and one that ran before it has moved the record on before the
// read.
func (s *Redis) Release(ctx context.Context, nowMs, leaseUntilMs int64, ds []Released) error {
	released := make([]bool, len(ds))
	err := s.evalEach(ctx, releaseScript, len(ds), func(i int) ([]string, []any) {
		d := ds[i]
		at := "-"
		if d.At > 0 {
			at = strconv.FormatInt(d.At, 10)
		}
		b := s.Bucket(d.ID)
		rec, version := "", ""
		if !s.cfg.SingleKey {
			rec, _ = s.RecordKey(d.ID)
			version = string(binary.BigEndian.AppendUint64(nil, d.Version))
		}
		return []string{s.DueKey(b), s.DueMinKey(b % s.cfg.Shards)}, []any{leaseUntilMs, at, d.ID, b, rec, version}
	}, func(i int, cmd *redis.Cmd) error {
		n, err := cmd.Int()
		if err == nil && n == 2 && s.cache != nil {
			// The sweeper evaluated a record someone else replaced since:
			// if it came from this process's cache, that entry is stale.
			s.cache.drop(s.cache.gen.Load(), ds[i].ID)
		}
		released[i] = n == 1
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot reschedule customers: %w", err)
	}
	if s.cfg.SingleKey {
		if err := s.wakeMovedOn(ctx, nowMs, ds, released); err != nil {
			return fmt.Errorf("cannot reschedule customers: %w", err)
		}
	}
	return nil
}

// wakeMovedOn (single-key mode) reads the records of the released
// customers and wakes at nowMs those whose version is no longer the one
// the sweeper evaluated.
func (s *Redis) wakeMovedOn(ctx context.Context, nowMs int64, ds []Released, released []bool) error {
	var idx []int
	for i := range ds {
		if released[i] {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	cmds := make([]*redis.StringCmd, len(idx))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, i := range idx {
			cmds[k] = s.readRecord(ctx, p, ds[i].ID)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("cannot read records: %w", err)
	}
	var wake []Due
	for k, i := range idx {
		b, err := cmds[k].Bytes()
		var version uint64
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return fmt.Errorf("cannot read record of %q: %w", ds[i].ID, err)
		case len(b) >= versionOffset+versionLen:
			version = binary.BigEndian.Uint64(b[versionOffset:])
		}
		if version != ds[i].Version {
			wake = append(wake, Due{ID: ds[i].ID, At: nowMs})
		}
	}
	return s.ScheduleEarlier(ctx, wake)
}

// dueStatsBuckets bounds the buckets a shard's DueStats script counts in:
// the gauges it feeds are read at every sweep, on every instance, and a
// backlog can make every bucket due (16,384 by default, a bucket per 64
// customers at any size); counting in each cost about 45 ms of Redis per
// sweep at 16,384.
const dueStatsBuckets = 64

// dueStatsScript counts the customers due at or before ARGV[1] in the
// shard whose bucket index is KEYS[1] (bucket keys ARGV[2]..<bucket>),
// reading only buckets whose bound has passed: all of them while there are
// at most ARGV[3], else ARGV[3] of them spread evenly over those buckets in
// the order of their bounds, whose mean count times the due buckets is the
// estimate. The earliest due time is exact: buckets are read in the order
// of their bounds (each at or below its earliest entry) until a bound is
// not before the earliest found. Returns the count and the earliest (0
// when none is due).
var dueStatsScript = redis.NewScript(`
local cap = tonumber(ARGV[3])
local now = tonumber(ARGV[1])
local nb = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
local due = 0
if nb <= cap then
  for _, b in ipairs(redis.call('ZRANGE', KEYS[1], 0, nb - 1)) do
    due = due + redis.call('ZCOUNT', ARGV[2] .. b, '-inf', ARGV[1])
  end
else
  local sum = 0
  for k = 0, cap - 1 do
    local r = math.floor(k * nb / cap)
    local b = redis.call('ZRANGE', KEYS[1], r, r)[1]
    sum = sum + redis.call('ZCOUNT', ARGV[2] .. b, '-inf', ARGV[1])
  end
  due = math.floor(sum * nb / cap + 0.5)
end
local oldest = 0
for r = 0, nb - 1 do
  local e = redis.call('ZRANGE', KEYS[1], r, r, 'WITHSCORES')
  if #e == 0 or (oldest > 0 and tonumber(e[2]) >= oldest) then break end
  local first = redis.call('ZRANGE', ARGV[2] .. e[1], 0, 0, 'WITHSCORES')
  if #first > 0 then
    local f = tonumber(first[2])
    if f <= now and (oldest == 0 or f < oldest) then oldest = f end
  end
end
return {due, oldest}
`)

// DueStats returns how many customers are due at or before nowMs and the
// earliest due time among them (0 when none is due), over all shards: one
// pipelined round trip of a script per shard, which reads the buckets the
// shard's index says may hold due customers: exactly while at most
// dueStatsBuckets of a shard's buckets are due, else an estimate from that
// many spread over them (see dueStatsScript). The earliest is exact.
func (s *Redis) DueStats(ctx context.Context, nowMs int64) (due int64, oldestMs int64, err error) {
	err = s.evalEach(ctx, dueStatsScript, s.cfg.Shards, func(i int) ([]string, []any) {
		return []string{s.DueMinKey(i)}, []any{nowMs, s.dueShardPrefix(i), dueStatsBuckets}
	}, func(i int, cmd *redis.Cmd) error {
		v, err := cmd.Int64Slice()
		if err != nil {
			return err
		}
		if len(v) != 2 {
			return fmt.Errorf("shard %d: the schedule stats script returned %v", i, v)
		}
		due += v[0]
		if v[1] > 0 && (oldestMs == 0 || v[1] < oldestMs) {
			oldestMs = v[1]
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read the schedule: %w", err)
	}
	return due, oldestMs, nil
}

// dueBeforeScript returns, as id and due-time pairs in no order, a set of
// customers due at or before ARGV[1] in the shard whose bucket index is
// KEYS[1] (bucket keys ARGV[3]..<bucket>) that holds the shard's ARGV[2]
// soonest (ties by id): every customer due before a threshold T, and those
// due at T (at most 2*ARGV[2], else exactly the ARGV[2] soonest). T starts
// at ARGV[1] and is then the ARGV[2]-th soonest due time read so far (a
// max-heap of the ARGV[2] soonest). The buckets are read in the order of
// their bounds, first a few entries each (about ARGV[2] in all) and then,
// from those where that was not all, the rest no later than T, up to
// ARGV[2]; the first pass stops at the first bound past T and the second
// skips a bucket whose last entry read is past T: they hold nothing before
// it.
var dueBeforeScript = redis.NewScript(`
local n = tonumber(ARGV[2])
local bs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES')
local ids, scs, nums, c = {}, {}, {}, 0
local tn = tonumber(ARGV[1])
local hp, hn = {}, 0
-- add takes the entries es (ZRANGEBYSCORE WITHSCORES) no later than T and
-- lowers T; it returns the score of the last.
local function add(es)
  local v
  for j = 1, #es, 2 do
    v = tonumber(es[j + 1])
    if v <= tn then
      c = c + 1
      ids[c], scs[c], nums[c] = es[j], es[j + 1], v
      if hn < n then
        hn = hn + 1
        hp[hn] = v
        local k = hn
        while k > 1 do
          local p = math.floor(k / 2)
          if hp[p] >= hp[k] then break end
          hp[p], hp[k] = hp[k], hp[p]
          k = p
        end
        if hn == n then tn = hp[1] end
      elseif v < hp[1] then
        hp[1] = v
        local k = 1
        while true do
          local m, l, r = k, 2 * k, 2 * k + 1
          if l <= hn and hp[l] > hp[m] then m = l end
          if r <= hn and hp[r] > hp[m] then m = r end
          if m == k then break end
          hp[m], hp[k] = hp[k], hp[m]
          k = m
        end
        tn = hp[1]
      end
    end
  end
  return v
end
local function bucket(i) return ARGV[3] .. bs[i] end
local first = math.min(n, math.floor(2 * n / math.max(1, #bs)) + 2)
local more = {}
for i = 1, #bs, 2 do
  if tonumber(bs[i + 1]) > tn then break end
  local es = redis.call('ZRANGEBYSCORE', bucket(i), '-inf', string.format('%.17g', tn), 'WITHSCORES', 'LIMIT', 0, first)
  local last = add(es)
  if #es == 2 * first then more[#more + 1] = {i, last} end
end
for _, m in ipairs(more) do
  if m[2] <= tn then
    add(redis.call('ZRANGEBYSCORE', bucket(m[1]), '-inf', string.format('%.17g', tn), 'WITHSCORES', 'LIMIT', first, n))
  end
end
local kept = {}
for i = 1, c do
  if nums[i] <= tn then kept[#kept + 1] = i end
end
local out = {}
if #kept > 2 * n then
  -- Many tie at T: keep the n soonest, ties by id.
  local es = {}
  for k, i in ipairs(kept) do es[k] = {nums[i], ids[i], scs[i]} end
  table.sort(es, function(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return x[2] < y[2]
  end)
  for i = 1, n do
    out[2 * i - 1], out[2 * i] = es[i][2], es[i][3]
  end
  return out
end
for k, i in ipairs(kept) do
  out[2 * k - 1], out[2 * k] = ids[i], scs[i]
end
return out
`)

// DueBefore returns the customers due at or before untilMs, soonest first
// (ties by id), at most limit of them, and whether more are due in that
// window: one pipelined round trip of a script per shard, each returning
// a set that holds the shard's limit+1 soonest (it reads the shard's
// buckets in the order of their bounds, and stops where the bounds pass
// the limit+1-th soonest read). A customer whose score, receiving no event, will need publishing
// at some instant is due at or before that instant (see ScheduleEarlier),
// so this lists every customer whose band can change by untilMs; a claimed
// customer is listed at its lease's expiry.
func (s *Redis) DueBefore(ctx context.Context, untilMs int64, limit int) (ds []Due, more bool, err error) {
	if limit <= 0 {
		return nil, false, fmt.Errorf("cannot read the schedule: limit must be positive, got %d", limit)
	}
	err = s.evalEach(ctx, dueBeforeScript, s.cfg.Shards, func(i int) ([]string, []any) {
		return []string{s.DueMinKey(i)}, []any{untilMs, limit + 1, s.dueShardPrefix(i)}
	}, func(i int, cmd *redis.Cmd) error {
		v, err := cmd.StringSlice()
		if err != nil {
			return err
		}
		for j := 0; j+1 < len(v); j += 2 {
			at, err := strconv.ParseInt(v[j+1], 10, 64)
			if err != nil {
				return fmt.Errorf("shard %d: due time %q of %q: %w", i, v[j+1], v[j], err)
			}
			ds = append(ds, Due{ID: v[j], At: at})
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("cannot read the schedule: %w", err)
	}
	// Each shard gave at least its limit+1 soonest: a shard's unread
	// entries come after limit+1 of its own, so the first limit here are
	// the first limit overall.
	slices.SortFunc(ds, func(a, b Due) int {
		if a.At != b.At {
			return cmp.Compare(a.At, b.At)
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(ds) > limit {
		return ds[:limit:limit], true, nil
	}
	return ds, false, nil
}

// Read returns the records of ids in one round trip, without their outboxes
// (Pending stays empty): for readers such as the HTTP API. Missing ids get
// the zero Record.
func (s *Redis) Read(ctx context.Context, ids []string) ([]Record, error) {
	recs, err := s.load(ctx, ids, false, "")
	if err != nil {
		return nil, fmt.Errorf("cannot read records: %w", err)
	}
	return recs, nil
}
