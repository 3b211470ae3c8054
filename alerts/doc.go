// Package alerts owns healthscore's output contract: the CloudEvents 1.0
// events published for score changes and alerts (their types, JSON schemas,
// structured-mode encoding and deterministic ids), the Kafka records that
// carry them (topic, key, headers), and the dead-letter record format for
// input records that cannot be scored.
//
// Outputs, per customer and evaluation (see [Encoder.AppendRecords]):
//
//   - [TypeScoreChanged] on Config.ScoreTopic when the outcome changed the
//     published score or band;
//   - [TypeLow] on Config.AlertTopic when the band entered red (including a
//     first score in red), [TypeRecovered] when it left red;
//   - [TypeDropped] on Config.AlertTopic when the score fell a model's
//     trend.drop_points below the customer's baseline.
//
// Outputs of a decay-driven evaluation (a timer, no new event) carry a
// decay [Cause]; while a manual override is in force the data say so.
//
// Every record is keyed by customer_id, so a customer's outputs stay in one
// partition in order. The value is a structured-mode CloudEvent in JSON,
// written by a small append-based writer (no reflection: this runs for every
// changed customer). The event id is a pure function of the event type, the
// customer and the input record that caused it (see [EventID]), so a
// redelivered input re-publishes the same id and downstream consumers can
// de-duplicate. The schemas and the id rule are documented in docs/events.md.
//
// Non-goals: producing (the consumer produces the records with its own
// franz-go client and waits for acknowledgements), deciding what to publish
// (scorer.Model.Step does) and decoding input events (package scorer).
package alerts
