package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/healthscore/healthscore/alerts"
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
	b, _ := newOutbox(recs, fresh{})
	return b
}

// outboxWriter writes a plan's outboxes. Its scratch buffer, reused from one
// customer to the next, holds a customer's new values until they are copied
// into the outbox. Not safe for concurrent use.
type outboxWriter struct{ vals []byte }

// write returns the outbox of the pending records followed by the records
// enc makes for ch (none when ch is nil), and those records, pending ones
// first; the outbox is the bytes encodeOutbox makes of them. The new
// records are written once, into the outbox, and their keys and values
// alias it: one allocation holds the state's copy and the producer's
// (nothing modifies either), where the encoder's records took one and their
// copy into the outbox another.
func (w *outboxWriter) write(pending []*kgo.Record, enc *alerts.Encoder, ch *alerts.Change) ([]byte, []*kgo.Record) {
	f := fresh{}
	if ch != nil {
		f.outs, f.n = enc.Outputs(ch)
		f.key, f.headers = ch.CustomerID, enc.Headers()
		w.vals = w.vals[:0]
		for i := range f.n {
			w.vals = enc.AppendValue(w.vals, f.outs[i].Type, ch)
			f.ends[i] = len(w.vals)
		}
		f.vals = w.vals
		if cap(w.vals) > 64<<10 {
			w.vals = nil // do not keep a huge buffer alive
		}
	}
	return newOutbox(pending, f)
}

// fresh are new output records before they are written into an outbox:
// n of them, value i is vals[ends[i-1]:ends[i]]. (Arrays rather than
// slices, so that nothing here is moved to the heap.)
type fresh struct {
	key     string
	headers []kgo.RecordHeader
	outs    [3]alerts.Output
	n       int
	vals    []byte
	ends    [3]int
}

// newOutbox encodes the pending records followed by the fresh ones, and
// returns the outbox and all the records; the fresh ones alias it.
func newOutbox(pending []*kgo.Record, f fresh) ([]byte, []*kgo.Record) {
	outs := f.outs[:f.n]
	n := len(pending) + len(outs)
	if n == 0 {
		return nil, nil
	}
	// The exact size, so that the appends below never reallocate. (If they
	// did, the records cut so far would still hold the right bytes, in the
	// old array: the cost would be a copy, not an error.)
	size := 1 + uvarintLen(n)
	for _, r := range pending {
		size += recordSize(r.Topic, r.Key, r.Value, r.Headers)
	}
	start := 0
	for i, o := range outs {
		size += recordSize(o.Topic, f.key, f.vals[start:f.ends[i]], f.headers)
		start = f.ends[i]
	}
	b := make([]byte, 0, size) // one allocation
	b = append(b, outboxFormat)
	b = binary.AppendUvarint(b, uint64(n))
	for _, r := range pending {
		b = appendBytes(b, r.Topic)
		b = appendBytes(b, r.Key)
		b = appendBytes(b, r.Value)
		b = appendHeaders(b, r.Headers)
	}
	if len(outs) == 0 {
		return b, pending
	}
	recs := make([]kgo.Record, len(outs))
	all := make([]*kgo.Record, 0, n)
	all = append(all, pending...)
	start = 0
	for i, o := range outs {
		b = appendBytes(b, o.Topic)
		b = appendBytes(b, f.key)
		key := b[len(b)-len(f.key) : len(b) : len(b)]
		b = appendBytes(b, f.vals[start:f.ends[i]])
		val := b[len(b)-(f.ends[i]-start) : len(b) : len(b)]
		b = appendHeaders(b, f.headers)
		recs[i] = kgo.Record{Topic: o.Topic, Key: key, Value: val, Headers: f.headers}
		all = append(all, &recs[i])
		start = f.ends[i]
	}
	return b, all
}

// recordSize is the encoded size of one record in an outbox.
func recordSize[K string | []byte](topic string, key K, value []byte, headers []kgo.RecordHeader) int {
	size := uvarintLen(len(topic)) + len(topic) + uvarintLen(len(key)) + len(key) + uvarintLen(len(value)) + len(value) + uvarintLen(len(headers))
	for _, h := range headers {
		size += uvarintLen(len(h.Key)) + len(h.Key) + uvarintLen(len(h.Value)) + len(h.Value)
	}
	return size
}

func uvarintLen(n int) int {
	size := 1
	for ; n >= 0x80; n >>= 7 {
		size++
	}
	return size
}

func appendHeaders(b []byte, headers []kgo.RecordHeader) []byte {
	b = binary.AppendUvarint(b, uint64(len(headers)))
	for _, h := range headers {
		b = appendBytes(b, h.Key)
		b = appendBytes(b, h.Value)
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
