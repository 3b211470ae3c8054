package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/redis/go-redis/v9"
)

// Score history: per customer, under HistoryKey, one point per UTC day and
// the last MaxChanges band changes and alerts. It is written only by the
// save scripts, in the same script call as the record's compare-and-set and
// only when it applies, so a replayed or stale write appends nothing, and a
// day is never appended twice.
//
// Value layout: the day of the first point (UTC days since 1970-01-01 plus
// dayBias, uint32 big-endian), the number of points (uint16), then one
// 4-byte point per day from that day on, without gaps: the day's last score
// in hundredths (uint16 big-endian, 0–10000), then its lowest score in
// hundredths (14 bits) with the band of its last score in the top two bits
// (1 red, 2 yellow, 3 green); a day with no score is 0xFFFF 0xFFFF. Then the
// changes, newest first, each a 2-byte big-endian length and its bytes
// (opaque here: the consumer stores scorer.AppendChange encodings), at most
// MaxChanges. The script keeps at most HistoryDays points, trimming the
// oldest once they exceed it by an eighth (amortised), and puts a save's
// changes before the stored ones, cutting the rest.
//
// One plain string per customer, read and written with GET and SET (in the
// save scripts), so the service's Redis ACL rule needs no other command: a
// save that closes a day or records a change rewrites it (a few hundred
// bytes), which for days happens at most once a day per customer.

// MaxHistoryDays bounds Config.HistoryDays (ten years).
const MaxHistoryDays = 3660

// MaxChanges is how many band changes and alerts are kept per customer.
const MaxChanges = 10

// dayBias makes every day from the year 1678 on a positive uint32.
const dayBias = 1 << 20

// maxStoredDays bounds the days of one history value: the window and the
// eighth over it before a trim, with room to spare.
const maxStoredDays = 2 * MaxHistoryDays

// pointLen is the size of one stored day.
const pointLen = 4

// noPoint is the stored form of a day with no score.
const noPoint = 0xFFFF

// Day is one stored day of a customer's score history.
type Day struct {
	Day   int64 // UTC days since 1970-01-01
	Score float64
	Min   float64
	Band  string
}

// History is what is stored of a customer's history.
type History struct {
	Days    []Day    // oldest first; days with no score are left out
	Changes [][]byte // newest first, at most MaxChanges
}

// HistoryKey returns the Redis key of a customer's score history (daily
// points and last changes): a key per customer in both modes, with the
// hash tag of the customer's own record key in single-key mode
// (RecordKey).
func (s *Redis) HistoryKey(id string) string { return s.cfg.Prefix + "h:{" + id + "}" }

// HistoryDays is the configured window (0: no history is written).
func (s *Redis) HistoryDays() int { return s.cfg.HistoryDays }

// encodeDays encodes consecutive closed days (oldest first, increasing; a
// gap is stored as days with no score) as the script appends them: the
// header, then the points.
func encodeDays(days []Day) ([]byte, error) {
	if len(days) == 0 {
		return nil, nil
	}
	first, last := days[0].Day, days[len(days)-1].Day
	if first+dayBias < 0 || last+dayBias > math.MaxUint32 || last < first || last-first >= maxStoredDays {
		return nil, fmt.Errorf("history days %d to %d are out of range", first, last)
	}
	buf := make([]byte, 4, 4+pointLen*(last-first+1))
	binary.BigEndian.PutUint32(buf, uint32(first+dayBias))
	next := first
	for _, d := range days {
		if d.Day < next {
			return nil, fmt.Errorf("history day %d is not after day %d", d.Day, next-1)
		}
		for ; next < d.Day; next++ {
			buf = binary.BigEndian.AppendUint16(buf, noPoint)
			buf = binary.BigEndian.AppendUint16(buf, noPoint)
		}
		bb, err := bandByte(d.Band)
		if err != nil || bb == 0 {
			return nil, fmt.Errorf("history day %d: band %q is not red, yellow or green", d.Day, d.Band)
		}
		if !(d.Score >= 0 && d.Score <= 100 && d.Min >= 0 && d.Min <= 100) {
			return nil, fmt.Errorf("history day %d: score %v or min %v is outside 0–100", d.Day, d.Score, d.Min)
		}
		buf = binary.BigEndian.AppendUint16(buf, uint16(math.Round(d.Score*100)))
		buf = binary.BigEndian.AppendUint16(buf, uint16(math.Round(d.Min*100))|uint16(bb)<<14)
		next++
	}
	return buf, nil
}

