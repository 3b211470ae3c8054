package state

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Deferred outbox deletes (multi-key mode). Deleting a batch's outbox
// strings once its outputs are acknowledged cost a round trip of its own
// per batch; at small batches that was a tenth of a batch's time. Instead
// Session.Acknowledge only notes the save calls whose outputs are all
// acknowledged: the session's next Save deletes every call noted when it
// starts, in its first script call, before any of its writes, and
// Session.Flush deletes what no save took (the consumer flushes before it
// commits offsets, and after a sweep). Until a delete is confirmed, loads
// through a session on the same server treat those outboxes as cleared
// (their outputs are acknowledged), and the save that follows such a load
// skips lowering the string's count (Write.NoPrevOutbox): that is safe
// because the call was noted at the load, so the same save deletes the
// string before its writes apply, or a delete was confirmed before. A
// crash loses only the notes: those batches' offsets are not committed
// yet, their customers are loaded again and their outboxes produced
// again, under the same ids, as after a crash between produce and clear.

// ackedCalls are the acknowledged save calls not yet deleted, for one
// Redis server (a session on another server starts afresh: the notes of
// the old one name strings that server's restart may have lost or kept,
// and loads there read them back).
type ackedCalls struct {
	mu     sync.Mutex
	server string
	calls  map[string]struct{}
}

// add notes calls as acknowledged on server.
func (a *ackedCalls) add(server string, calls []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calls == nil || a.server != server {
		a.server, a.calls = server, make(map[string]struct{})
	}
	for _, c := range calls {
		a.calls[c] = struct{}{}
	}
}

// has reports whether call is acknowledged on server and not yet deleted.
func (a *ackedCalls) has(server, call string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.calls[call]
	return ok && a.server == server
}

// take returns the calls acknowledged on server; they stay noted until
// done confirms their delete.
func (a *ackedCalls) take(server string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.server != server || len(a.calls) == 0 {
		return nil
	}
	return slices.Collect(maps.Keys(a.calls))
}

// done forgets calls, whose strings server deleted.
func (a *ackedCalls) done(server string, calls []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.server != server {
		return
	}
	for _, c := range calls {
		delete(a.calls, c)
	}
}

// Acknowledge implements Bound: outboxes whose outputs the broker
// acknowledged are deleted later, by the session's next Save or by Flush,
// and loads through a session on the same server treat them as cleared at
// once. In multi-key mode it needs no round trip for outboxes of save calls
// (the others, of records saved before calls had strings, are cleared
// now); in single-key mode (Redis Cluster) it is ClearOutboxes.
func (b *Session) Acknowledge(ctx context.Context, obs []Outbox) error {
	s := b.s
	if len(obs) == 0 {
		return nil
	}
	if s.cfg.SingleKey {
		return b.ClearOutboxes(ctx, obs)
	}
	var calls []string
	var now []Outbox
	for _, o := range obs {
		if o.Call == "" {
			now = append(now, o)
		} else if !slices.Contains(calls, o.Call) {
			calls = append(calls, o.Call)
		}
	}
	s.acked.add(b.server, calls)
	s.cacheCleared(b.server, obs, nil)
	if len(now) > 0 {
		return b.ClearOutboxes(ctx, now)
	}
	return nil
}

// Flush implements Bound: it deletes the outboxes acknowledged on the
// session's server that no save deleted yet, in one round trip (none when
// there are none; batchChunk strings per script call).
func (b *Session) Flush(ctx context.Context) error {
	s := b.s
	calls := s.acked.take(b.server)
	if len(calls) == 0 {
		return nil
	}
	obs := make([]Outbox, len(calls))
	for i, c := range calls {
		obs[i] = Outbox{Call: c}
	}
	if err := s.clearChunks(ctx, b.server, obs); err != nil {
		return fmt.Errorf("cannot delete acknowledged outboxes: %w", err)
	}
	s.acked.done(b.server, calls)
	return nil
}

// ackedArg is the acknowledged calls a save deletes first (batchSaveScript's
// ARGV[8]): their names, separated by spaces (newOutboxCall never makes one
// with a space).
func ackedArg(calls []string) string { return strings.Join(calls, " ") }
