# `make test` is THE test command: gofmt, vet, staticcheck, race tests
# against a real redis-server, and brief fuzzing (see scripts/test.sh).
.PHONY: all build test test-quick chaos chaos-short

all: build

build:
	go build ./...

test:
	bash scripts/test.sh

# Tests only, no tool installs or fuzzing; Redis tests skip without redis-server.
test-quick:
	go test -race -count=1 ./...

# The fault suite (chaos/, docs/reliability.md): dev-broker, redis-server
# (AOF) and 3 healthscore processes, killed and broken while events flow.
# chaos-short is what CI runs (scripts/test.sh): 200k events, then the
# focused Redis-stall and SIGTERM tests. chaos is the full run: 2M events,
# the focused tests, and every fuzz target for CHAOS_FUZZTIME each.
CHAOS_FUZZTIME ?= 2m
chaos-short:
	go run ./chaos/cmd/chaos -short
	HEALTHSCORE_CHAOS=1 go test -count=1 -timeout 10m ./chaos/

chaos:
	go run ./chaos/cmd/chaos
	HEALTHSCORE_CHAOS=1 go test -count=1 -timeout 10m ./chaos/
	@grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . | \
		sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' | sort -u | \
		while read -r dir name; do \
			echo "--- fuzz $$name ($$dir) for $(CHAOS_FUZZTIME)"; \
			go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(CHAOS_FUZZTIME) "$$dir" || exit 1; \
		done
