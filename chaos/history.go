package chaos

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/healthscore/healthscore/alerts"
	"github.com/healthscore/healthscore/scorer"
	"github.com/healthscore/healthscore/state"
)

// checkHistory checks each stored customer's score history, which the save
// script writes with the record (the service runs with its default
// --history-days): it decodes, its health.low and health.recovered changes
// alternate (a save applied twice, or a change without its save, would
// break that), and the newest of them agrees with the final band, as the
// alerts must (red ⇔ health.low). The default model has no trend section,
// so no health.dropped pushes them out of the last 10 changes.
func checkHistory(ctx context.Context, rdb *redis.Client, bands map[string]string, res *Result) error {
	store, err := state.NewRedis(rdb, state.Config{})
	if err != nil {
		return err
	}
	for id, band := range bands {
		_, h, err := store.GetWithHistory(ctx, id)
		if err != nil {
			res.HistoryViolations++
			res.example("%s: %v", id, err)
			continue
		}
		if len(h.Days) > 0 {
			res.HistoryDays++
		}
		var lr []string // newest first
		for _, b := range h.Changes {
			c, err := scorer.DecodeChange(b)
			if err != nil {
				lr = append(lr, "undecodable")
				continue
			}
			if c.Type == alerts.TypeLow || c.Type == alerts.TypeRecovered {
				lr = append(lr, c.Type)
			}
		}
		ok := (band == state.BandRed) == (len(lr) > 0 && lr[0] == alerts.TypeLow)
		for i := range lr {
			ok = ok && lr[i] != "undecodable" && (i == 0 || lr[i] != lr[i-1])
		}
		if !ok {
			res.HistoryViolations++
			res.example("%s: final band %q, last changes %v (newest first)", id, band, lr)
		}
	}
	return nil
}
