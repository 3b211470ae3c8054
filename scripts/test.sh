#!/usr/bin/env bash
# scripts/test.sh is THE test suite of healthscore; run it with `make test`.
#
# It installs what it is missing (as root on Debian: redis-server,
# redis-tools, redis-sentinel, kcat, prometheus, chromium via apt; staticcheck via go install), then runs gofmt,
# go vet, staticcheck, the tests with -race against a real redis-server
# (HEALTHSCORE_REQUIRE_REDIS=1: no silent skips) and brief fuzzing of every
# Fuzz* target. All steps run; the exit code is non-zero if any failed.
#
# Knobs (environment):
#   FUZZ_BUDGET=120   total seconds of fuzzing, shared by all targets (0: none)
#   FUZZ_MAX=10       at most this many seconds per target
#   STATICCHECK_VERSION=v0.8.2
#   BENCH_SMOKE=1     run the benchmark harness smoke (healthscore bench --smoke; 0: skip)
#   CHAOS=1           run the short fault suite (make chaos-short; 0: skip)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# staticcheck 2026.2.2 (v0.8.2) understands Go 1.26; older releases do not.
STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2}
FUZZ_BUDGET=${FUZZ_BUDGET:-120}
FUZZ_MAX=${FUZZ_MAX:-10}

failed=()
section() { printf '\n==== %s ====\n' "$*"; }
steps=0
step() { # step NAME CMD...: run CMD, remember NAME if it fails
	local name=$1
	shift
	steps=$((steps + 1))
	if ! "$@"; then
		echo "FAILED: $name" >&2
		failed+=("$name")
	fi
}

