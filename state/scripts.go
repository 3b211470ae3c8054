package state

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts of the writes, with the codec's byte positions taken
// from codec.go (luaCodec), and evalEach, which runs a script per chunk or
// per customer in one pipeline.

// luaCodec writes the record layout's byte positions (codec.go) into the
// save scripts, 1-based as Lua's string.sub and string.byte count:
// $FORMAT_POS the format byte, $FORMAT_OUTBOX the format that says an
// outbox is stored under its own key, $FORMAT_CALL_OUTBOX the one that says
// it is a field of a save call's outbox hash, $FORMAT_CALL_RANGE the one
// that says it is a range of a save call's outbox string, $CALL_POS the
// byte that starts the call's name in those two (its length, one byte in
// format 4), $OUTBOX_HEADER the size of an outbox string's count
// (outboxHeaderLen), $VERSION_FIRST..$VERSION_LAST
// the version ($VERSION_LEN bytes), $BAND_POS the band, $BAND_NAMES the
// bands' names (luaBandNames).
var luaCodec = strings.NewReplacer(
	"$FORMAT_POS", strconv.Itoa(formatOffset+1),
	"$FORMAT_OUTBOX", strconv.Itoa(int(formatV2)),
	"$FORMAT_CALL_OUTBOX", strconv.Itoa(int(formatV3)),
	"$FORMAT_CALL_RANGE", strconv.Itoa(int(formatV4)),
	"$CALL_POS", strconv.Itoa(headerLen+1),
	"$OUTBOX_HEADER", strconv.Itoa(outboxHeaderLen),
	"$VERSION_FIRST", strconv.Itoa(versionOffset+1),
	"$VERSION_LAST", strconv.Itoa(versionOffset+versionLen),
	"$VERSION_LEN", strconv.Itoa(versionLen),
	"$BAND_POS", strconv.Itoa(bandOffset+1),
	"$BAND_NAMES", luaBandNames(),
)

