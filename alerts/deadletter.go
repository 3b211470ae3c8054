package alerts

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers of a dead-letter record. Every dead letter carries all of them.
const (
	HeaderDLQPrefix          = "healthscore.dlq."
	HeaderDLQReason          = HeaderDLQPrefix + "reason"           // reason code, e.g. scorer.ReasonInvalidJSON, "too_large", "time_skew"
	HeaderDLQDetail          = HeaderDLQPrefix + "detail"           // human-readable explanation, at most MaxDLQDetail bytes
	HeaderDLQSourceTopic     = HeaderDLQPrefix + "source.topic"     // topic of the bad record
	HeaderDLQSourcePartition = HeaderDLQPrefix + "source.partition" // its partition, decimal
	HeaderDLQSourceOffset    = HeaderDLQPrefix + "source.offset"    // its offset, decimal
	HeaderDLQSourceTimestamp = HeaderDLQPrefix + "source.timestamp" // its timestamp, RFC 3339 UTC; empty when it had none
)

// MaxDLQDetail is the longest detail header kept, in bytes; longer details
// are cut at a UTF-8 boundary and end with "…".
const MaxDLQDetail = 1024

// DeadLetter returns the dead-letter copy of the bad input record src for
// Config.DLQTopic: the same key and value, byte for byte (the slices are
// shared with src, not copied), src's headers except any earlier
// healthscore.dlq.* ones, then the HeaderDLQ* headers naming reason (a
// stable code), detail and src's topic, partition, offset and timestamp.
// Partition and Timestamp are left to the producer.
func (e *Encoder) DeadLetter(src *kgo.Record, reason, detail string) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+6)
	for _, h := range src.Headers {
		if !strings.HasPrefix(h.Key, HeaderDLQPrefix) {
			hs = append(hs, h)
		}
	}
	var ts []byte
	if !src.Timestamp.IsZero() {
		ts = src.Timestamp.UTC().AppendFormat(nil, time.RFC3339Nano)
	}
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderDLQReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderDLQDetail, Value: []byte(truncate(detail, MaxDLQDetail))},
		kgo.RecordHeader{Key: HeaderDLQSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: HeaderDLQSourcePartition, Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
		kgo.RecordHeader{Key: HeaderDLQSourceOffset, Value: strconv.AppendInt(nil, src.Offset, 10)},
		kgo.RecordHeader{Key: HeaderDLQSourceTimestamp, Value: ts},
	)
	return &kgo.Record{Topic: e.cfg.DLQTopic, Key: src.Key, Value: src.Value, Headers: hs}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	cut := n - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}
