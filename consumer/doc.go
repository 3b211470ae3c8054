// Package consumer owns the streaming pipeline's input side and its
// effectively-once loop: a franz-go consumer group on the event topics that,
// per batch (one poll, or several polls' records while catching up: see
// catchup.go), decodes records (bad ones to the dead-letter topic), groups them
// by customer, loads their states in one Redis round trip, folds the events
// not applied yet (per-partition offsets kept in each customer's state make
// redeliveries no-ops), evaluates, saves each state together with the
// outputs it calls for (an outbox, with a compare-and-set), produces the
// outputs and waits for their acknowledgement, clears the outboxes, and only
// then commits the offsets. A crash anywhere can only cause a redelivery, and
// a saved outbox is produced again by the next load of that customer, so no
// alert is lost and the alert stream matches the recorded band transitions.
//
// It declares the small interfaces it needs from package state; outputs are
// encoded by package alerts and scores computed by package scorer.
package consumer
