package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Saves and outbox clears: the compare-and-sets of Session.Save and
// Session.ClearOutboxes, in both modes.

func (s *Redis) compareAndSet(ctx context.Context, server string, ws []Write, vals [][]byte) ([]bool, error) {
	applied := make([]bool, len(ws))
	days, changes, err := s.historyArgsAll(ws)
	if err != nil {
		return nil, err
	}
	err = s.evalEach(ctx, saveScript, len(ws), func(i int) ([]string, []any) {
		w := &ws[i]
		key, _ := s.RecordKey(w.ID) // single-key mode: a key of its own
		keys := []string{key, s.OutboxKey(w.ID, w.Expected), s.OutboxKey(w.ID, w.Expected+1), s.HistoryKey(w.ID)}
		return keys, []any{server, binary.BigEndian.AppendUint64(nil, w.Expected), vals[i], w.Rec.Pending, days[i], changes[i], s.cfg.HistoryDays}
	}, func(i int, cmd *redis.Cmd) error {
		n, err := cmd.Int()
		if redis.HasErrorPrefix(err, "RESTARTED") {
			// Writes before this one may have applied: the caller
			// abandons the whole batch and re-reads.
			return fmt.Errorf("%w: %w", ErrServerChanged, err)
		}
		if err != nil {
			return fmt.Errorf("write of %q: %w", ws[i].ID, err)
		}
		applied[i] = n == 1
		return nil
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

// dueArg is a write's due time as the batch save script takes it: Unix
// ms, "" for none.
func dueArg(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return strconv.FormatInt(ms, 10)
}

// outboxHeaderLen is the size of a save call's outbox string header: the
// number of records that name the string, in decimal, zero-padded (the
// save script writes it and lowers it as records move on; see
// batchSaveScript).
const outboxHeaderLen = 10

// layOutboxes names a new outbox call for each batchChunk writes of ws (one
// script call each, see saveChunks) and lays the outboxes (Rec.Pending) of
// each call's writes out in one string: the header (outboxHeaderLen bytes,
// counting them), then the outboxes in the order of the writes. It sets
// each write's Rec.OutboxCall and range (none for a write without outbox)
// and returns the calls and their strings (nil for a call without
// outboxes).
func (s *Redis) layOutboxes(ws []Write) (calls []string, blobs [][]byte) {
	for start := 0; start < len(ws); start += batchChunk {
		chunk := ws[start:min(start+batchChunk, len(ws))]
		size, n := outboxHeaderLen, 0
		for i := range chunk {
			if p := len(chunk[i].Rec.Pending); p > 0 {
				size, n = size+p, n+1
			}
		}
		call := s.newOutboxCall()
		var blob []byte
		if n > 0 {
			blob = fmt.Appendf(outboxBuf(size), "%0*d", outboxHeaderLen, n)
		}
		for i := range chunk {
			r := &chunk[i].Rec
			r.OutboxCall, r.outboxAt, r.outboxLen = "", 0, 0
			if len(r.Pending) > 0 {
				r.OutboxCall, r.outboxAt, r.outboxLen = call, len(blob), len(r.Pending)
				blob = append(blob, r.Pending...)
			}
		}
		calls, blobs = append(calls, call), append(blobs, blob)
	}
	return calls, blobs
}

// outboxBufs holds the buffers of outbox strings whose save returned, for
// the next ones: each save call's outputs are copied once more into its
// string, and reusing the buffers keeps that copy from adding to the
// garbage.
var outboxBufs sync.Pool

// outboxBuf returns an empty buffer of at least size bytes.
func outboxBuf(size int) []byte {
	if b, ok := outboxBufs.Get().(*[]byte); ok && cap(*b) >= size {
		return (*b)[:0]
	}
	return make([]byte, 0, size)
}

// releaseOutboxBufs returns blobs' buffers to outboxBufs; nothing may use
// them after (the save's commands are done with them once it returned).
func releaseOutboxBufs(blobs [][]byte) {
	for _, b := range blobs {
		if b != nil && cap(b) <= 4<<20 {
			outboxBufs.Put(&b)
		}
	}
}

// saveChunks runs the writes through batchSaveScript, batchChunk writes per
// call, all calls in one pipeline (see evalEach). calls names each call's
// outbox string and blobs holds it (see layOutboxes). It returns what
// Session.Save does; the replicas are those the last call saw (it ran
// after the others' writes).
func (s *Redis) saveChunks(ctx context.Context, server string, ws []Write, vals [][]byte, calls []string, blobs [][]byte, acked []string) (Saved, error) {
	type chunk struct {
		start, end int
		keys       []string
		args       []any
	}
	days, changes, err := s.historyArgsAll(ws)
	if err != nil {
		return Saved{}, err
	}
	var chunks []*chunk
	for start := 0; start < len(ws); start += batchChunk {
		c := &chunk{start: start, end: min(start+batchChunk, len(ws))}
		c.keys = append(make([]string, 0, 1+c.end-c.start), s.BandCountKey())
		call := s.CallOutboxKey(calls[len(chunks)])
		del := ""
		if len(chunks) == 0 {
			del = ackedArg(acked) // before every write of the save
		}
		c.args = append(make([]any, 0, 8+11*(c.end-c.start)), server, s.cfg.HistoryDays, call, s.bandPrefix(), s.CallOutboxKey(""), blobs[len(chunks)],
			s.duePrefix(), del)
		for i := c.start; i < c.end; i++ {
			w := &ws[i]
			prevOutbox := ""
			switch {
			case w.NoPrevOutbox:
			case w.PrevOutboxCall != "":
				prevOutbox = s.CallOutboxKey(w.PrevOutboxCall)
			default:
				prevOutbox = s.OutboxKey(w.ID, w.Expected)
			}
			key, _ := s.RecordKey(w.ID) // the bucket; field w.ID, as ARGV says
			c.keys = append(c.keys, key)
			histKey := ""
			if len(days[i]) > 0 || len(changes[i]) > 0 {
				histKey = s.HistoryKey(w.ID)
			}
			hasOutbox := ""
			if w.Rec.outboxLen > 0 {
				hasOutbox = "1"
			}
			bucket := s.Bucket(w.ID)
			c.args = append(c.args, binary.BigEndian.AppendUint64(nil, w.Expected), vals[i], w.ID,
				strconv.Itoa(bucket), hasOutbox, prevOutbox,
				days[i], changes[i], histKey, dueArg(w.Due), strconv.Itoa(bucket%s.cfg.Shards))
		}
		chunks = append(chunks, c)
	}
	saved := Saved{Applied: make([]bool, len(ws)), Replicas: -1}
	err = s.evalEach(ctx, batchSaveScript, len(chunks), func(i int) ([]string, []any) {
		return chunks[i].keys, chunks[i].args
	}, func(i int, cmd *redis.Cmd) error {
		c := chunks[i]
		res, err := cmd.Int64Slice()
		switch {
		case err == nil && len(res) == c.end-c.start+1: // one per write, then the replicas
			for k, n := range res[:len(res)-1] {
				saved.Applied[c.start+k] = n == 1
			}
			saved.Replicas = int(res[len(res)-1])
			return nil
		case err == nil:
			return fmt.Errorf("save script returned %d results for %d writes", len(res), c.end-c.start)
		case redis.HasErrorPrefix(err, "RESTARTED"):
			// Chunks before this one may have applied: the caller
			// abandons the whole batch and re-reads.
			return fmt.Errorf("%w: %w", ErrServerChanged, err)
		default:
			return fmt.Errorf("writes of %q…: %w", ws[c.start].ID, err)
		}
	})
	if err != nil {
		return Saved{}, err
	}
	return saved, nil
}

// clearChunks deletes the outboxes obs names: each save call's string once
// (however many of its outboxes obs names), and the per-version keys of
// outboxes saved before calls had hashes; batchChunk keys per script call.
func (s *Redis) clearChunks(ctx context.Context, server string, obs []Outbox) error {
	keys := make([]string, 0, len(obs))
	calls := make(map[string]bool)
	for _, o := range obs {
		switch {
		case o.Call == "":
			keys = append(keys, s.OutboxKey(o.ID, o.Version))
		case !calls[o.Call]:
			calls[o.Call] = true
			keys = append(keys, s.CallOutboxKey(o.Call))
		}
	}
	var chunks [][]string
	for start := 0; start < len(keys); start += batchChunk {
		chunks = append(chunks, keys[start:min(start+batchChunk, len(keys))])
	}
	return s.evalEach(ctx, clearScript, len(chunks), func(i int) ([]string, []any) {
		return chunks[i], []any{server}
	}, clearDone)
}

func clearDone(_ int, cmd *redis.Cmd) error {
	switch err := cmd.Err(); {
	case err == nil:
		return nil
	case redis.HasErrorPrefix(err, "RESTARTED"):
		return fmt.Errorf("cannot clear outboxes: %w: %w", ErrServerChanged, err)
	default:
		return fmt.Errorf("cannot clear outboxes: %w", err)
	}
}
