// Package state owns the per-customer record in Redis: the opaque scorer
// state, the last score and band, and per input topic-partition the highest
// Kafka offset already applied to the customer. It also owns the binary value
// codec of that record and the derived band index.
//
// # Keys
//
// One key per customer, <prefix>c:{<id>} (default prefix "hs:"). The braces
// are a Redis Cluster hash tag. An id that itself contains braces still maps
// to exactly one key and so one slot. With [Config.HistoryDays] the
// customer's score history sits beside it under the same hash tag,
// <prefix>h:{<id>} (daily points and last band changes), written by the
// save scripts with the record (see history.go).
//
// # Modes
//
// On a single server (the default) the store batches: loads are MGETs of
// up to 256 keys, and saves run a multi-key script per 256 writes that does
// each compare-and-set and moves the customer in the band index in the same
// atomic step. With [Config.SingleKey] (set automatically for a
// *redis.ClusterClient) every command and script touches exactly one key, as
// Redis Cluster requires: one GET and one script per customer, and the band
// index is updated after the records (see below).
//
// # Servers and replicas
//
// Saves and outbox clears can be bound to the Redis server they expect
// (SaveIfServer): the script checks the server's run_id (ServerID) and
// writes nothing on a server that restarted. On Redis Cluster the id is
// the set of every primary's run_id and each script checks its own node.
// WaitReplicas (WAIT) confirms that the writes so far reached the replicas
// of a single primary (Sentinel), before a failover could lose them.
//
// # Writes
//
// [Store.Save] is a compare-and-set on the record version: a Lua script
// (EVALSHA, so it also runs on miniredis) compares the stored version bytes
// with the version the writer loaded and only then replaces the value,
// storing version+1. A stale worker or a replay therefore cannot regress a
// record; the caller reloads and retries on conflict (and uses the offsets
// in the record to skip events already applied).
//
// # Band index
//
// Sorted sets <prefix>band:red|yellow|green (score = customer score) let
// readers list the least healthy customers. In the default mode the save
// script updates them with the records, so they never lag. In single-key
// mode the index is derived: it is
// updated after the records are saved, for applied writes only, and can lag
// behind the records after a crash between the two steps (or an index error,
// reported as [ErrIndex]). [Store.Band] therefore re-checks every candidate
// against its record and drops members whose record is in another band, so
// readers never see stale members; a customer missing from the index after a
// crash reappears at its next save.
//
// Non-goals: scoring and the encoding of the scorer state (package scorer),
// metrics (the consumer counts conflicts), key expiry and deletion.
package state
