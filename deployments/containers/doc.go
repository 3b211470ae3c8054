// Package containers runs healthscore's end-to-end suite (the e2e package
// of the service's module) against Kafka and Redis outside the test
// process, given to it as HEALTHSCORE_TEST_BROKERS and
// HEALTHSCORE_TEST_REDIS (see internal/testenv):
//
//   - TestE2EAgainstContainers starts apache/kafka and redis with
//     testcontainers-go's kafka and redis modules when a Docker engine is
//     available, and skips, saying so, when none is;
//   - TestE2EAgainstDevBrokerAndRedisServer gives the suite a
//     `healthscore dev-broker` and a redis-server as processes: what CI
//     runs, since its machines have no Docker.
//
// It has tests only; nothing here ships.
package containers
