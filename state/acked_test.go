package state_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/state"
)

// TestAcknowledgedOutboxes: in multi-key mode Acknowledge deletes nothing
// by itself. The save call's string stays until the session's next save,
// which deletes it before its writes, or until Flush; meanwhile loads
// through a session on the same server (with and without the record
// cache) read the customers' outboxes as cleared, while another store (as
// another instance) still reads them. In single-key mode it clears at once.
func TestAcknowledgedOutboxes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newClient func() *redis.Client, cfg state.Config) {
		ctx := t.Context()
		c := newClient()
		s := newStore(t, c, cfg)
		cached := newStore(t, c, state.Config{Prefix: cfg.Prefix, SingleKey: cfg.SingleKey, BandCountsMaxAge: -1, Cache: 100})
		other := newStore(t, c, cfg)
		outboxes := func() []string { return outboxKeys(t, c, cfg.Prefix) }
		pending := func(st *state.Redis, ids ...string) []string {
			t.Helper()
			recs, err := bind(t, st).Load(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]string, len(recs))
			for i, r := range recs {
				out[i] = string(r.Pending)
			}
			return out
		}
		// saveAcked saves ids through st, each with an outbox, and
		// acknowledges them; it returns the writes as Save left them.
		saveAcked := func(st *state.Redis, ids ...string) []state.Write {
			t.Helper()
			ws := make([]state.Write, len(ids))
			obs := make([]state.Outbox, len(ids))
			for i, id := range ids {
				ws[i] = state.Write{ID: id, Rec: state.Record{Score: 30, Band: state.BandRed, Pending: []byte("out " + id)}}
			}
			sess := bind(t, st)
			if applied, err := appliedOf(sess.Save(ctx, ws)); err != nil || slices.Contains(applied, false) {
				t.Fatalf("save: %v %v", applied, err)
			}
			for i := range ws {
				obs[i] = ws[i].Saved()
			}
			if err := sess.Acknowledge(ctx, obs); err != nil {
				t.Fatal(err)
			}
			return ws
		}

		for k, st := range []*state.Redis{s, cached} {
			a, b, z, cc := string(rune('a'+k))+"a", string(rune('a'+k))+"b", string(rune('a'+k))+"z", string(rune('a'+k))+"c"
			saveAcked(st, a, b)
			if cfg.SingleKey {
				if keys := outboxes(); len(keys) != 0 {
					t.Fatalf("single-key: outbox keys %q after Acknowledge, want none", keys)
				}
				continue
			}
			if keys := outboxes(); len(keys) != 1 {
				t.Fatalf("outbox keys %q after Acknowledge, want the call's string until a save or flush", keys)
			}
			if got := pending(st, a, b); !slices.Equal(got, []string{"", ""}) {
				t.Fatalf("loaded through the acknowledging store: pending %q, want none", got)
			}
			if got := pending(other, a, b); !slices.Equal(got, []string{"out " + a, "out " + b}) {
				t.Fatalf("loaded through another store: pending %q, want both outboxes (not deleted yet)", got)
			}
			// The next save, of another customer, deletes the string.
			mustSave(t, st, state.Write{ID: z, Rec: state.Record{Score: 80, Band: state.BandGreen}})
			if keys := outboxes(); len(keys) != 0 {
				t.Fatalf("outbox keys %q after the next save, want none", keys)
			}
			if got := pending(other, a, b); !slices.Equal(got, []string{"", ""}) {
				t.Fatalf("after the save, another store loads pending %q, want none", got)
			}
			// Without a save, Flush deletes it; a second Flush has nothing to do.
			ws := saveAcked(st, cc)
			if keys := outboxes(); !slices.Equal(keys, []string{st.CallOutboxKey(ws[0].Rec.OutboxCall)}) {
				t.Fatalf("outbox keys %q, want c's call", keys)
			}
			for range 2 {
				if err := bind(t, st).Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if keys := outboxes(); len(keys) != 0 {
					t.Fatalf("outbox keys %q after Flush, want none", keys)
				}
			}
		}
	})
}

// TestAcknowledgedOnAnotherServer: notes taken on one server are not
// applied on another (after a restart the outboxes there are read back and
// produced again), and a session on another server deletes none of them.
func TestAcknowledgedOnAnotherServer(t *testing.T) {
	ctx := t.Context()
	newClient, prefix := backends[0].open(t)
	c := newClient()
	s := newStore(t, c, state.Config{Prefix: prefix})
	id, err := s.ServerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ws := []state.Write{{ID: "a", Rec: state.Record{Score: 30, Band: state.BandRed, Pending: []byte("out a")}}}
	if applied, err := appliedOf(s.BindTo(id).Save(ctx, ws)); err != nil || !applied[0] {
		t.Fatalf("save: %v %v", applied, err)
	}
	elsewhere := s.BindTo("0123456789abcdef0123456789abcdef01234567")
	if err := elsewhere.Acknowledge(ctx, []state.Outbox{ws[0].Saved()}); err != nil {
		t.Fatal(err)
	}
	recs, err := s.BindTo(id).Load(ctx, []string{"a"})
	if err != nil || string(recs[0].Pending) != "out a" {
		t.Fatalf("a note taken on another server hid the outbox: pending %q, %v", recs[0].Pending, err)
	}
	if err := s.BindTo(id).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := outboxKeys(t, c, prefix); len(keys) != 1 {
		t.Fatalf("outbox keys %q: a flush on this server deleted another server's note", keys)
	}
	if err := elsewhere.Flush(ctx); !errors.Is(err, state.ErrServerChanged) {
		t.Fatalf("Flush on a session of another server: %v, want ErrServerChanged", err)
	}
}
