package state

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The band index: per band and bucket a small hash <prefix>band:<band>:<bucket>
// (BandKey; field customer id, value ""), kept by the multi-key save
// script with exact counts in <prefix>bandcount (moved on band changes
// only), or after the records in single-key mode (index, at every save),
// and listed by Band re-checked against the records.

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
	}
	var todo []entry
	for i, w := range ws {
		if applied[i] && !w.SkipIndex {
			todo = append(todo, entry{w.ID, w.Expected + 1, w.Rec.Band})
		}
	}
	for pass := 0; len(todo) > 0; pass++ {
		if pass == s.cfg.IndexPasses {
			return fmt.Errorf("%d customers still changing after %d passes", len(todo), pass)
		}
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, e := range todo {
				bucket := s.Bucket(e.id)
				for _, b := range Bands {
					if b == e.band {
						p.HSet(ctx, s.BandKey(b, bucket), e.id, "")
					} else {
						p.HDel(ctx, s.BandKey(b, bucket), e.id)
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
				next = append(next, entry{e.id, r.Version, r.Band})
			}
		}
		todo = next
	}
	return nil
}

// bandPage is how many candidates scanBand hands on per call, and so how
// many records Band loads per round trip (about; a call can hold up to one
// round trip's entries more).
const bandPage = 10000

// bandKeysPerTrip is how many index keys scanBand reads per round trip.
const bandKeysPerTrip = 1024

// scanBand reads a band's index, every bucket's hash (HKEYS, bandKeysPerTrip
// keys per pipelined round trip; a missing key is an empty bucket), and
// hands the ids it reads to fn, in batches of at least page ids (the last
// one smaller). A customer's entries all live in its one bucket, and each
// bucket is read once, by one atomic HKEYS: so every id is handed on at
// most once, and an id present in the index for the whole scan exactly
// once, whatever saves move customers meanwhile.
func (s *Redis) scanBand(ctx context.Context, band string, page int, fn func(ids []string) error) error {
	n := s.Buckets()
	var ids []string
	for start := 0; start < n; start += bandKeysPerTrip {
		cmds := make([]*redis.StringSliceCmd, min(bandKeysPerTrip, n-start))
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range cmds {
				cmds[i] = p.HKeys(ctx, s.BandKey(band, start+i))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range cmds {
			ids = append(ids, c.Val()...)
		}
		if len(ids) >= page {
			if err := fn(ids); err != nil {
				return err
			}
			ids = nil
		}
	}
	if len(ids) > 0 {
		return fn(ids)
	}
	return nil
}

// Band lists members of a band, lowest score first (ties by id), at most
// limit. The index holds no scores, so Band reads every candidate of the
// band: it reads the band's hash in every bucket (scanBand), loads the
// candidates' records a page at a time, keeps those whose record is still
// in the band and, of these, the limit lowest by the record's score. Its
// cost grows with the band's size and the number of buckets, not with
// limit; its memory with limit and a page of candidates.
func (s *Redis) Band(ctx context.Context, band string, limit int) ([]Member, error) {
	return s.BandWhere(ctx, band, limit, nil)
}

// BandWhere is Band of the members for which keep (nil: all) returns true,
// in the same single read of the band: for listings filtered on the
// record's data, such as by segment.
func (s *Redis) BandWhere(ctx context.Context, band string, limit int, keep func(Member) bool) ([]Member, error) {
	return s.bandWhere(ctx, band, limit, keep, bandPage)
}

// bandWhere is BandWhere with records loaded page candidates at a time.
func (s *Redis) bandWhere(ctx context.Context, band string, limit int, keep func(Member) bool, page int) ([]Member, error) {
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
// holds. scanBand hands each id on once per listing; should a member be
// offered twice anyway, offer keeps one copy. A copy dropped earlier can
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

// BandCounts returns the number of entries in each band's index. In the
// default mode it reads BandCountKey (one HMGET), which the save script
// keeps exact with the index, atomically. In single-key mode no key could
// be written atomically with the index (another slot), so it sums the
// sizes of every bucket's hash (HLEN, bandKeysPerTrip keys per round trip:
// 3 × Buckets / 1024 round trips; at the default 16384 buckets about
// 0.1-0.2 s and 40 ms of Redis CPU per call on the 2-core test machine,
// against 0.1 ms for the HMGET), exact for the index at the time of each
// read; that index is derived and can briefly hold a stale entry after a
// crash between the state write and the index update. Because that sum
// grows with the buckets and every instance's metrics scrape asks for it,
// single-key mode serves a sum up to Config.BandCountsMaxAge old. Either way the
// counts are for dashboards, not for decisions.
func (s *Redis) BandCounts(ctx context.Context) (map[string]int64, error) {
	out := make(map[string]int64, len(Bands))
	if !s.cfg.SingleKey {
		vals, err := s.c.HMGet(ctx, s.BandCountKey(), Bands...).Result()
		if err != nil {
			return nil, fmt.Errorf("cannot count band members: %w", err)
		}
		for i, b := range Bands {
			v, _ := vals[i].(string) // nil: none yet
			if v == "" {
				out[b] = 0
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("cannot count band members: %s field %s holds %q", s.BandCountKey(), b, v)
			}
			out[b] = n
		}
		return out, nil
	}
	s.bandCounts.mu.Lock()
	defer s.bandCounts.mu.Unlock()
	if c := &s.bandCounts; c.counts != nil && time.Since(c.at) < s.cfg.BandCountsMaxAge {
		return maps.Clone(c.counts), nil
	}
	out, err := s.sumBandCounts(ctx)
	if err != nil {
		return nil, err
	}
	s.bandCounts.counts, s.bandCounts.at = out, time.Now()
	return maps.Clone(out), nil
}

// DefaultBandCountsMaxAge is the default of Config.BandCountsMaxAge.
const DefaultBandCountsMaxAge = time.Minute

// bandCountCache holds single-key mode's last summed band counts.
type bandCountCache struct {
	mu     sync.Mutex
	counts map[string]int64
	at     time.Time
}

// sumBandCounts sums HLEN over every band's bucket hashes.
func (s *Redis) sumBandCounts(ctx context.Context) (map[string]int64, error) {
	out := make(map[string]int64, len(Bands))
	for _, b := range Bands {
		out[b] = 0
	}
	keys := make([]string, 0, len(Bands)*s.Buckets())
	for _, b := range Bands {
		for i := range s.Buckets() {
			keys = append(keys, s.BandKey(b, i))
		}
	}
	for start := 0; start < len(keys); start += bandKeysPerTrip {
		batch := keys[start:min(start+bandKeysPerTrip, len(keys))]
		cmds := make([]*redis.IntCmd, len(batch))
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range batch {
				cmds[i] = p.HLen(ctx, k)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cannot count band members: %w", err)
		}
		for i, c := range cmds {
			out[Bands[(start+i)/s.Buckets()]] += c.Val()
		}
	}
	return out, nil
}

// BandIDs returns every customer id in a band's index, each once, in
// bucket order (scanBand). Use it for whole-index passes such as rescoring
// after a model reload; the ids are not re-checked against the records.
func (s *Redis) BandIDs(ctx context.Context, band string) ([]string, error) {
	var out []string
	err := s.scanBand(ctx, band, bandPage, func(ids []string) error {
		out = append(out, ids...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list band %q: %w", band, err)
	}
	return out, nil
}
