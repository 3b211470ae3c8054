// Package ingest owns the input formats of the service and their mapping to
// scorer.Event: the native JSON event (scorer.DecodeEvent, unchanged),
// CloudEvents 1.0 in structured mode (a JSON envelope) and in binary mode
// (ce_* Kafka headers, as the CloudEvents Kafka protocol binding defines
// them), and Segment's track, identify and group calls. A Decoder picks the
// format of each record, per topic: a configured one, or auto-detection.
//
// Detection never costs native records a second parse: a record with a
// ce_specversion header is a binary CloudEvent, one whose content-type
// header is application/cloudevents+json a structured one, and any other
// record is first decoded as a native event; only when that fails (other
// than on bad JSON or UTF-8) is the record looked at again, to tell a
// CloudEvent envelope (a specversion field) or a Segment call (a type of
// track, identify, group, page, screen or alias) from a bad native event.
//
// Every failure is a *scorer.DecodeError whose Detail names the format the
// record looked like and what it lacked, so the dead-letter headers say what
// to fix.
//
// The package is pure: no Kafka types (headers are passed as Header
// values), no files (ParseConfig parses the bytes it is given), no clock.
//
// Non-goals: manual overrides (scorer.TypeOverride) are read only in the
// native format, their extra fields having no mapping here; output formats
// (package alerts).
package ingest
