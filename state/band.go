package state

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The band index: sorted sets <prefix>band:red|yellow|green, kept by the
// multi-key save script (moved on band changes only), or after the records
// in single-key mode (index, at every save), and listed by Band re-checked
// against the records.

// index moves the applied writes' customers to their new band, then re-reads
// their records and repeats for any that another writer saved meanwhile, so
// that the last index write for a customer is always for its latest record.
// Unlike the multi-key script it writes the index at every applied save, even
// within a band: the record is saved first, so a crash in between can leave a
// customer missing from its band's index, and this rewrite at its next save is
// what puts it back. Writing only on a band change would need the index's
// state, not the previous record's band (which the crashed save already
// changed), so it would cost a read per save to save a write.
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

// bandPage is how many index entries scanBand reads per call, and so how
// many records Band loads per round trip.
const bandPage = 10000

// scanBand reads a band's sorted set in pages of page entries, in (score,
// member) order, and hands each page's new members to fn. A page starts
// after the last (score, member) read, not at a rank: saves that add or
// remove members during the scan shift ranks, and a rank cursor would then
// skip or repeat members, while this one reads every member present for the
// whole scan, once unless a save raises its score past the cursor. (ZSCAN
// would too, but it is not in the documented ACL rule; ZRANGEBYSCORE is.)
// Members that share the cursor's score are read again and dropped; if a
// whole page shares it, the next call skips that page (LIMIT offset) to
// make progress.
func (s *Redis) scanBand(ctx context.Context, band string, page int64, fn func(ids []string) error) error {
	key := s.BandKey(band)
	var last *redis.Z // nil: nothing read yet
	from, offset := "-inf", int64(0)
	for {
		zs, err := s.c.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: from, Max: "+inf", Offset: offset, Count: page}).Result()
		if err != nil {
			return err
		}
		ids := make([]string, 0, len(zs))
		for _, z := range zs {
			id, _ := z.Member.(string)
			if last == nil || z.Score > last.Score || id > last.Member.(string) {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			if err := fn(ids); err != nil {
				return err
			}
			last = &zs[len(zs)-1]
			from, offset = strconv.FormatFloat(last.Score, 'g', -1, 64), 0
		} else {
			offset += int64(len(zs))
		}
		if int64(len(zs)) < page {
			return nil
		}
	}
}

// Band lists members of a band, lowest score first (ties by id), at most
// limit. The index does not hold current scores (in the default mode a
// member's score is the one it entered the band with, in single-key mode
// the one of its last indexed save), so Band reads every candidate of the
// band: it scans the band's sorted set (scanBand), loads the candidates'
// records a page at a time, keeps those whose record is still in the band
// and, of these, the limit lowest by the record's score. Its cost grows
// with the band's size, not with limit; its memory with limit.
func (s *Redis) Band(ctx context.Context, band string, limit int) ([]Member, error) {
	return s.BandWhere(ctx, band, limit, nil)
}

// BandWhere is Band of the members for which keep (nil: all) returns true,
// in the same single read of the band: for listings filtered on the
// record's data, such as by segment.
func (s *Redis) BandWhere(ctx context.Context, band string, limit int, keep func(Member) bool) ([]Member, error) {
	return s.bandWhere(ctx, band, limit, keep, bandPage)
}

// bandWhere is BandWhere with page entries read per call.
func (s *Redis) bandWhere(ctx context.Context, band string, limit int, keep func(Member) bool, page int64) ([]Member, error) {
	if !slices.Contains(Bands, band) {
		return nil, fmt.Errorf("cannot list band %q: unknown band", band)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("cannot list band %q: limit must be positive, got %d", band, limit)
	}
	best := &lowest{kept: map[string]bool{}}
	err := s.scanBand(ctx, band, page, func(ids []string) error {
		recs, err := s.load(ctx, ids, false, "")
		if err != nil {
			return err
		}
		for i, r := range recs {
			if m := (Member{ID: ids[i], Score: r.Score, Data: r.Data}); r.Band == band && (keep == nil || keep(m)) {
				best.offer(m, limit)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list band %q: %w", band, err)
	}
	out := best.ms
	slices.SortFunc(out, compareMembers)
	return out, nil
}

// compareMembers orders members by score, then id.
func compareMembers(a, b Member) int {
	return cmp.Or(cmp.Compare(a.Score, b.Score), strings.Compare(a.ID, b.ID))
}

// lowest keeps the lowest members offered, at most a limit: a max-heap on
// compareMembers (the highest kept on top, the one to drop) and the ids it
// holds. A scan can return a member twice (a save moved it to a higher entry
// score during the scan); offer keeps one copy. A copy dropped earlier can
// come back only with a lower score than every one kept (its record changed
// between the two loads), and then it belongs.
type lowest struct {
	ms   []Member
	kept map[string]bool
}

func (h *lowest) Len() int           { return len(h.ms) }
func (h *lowest) Less(i, j int) bool { return compareMembers(h.ms[i], h.ms[j]) > 0 }
func (h *lowest) Swap(i, j int)      { h.ms[i], h.ms[j] = h.ms[j], h.ms[i] }
func (h *lowest) Push(x any)         { h.ms = append(h.ms, x.(Member)) }
func (h *lowest) Pop() any {
	m := h.ms[len(h.ms)-1]
	h.ms = h.ms[:len(h.ms)-1]
	return m
}

func (h *lowest) offer(m Member, limit int) {
	switch {
	case h.kept[m.ID]:
	case len(h.ms) < limit:
		heap.Push(h, m)
		h.kept[m.ID] = true
	case compareMembers(m, h.ms[0]) < 0:
		delete(h.kept, h.ms[0].ID)
		h.ms[0] = m
		heap.Fix(h, 0)
		h.kept[m.ID] = true
	}
}

// BandCounts returns the number of entries in each band's index (ZCARD, one
// pipelined round trip). In the default mode the save script keeps the
// index exact; in single-key mode it is derived and can briefly hold a stale
// entry after a crash between the state write and the index update. Either
// way the counts are for dashboards, not for decisions.
func (s *Redis) BandCounts(ctx context.Context) (map[string]int64, error) {
	pipe := s.c.Pipeline()
	cmds := make([]interface{ Val() int64 }, len(Bands))
	for i, b := range Bands {
		cmds[i] = pipe.ZCard(ctx, s.BandKey(b))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("cannot count band members: %w", err)
	}
	out := make(map[string]int64, len(Bands))
	for i, b := range Bands {
		out[b] = cmds[i].Val()
	}
	return out, nil
}

// BandIDs returns every customer id in a band's index, in the index's
// order (its scores are entry scores, see Band), each once (scanBand, pages
// of 10,000). Use it for whole-index passes such as rescoring after a model
// reload; the ids are not re-checked against the records.
func (s *Redis) BandIDs(ctx context.Context, band string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	err := s.scanBand(ctx, band, bandPage, func(ids []string) error {
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list band %q: %w", band, err)
	}
	return out, nil
}
