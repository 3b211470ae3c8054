package state

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/redis/go-redis/v9"
)

// The binding. Redis acknowledges a write before its append-only file is
// fsynced (appendfsync everysec), so a restart (or a failover to a replica)
// can lose writes that were acknowledged. A writer that loaded a record
// before such a loss and saves after it could match a version that another
// writer re-used since, so a compare-and-set alone cannot be trusted across
// a restart. Every write therefore goes through a Session, which is bound to
// the identity of the server it was opened on (ServerID: its run_id, or on
// Redis Cluster the run_ids of every primary), and which refuses every
// operation on another server with ErrServerChanged. A writer that gets it
// must drop the session and everything it based on it (the consumer
// rewinds to its committed offsets), then open a new one.

// ErrServerChanged reports that a Session's Redis server restarted or was
// replaced (a new run_id) since the session was opened; the operation wrote
// nothing (a save may have applied the writes before the one that was
// refused: the caller abandons all of them and re-reads).
var ErrServerChanged = errors.New("redis server changed (restarted or failed over) since the session was opened")

// Bound is the store bound to one Redis server: every load, save and
// outbox clear applies only on the server the session was opened on, and
// fails with ErrServerChanged on another. Redis.Bind opens one.
type Bound interface {
	// Server is the identity the session is bound to (ServerID); "" when
	// the server gives none (the embedded miniredis): then nothing is
	// checked, and a restart cannot be detected.
	Server() string
	// Load fetches the records of ids (missing ids get the zero Record,
	// Version 0), with their outboxes. Every reply read from Redis is
	// checked to come from the session's server (see Session.Load).
	Load(ctx context.Context, ids []string) ([]Record, error)
	// Save writes each record with a compare-and-set on its Version, all
	// of them in one round trip, and returns per write whether it was
	// applied (Saved.Applied; false: conflict, the stored version is no
	// longer Expected). Applied writes store Version = Expected+1. Writes
	// may include the same id more than once; they apply in order. If err
	// wraps ErrIndex, Applied is valid and the records were saved; only
	// the derived band index may lag. Save sets each ws[i].Rec.OutboxCall
	// to where it stores the outbox (ws[i].Saved() names it for
	// ClearOutboxes); a write that does not apply stores none.
	Save(ctx context.Context, ws []Write) (Saved, error)
	// ClearOutboxes deletes outboxes whose outputs the broker
	// acknowledged (Write.Saved names them). In multi-key mode it deletes
	// the whole hash of each save call named, so every outbox that call
	// stored must be acknowledged, not only those in obs.
	ClearOutboxes(ctx context.Context, obs []Outbox) error
	// Acknowledge is ClearOutboxes without a round trip of its own in
	// multi-key mode: the outboxes are deleted by the session's next Save
	// (before its writes) or by Flush, and until then loads through a
	// session on the same server treat them as cleared (acked.go). In
	// single-key mode it is ClearOutboxes.
	Acknowledge(ctx context.Context, obs []Outbox) error
	// Flush deletes the outboxes acknowledged on the session's server
	// that no save deleted yet. A writer flushes before it commits the
	// input whose outputs they held, so that committed input leaves no
	// outbox behind.
	Flush(ctx context.Context) error
}

// Saved is what a Save did.
type Saved struct {
	// Applied says per write whether it was stored (false: a conflict).
	Applied []bool
	// Replicas is how many replicas the server had connected right after
	// the writes, read in the same round trip (a single server, through a
	// bound session); -1 when the save did not read it (Redis Cluster, an
	// unbound session, no writes). Redis.WaitReplicas takes it.
	Replicas int
}

// Session is a Bound on a Redis store.
type Session struct {
	s      *Redis
	server string // "": the server has no run_id, nothing is checked
}

var _ Bound = (*Session)(nil)

// Bind opens a session bound to the Redis server the store reaches now
// (ServerID). A server that gives no run_id (ErrNoServerID: the embedded
// miniredis) gives an unbound session (Server() == ""); any other failure
// to read the id is an error.
func (s *Redis) Bind(ctx context.Context) (Bound, error) {
	id, err := s.ServerID(ctx)
	if err != nil && !errors.Is(err, ErrNoServerID) {
		return nil, fmt.Errorf("cannot open a state session: %w", err)
	}
	return &Session{s: s, server: id}, nil
}

// Server implements Bound.
func (b *Session) Server() string { return b.server }

