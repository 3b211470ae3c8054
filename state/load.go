package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Loads: pipelined HGETs of the records from their buckets (GETs in
// single-key mode), then the outboxes they name.

// Load fetches the records of ids in one round trip (two when some have an
// outbox); missing ids get the zero Record (Version 0). It is not bound to
// a server and skips the record cache: for readers and tools. Writers load
// through a session (Bind).
func (s *Redis) Load(ctx context.Context, ids []string) ([]Record, error) {
	recs, err := s.load(ctx, ids, true, "")
	if err != nil {
		return nil, fmt.Errorf("cannot load records: %w", err)
	}
	return recs, nil
}

// load reads ids in one round trip: a pipeline of one read per record
// (readRecord: an HGET from its bucket, or in single-key mode a GET).
// With outboxes, a second round trip reads the outbox keys the records
// name; without (band listings, index repair), Pending stays empty. With
// server set, each pipeline checks that it was answered by that server
// (pipeCheck); on Redis Cluster the caller checks (Session.load).
func (s *Redis) load(ctx context.Context, ids []string, outboxes bool, server string) ([]Record, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	check := func() error { return nil }
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = s.readRecord(ctx, p, id)
		}
		check = s.pipeCheck(ctx, p, server)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	if err := check(); err != nil {
		return nil, err
	}
	recs := make([]Record, len(ids))
	var stored []int
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read record of %q: %w", ids[i], err)
		}
		var st bool
		if recs[i], st, err = s.decode(ctx, b, server); err != nil {
			return nil, fmt.Errorf("cannot decode record of %q: %w", ids[i], err)
		}
		if st && !s.acked.has(server, recs[i].OutboxCall) {
			stored = append(stored, i) // (an acknowledged one counts as cleared: acked.go)
		}
	}
	if !outboxes {
		stored = nil // the caller reads scores and bands only
	}
	if err := s.loadOutboxes(ctx, ids, recs, stored, server); err != nil {
		return nil, err
	}
	return recs, nil
}

// loadOutboxes reads the outboxes of the records at indexes stored in one
// more round trip: a GET of the per-version key (format 2), an HGET of the
// customer's field in its save call's hash (format 3) or a GETRANGE of its
// range of its save call's string (format 4). A missing one was cleared
// after the record was read: its outputs are acknowledged.
func (s *Redis) loadOutboxes(ctx context.Context, ids []string, recs []Record, stored []int, server string) error {
	if len(stored) == 0 {
		return nil
	}
	vals := make([]*redis.StringCmd, len(stored))
	check := func() error { return nil }
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, i := range stored {
			r := &recs[i]
			switch {
			case r.outboxLen > 0:
				vals[k] = p.GetRange(ctx, s.CallOutboxKey(r.OutboxCall), int64(r.outboxAt), int64(r.outboxAt+r.outboxLen-1))
			case r.OutboxCall != "":
				vals[k] = p.HGet(ctx, s.CallOutboxKey(r.OutboxCall), ids[i])
			default:
				vals[k] = p.Get(ctx, s.OutboxKey(ids[i], recs[i].Version))
			}
		}
		check = s.pipeCheck(ctx, p, server)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("cannot read outboxes: %w", err)
	}
	if err := check(); err != nil {
		return err
	}
	for k, i := range stored {
		b, err := vals[k].Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err == nil && recs[i].outboxLen > 0 && len(b) == 0:
			// GETRANGE of a cleared call string
		case err == nil && recs[i].outboxLen > 0 && len(b) != recs[i].outboxLen:
			return fmt.Errorf("cannot read outbox of %q: %d bytes in call %s, want %d", ids[i], len(b), recs[i].OutboxCall, recs[i].outboxLen)
		case err != nil:
			return fmt.Errorf("cannot read outbox of %q: %w", ids[i], err)
		default:
			recs[i].Pending = b
		}
	}
	return nil
}

// readRecord queues the read of a customer's record (RecordKey) on p: an
// HGET of its field, or a GET of its key in single-key mode. The reply is
// redis.Nil when the customer has none.
func (s *Redis) readRecord(ctx context.Context, p redis.Cmdable, id string) *redis.StringCmd {
	key, field := s.RecordKey(id)
	if field == "" {
		return p.Get(ctx, key)
	}
	return p.HGet(ctx, key, field)
}

// decode decodes a stored record with the topic table; when the record
// names a topic id the table lacks, it reloads the table once (another
// instance interned the topic since) before reporting the record corrupt.
// Loads bound to a server (server set) use a table read from that server
// only.
func (s *Redis) decode(ctx context.Context, b []byte, server string) (Record, bool, error) {
	tt := s.topics.cur.Load()
	if server != "" && tt != nil && tt.server != server {
		tt = nil // read from another server: reloaded if the record has ids
	}
	r, stored, err := decodeRecord(b, tt)
	if errors.Is(err, errUnknownTopic) {
		if tt, err = s.reloadTopics(ctx, server, tt); err != nil {
			return Record{}, false, err
		}
		r, stored, err = decodeRecord(b, tt)
	}
	return r, stored, err
}

// Get fetches one record, as Load; a missing id gets the zero Record.
func (s *Redis) Get(ctx context.Context, id string) (Record, error) {
	recs, err := s.load(ctx, []string{id}, true, "")
	if err != nil {
		return Record{}, fmt.Errorf("cannot get record: %w", err)
	}
	return recs[0], nil
}
