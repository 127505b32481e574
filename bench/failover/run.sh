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

if [ "$(id -u)" != 0 ]; then
	echo "bench/failover: needs root (network namespaces, a dockerd per node)" >&2
	exit 1
fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-bench/results/failover-$STAMP}
mkdir -p "$OUT"
if [ "${BENCH_SKIP_BUILD:-}" != 1 ]; then
	make --no-print-directory build >&2
fi
go build -o "$OUT/failover" ./bench/failover
echo "==> bench/failover: results in $OUT" >&2
"$OUT/failover" -bin bin/ruche -out "$OUT" \
	-trials "${BENCH_FO_TRIALS:-10}" -systems "${BENCH_FO_SYSTEMS:-ruche,swarm}" \
	-version "$(git describe --always --dirty 2>/dev/null || echo dev)" \
	2> >(tee "$OUT/progress.log" >&2)