// decodeHistory decodes a stored history value; a malformed one is an
// error.
func decodeHistory(b []byte) (History, error) {
	if len(b) == 0 {
		return History{}, nil
	}
	if len(b) < 6 {
		return History{}, fmt.Errorf("%w: history of %d bytes", errCorrupt, len(b))
	}
	first, n := int64(binary.BigEndian.Uint32(b))-dayBias, int64(binary.BigEndian.Uint16(b[4:]))
	if n > maxStoredDays || first+n-1+dayBias > math.MaxUint32 || int64(len(b)-6) < n*pointLen {
		return History{}, fmt.Errorf("%w: history of %d days from day %d in %d bytes", errCorrupt, n, first, len(b))
	}
	h := History{Days: make([]Day, 0, n)}
	for i := int64(0); i < n; i++ {
		p := b[6+i*pointLen:]
		score, low := binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
		if score == noPoint {
			continue
		}
		band, _ := byteBand(byte(low >> 14))
		if score > 10000 || low&0x3fff > 10000 || band == BandNone {
			return History{}, fmt.Errorf("%w: history point of day %d", errCorrupt, first+i)
		}
		h.Days = append(h.Days, Day{Day: first + i, Score: float64(score) / 100, Min: float64(low&0x3fff) / 100, Band: band})
	}
	var err error
	if h.Changes, err = unframeChanges(b[6+n*pointLen:]); err != nil {
		return History{}, err
	}
	return h, nil
}

// historyLua defines history(key, points, changes, window), which both
// save scripts call for an applied write (see the layout above): it appends
// the encoded days in points (a 4-byte first day, then the points) after
// the stored ones, skipping days already stored, padding a gap with
// no-score days, starting afresh when the gap is wider than the window, and
// trimming to the window's latest days once 1/8 over it; and it puts the
// framed changes (newest first) before the stored ones, keeping MaxChanges.
var historyLua = `
local function u32(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
local function history(key, pts, entries, window)
  if pts == '' and entries == '' then return end
  window = tonumber(window)
  local cur = redis.call('GET', key)
  local f, days, chs = 0, '', ''
  if cur and #cur >= 6 then
    local a, b = string.byte(cur, 5, 6)
    local n = a * 256 + b
    f, days, chs = u32(cur, 1), string.sub(cur, 7, 6 + 4 * n), string.sub(cur, 7 + 4 * n)
  end
  local changed = false
  if pts ~= '' then
    local nf, n = u32(pts, 1), #days / 4
    local last = f + n - 1
    if n == 0 or nf > last + window then
      f, days, changed = nf, string.sub(pts, 5), true
    elseif nf + (#pts - 4) / 4 - 1 > last then
      if nf <= last then
        days = days .. string.sub(pts, 5 + 4 * (last + 1 - nf))
      else
        days = days .. string.rep(string.char(255), 4 * (nf - last - 1)) .. string.sub(pts, 5)
      end
      n, changed = #days / 4, true
      if n > window + math.floor(window / 8) then
        days, f = string.sub(days, #days - 4 * window + 1), f + n - window
      end
    end
  end
  if entries ~= '' then
    local all = entries .. chs
    local pos, k = 1, 0
    while pos + 1 <= #all and k < ` + fmt.Sprint(MaxChanges) + ` do
      local a, b = string.byte(all, pos, pos + 1)
      pos, k = pos + 2 + a * 256 + b, k + 1
    end
    chs, changed = string.sub(all, 1, pos - 1), true
  end
  if not changed then return end
  local n = #days / 4
  redis.call('SET', key, string.char(math.floor(f / 16777216) % 256, math.floor(f / 65536) % 256, math.floor(f / 256) % 256, f % 256,
    math.floor(n / 256), n % 256) .. days .. chs)
end
`

