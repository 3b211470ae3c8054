package alerts

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/scorer"
)

func FuzzAppendRecords(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, s, 17.5, 60.0, int64(0), uint8(1), uint8(3), int32(0), "e1")
	}
	f.Add("acme", "enterprise", 99.999, -1.0, t0, uint8(3), uint8(0), int32(12), "")
	f.Add("a\u2028b", "\x00", math.NaN(), math.Inf(1), int64(-1), uint8(9), uint8(2), int32(-1), "\xff")
	e := newEncoder(f)
	story := newStory("x", "")
	m := story.m
	base := story.step(t0, "ticket_escalated").Outcome // real categories and drivers
	f.Fuzz(func(t *testing.T, id, segment string, score, prev float64, at int64, band, prevBand uint8, offset int32, eventID string) {
		o := scorer.Outcome{
			Eval:          scorer.Evaluation{At: at, HasScore: true, Score: score, Band: scorer.Band(band % 4), Segment: segment, Categories: base.Eval.Categories},
			Changed:       true,
			PrevScore:     prev,
			PrevBand:      scorer.Band(prevBand % 4),
			HadPrevious:   prevBand%2 == 0,
			Alert:         scorer.Alert(band % 3),
			Drivers:       append([]scorer.Driver{{Category: segment, Signal: id, Points: prev}}, base.Drivers...),
			Dropped:       offset%2 == 0,
			Baseline:      prev,
			CooldownUntil: at,
		}
		if prevBand%3 == 0 {
			o.Eval.Override = &scorer.Override{Value: score, By: id, Reason: segment, Expires: at}
		}
		c := &Change{CustomerID: id, Outcome: o, Model: m, EventTime: at, Cause: Cause{EventID: eventID, Topic: "customer-events", Partition: offset % 100, Offset: int64(offset)}}
		recs := e.AppendRecords(nil, c)
		want := 1 + min(1, int(band%3))
		if o.Dropped {
			want++
		}
		if len(recs) != want {
			t.Fatalf("%d records, want %d", len(recs), want)
		}
		var wantID string
		_ = json.Unmarshal(must(json.Marshal(id)), &wantID)
		for _, r := range recs {
			if !json.Valid(r.Value) {
				t.Fatalf("invalid JSON %q", r.Value)
			}
			if !bytes.Equal(r.Key, []byte(id)) {
				t.Fatalf("key %q, want %q", r.Key, id)
			}
			var ev cloudEvent
			strict(t, r.Value, &ev)
			var d eventData
			strict(t, ev.Data, &d)
			if ev.Subject != wantID || d.CustomerID != wantID {
				t.Fatalf("customer id %q / %q, want %q", ev.Subject, d.CustomerID, wantID)
			}
			if ev.ID != EventID(ev.Type, id, c.Cause) || TypeOf(r) != ev.Type {
				t.Fatalf("id %q type %q", ev.ID, ev.Type)
			}
			if ts, err := time.Parse(time.RFC3339Nano, ev.Time); err != nil || ts.UnixNano() != at {
				t.Fatalf("time %q: %v", ev.Time, err)
			}
			if !math.IsNaN(score) && !math.IsInf(score, 0) && math.Abs(score) < 1e15 && d.Score != scorer.Round2(score) {
				t.Fatalf("score %v, want %v", d.Score, scorer.Round2(score))
			}
		}
	})
}

func FuzzDeadLetter(f *testing.F) {
	f.Add([]byte("acme"), []byte(`{"customer_id":`), "customer-events", int32(0), int64(0), int64(1), "invalid_json", "detail", "h", []byte("v"))
	f.Add([]byte(nil), []byte(nil), "", int32(-1), int64(-1), int64(0), "", "\xff", HeaderDLQReason, []byte(nil))
	e := newEncoder(f)
	f.Fuzz(func(t *testing.T, key, value []byte, topic string, partition int32, offset, tsMillis int64, reason, detail, hk string, hv []byte) {
		src := &kgo.Record{Key: key, Value: value, Topic: topic, Partition: partition, Offset: offset, Headers: []kgo.RecordHeader{{Key: hk, Value: hv}}}
		if tsMillis != 0 {
			src.Timestamp = time.UnixMilli(tsMillis % 1e14)
		}
		r := e.DeadLetter(src, reason, detail)
		if !bytes.Equal(r.Key, key) || !bytes.Equal(r.Value, value) || (key == nil) != (r.Key == nil) || (value == nil) != (r.Value == nil) {
			t.Fatalf("key/value changed")
		}
		if r.Topic != e.Config().DLQTopic || TypeOf(r) != LabelDeadLetter {
			t.Fatalf("topic %q type %q", r.Topic, TypeOf(r))
		}
		want := map[string]string{
			HeaderDLQReason: reason, HeaderDLQSourceTopic: topic,
			HeaderDLQSourcePartition: strconv.Itoa(int(partition)), HeaderDLQSourceOffset: strconv.FormatInt(offset, 10),
		}
		for k, v := range want {
			if got, n := header(r, k); n != 1 || got != v {
				t.Fatalf("header %s = %q (%d), want %q", k, got, n, v)
			}
		}
		d, n := header(r, HeaderDLQDetail)
		if n != 1 || len(d) > max(len(detail), MaxDLQDetail) || (len(detail) <= MaxDLQDetail && d != detail) {
			t.Fatalf("detail %q", d)
		}
		ts, n := header(r, HeaderDLQSourceTimestamp)
		if n != 1 {
			t.Fatalf("timestamp header %d times", n)
		}
		if tsMillis != 0 {
			if got, err := time.Parse(time.RFC3339Nano, ts); err != nil || !got.Equal(src.Timestamp) {
				t.Fatalf("timestamp %q (%v), want %v", ts, err, src.Timestamp)
			}
		}
		_, kept := header(r, hk)
		if !strings.HasPrefix(hk, HeaderDLQPrefix) && kept != 1 {
			t.Fatalf("source header %q dropped", hk)
		}
	})
}
