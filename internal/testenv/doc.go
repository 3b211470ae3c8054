// Package testenv owns the test environment shared by healthscore's packages:
// a real redis-server per test package and in-process Kafka clusters.
//
// Redis: a package whose tests need Redis calls [RunWithRedis] from its
// TestMain. The first test that asks for Redis via [Redis] (or
// [RedisOptions]) starts ONE redis-server from PATH for the whole package,
// listening only on a unix socket in a short temporary directory under /tmp
// (TCP off, no persistence), and RunWithRedis stops it when the tests are
// done. Every call to Redis returns a fresh client and a unique key prefix, so
// tests may run in parallel against the shared server; keys under the prefix
// are deleted when the test ends.
//
// Environment:
//
//	HEALTHSCORE_TEST_REDIS=redis://host:port/db  use that server instead of starting one
//	HEALTHSCORE_REQUIRE_REDIS=1                  fail (not skip) when redis-server is missing
//	HEALTHSCORE_TEST_BROKERS=host:9092,...       use these Kafka brokers in [Kafka]
//
// Kafka: [Kafka] returns broker addresses of a one-broker in-process kfake
// cluster with the given topics seeded (or of the external brokers, with the
// topics created there); [KafkaCluster] always runs in-process and also
// returns the *kfake.Cluster for fault injection with control functions.
//
// Non-goals: production code must never import this package.
package testenv
