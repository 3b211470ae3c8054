package bench

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// eventTypes is the mix of the synthetic events, for the default model:
// mostly logins and feature use, some tickets, NPS answers, payments, and a
// type no signal reads (as scorer's benchmarks).
var eventTypes = []struct {
	typ    string
	weight int
}{
	{"login", 30}, {"feature_used", 40}, {"kb_viewed", 8}, {"ticket_opened", 4}, {"ticket_escalated", 1},
	{"nps_submitted", 1}, {"payment_succeeded", 2}, {"payment_failed", 1}, {"page_view", 13},
}

var segments = []string{"enterprise", "smb", "", ""}

// gen produces the synthetic events: n events over customers customers,
// times spread evenly over the 30 days before end, in time order. The same
// seed gives the same events.
type gen struct {
	r        *rand.Rand
	n, custs int
	start    int64 // Unix ns of event 0
	step     int64 // ns between events
	i        int
	idPrefix string

	// Of the last event: its customer index, type, and where its
	// customer ID is in the line.
	cust   int
	typ    string
	ks, ke int
}

func newGen(seed uint64, n, customers int, end time.Time) *gen {
	span := int64(30 * 24 * time.Hour)
	return &gen{
		r: rand.New(rand.NewPCG(seed, 0x6865616c7468)), n: n, custs: customers,
		start: end.UnixNano() - span, step: span / int64(max(n, 1)), idPrefix: "e",
	}
}

// next appends the next event's JSON to b. Its customer ID (the record key)
// is line[g.ks:g.ke].
func (g *gen) next(b []byte) []byte {
	return g.nextAt(b, time.Unix(0, g.start+int64(g.i)*g.step))
}

// nextAt is next with the event time at.
func (g *gen) nextAt(b []byte, at time.Time) []byte {
	k := g.r.IntN(100)
	typ := eventTypes[0].typ
	for _, t := range eventTypes {
		if k < t.weight {
			typ = t.typ
			break
		}
		k -= t.weight
	}
	c := g.r.IntN(g.custs)
	b = append(b, `{"id":"`...)
	b = append(b, g.idPrefix...)
	b = strconv.AppendInt(b, int64(g.i), 10)
	b = append(b, `","customer_id":"`...)
	g.ks = len(b)
	b = appendCustomer(b, c)
	g.ke = len(b)
	b = append(b, `","type":"`...)
	b = append(b, typ...)
	b = append(b, `","time":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if typ == "nps_submitted" {
		b = append(b, `,"value":`...)
		b = strconv.AppendInt(b, int64(g.r.IntN(11)), 10)
	}
	b = append(b, `,"segment":"`...)
	b = append(b, segments[c%len(segments)]...)
	b = append(b, `","attributes":{"source":"web","plan":"pro"}}`...)
	g.i++
	g.cust, g.typ = c, typ
	return b
}

// appendCustomer appends the customer ID of index c, e.g. "cust-0000042".
func appendCustomer(b []byte, c int) []byte {
	b = append(b, "cust-"...)
	s := strconv.Itoa(c)
	for range 7 - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}