// frameChanges is the changes argument of the save scripts: the entries
// newest first, each a 2-byte big-endian length and its bytes (the stored
// value has the same layout).
func frameChanges(cs [][]byte) ([]byte, error) {
	var b []byte
	for i := len(cs) - 1; i >= 0; i-- {
		if len(cs[i]) == 0 || len(cs[i]) > math.MaxUint16 {
			return nil, fmt.Errorf("a change entry has %d bytes; 1 to %d are accepted", len(cs[i]), math.MaxUint16)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(cs[i])))
		b = append(b, cs[i]...)
	}
	return b, nil
}

// unframeChanges splits a stored changes value.
func unframeChanges(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 || len(b)-2 < int(binary.BigEndian.Uint16(b)) || binary.BigEndian.Uint16(b) == 0 {
			return nil, fmt.Errorf("%w: changes cut short or empty", errCorrupt)
		}
		n := 2 + int(binary.BigEndian.Uint16(b))
		out = append(out, b[2:n:n])
		b = b[n:]
	}
	return out, nil
}

// historyArgs are a write's history arguments for the save scripts ("" when
// the store keeps no history or the write has none).
func (s *Redis) historyArgs(w *Write) (days, changes []byte, err error) {
	if s.cfg.HistoryDays == 0 {
		return nil, nil, nil
	}
	if days, err = encodeDays(w.Days); err != nil {
		return nil, nil, err
	}
	if changes, err = frameChanges(w.Changes); err != nil {
		return nil, nil, err
	}
	return days, changes, nil
}

// historyArgsAll is historyArgs of every write.
func (s *Redis) historyArgsAll(ws []Write) ([][]byte, [][]byte, error) {
	days, changes := make([][]byte, len(ws)), make([][]byte, len(ws))
	for i := range ws {
		var err error
		if days[i], changes[i], err = s.historyArgs(&ws[i]); err != nil {
			return nil, nil, fmt.Errorf("cannot save history of %q: %w", ws[i].ID, err)
		}
	}
	return days, changes, nil
}

// GetWithHistory fetches a customer's record (without its outbox), its
// stored days and its last changes, in one round trip (the record's read,
// readRecord, and a GET of the history). A missing customer gets the zero
// Record and an empty History.
func (s *Redis) GetWithHistory(ctx context.Context, id string) (Record, History, error) {
	var rec, hist *redis.StringCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		rec = s.readRecord(ctx, p, id)
		hist = p.Get(ctx, s.HistoryKey(id))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Record{}, History{}, fmt.Errorf("cannot read history of %q: %w", id, err)
	}
	var r Record
	switch b, err := rec.Bytes(); {
	case errors.Is(err, redis.Nil):
		return Record{}, History{}, nil
	case err != nil:
		return Record{}, History{}, fmt.Errorf("cannot read record of %q: %w", id, err)
	default:
		if r, _, err = s.decode(ctx, b, ""); err != nil {
			return Record{}, History{}, fmt.Errorf("cannot decode record of %q: %w", id, err)
		}
	}
	h, err := historyOf(hist)
	if err != nil {
		return Record{}, History{}, fmt.Errorf("cannot read history of %q: %w", id, err)
	}
	return r, h, nil
}

func historyOf(cmd *redis.StringCmd) (History, error) {
	b, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return History{}, nil
	}
	if err != nil {
		return History{}, err
	}
	return decodeHistory(b)
}

// Histories fetches the stored days (not the changes) of ids, in one round
// trip.
func (s *Redis) Histories(ctx context.Context, ids []string) ([]History, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.HistoryKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("cannot read histories: %w", err)
	}
	hs := make([]History, len(ids))
	for i, cmd := range cmds {
		if hs[i], err = historyOf(cmd); err != nil {
			return nil, fmt.Errorf("cannot read history of %q: %w", ids[i], err)
		}
		hs[i].Changes = nil
	}
	return hs, nil
}
