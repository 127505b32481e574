#!/usr/bin/env bash
# The three-managers benchmark of issue 5 (`make bench` runs it), see
# bench/README.md ("Managers") and docs/benchmarks.md. On a 3-node testbed
# (internal/testbed: network namespaces) three `ruche server` managers;
# per trial the leader is SIGKILLed and the time to the next acknowledged
# write and to a new leader is measured; then the idle RSS of each manager
# with 100 services. Needs root.
#
# Knobs: BENCH_MGR_TRIALS (10), BENCH_MGR_ELECTION_MS (etcd's default
# timing, what `ruche server` runs; 500 for --store-election-ms 500
# --store-heartbeat-ms 50), BENCH_MGR_REPLICAS (0; N > 0: the managers run `ruche up`, an
# agent each, and the idle services have N replicas each), BENCH_OUT,
# BENCH_SKIP_BUILD=1 to reuse bin/ruche.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"

. bench/lib.sh
run_testbed_bench managers "network namespaces" -trials "${BENCH_MGR_TRIALS:-10}" \
	-election-ms "${BENCH_MGR_ELECTION_MS:-}" -replicas "${BENCH_MGR_REPLICAS:-0}"
