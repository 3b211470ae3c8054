package ingest

import (
	"testing"

	"github.com/healthscore/healthscore/scorer"
)

var nativeEvents = [][]byte{
	[]byte(`{"id":"evt-1","customer_id":"acme-000123","type":"login","time":"2026-11-20T10:00:00Z","value":1,"segment":"enterprise","attributes":{}}`),
	[]byte(`{"id":"evt-2","customer_id":"acme-004711","type":"feature_used","time":"2026-11-20T10:00:01.123Z","attributes":{"feature":"reports","plan":"pro"}}`),
	[]byte(`{"customer_id":"acme-000042","type":"nps_submitted","time":"2026-11-20T10:00:02Z","value":9}`),
}

// TestNativeDecodeAllocations: in auto mode, a native record (with the
// headers a producer may add) costs exactly the allocations of
// scorer.DecodeEvent: detection adds no parse.
func TestNativeDecodeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not stable under the race detector; scripts/test.sh runs this test without -race")
	}
	d := mustDecoder(t, Config{})
	hs := hdrs("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "content-type", "application/json")
	for _, e := range nativeEvents {
		base := testing.AllocsPerRun(100, func() {
			if _, err := scorer.DecodeEvent(e); err != nil {
				t.Fatal(err)
			}
		})
		got := testing.AllocsPerRun(100, func() {
			if _, f, err := d.Decode(Record{Topic: "customer-events", Value: e, Headers: hs}); err != nil || f != FormatNative {
				t.Fatal(f, err)
			}
		})
		if got != base {
			t.Errorf("%s: %v allocations in auto mode, %v in scorer.DecodeEvent", e, got, base)
		}
	}
}

func benchDecode(b *testing.B, d *Decoder, recs []Record) {
	b.ReportAllocs()
	n := 0
	for _, r := range recs {
		n += len(r.Value)
	}
	b.SetBytes(int64(n / len(recs)))
	for i := 0; b.Loop(); i++ {
		if _, _, err := d.Decode(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func nativeRecords() []Record {
	recs := make([]Record, len(nativeEvents))
	for i, e := range nativeEvents {
		recs[i] = Record{Topic: "customer-events", Value: e}
	}
	return recs
}

// BenchmarkDecode compares the formats; NativeAuto should match
// scorer's BenchmarkDecodeEvent.
func BenchmarkDecode(b *testing.B) {
	b.Run("NativeAuto", func(b *testing.B) { benchDecode(b, mustDecoder(b, Config{}), nativeRecords()) })
	b.Run("NativeConfigured", func(b *testing.B) {
		benchDecode(b, mustDecoder(b, Config{Default: TopicConfig{Format: FormatNative}}), nativeRecords())
	})
	b.Run("CloudEventsStructured", func(b *testing.B) {
		benchDecode(b, mustDecoder(b, Config{}), []Record{{Value: []byte(`{"specversion":"1.0","id":"e-1","source":"/app","type":"login","subject":"acme-000123","time":"2026-11-20T10:00:00Z","datacontenttype":"application/json","data":{"value":2,"segment":"enterprise"}}`)}})
	})
	b.Run("CloudEventsBinary", func(b *testing.B) {
		benchDecode(b, mustDecoder(b, Config{}), []Record{{Value: []byte(`{"value":2,"segment":"enterprise"}`), Headers: binaryHeaders()}})
	})
	b.Run("SegmentTrack", func(b *testing.B) {
		benchDecode(b, mustDecoder(b, Config{}), []Record{{Value: []byte(`{"type":"track","event":"login","messageId":"e-1","userId":"u-9","context":{"groupId":"acme-000123","ip":"8.8.8.8"},"timestamp":"2026-11-20T10:00:00Z","properties":{"value":2}}`)}})
	})
}
