#!/usr/bin/env bash
# The node-failover benchmark of issue 4 (`make bench` runs it), see
# bench/README.md ("Node failover") and docs/benchmarks.md. In one run, on
# a 3-node testbed (internal/testbed: network namespaces, a dockerd each):
# ruche first, then Docker Swarm across the same daemons, the same
# service (3 replicas of the hello image with a healthcheck); per trial a
# node holding replicas is powered off and the time until the full count
# is ready on the other nodes is measured. Needs root.
#
# The report is printed (Markdown) and written with results.tsv (one row
# per trial) and every node's logs to $BENCH_OUT, by default
# bench/results/failover-<time>/ (gitignored). Progress goes to stderr.
#
# Knobs: BENCH_FO_TRIALS (10), BENCH_FO_SYSTEMS ("ruche,swarm"),
# BENCH_OUT, BENCH_SKIP_BUILD=1 to reuse bin/ruche.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"

. bench/lib.sh
run_testbed_bench failover "network namespaces, a dockerd per node" \
	-trials "${BENCH_FO_TRIALS:-10}" -systems "${BENCH_FO_SYSTEMS:-ruche,swarm}" \
	-version "$(git describe --always --dirty 2>/dev/null || echo dev)"
