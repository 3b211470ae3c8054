package state

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// The record cache keeps, per customer, the record this process saved last
// (encoded, as stored) so that its next load of that customer needs no
// round trip: the consumer group gives each instance its own customers, so
// almost every record an instance loads is one it wrote. A cached record is
// never trusted, only used: the save that follows is a compare-and-set on
// its version, which fails if anyone wrote the customer since, and the
// customer is then loaded from Redis and redone. Versions only grow on one
// Redis server, so a matching version is the cached record; after a
// restart a lost version can be written again with other contents, which
// is why every entry is bound to the run_id of the server it was saved on
// and used only by sessions bound to that same server (Session.Load). The
// single-key mode (Redis Cluster) keeps no cache: its saves are bound to
// the set of the primaries' run_ids, and a cache per primary is not worth
// its complexity there.

// cacheShards spreads the cache over locks, for the concurrent worker
// groups.
const cacheShards = 16

type cacheEntry struct {
	version uint64
	val     []byte // the record as stored
	pending []byte // its outbox until cleared (val then still says format 2)
}

// cacheGen is the cache for one Redis server; a new server starts a new
// generation.
type cacheGen struct {
	server string
	shards [cacheShards]struct {
		mu sync.Mutex
		m  map[string]cacheEntry
	}
}

type recordCache struct {
	limit        int // entries per shard
	seed         maphash.Seed
	gen          atomic.Pointer[cacheGen]
	hits, misses atomic.Uint64
	mu           sync.Mutex // serialises generation changes
}

func newRecordCache(entries int) *recordCache {
	c := &recordCache{limit: max(1, entries/cacheShards), seed: maphash.MakeSeed()}
	c.gen.Store(newCacheGen(""))
	return c
}

func newCacheGen(server string) *cacheGen {
	g := &cacheGen{server: server}
	for i := range g.shards {
		g.shards[i].m = make(map[string]cacheEntry)
	}
	return g
}

// forServer returns the generation for server, starting a new one (and
// dropping every entry of another server) if needed.
func (c *recordCache) forServer(server string) *cacheGen {
	if g := c.gen.Load(); g.server == server {
		return g
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.gen.Load(); g.server == server {
		return g
	}
	g := newCacheGen(server)
	c.gen.Store(g)
	return g
}

func (g *cacheGen) shard(c *recordCache, id string) *struct {
	mu sync.Mutex
	m  map[string]cacheEntry
} {
	return &g.shards[maphash.String(c.seed, id)%cacheShards]
}

func (c *recordCache) get(g *cacheGen, id string) (cacheEntry, bool) {
	s := g.shard(c, id)
	s.mu.Lock()
	e, ok := s.m[id]
	s.mu.Unlock()
	return e, ok
}

func (c *recordCache) put(g *cacheGen, id string, e cacheEntry) {
	s := g.shard(c, id)
	s.mu.Lock()
	if _, ok := s.m[id]; !ok && len(s.m) >= c.limit {
		for k := range s.m { // full: drop an arbitrary entry
			delete(s.m, k)
			break
		}
	}
	s.m[id] = e
	s.mu.Unlock()
}

func (c *recordCache) drop(g *cacheGen, id string) {
	s := g.shard(c, id)
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// cleared forgets the outbox of id's cached record if it is version.
func (c *recordCache) cleared(g *cacheGen, id string, version uint64) {
	s := g.shard(c, id)
	s.mu.Lock()
	if e, ok := s.m[id]; ok && e.version == version {
		e.pending = nil
		s.m[id] = e
	}
	s.mu.Unlock()
}

// CacheStats reports the loads served by the record cache (Config.Cache)
// and those that went to Redis, since the store was created.
func (s *Redis) CacheStats() (hits, misses uint64) {
	if s.cache == nil {
		return 0, 0
	}
	return s.cache.hits.Load(), s.cache.misses.Load()
}

// cacheSaved records the outcome of a save bound to server: applied writes
// are cached, refused ones (another writer saved first) and, after an
// error, all of them are dropped.
func (s *Redis) cacheSaved(server string, ws []Write, vals [][]byte, applied []bool, err error) {
	if s.cache == nil || server == "" {
		return
	}
	g := s.cache.forServer(server)
	for i, w := range ws {
		if err != nil || !applied[i] {
			s.cache.drop(g, w.ID)
			continue
		}
		s.cache.put(g, w.ID, cacheEntry{version: w.Expected + 1, val: vals[i], pending: w.Rec.Pending})
	}
}

// cacheCleared records cleared outboxes (or, after an error, drops the
// customers: whether their outboxes are gone is unknown).
func (s *Redis) cacheCleared(server string, obs []Outbox, err error) {
	if s.cache == nil || server == "" {
		return
	}
	g := s.cache.gen.Load()
	if g.server != server {
		return
	}
	for _, o := range obs {
		if err != nil {
			s.cache.drop(g, o.ID)
		} else {
			s.cache.cleared(g, o.ID, o.Version)
		}
	}
}
