package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"

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

// saveChunks runs the writes through batchSaveScript, batchChunk writes per
// call, all calls in one pipeline (see evalEach). calls names each call's
// outbox hash (see Session.Save).
func (s *Redis) saveChunks(ctx context.Context, server string, ws []Write, vals [][]byte, calls []string) ([]bool, error) {
	type chunk struct {
		start, end int
		keys       []string
		args       []any
	}
	days, changes, err := s.historyArgsAll(ws)
	if err != nil {
		return nil, err
	}
	var chunks []*chunk
	for start := 0; start < len(ws); start += batchChunk {
		c := &chunk{start: start, end: min(start+batchChunk, len(ws))}
		c.keys = append(make([]string, 0, 1+c.end-c.start), s.BandCountKey())
		call := s.CallOutboxKey(calls[len(chunks)])
		c.args = append(make([]any, 0, 4+9*(c.end-c.start)), server, s.cfg.HistoryDays, call, s.bandPrefix())
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
			c.args = append(c.args, binary.BigEndian.AppendUint64(nil, w.Expected), vals[i], w.ID,
				strconv.Itoa(s.Bucket(w.ID)), w.Rec.Pending, prevOutbox,
				days[i], changes[i], histKey)
		}
		chunks = append(chunks, c)
	}
	applied := make([]bool, len(ws))
	err = s.evalEach(ctx, batchSaveScript, len(chunks), func(i int) ([]string, []any) {
		return chunks[i].keys, chunks[i].args
	}, func(i int, cmd *redis.Cmd) error {
		c := chunks[i]
		res, err := cmd.Int64Slice()
		switch {
		case err == nil && len(res) == c.end-c.start:
			for k, n := range res {
				applied[c.start+k] = n == 1
			}
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
		return nil, err
	}
	return applied, nil
}

// clearChunks deletes the outboxes obs names: each save call's hash once
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
