package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// lag returns how many records of topic the group has not committed.
func lag(ctx context.Context, adm *kadm.Client, group, topic string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	if err := ends.Error(); err != nil {
		return 0, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	var behind int64
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		switch {
		case !ok || c.Err != nil:
			behind += o.Offset
		case c.At < o.Offset:
			behind += o.Offset - c.At
		}
	})
	return behind, nil
}

// committedRecords returns the sum over topic's partitions of group's
// committed offsets: the records it committed, as the topics of a run
// start at offset 0.
func committedRecords(ctx context.Context, adm *kadm.Client, group, topic string) (int64, error) {
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("cannot fetch the committed offsets of %s: %w", group, err)
	}
	var n int64
	for _, o := range offs[topic] {
		if o.Err == nil && o.At > 0 {
			n += o.At
		}
	}
	return n, nil
}

// readTopic calls fn for every record of topic from the start to the end
// offsets of when it was called.
func readTopic(ctx context.Context, brokers []string, topic string, fn func(*kgo.Record)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(32<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("cannot list end offsets of %s: %w", topic, err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	if len(left) == 0 {
		return nil
	}
	cl.AddConsumeTopics(topic)
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cannot read %s: %w", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			fn(r)
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return nil
}

// Result is what the checks found.
type Result struct {
	Customers        int // expected customers (with at least one applied event)
	Stored           int // customer records in Redis
	Applied          int // Σ events in the stored states
	Lost             int // events expected but not in the states
	AppliedTwice     int // events in the states beyond those expected
	LostCustomers    int // customers whose state has fewer events
	TwiceCustomers   int // customers whose state has more events
	ScoreMismatches  int // |stream − offline| > 1e-9 relative
	MaxRelErr        float64
	OffsetMismatches int // per-partition offsets in the state ≠ highest sent
	PendingLeft      int // outboxes not cleared
	OrphanOutboxes   int // outbox keys no record points to (a leak)
	Unexpected       int // records of customers nothing was sent for
	Examples         []string

	Alerts          int // de-duplicated alert events
	AlertCopies     int // alert records (with repeats)
	Lows, Recovered int
	Flapping        int // customers with ≥ 2 transitions
	AltViolations   int // customers whose alerts do not alternate low/recovered
	MissingAlerts   int // customers whose last alert disagrees with the final band
	RedAtEnd        int

	HistoryDays       int // customers with daily history points
	HistoryViolations int // customers whose history's changes do not alternate or disagree with the final band

	DLQ        map[string]int // dead letters by reason, unique by source offset
	DLQCopies  int            // dead-letter records with repeats
	DLQBadMeta int            // dead letters without source headers
}

func (r *Result) example(format string, args ...any) {
	if len(r.Examples) < 10 {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

// checkStates compares every customer's stored state with the offline fold.
func checkStates(ctx context.Context, rdb *redis.Client, model *scorer.Model, exp *Expect, topic string, res *Result) (map[string]string, error) {
	store, err := state.NewRedis(rdb, state.Config{})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(exp.cust))
	for id := range exp.cust {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	res.Customers = len(ids)
	bands := map[string]string{}
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		recs, err := store.Load(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for i, id := range chunk {
			want := exp.cust[id]
			rec := recs[i]
			if rec.Version == 0 {
				res.Lost += want.n
				res.LostCustomers++
				res.example("%s: no state stored; %d events expected", id, want.n)
				continue
			}
			bands[id] = rec.Band
			if len(rec.Pending) > 0 {
				res.PendingLeft++
				res.example("%s: outbox not cleared (%d bytes)", id, len(rec.Pending))
			}
			st, err := model.DecodeState(rec.Data)
			if err != nil {
				res.example("%s: cannot decode state: %v", id, err)
				res.Lost += want.n
				res.LostCustomers++
				continue
			}
			got := int(st.Events)
			res.Applied += got
			switch {
			case got < want.n:
				res.Lost += want.n - got
				res.LostCustomers++
				res.example("%s: state holds %d events, %d were sent", id, got, want.n)
			case got > want.n:
				res.AppliedTwice += got - want.n
				res.TwiceCustomers++
				res.example("%s: state holds %d events, only %d were sent", id, got, want.n)
			}
			gs := model.Evaluate(st, st.LastEvent).Score
			ws := model.Evaluate(want.st, want.st.LastEvent).Score
			rel := math.Abs(gs-ws) / math.Max(math.Abs(ws), 1e-300)
			if gs == ws {
				rel = 0
			}
			res.MaxRelErr = math.Max(res.MaxRelErr, rel)
			if rel > 1e-9 || math.IsNaN(rel) {
				res.ScoreMismatches++
				res.example("%s: stream score %.12g, offline %.12g", id, gs, ws)
			}
			for p, off := range want.offsets {
				if g := rec.Offsets[state.Partition{Topic: topic, Partition: p}]; g != off {
					res.OffsetMismatches++
					res.example("%s: partition %d applied up to offset %d, highest sent %d", id, p, g, off)
				}
			}
		}
	}
	// Records: fields of the bucket hashes (hs:c:<bucket>), or keys of
	// their own (hs:c:{id}) in single-key mode.
	iter := rdb.Scan(ctx, 0, state.DefaultPrefix+"c:*", 1000).Iterator()
	for iter.Next(ctx) {
		n, err := rdb.HLen(ctx, iter.Val()).Result()
		if redis.HasErrorPrefix(err, "WRONGTYPE") {
			n, err = 1, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cannot count the records in %s: %w", iter.Val(), err)
		}
		res.Stored += int(n)
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	// Every outbox left must be one a record points to (counted in
	// PendingLeft above); any other is a leak.
	outboxes := 0
	iter = rdb.Scan(ctx, 0, state.DefaultPrefix+"o:*", 1000).Iterator()
	for iter.Next(ctx) {
		n, err := outboxesIn(ctx, rdb, iter.Val())
		if err != nil {
			return nil, err
		}
		if outboxes <= res.PendingLeft && outboxes+n > res.PendingLeft {
			res.example("outbox key %s left behind", iter.Val())
		}
		outboxes += n
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	res.OrphanOutboxes = max(0, outboxes-res.PendingLeft)
	res.Unexpected = res.Stored - len(bands)
	return bands, nil
}

// checkAlerts reads the alert topic, de-duplicates by CloudEvents id and
// checks per customer that alerts alternate health.low / health.recovered,
// starting with health.low, and that the last one matches the final band.
func checkAlerts(ctx context.Context, brokers []string, topic string, bands map[string]string, res *Result) error {
	seen := map[string]bool{}
	per := map[string][]string{}
	var decodeErr error
	err := readTopic(ctx, brokers, topic, func(r *kgo.Record) {
		res.AlertCopies++
		var ce struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal(r.Value, &ce); err != nil {
			decodeErr = fmt.Errorf("alert at %d/%d: %w", r.Partition, r.Offset, err)
			return
		}
		if seen[ce.ID] {
			return
		}
		seen[ce.ID] = true
		per[ce.Subject] = append(per[ce.Subject], ce.Type)
	})
	if err != nil {
		return err
	}
	if decodeErr != nil {
		return decodeErr
	}
	for id, types := range per {
		res.Alerts += len(types)
		if len(types) >= 2 {
			res.Flapping++
		}
		for i, t := range types {
			want := alerts.TypeLow
			if i%2 == 1 {
				want = alerts.TypeRecovered
			}
			if t == alerts.TypeLow {
				res.Lows++
			} else {
				res.Recovered++
			}
			if t != want {
				res.AltViolations++
				res.example("%s: alerts %v do not alternate low/recovered", id, types)
				break
			}
		}
	}
	for id, band := range bands {
		types := per[id]
		last := ""
		if len(types) > 0 {
			last = types[len(types)-1]
		}
		if band == state.BandRed {
			res.RedAtEnd++
		}
		if (band == state.BandRed) != (last == alerts.TypeLow) {
			res.MissingAlerts++
			res.example("%s: final band %q, last alert %q", id, band, last)
		}
	}
	return nil
}

// checkDLQ counts dead letters by reason, unique by source coordinates.
func checkDLQ(ctx context.Context, brokers []string, topic string, res *Result) error {
	res.DLQ = map[string]int{}
	seen := map[string]bool{}
	return readTopic(ctx, brokers, topic, func(r *kgo.Record) {
		res.DLQCopies++
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		src := h[alerts.HeaderDLQSourceTopic] + "/" + h[alerts.HeaderDLQSourcePartition] + "/" + h[alerts.HeaderDLQSourceOffset]
		if _, err := strconv.Atoi(h[alerts.HeaderDLQSourceOffset]); err != nil {
			res.DLQBadMeta++
			return
		}
		if seen[src] {
			return
		}
		seen[src] = true
		res.DLQ[h[alerts.HeaderDLQReason]]++
	})
}

func waitCommitted(ctx context.Context, adm *kadm.Client, group, topic string, timeout time.Duration, progress func(int64)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		behind, err := lag(ctx, adm, group, topic)
		if err == nil && behind == 0 {
			return nil
		}
		if err == nil && progress != nil {
			progress(behind)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("group %s did not commit all of %s within %s (%d records behind, last error %v)", group, topic, timeout, behind, err)
		case <-time.After(time.Second):
		}
	}
}

// outboxesIn counts the outboxes an outbox key holds: one under a
// per-version key (o:{id}:version), the records a save call's string names
// (its count, the first 10 bytes), or the fields of a save call's hash (as
// versions before the strings wrote).
func outboxesIn(ctx context.Context, rdb *redis.Client, key string) (int, error) {
	typ, err := rdb.Type(ctx, key).Result()
	switch {
	case err != nil:
		return 0, err
	case typ == "hash":
		n, err := rdb.HLen(ctx, key).Result()
		return int(n), err
	case strings.Contains(key, "{"):
		return 1, nil
	}
	head, err := rdb.GetRange(ctx, key, 0, 9).Result()
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(head)
	if err != nil {
		return 0, fmt.Errorf("outbox string %s starts with %q, not a count: %w", key, head, err)
	}
	return n, nil
}
