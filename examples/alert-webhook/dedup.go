package main

// seenIDs remembers the last n alert keys (source and CloudEvents id): a set
// with first-in-first-out eviction, so its memory is bounded by n whatever
// the traffic. It is not safe for concurrent use.
type seenIDs struct {
	ring []string // the keys in insertion order, a circular buffer
	next int      // where the next key goes (the oldest key, once full)
	set  map[string]struct{}
}

func newSeenIDs(n int) *seenIDs {
	return &seenIDs{ring: make([]string, 0, n), set: make(map[string]struct{}, n)}
}

func (s *seenIDs) has(key string) bool {
	_, ok := s.set[key]
	return ok
}

// add remembers key, forgetting the oldest key when n are remembered.
func (s *seenIDs) add(key string) {
	if s.has(key) {
		return
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, key)
	} else {
		delete(s.set, s.ring[s.next])
		s.ring[s.next] = key
		s.next = (s.next + 1) % len(s.ring)
	}
	s.set[key] = struct{}{}
}
