// Package fit owns learning a health model from an event history: which
// signals (event type, kind, half-life, target) to keep or add, their
// weights and directions, and the bands, so that the model's score ranks
// customers by their risk of churning within a horizon.
//
// It reads only events at or before the cut-off T it is given; every label
// window it uses ends at T at the latest (a time-split validation inside
// that history), so a fit at T never depends on anything after T. The
// learner is an L2-regularised logistic regression on the scorer's own
// sub-scores (see docs/backtesting.md, section Fitting), mapped back to a
// model file whose score is a monotone function of the regression's linear
// predictor. It writes the model as YAML with comments saying what changed
// and why, and a report with the validation AUC before and after.
//
// Non-goals: it does not score streams (package scorer and consumer do) and
// does not evaluate at later cut-offs (that is the backtest's job).
package fit