// luaBandNames is a Lua list of the band names, in the order of their
// bytes in the record (Bands: byte 1 is Bands[0]).
func luaBandNames() string {
	names := make([]string, len(Bands))
	for i, b := range Bands {
		names[i] = "'" + b + "'"
	}
	return strings.Join(names, ", ")
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
var saveLua = checkServerLua + historyLua + luaCodec.Replace(`
local cur = redis.call('GET', KEYS[1])
if cur then
  if string.sub(cur, $VERSION_FIRST, $VERSION_LAST) ~= ARGV[2] then return 0 end
elseif ARGV[2] ~= string.rep(string.char(0), $VERSION_LEN) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
if cur and string.byte(cur, $FORMAT_POS) == $FORMAT_OUTBOX then redis.call('DEL', KEYS[2]) end
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4]) end
history(KEYS[4], ARGV[5], ARGV[6], ARGV[7])
return 1
`)

var saveScript = redis.NewScript(saveLua)

// batchSaveScript is the multi-key Save (see Config.SingleKey). ARGV[1] is
// the run_id the writer expects the server to have ("": do not check); on
// another server it writes nothing and fails with a RESTARTED error. KEYS[1]
// is the band count hash (BandCountKey); ARGV[2] is the history window in
// days; ARGV[3] is this call's outbox string key (CallOutboxKey, a key
// never written before) and ARGV[6] its value as layOutboxes built it;
// ARGV[4] starts the band index keys (bandPrefix: the key of band b in
// bucket n is ARGV[4] .. b .. ':' .. n, see BandKey); ARGV[5] starts the
// outbox call keys (CallOutboxKey of ""); ARGV[7] starts the schedule keys
// (duePrefix: the bucket key of bucket n in shard h is
// ARGV[7] .. h .. '}:' .. n, see DueKey, and the shard's bound index ends
// in '}:min', see DueMinKey); ARGV[8] names acknowledged save calls whose
// outbox strings it deletes first (separated by spaces; see acked.go);
// KEYS[2..] are the record hashes (buckets,
// RecordKey) of the writes, one per write, the same key for writes in the
// same bucket, and each has eleven more ARGV:
// the expected version (8 bytes, as in saveScript), the new value, the customer id (its
// field in the record hash), its bucket (Bucket) as a decimal string, "1"
// if the new record names an outbox in ARGV[6] (else ""), the outbox of the
// expected version ("": known to have none, see Write.NoPrevOutbox; else a
// key to DEL if the stored record is format 2, a call's hash to HDEL the
// customer from if it is format 3; for format 4 the stored record names
// its call), then the history days, the history changes, the history key
// ("" when both are empty), the customer's next due time (Write.Due,
// Unix ms without leading zeros; "" for none) and its schedule shard
// (Shard), both decimal strings the script only concatenates and compares
// (by length, then bytes): converting them to Lua numbers and back, for
// key names and due times, cost about 1 µs of Redis per write
// (BenchmarkSaveScript: 7.0 against 6.0 µs). Each write is a
// compare-and-set with its history
// as in saveScript, on the customer's field of its bucket (HGET,
// HSET; the outbox, history and band index keys are not declared: this
// script runs on single servers only); an applied write that changes the
// customer's band (or gives it its first) also moves it in the band index,
// so record and index change together: an HDEL from the old band's hash of
// its bucket and an HSET into the new one's; what these changed (their
// replies: 1 entry removed, 1 added) is summed per band and added to that
// band's field of KEYS[1] at the end, one HINCRBY per band that changed (so
// the counts are the index's sizes, exactly). A write within the band
// leaves the index alone. An applied write with a due time sets the
// customer's schedule entry to it (a plain ZADD: the new record's due time
// replaces whatever the entry held, a sweeper's lease included, so the
// sweeper's release, which checks the record's version, leaves it), and
// the bucket's bound is lowered to the least due time set in it (one
// ZADD LT per shard at the end).
//
// Outboxes: a call's outbox string starts with the number of records that
// name it (outboxHeaderLen digits). The script stores ARGV[6] only if an
// applied write names it, with that count (a lost compare-and-set leaves
// nothing behind, and its bytes in the string are never read); an applied
// write that replaces a format-4 record of another call lowers that call's
// count, and the last one deletes the string, so the outboxes of a writer
// that died before its clear go once every customer moved on (a clear
// deletes the string at once). Returns one 1 (applied) or 0 (conflict) per
// write, then the number of replicas connected to the server right after
// the writes (connected_slaves of INFO replication; -1 when ARGV[1] is
// empty: an unbound writer, which waits for no replica it could name), so
// that a writer waiting for replicas before it publishes (WaitReplicas)
// needs no round trip to learn there are none.
var batchSaveLua = checkServerLua + historyLua + luaCodec.Replace(`
local zero = string.rep(string.char(0), $VERSION_LEN)
local bands = {$BAND_NAMES}
local counts = {0, 0, 0} -- per band byte, the index entries this call added less those it removed
local out = {}
local live = 0 -- applied records that name this call's outbox string
local window = tonumber(ARGV[2])
local bounds = {} -- schedule shard -> bucket -> least due time set (decimal strings)
local mine = {} -- customer id -> its last applied write names this call's string
for call in string.gmatch(ARGV[8], '%S+') do redis.call('DEL', ARGV[5] .. call) end -- acknowledged
-- unref lowers the count of the call string a format-4 record cur names.
local function unref(cur)
  local n = string.byte(cur, $CALL_POS)
  local k = ARGV[5] .. string.sub(cur, $CALL_POS + 1, $CALL_POS + n)
  if k == ARGV[3] then return end -- this call's own: counted in mine
  local c = tonumber(redis.call('GETRANGE', k, 0, $OUTBOX_HEADER - 1))
  if not c then return end -- cleared
  if c <= 1 then redis.call('DEL', k) else redis.call('SETRANGE', k, 0, string.format('%0$OUTBOX_HEADERd', c - 1)) end
end
for i = 2, #KEYS do
  local j = 8 + (i - 2) * 11
  local id = ARGV[j+3]
  local cur = redis.call('HGET', KEYS[i], id)
  local ok
  if cur then ok = string.sub(cur, $VERSION_FIRST, $VERSION_LAST) == ARGV[j+1] else ok = ARGV[j+1] == zero end
  if ok then
    local val = ARGV[j+2]
    redis.call('HSET', KEYS[i], id, val)
    if ARGV[j+6] ~= '' and cur then
      local f = string.byte(cur, $FORMAT_POS)
      if f == $FORMAT_OUTBOX then redis.call('DEL', ARGV[j+6])
      elseif f == $FORMAT_CALL_OUTBOX then redis.call('HDEL', ARGV[j+6], id)
      elseif f == $FORMAT_CALL_RANGE then unref(cur) end
    end
    if mine[id] then live = live - 1 end
    mine[id] = ARGV[j+5] ~= ''
    if mine[id] then live = live + 1 end
    if ARGV[j+9] ~= '' then history(ARGV[j+9], ARGV[j+7], ARGV[j+8], window) end
    if ARGV[j+10] ~= '' then
      -- The record's due time replaces the schedule entry (a claim's
      -- lease included), and lowers the bucket's bound at the end.
      local sh, b, d = ARGV[j+11], ARGV[j+4], ARGV[j+10]
      redis.call('ZADD', ARGV[7] .. sh .. '}:' .. b, d, id)
      local t = bounds[sh]
      if not t then t = {}; bounds[sh] = t end
      local low = t[b]
      if not low or #d < #low or (#d == #low and d < low) then t[b] = d end
    end
    -- The index moves only when the band does (or the customer had
    -- none); the counts follow what HDEL and HSET changed.
    local nb = string.byte(val, $BAND_POS)
    local ob = 0
    if cur then ob = string.byte(cur, $BAND_POS) end
    if ob ~= nb then
      if bands[ob] then counts[ob] = counts[ob] - redis.call('HDEL', ARGV[4] .. bands[ob] .. ':' .. ARGV[j+4], id) end
      if bands[nb] then counts[nb] = counts[nb] + redis.call('HSET', ARGV[4] .. bands[nb] .. ':' .. ARGV[j+4], id, '') end
    end
    out[#out+1] = 1
  else
    out[#out+1] = 0
  end
end
if live > 0 then
  redis.call('SET', ARGV[3], ARGV[6])
  redis.call('SETRANGE', ARGV[3], 0, string.format('%0$OUTBOX_HEADERd', live))
end
for b, d in ipairs(counts) do
  if d ~= 0 then redis.call('HINCRBY', KEYS[1], bands[b], d) end
end
for sh, t in pairs(bounds) do
  local zs = {}
  for b, d in pairs(t) do
    zs[#zs+1] = d
    zs[#zs+1] = b
  end
  redis.call('ZADD', ARGV[7] .. sh .. '}:min', 'LT', unpack(zs))
end
local replicas = -1
if ARGV[1] ~= '' then
  replicas = tonumber(string.match(redis.call('INFO', 'replication'), 'connected_slaves:(%d+)')) or -1
end
out[#out+1] = replicas
return out
`)

var batchSaveScript = redis.NewScript(batchSaveLua)

// clearScript deletes KEYS, on the server whose run_id is ARGV[1] only
// ("": any), like batchSaveScript.
var clearScript = redis.NewScript(checkServerLua + `
return redis.call('DEL', unpack(KEYS))
`)

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