// Load implements Bound. Records this store saved through a session on
// the same server come from the record cache (Config.Cache) without a
// round trip; the others are read from Redis, and the read is refused if
// the server changed. On a single server the check costs no round trip:
// each pipeline of the load ends with INFO server, answered on the same
// connection as its reads (a reconnect resends the whole pipeline), so by
// the server that answered them. On Redis Cluster the primaries' run_ids
// are read once after the load (one more round trip). A server never comes
// back with an old run_id, so a server that still has the session's id
// after the read was up, without a restart, when it answered the read.
// Records served from the cache were saved on the session's server; if it
// restarted since, the save that follows is refused.
func (b *Session) Load(ctx context.Context, ids []string) ([]Record, error) {
	c := b.s.cache
	if c == nil || b.server == "" || len(ids) == 0 {
		return b.load(ctx, ids)
	}
	g := c.gen.Load()
	if g.server != b.server {
		c.misses.Add(uint64(len(ids)))
		return b.load(ctx, ids)
	}
	recs := make([]Record, len(ids))
	var missIdx []int
	var missIDs []string
	for i, id := range ids {
		e, ok := c.get(g, id)
		if !ok {
			missIdx = append(missIdx, i)
			missIDs = append(missIDs, id)
			continue
		}
		r, _, err := b.s.decode(ctx, e.val, b.server)
		if err != nil { // cannot happen: it was encoded here, with ids from this server
			return nil, fmt.Errorf("cannot decode cached record of %q: %w", id, err)
		}
		r.Pending = e.pending
		recs[i] = r
	}
	c.hits.Add(uint64(len(ids) - len(missIDs)))
	c.misses.Add(uint64(len(missIDs)))
	if len(missIDs) > 0 {
		loaded, err := b.load(ctx, missIDs)
		if err != nil {
			return nil, err
		}
		for k, i := range missIdx {
			recs[i] = loaded[k]
		}
	}
	return recs, nil
}

