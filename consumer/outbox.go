package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The outbox holds the output records a state transition calls for, saved
// with the state before they are produced and cleared once the broker
// acknowledged them. A crash in between leaves them in the state, and the
// next load of that customer (a redelivery, or its next event) produces them
// again, byte for byte with the same CloudEvents ids. So the alert stream
// always matches the band transitions recorded in the state, and none is
// lost.
//
// Encoding: format byte 1, uvarint record count, then per record the topic,
// key and value (uvarint length + bytes each), uvarint header count and per
// header key and value.
const outboxFormat = 1

func encodeOutbox(recs []*kgo.Record) []byte {
	if len(recs) == 0 {
		return nil
	}
	size := 1 + binary.MaxVarintLen64
	for _, r := range recs {
		size += 4*binary.MaxVarintLen64 + len(r.Topic) + len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			size += 2*binary.MaxVarintLen64 + len(h.Key) + len(h.Value)
		}
	}
	b := make([]byte, 0, size) // one allocation
	b = append(b, outboxFormat)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = appendBytes(b, r.Topic)
		b = appendBytes(b, r.Key)
		b = appendBytes(b, r.Value)
		b = binary.AppendUvarint(b, uint64(len(r.Headers)))
		for _, h := range r.Headers {
			b = appendBytes(b, h.Key)
			b = appendBytes(b, h.Value)
		}
	}
	return b
}

func appendBytes[T string | []byte](b []byte, p T) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

var errCorruptOutbox = errors.New("corrupt outbox")

func decodeOutbox(b []byte) ([]*kgo.Record, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != outboxFormat {
		return nil, fmt.Errorf("%w: unknown format %d", errCorruptOutbox, b[0])
	}
	b = b[1:]
	var err error
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			err = errCorruptOutbox
			return 0
		}
		b = b[n:]
		return v
	}
	get := func() []byte {
		n := uv()
		if err != nil || n > uint64(len(b)) {
			err = errCorruptOutbox
			return nil
		}
		v := b[:n:n]
		b = b[n:]
		return v
	}
	n := uv()
	if n > uint64(len(b)) { // every record takes at least 4 bytes
		return nil, errCorruptOutbox
	}
	recs := make([]*kgo.Record, 0, n)
	for i := uint64(0); i < n && err == nil; i++ {
		r := &kgo.Record{Topic: string(get()), Key: get(), Value: get()}
		nh := uv()
		if nh > uint64(len(b)) {
			return nil, errCorruptOutbox
		}
		for j := uint64(0); j < nh && err == nil; j++ {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: string(get()), Value: get()})
		}
		recs = append(recs, r)
	}
	if err == nil && len(b) != 0 {
		err = fmt.Errorf("%w: %d trailing bytes", errCorruptOutbox, len(b))
	}
	if err != nil {
		return nil, err
	}
	return recs, nil
}
