package state_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/healthscore/healthscore/state"
)

// scheduleModel is the schedule as a plain map: customer id to due Unix ms.
type scheduleModel map[string]int64

func (m scheduleModel) dueAt(nowMs int64) []state.Due {
	var ds []state.Due
	for id, at := range m {
		if at <= nowMs {
			ds = append(ds, state.Due{ID: id, At: at})
		}
	}
	slices.SortFunc(ds, func(a, b state.Due) int { return cmp.Or(cmp.Compare(a.At, b.At), strings.Compare(a.ID, b.ID)) })
	return ds
}

// claim is a lease taken by a claim pass, whose customers may be released,
// with the record versions its sweeper read right after claiming.
type claim struct {
	lease    int64
	ids      []string
	versions map[string]uint64
}

// TestScheduleModel runs random ScheduleEarlier, saves with due times (some
// losing their compare-and-set), full claim passes, releases (some lost to
// an event batch that moved the customer earlier, to a save since the
// claim, or to a later claim after the lease ended) and time steps against
// a map model, with
// few buckets per shard so buckets hold several customers. After every step
// the buckets hold exactly the model's due times (so never a later one), every
// scheduled bucket has a bound in the shard's index no higher than its
// earliest due time, and DueStats and DueBefore agree with the model; every
// claim pass takes exactly the customers the model has due.
func TestScheduleModel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := context.Background()
		rdb := newClient()
		var run atomic.Int64
		rapid.Check(t, func(rt *rapid.T) {
			c := cfg
			c.Prefix = cfg.Prefix + "m" + strconv.FormatInt(run.Add(1), 10) + ":"
			c.Shards = rapid.SampledFrom([]int{1, 2, 4}).Draw(rt, "shards")
			c.Buckets = c.Shards * rapid.IntRange(1, 4).Draw(rt, "bucketsPerShard")
			s, err := state.NewRedis(rdb, c)
			if err != nil {
				rt.Fatal(err)
			}
			ids := make([]string, 30)
			for i := range ids {
				ids[i] = fmt.Sprintf("c%02d", i)
			}
			model := scheduleModel{}
			versions := map[string]uint64{} // stored record versions
			var claims []claim
			now := int64(1000)
			for range rapid.IntRange(1, 40).Draw(rt, "steps") {
				switch rapid.IntRange(0, 4).Draw(rt, "op") {
				case 4: // a save with a due time, as an event batch's
					id := rapid.SampledFrom(ids).Draw(rt, "saveID")
					w := state.Write{ID: id, Expected: versions[id], Rec: state.Record{Score: 50, Band: state.BandGreen, Data: []byte("s")}}
					lose := rapid.IntRange(0, 3).Draw(rt, "lose") == 0
					if lose {
						w.Expected += 7 // another writer got there first
					}
					if rapid.IntRange(0, 4).Draw(rt, "hasDue") > 0 {
						w.Due = now + 25*rapid.Int64Range(-2, 16).Draw(rt, "due")
					}
					sess, err := s.Bind(ctx)
					if err != nil {
						rt.Fatal(err)
					}
					applied, err := appliedOf(sess.Save(ctx, []state.Write{w}))
					if err != nil || applied[0] == lose {
						rt.Fatalf("save of %s (lose %v): applied %v, %v", id, lose, applied, err)
					}
					if !lose {
						versions[id]++
					}
					at, ok := model[id]
					switch {
					case w.Due == 0:
					case c.SingleKey: // scheduled before the compare-and-set, earlier only
						if !ok || w.Due < at {
							model[id] = w.Due
						}
					case !lose: // with the record: the entry is for the stored state
						model[id] = w.Due
					}
				case 0: // an event batch
					var ds []state.Due
					for range rapid.IntRange(1, 10).Draw(rt, "n") {
						// Coarse times: many customers share one, so listings cut within ties.
						d := state.Due{ID: rapid.SampledFrom(ids).Draw(rt, "id"), At: now + 25*rapid.Int64Range(-2, 16).Draw(rt, "in")}
						ds = append(ds, d)
						if at, ok := model[d.ID]; !ok || d.At < at {
							model[d.ID] = d.At
						}
					}
					if err := s.ScheduleEarlier(ctx, ds); err != nil {
						rt.Fatal(err)
					}
				case 1: // a full claim pass, as the sweeper's
					lease := now + rapid.Int64Range(1, 300).Draw(rt, "lease")
					limit := rapid.IntRange(1, 7).Draw(rt, "limit")
					want := model.dueAt(now)
					var got []string
					for sh := range s.Shards() {
						for {
							got1, err := s.Claim(ctx, sh, now, lease, limit)
							if err != nil {
								rt.Fatal(err)
							}
							if len(got1) > limit {
								rt.Fatalf("claimed %d, limit %d", len(got1), limit)
							}
							got = append(got, got1...)
							if len(got1) < limit {
								break
							}
						}
					}
					slices.Sort(got)
					wantIDs := make([]string, len(want))
					read := map[string]uint64{}
					for i, d := range want {
						wantIDs[i] = d.ID
						model[d.ID] = lease
						read[d.ID] = versions[d.ID]
					}
					slices.Sort(wantIDs)
					if !slices.Equal(got, wantIDs) {
						rt.Fatalf("a claim pass at %d took %v; due then: %v", now, got, want)
					}
					if len(got) > 0 {
						claims = append(claims, claim{lease, got, read})
					}
				case 2: // a sweeper releases (part of) a claim
					if len(claims) == 0 {
						continue
					}
					i := rapid.IntRange(0, len(claims)-1).Draw(rt, "claim")
					cl := claims[i]
					claims = slices.Delete(claims, i, i+1)
					var ds []state.Released
					for _, id := range cl.ids {
						if !rapid.Bool().Draw(rt, "release") {
							continue // its sweeper died: the lease runs out
						}
						d := state.Released{ID: id, Version: cl.versions[id]}
						if rapid.IntRange(0, 2).Draw(rt, "next") > 0 {
							d.At = now + 25*rapid.Int64Range(1, 20).Draw(rt, "at")
						}
						ds = append(ds, d)
						// Else an event batch, a save since the claim (on a
						// single server) or a later claim won. On Redis
						// Cluster the release applies, and a customer whose
						// record moved on is woken again at now.
						moved := versions[id] != cl.versions[id]
						if model[id] == cl.lease && (c.SingleKey || !moved) {
							if d.At == 0 {
								delete(model, id)
							} else {
								model[id] = d.At
							}
							if at, ok := model[id]; c.SingleKey && moved && (!ok || now < at) {
								model[id] = now
							}
						}
					}
					if err := s.Release(ctx, now, cl.lease, ds); err != nil {
						rt.Fatal(err)
					}
				case 3:
					now += rapid.Int64Range(0, 200).Draw(rt, "step")
				}
				checkSchedule(rt, ctx, rdb, s, model, now)
			}
		})
	})
}

