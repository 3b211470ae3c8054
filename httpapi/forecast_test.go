package httpapi

import (
	"context"
	"slices"

	"github.com/healthscore/healthscore/state"
)

// DueBefore lists every stored customer as due (the fake has no schedule),
// by id, at most limit.
func (f *fakeReader) DueBefore(_ context.Context, _ int64, limit int) ([]state.Due, bool, error) {
	if f.err != nil {
		return nil, false, f.err
	}
	var ds []state.Due
	for id := range f.recs {
		ds = append(ds, state.Due{ID: id})
	}
	slices.SortFunc(ds, func(a, b state.Due) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	if len(ds) > limit {
		return ds[:limit], true, nil
	}
	return ds, false, nil
}

func (f *fakeReader) Read(_ context.Context, ids []string) ([]state.Record, error) {
	if f.err != nil {
		return nil, f.err
	}
	recs := make([]state.Record, len(ids))
	for i, id := range ids {
		recs[i] = f.recs[id]
	}
	return recs, nil
}
