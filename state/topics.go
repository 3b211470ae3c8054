package state

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Interned topic names. A record stores, per input topic, a small integer
// id instead of the topic's name (see codec.go). The ids live in one Redis
// string, TopicsKey: the names in the order they were interned, each as
// "<decimal length>:<name>", the first with id 1. topicScript appends a
// name atomically on the server, so every instance agrees; names are never
// removed or reordered, so an id is never re-assigned while the string
// lives. It is read (GET) and extended (a script) outside the record
// scripts, one key per command, so it works on Redis Cluster too, and
// needs no command the service's ACL does not already grant.
//
// Each process keeps the list in a topicTable, tagged with the server it
// was read from. A session uses only a table read from its own server
// (reloading it otherwise), and ids are assigned by a script bound to that
// server: a restarted server that lost the list (with the records that use
// it, see below) can therefore never receive records with ids from before
// the restart.
//
// Loss of the list. It is written, and acknowledged, before any record
// that uses one of its ids; Redis persists (append-only file, RDB) and
// replicates writes in order, so a single server or a primary with
// replicas that loses the list's last writes also loses every record that
// used them: ids are never re-assigned while records use them. Deleting
// the list alone (or restoring records without it) breaks that: records
// naming ids the list lacks are then reported corrupt (errUnknownTopic),
// never guessed; restore the list with them. On Redis Cluster the list
// lives on one shard and the records on all: a failover of that shard that
// loses the moments after a topic's first use could lose its id while
// other shards keep records that use it, and a later new topic could be
// assigned that id: its events would then be checked against another
// topic's offsets. So in single-key mode (Config.SingleKey, set for Redis
// Cluster) records keep their topics' names and the list is not used.

// topicTable is an immutable snapshot of the topic hash.
type topicTable struct {
	server string // the server it was read from ("": unchecked)
	ids    map[string]uint64
	names  map[uint64]string
}

func (tt *topicTable) name(id uint64) (string, bool) {
	if tt == nil {
		return "", false
	}
	n, ok := tt.names[id]
	return n, ok
}

// topicCache holds the process's current table.
type topicCache struct {
	mu  sync.Mutex // serialises reloads and assignments
	cur atomic.Pointer[topicTable]
}

// TopicsKey returns the Redis key of the topic ids (a string, see above).
func (s *Redis) TopicsKey() string { return s.cfg.Prefix + "topics" }

// topicScript returns the id of topic ARGV[2] in list KEYS[1], appending
// it if it is not there, on the server whose run_id is ARGV[1]
// (checkServerLua).
var topicScript = redis.NewScript(checkServerLua + `
local v = redis.call('GET', KEYS[1]) or ''
local pos, id = 1, 0
while pos <= #v do
  local colon = string.find(v, ':', pos, true)
  local n = colon and tonumber(string.sub(v, pos, colon - 1))
  if not n then return redis.error_reply('ERR corrupt topic ids at byte ' .. pos) end
  id = id + 1
  if n == #ARGV[2] and string.sub(v, colon + 1, colon + n) == ARGV[2] then return id end
  pos = colon + n + 1
end
redis.call('SET', KEYS[1], v .. #ARGV[2] .. ':' .. ARGV[2])
return id + 1
`)

// readTopicsScript returns list KEYS[1] ("" if there is none), read on the
// server whose run_id is ARGV[1] (checkServerLua): on Redis Cluster, the
// node that holds the list is checked, as a save script checks its own.
var readTopicsScript = redis.NewScript(checkServerLua + `
return redis.call('GET', KEYS[1]) or ''
`)

// parseTopics parses the list; the i-th name has id i+1.
func parseTopics(v string) ([]string, error) {
	var names []string
	for v != "" {
		n, rest, ok := strings.Cut(v, ":")
		l, err := strconv.Atoi(n)
		if !ok || err != nil || l < 0 || l > len(rest) {
			return nil, fmt.Errorf("corrupt topic ids at entry %d", len(names)+1)
		}
		names = append(names, rest[:l])
		v = rest[l:]
	}
	return names, nil
}

// reloadTopics reads the list from server (checked as in the scripts) and
// makes it the current table, unless the current one is from server and is
// not stale (another goroutine reloaded it meanwhile).
func (s *Redis) reloadTopics(ctx context.Context, server string, stale *topicTable) (*topicTable, error) {
	s.topics.mu.Lock()
	defer s.topics.mu.Unlock()
	if tt := s.topics.cur.Load(); tt != nil && tt != stale && (server == "" || tt.server == server) {
		return tt, nil
	}
	return s.readTopicsLocked(ctx, server)
}

func (s *Redis) readTopicsLocked(ctx context.Context, server string) (*topicTable, error) {
	v, err := readTopicsScript.Run(ctx, s.c, []string{s.TopicsKey()}, server).Text()
	if redis.HasErrorPrefix(err, "RESTARTED") {
		return nil, fmt.Errorf("cannot read topic ids: %w: %w", ErrServerChanged, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read topic ids: %w", err)
	}
	names, err := parseTopics(v)
	if err != nil {
		return nil, fmt.Errorf("cannot read topic ids: %w", err)
	}
	tt := &topicTable{server: server, ids: make(map[string]uint64, len(names)), names: make(map[uint64]string, len(names))}
	for i, name := range names {
		tt.ids[name], tt.names[uint64(i+1)] = uint64(i+1), name
	}
	s.topics.cur.Store(tt)
	return tt, nil
}

// internTopics returns a table from server that has ids for topics,
// assigning the missing ones (one script call each: a topic is interned
// once per deployment).
func (s *Redis) internTopics(ctx context.Context, server string, topics []string) (*topicTable, error) {
	s.topics.mu.Lock()
	defer s.topics.mu.Unlock()
	cur := s.topics.cur.Load()
	if cur == nil || cur.server != server {
		var err error
		if cur, err = s.readTopicsLocked(ctx, server); err != nil {
			return nil, err
		}
	}
	var next *topicTable
	for _, t := range topics {
		if _, ok := cur.ids[t]; ok {
			continue
		}
		if next == nil {
			next = &topicTable{server: server, ids: make(map[string]uint64, len(cur.ids)+1), names: make(map[uint64]string, len(cur.names)+1)}
			for n, id := range cur.ids {
				next.ids[n], next.names[id] = id, n
			}
		}
		if _, ok := next.ids[t]; ok {
			continue
		}
		n, err := topicScript.Run(ctx, s.c, []string{s.TopicsKey()}, server, t).Int64()
		if redis.HasErrorPrefix(err, "RESTARTED") {
			return nil, fmt.Errorf("cannot intern topic %q: %w: %w", t, ErrServerChanged, err)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot intern topic %q: %w", t, err)
		}
		if n < 1 {
			return nil, fmt.Errorf("cannot intern topic %q: bad id %d", t, n)
		}
		id := uint64(n)
		if old, ok := next.names[id]; ok && old != t {
			return nil, fmt.Errorf("cannot intern topic %q: id %d is %q in this process", t, id, old)
		}
		next.ids[t], next.names[id] = id, t
	}
	if next == nil {
		return cur, nil
	}
	s.topics.cur.Store(next)
	return next, nil
}
