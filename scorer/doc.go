// Package scorer owns the health-scoring contract: the input event and its
// decoder, the model (parsed from YAML bytes it is given), the small
// per-customer state folded from events with exponential time decay, the
// score and band math, the explanations of every score and change, and the
// current day's score-history point with the days an evaluation closes
// (history.go) and the compact form of a kept band change (change.go).
//
// The package is pure: no Kafka, no Redis, no files and no wall clock. Time is
// always an argument (an event's time or an evaluation instant), so the same
// events always give the same state and the same score, whatever their
// arrival order. The math is documented in docs/model.md.
//
// Non-goals: transport (package consumer), persistence (package state) and
// output events (package alerts).
package scorer
