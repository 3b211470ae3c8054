# `make test` is THE test command: gofmt, vet, staticcheck, race tests
# against a real redis-server, and brief fuzzing (see scripts/test.sh).
.PHONY: all build test test-quick

all: build

build:
	go build ./...

test:
	bash scripts/test.sh

# Tests only, no tool installs or fuzzing; Redis tests skip without redis-server.
test-quick:
	go test -race -count=1 ./...