func (b *Session) load(ctx context.Context, ids []string) ([]Record, error) {
	recs, err := b.s.load(ctx, ids, true, b.server)
	if err == nil && b.server != "" && len(ids) > 0 {
		if cc, ok := b.s.c.(*redis.ClusterClient); ok {
			id, ierr := clusterID(ctx, cc)
			err = ierr
			if ierr == nil {
				err = sameServer(b.server, id)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot load records: %w", err)
	}
	return recs, nil
}

// sameServer fails with ErrServerChanged unless got is want.
func sameServer(want, got string) error {
	if got != want {
		return fmt.Errorf("%w: the server id is %s, not %s", ErrServerChanged, got, want)
	}
	return nil
}

// pipeCheck adds to p, on a single server and when server is set, an INFO
// server whose run_id must be server (see Session.Load), and returns the
// check to run once p is executed.
func (s *Redis) pipeCheck(ctx context.Context, p redis.Pipeliner, server string) func() error {
	if server == "" {
		return func() error { return nil }
	}
	if _, ok := s.c.(*redis.ClusterClient); ok {
		return func() error { return nil } // checked after the load (Session.load)
	}
	info := p.Info(ctx, "server")
	return func() error {
		v, err := info.Result()
		if err != nil {
			return fmt.Errorf("cannot read the Redis server id: %w", err)
		}
		return sameServer(server, infoField(v, "run_id"))
	}
}

// Save implements Bound. The check of the server is atomic with the writes,
// in the save script (checkServerLua). In single-key mode each customer's
// script checks the node that holds the customer: on Redis Cluster the
// session's id holds the run_ids of every primary, so a primary that
// restarted or was replaced by a replica is refused, while the others
// still accept. The compare-and-sets take one round trip; in single-key
// mode, when some apply, updating the band index takes two more (index
// writes, then a re-read that repairs the index if another writer saved in
// between).
func (b *Session) Save(ctx context.Context, ws []Write) (Saved, error) {
	s := b.s
	if len(ws) == 0 {
		return Saved{Replicas: -1}, nil
	}
	// The table is read (or the topics interned) only for records with
	// offsets, and only from the session's server: a table from another
	// (an empty one here) fails the encoding with errNotInterned.
	tt := s.topics.cur.Load()
	if tt == nil || tt.server != b.server {
		tt = &topicTable{}
	}
	if s.cfg.SingleKey {
		// Redis Cluster: the list lives on one shard and the records on
		// all, so a failover of that shard could lose an id that records
		// elsewhere use, and a later topic could take it (topics.go):
		// records keep their topics' names.
		tt = nil
	}
	vals := make([][]byte, len(ws))
	// In multi-key mode each script call (batchChunk writes, see
	// saveChunks) stores its writes' outboxes in one new string.
	var calls []string
	var blobs [][]byte
	if !s.cfg.SingleKey {
		calls, blobs = s.layOutboxes(ws)
	}
	for i := range ws {
		w := &ws[i]
		if w.ID == "" {
			return Saved{}, fmt.Errorf("cannot save records: write %d: empty id", i)
		}
		if w.Expected == math.MaxUint64 {
			return Saved{}, fmt.Errorf("cannot save record of %q: version overflow", w.ID)
		}
		if s.cfg.SingleKey {
			w.Rec.OutboxCall, w.Rec.outboxAt, w.Rec.outboxLen = "", 0, 0
		}
		rec := w.Rec
		rec.Version = w.Expected + 1
		v, err := encodeRecord(nil, rec, tt)
		if errors.Is(err, errNotInterned) {
			// A topic first seen: intern the batch's topics, once.
			if tt, err = s.internTopics(ctx, b.server, topicsOf(ws)); err != nil {
				return Saved{}, fmt.Errorf("cannot save records: %w", err)
			}
			v, err = encodeRecord(nil, rec, tt)
		}
		if err != nil {
			return Saved{}, fmt.Errorf("cannot save record of %q: %w", w.ID, err)
		}
		vals[i] = v
	}
	if !s.cfg.SingleKey {
		acked := s.acked.take(b.server)
		saved, err := s.saveChunks(ctx, b.server, ws, vals, calls, blobs, acked)
		releaseOutboxBufs(blobs)
		s.cacheSaved(b.server, ws, vals, saved.Applied, err)
		if err != nil {
			return Saved{}, fmt.Errorf("cannot save records: %w", err)
		}
		s.acked.done(b.server, acked)
		return saved, nil
	}
	// Redis Cluster: a write's due time is in another slot than its
	// record, so it is scheduled before the compare-and-set (a crash in
	// between, or a lost compare-and-set, can only wake the customer
	// early), never moving an entry later, and again after it for the
	// writes that applied: a sweeper's release between the two may have
	// replaced the first (a claim's lease absorbs a later due time), and
	// this one lowers what it set (see Release for the other order).
	if err := s.ScheduleEarlier(ctx, dues(ws, nil)); err != nil {
		return Saved{}, fmt.Errorf("cannot save records: %w", err)
	}
	applied, err := s.compareAndSet(ctx, b.server, ws, vals)
	if err != nil {
		return Saved{}, fmt.Errorf("cannot save records: %w", err)
	}
	saved := Saved{Applied: applied, Replicas: -1} // each primary's: WaitReplicas reads them
	if err := s.ScheduleEarlier(ctx, dues(ws, applied)); err != nil {
		return saved, fmt.Errorf("cannot schedule saved records: %w", err)
	}
	if err := s.index(ctx, ws, applied); err != nil {
		return saved, fmt.Errorf("cannot update band index: %w: %w", ErrIndex, err)
	}
	return saved, nil
}

// dues are the due times of the writes (of those applied, when applied is
// not nil).
func dues(ws []Write, applied []bool) []Due {
	var ds []Due
	for i, w := range ws {
		if w.Due > 0 && (applied == nil || applied[i]) {
			ds = append(ds, Due{ID: w.ID, At: w.Due})
		}
	}
	return ds
}

// topicsOf lists the topics of the writes' offsets, each once.
func topicsOf(ws []Write) []string {
	seen := map[string]bool{}
	var ts []string
	for i := range ws {
		for p := range ws[i].Rec.Offsets {
			if !seen[p.Topic] {
				seen[p.Topic] = true
				ts = append(ts, p.Topic)
			}
		}
	}
	return ts
}

// ClearOutboxes implements Bound. Each key names its record version (single
// key mode) or a save call of this store (multi-key mode: one DEL per call,
// however many of its outboxes obs names), so a clear never touches an
// outbox that another writer saved since; and it is bound to the session's
// server like a save: on a restarted server that lost a record version,
// another writer may have saved that version again with an outbox of its
// own, not acknowledged yet. One round trip.
func (b *Session) ClearOutboxes(ctx context.Context, obs []Outbox) error {
	s := b.s
	if len(obs) == 0 {
		return nil
	}
	if s.cfg.SingleKey { // DEL cannot span cluster slots: one key per call
		return s.evalEach(ctx, clearScript, len(obs), func(i int) ([]string, []any) {
			return []string{s.OutboxKey(obs[i].ID, obs[i].Version)}, []any{b.server}
		}, clearDone)
	}
	err := s.clearChunks(ctx, b.server, obs)
	s.cacheCleared(b.server, obs, err)
	return err
}