// checkSchedule compares the store with the model: the buckets' contents,
// the bounds of the shards' indexes, DueStats and DueBefore.
func checkSchedule(rt *rapid.T, ctx context.Context, rdb *redis.Client, s *state.Redis, model scheduleModel, now int64) {
	got := scheduleModel{}
	for b := range s.Buckets() {
		zs, err := rdb.ZRangeWithScores(ctx, s.DueKey(b), 0, -1).Result()
		if err != nil {
			rt.Fatal(err)
		}
		for _, z := range zs {
			id := z.Member.(string)
			if s.Bucket(id) != b {
				rt.Fatalf("%s in bucket %d, not %d", id, b, s.Bucket(id))
			}
			got[id] = int64(z.Score)
		}
		if len(zs) == 0 {
			continue
		}
		bound, err := rdb.ZScore(ctx, s.DueMinKey(b%s.Shards()), strconv.Itoa(b)).Result()
		if err != nil || int64(bound) > int64(zs[0].Score) {
			rt.Fatalf("bucket %d: earliest %v, bound in the index %v (%v)", b, zs[0].Score, bound, err)
		}
	}
	if !maps.Equal(got, model) {
		rt.Fatalf("at %d the schedule holds %v, the model %v", now, got, model)
	}
	due := model.dueAt(now)
	n, oldest, err := s.DueStats(ctx, now)
	if err != nil {
		rt.Fatal(err)
	}
	if n != int64(len(due)) || (len(due) == 0 && oldest != 0) || (len(due) > 0 && oldest != due[0].At) {
		rt.Fatalf("DueStats(%d) = %d, oldest %d; model: %v", now, n, oldest, due)
	}
	until := now + rapid.Int64Range(-100, 600).Draw(rt, "until")
	limit := rapid.IntRange(1, 8).Draw(rt, "forecastLimit")
	want := model.dueAt(until)
	wantMore := len(want) > limit
	want = want[:min(limit, len(want))]
	ds, more, err := s.DueBefore(ctx, until, limit)
	if err != nil {
		rt.Fatal(err)
	}
	if !slices.Equal(ds, want) || more != wantMore {
		rt.Fatalf("DueBefore(%d, %d) = %v (more %v), model %v (more %v)", until, limit, ds, more, want, wantMore)
	}
}
