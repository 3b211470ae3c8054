// Package bench owns the benchmark harness behind `healthscore bench`: it
// starts (or is given) a Kafka-compatible broker and a redis-server as
// separate processes, preloads synthetic events, and measures side by side in
// one run the bare-consume limit, the real pipeline binary, a naive
// per-event design, the pipeline's latency under paced load, Redis memory per
// customer and the offline scorer on one core.
//
// Ratios measured in the same run are the result; absolute figures on shared
// machines are noise. Non-goals: load generation for production clusters,
// and any tuning of the service (the harness only observes it: the pipeline
// runs as `healthscore run`, unchanged).
package bench
