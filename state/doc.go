// Package state owns the per-customer record in Redis: the opaque scorer
// state, the last score and band, and per input topic-partition the highest
// Kafka offset already applied to the customer. It also owns the binary value
// codec of that record and the derived band index.
//
// # Keys
//
// In the default (multi-key) mode a customer's record is field <id> of the
// hash <prefix>c:<bucket> (default prefix "hs:"; bucket = [Redis.Bucket],
// decimal, no braces): about customers/Buckets records per hash, which
// Redis keeps as one compact listpack while it holds at most
// hash-max-listpack-entries records of at most hash-max-listpack-value
// bytes (a larger record only turns its bucket into a hashtable: more
// memory, same behaviour; layout.go). In single-key mode (Redis Cluster)
// each record is a key of its own, <prefix>c:{<id>}: the braces are a
// Redis Cluster hash tag, and an id that itself contains braces still maps
// to exactly one key and so one slot. [Redis.RecordKey] names where a
// record is in either mode. With [Config.HistoryDays] the customer's
// score history is a key of its own, <prefix>h:{<id>} (daily points and
// last band changes; in single-key mode it shares the record key's hash
// tag), written by the save scripts with the record (see history.go). In
// the default mode the records name their input topics by small ids,
// interned in one string
// <prefix>topics that every instance shares (see topics.go); it must be
// kept (persisted, backed up, restored) with the records. In single-key
// mode (Redis Cluster) records keep the topics' names.
//
// A record's outbox (Record.Pending: outputs saved, not yet acknowledged)
// is written by the save script with the record and deleted once
// acknowledged (Session.ClearOutboxes, or Session.Acknowledge, which
// leaves the delete to the next save or Flush: acked.go). In the default mode each save
// script call puts the outboxes of its writes in one new string,
// <prefix>o:<nonce>:<seq> (nonce random per store, seq a counter), headed
// by the number of applied records that name it; each names the call and
// its range (format 4, Record.OutboxCall). A clear deletes the string; a
// later save of one customer lowers the count, and the last one deletes
// it. Hashes with a field per customer (format 3) that the version before
// wrote are still read. In single-key mode a per-call key could not share every
// customer's hash tag, so each outbox has its own key, <prefix>o:{<id>}:<version>
// (format 2, as earlier versions wrote in both modes; still read).
//
// The decay schedule (schedule.go) has the same keys in both modes: per
// shard N, a sorted set per bucket of customers by due time,
// <prefix>due:{N}:<bucket>, and an index of the shard's buckets by a lower
// bound of their earliest due time, <prefix>due:{N}:min; a shard's keys
// share the hash tag {N}, so its scripts touch one cluster slot. A save
// schedules each write's due time (Write.Due): on a single server in the
// save script, with the record; in single-key mode before and after the
// compare-and-set (ScheduleEarlier).
//
// Every instance sharing a prefix must group customers into the same
// buckets: <prefix>layout records the number ([Config.Buckets]) and
// [Redis.CheckLayout] refuses another (layout.go).
//
// # Modes
//
// On a single server (the default) the store batches: loads are one
// pipeline of HGETs (one per record, from its bucket), and saves run a
// multi-key script per 256 writes that does each compare-and-set and moves
// the customer in the band index in the same atomic step. With
// [Config.SingleKey] (set automatically for a *redis.ClusterClient) every command and script touches exactly one key, as
// Redis Cluster requires: one GET and one script per customer, and the band
// index is updated after the records (see below).
//
// # The binding: sessions
//
// Every write goes through a session (Redis.Bind, the Bound interface),
// bound to the identity of the server it was opened on (ServerID: its
// run_id, which changes at every restart; on Redis Cluster the run_ids of
// every primary). A restart can lose writes Redis acknowledged but had not
// fsynced yet, and a version re-used after it would fool a compare-and-set;
// so the session refuses every operation on another server with the one
// error ErrServerChanged: its saves and outbox clears check the run_id in
// their scripts, atomically with the writes (on a cluster, each script on
// its own node), and its loads check it in the same pipeline as their reads
// (on a cluster, once after the read). Only a session's loads use the
// record cache (cache.go). Redis itself writes no record, outbox or
// history: it reads them (Load, Get, Band, ...) unbound, for readers and
// tools, and writes only the schedule, the override expiries and the WAIT
// counter. A server without a run_id (the embedded miniredis) gives
// an unbound session that checks nothing.
//
// WaitReplicas (WAIT) confirms that the writes so far reached the replicas
// of a single primary (Sentinel), before a failover could lose them.
//
// # Writes
//
// [Session.Save] is a compare-and-set on the record version: a Lua script
// (EVALSHA, so it also runs on miniredis) compares the stored version bytes
// with the version the writer loaded and only then replaces the value,
// storing version+1. A stale worker or a replay therefore cannot regress a
// record; the caller reloads and retries on conflict (and uses the offsets
// in the record to skip events already applied).
//
// # Band index
//
// Small hashes <prefix>band:<band>:<bucket> (band red, yellow or green;
// bucket the customer's, see Redis.Bucket; field customer id, value "") let
// readers list the least healthy customers; they hold no scores, and so
// stay listpacks of about 23 bytes per entry. In the default mode the save
// script moves a customer in them, atomically with its record, only when
// its band changes (or it gets its first), and keeps each band's number of
// entries in the hash <prefix>bandcount (field band) in the same step, so
// [Redis.BandCounts] is one exact read. In single-key mode the index is
// derived: it is updated after the records are saved, at every applied save,
// and can lag behind the records after a crash between the two steps (or an
// index error, reported as [ErrIndex]); a customer missing from the index
// after such a crash reappears at its next save, which is why this mode
// cannot skip saves within a band. Its counts are sums of every bucket
// hash's size (no key could change atomically with entries in every slot),
// served for up to [Config.BandCountsMaxAge].
// Either way [Redis.Band] reads every bucket of the band (pipelined HKEYS),
// re-checks each member against its record, drops members whose record is
// in another band, and sorts by the records' scores; its cost grows with
// the band's size and the number of buckets. The earlier layout's sorted
// sets <prefix>band:red|yellow|green are never written: their presence
// marks a Redis this version refuses (Redis.CheckLayout).
//
// # Files
//
// store.go: the record and write types, Config and the Redis store with its
// key names; layout.go: the buckets, the layout key and the listpack limits; session.go: the binding (Bind, Bound, Session, ErrServerChanged);
// server.go: the server identity (ServerID) and persistence settings;
// scripts.go: the Lua scripts, which take the record's byte offsets from
// codec.go (luaCodec); load.go and save.go: the reads and writes in both
// modes; band.go: the band index; history.go, schedule.go, overrides.go,
// replicas.go and cache.go: the score history, the decay schedule, the
// override expiries, WAIT and the record cache; topics.go: the topic ids.
//
// Non-goals: scoring and the encoding of the scorer state (package scorer),
// metrics (the consumer counts conflicts), key expiry and deletion.
package state