section "tools"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=$PATH:/usr/local/go/bin
fi
pkgs=()
command -v redis-server >/dev/null || pkgs+=(redis-server)
command -v redis-cli >/dev/null || pkgs+=(redis-tools)
command -v redis-sentinel >/dev/null || pkgs+=(redis-sentinel)
command -v kcat >/dev/null || pkgs+=(kcat)
command -v prometheus >/dev/null && command -v promtool >/dev/null || pkgs+=(prometheus)
command -v chromium >/dev/null || pkgs+=(chromium)
if ((${#pkgs[@]})); then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		echo "installing: ${pkgs[*]}"
		# apt does not start services here; the tests start redis-server themselves.
		apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" ||
			failed+=("apt-get install ${pkgs[*]}")
	else
		echo "missing ${pkgs[*]}: install them (Debian: apt-get install redis-server redis-tools redis-sentinel kcat prometheus chromium)" >&2
	fi
fi
gobin=$(go env GOBIN)
[[ -n $gobin ]] || gobin=$(go env GOPATH)/bin
staticcheck=$gobin/staticcheck
want_sc=${STATICCHECK_VERSION#v}
if ! [[ -x $staticcheck ]] || ! "$staticcheck" -version 2>/dev/null | grep -F "($want_sc)" >/dev/null; then
	echo "installing staticcheck@$STATICCHECK_VERSION into $gobin"
	GOBIN=$gobin go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ||
		failed+=("install staticcheck")
fi
go version
"$staticcheck" -version 2>/dev/null || echo "staticcheck: missing"
redis-server --version 2>/dev/null || echo "redis-server: missing"
kcat -V 2>/dev/null | sed -n 1p || echo "kcat: missing"
prometheus --version 2>/dev/null | sed -n 1p || echo "prometheus: missing"
chromium --version 2>/dev/null || echo "chromium: missing"

section "gofmt"
gofmt_check() {
	local files
	files=$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l)
	if [[ -n $files ]]; then
		echo "not gofmt-ed (run gofmt -w on them):"
		echo "$files"
		return 1
	fi
	echo "ok"
}
step gofmt gofmt_check

section "go mod tidy"
# go.mod and go.sum must be exactly what `go mod tidy` writes.
step "go mod tidy" go mod tidy -diff

section "go vet"
step "go vet" go vet ./...
step "go vet (ceiling measurement, build tag)" go vet -tags ceiling ./fit/

section "staticcheck"
step staticcheck "$staticcheck" ./...

section "go test -race"
step "go test" env HEALTHSCORE_REQUIRE_REDIS=1 go test -race -count=1 ./...

# ---- deployments -------------------------------------------------------------
# deployments/ is its own Go module (the libraries that check the ops
# artifacts stay out of the service's go.mod): promtool check/test rules, a
# real Prometheus scraping `healthscore run --demo` running every dashboard
# and rule expression, dashboards decoded with grafana-foundation-sdk,
# kustomize overlays decoded into the Kubernetes types, the compose file
# loaded with compose-go, the Dockerfile parsed with BuildKit's parser, and
# the e2e suite against dev-broker + redis-server as external endpoints (the
# testcontainers launcher skips without Docker). gofmt above covers it.
section "deployments"
deployments_checks() {
	(cd deployments && go vet ./... && "$staticcheck" ./... &&
		HEALTHSCORE_REQUIRE_REDIS=1 go test -race -count=1 ./...)
}
step "deployments" deployments_checks
# ---- end of deployments ---------------------------------------------------------

# ---- browser test --------------------------------------------------------------
# e2e/browser is its own Go module (chromedp stays out of the service's
# go.mod): headless chromium, driven by chromedp, against the real binary
# with seeded events: the at-risk list equals the API's, a customer page
# shows the API's score and drivers, keyboard navigation, the token prompt,
# no console errors. HEALTHSCORE_REQUIRE_BROWSER=1: no silent skip.
section "browser"
browser_checks() {
	(cd e2e/browser && go mod tidy -diff && go vet ./... && "$staticcheck" ./... &&
		HEALTHSCORE_REQUIRE_BROWSER=1 go test -race -count=1 ./...)
}
step "browser" browser_checks
# ---- end of browser test ---------------------------------------------------------

section "allocation tests (no -race)"
# The race detector allocates on its own: allocation counts are asserted
# only in a build without it.
step "allocations" go test -count=1 -run 'Allocations' ./alerts/ ./ingest/ ./consumer/ # the packages with AllocsPerRun tests

section "fuzz"
# fuzz_one DIR NAME SECONDS fuzzes one target. Go 1.26's fuzz coordinator can
# fail a run with a bare "context deadline exceeded" exactly at -fuzztime
# (golang/go#75804, fixed in Go 1.27) without any failing input. Such a run
# counts as passed only when nothing else failed and no new reproducer was
# written to DIR/testdata/fuzz/NAME; a real finding always fails.
fuzz_one() {
	local dir=$1 name=$2 secs=$3 corpus before after out rc
	corpus=$dir/testdata/fuzz/$name
	before=$(ls "$corpus" 2>/dev/null | wc -l)
	out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" "$dir" 2>&1)
	rc=$?
	echo "$out" | tail -n 25
	((rc == 0)) && return 0
	after=$(ls "$corpus" 2>/dev/null | wc -l)
	if ((after == before)) && grep -q '^    context deadline exceeded$' <<<"$out" &&
		! grep -qE 'panic:|Failing input written' <<<"$out" &&
		[[ $(grep -c -- '--- FAIL' <<<"$out") == 1 ]]; then
		echo "(ignored: the Go fuzz coordinator's deadline race, golang/go#75804; no failing input)"
		return 0
	fi
	return "$rc"
}
# Every "func FuzzX(f *testing.F)" as "dir FuzzX".
mapfile -t targets < <(
	grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\([a-z]+ \*testing\.F\)' . |
		sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' | sort -u
)
if ((${#targets[@]} == 0)) || ((FUZZ_BUDGET <= 0)); then
	echo "no fuzzing (${#targets[@]} targets, FUZZ_BUDGET=$FUZZ_BUDGET)"
else
	per=$((FUZZ_BUDGET / ${#targets[@]}))
	((per > FUZZ_MAX)) && per=$FUZZ_MAX
	((per < 2)) && per=2
	echo "${#targets[@]} targets, ${per}s each"
	for t in "${targets[@]}"; do
		read -r dir name <<<"$t"
		echo "--- $name ($dir)"
		step "fuzz $name" fuzz_one "$dir" "$name" "$per"
	done
fi

# ---- benchmark harness smoke ------------------------------------------------
# `healthscore bench --smoke` runs the whole harness (dev-broker and
# redis-server as processes, bare, the pipeline binary, the search for the
# highest sustained paced rate, latency at 25% and 50% of it, memory, naive,
# offline; no Redis Cluster row) on 20k events in well under a minute. It checks that the
# harness works end to end and writes its JSON; it asserts no figures, since
# CI machines are shared (docs/performance.md has the measured ones).
section "bench smoke"
bench_smoke() {
	local dir rc
	dir=$(mktemp -d) || return 1
	go build -o "$dir/healthscore" ./cmd/healthscore &&
		timeout 120 "$dir/healthscore" bench --smoke --json "$dir/bench.json"
	rc=$?
	local key
	for key in bare_events_per_s pipeline_events_per_s naive_events_per_s pipeline_over_bare \
		pipeline_over_naive sustained_events_per_s p99_ms bytes_per_customer bytes_per_customer_without_history \
		history_bytes_per_customer offline_events_per_s pipeline_us_per_evaluation redis_shards loop_busy; do
		((rc == 0)) || break
		grep -q "\"$key\": [0-9]" "$dir/bench.json" || { echo "bench.json: no $key" >&2; rc=1; }
	done
	if ((rc == 0)) && ! grep -q '"latency_redis_commands": \[' "$dir/bench.json"; then
		echo "bench.json: no latency_redis_commands" >&2
		rc=1
	fi
	((rc == 0)) || echo "bench smoke failed (exit $rc)" >&2
	rm -rf "$dir"
	return $rc
}
if [[ ${BENCH_SMOKE:-1} == 0 ]]; then
	echo "skipped (BENCH_SMOKE=0)"
else
	step "bench smoke" bench_smoke
fi
# ---- end of benchmark harness smoke -------------------------------------------

# ---- fault suite (short) ------------------------------------------------------
# `make chaos-short`: dev-broker, redis-server with AOF and 3 healthscore
# processes as real processes; static group members SIGKILLed every 1-3 s, Redis
# SIGKILLed twice, broker errors and a 10 s outage, while 200k events (1% bad)
# flow; then every state is checked against the offline fold, every alert
# stream and every dead letter; then the focused Redis-stall and SIGTERM
# tests. Prints the summary table. About 4 minutes on 2 cores.
section "fault suite (short)"
if [[ ${CHAOS:-1} == 0 ]]; then
	echo "skipped (CHAOS=0)"
else
	step "chaos-short" make --no-print-directory chaos-short
fi
# ---- end of fault suite -------------------------------------------------------

section "summary"
if ((${#failed[@]})); then
	printf 'FAILED: %s\n' "${failed[@]}"
	echo "checks: $((steps - ${#failed[@]})) passed, ${#failed[@]} failed"
	exit 1
fi
echo "all checks passed"
echo "checks: $steps passed, 0 failed"
