package state

import "context"

// BindTo opens a session bound to server without reading it, as if it had
// been opened on that server (e.g. before a restart).
func (s *Redis) BindTo(server string) Bound { return &Session{s: s, server: server} }

// EncodeNamed encodes r in the named offsets layout that versions before
// topic ids wrote.
func EncodeNamed(r Record) ([]byte, error) { return encodeRecord(nil, r, nil) }

// BandPaged is Band with records loaded page candidates at a time.
func (s *Redis) BandPaged(ctx context.Context, band string, limit int, page int) ([]Member, error) {
	return s.bandWhere(ctx, band, limit, nil, page)
}
