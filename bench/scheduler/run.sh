#!/usr/bin/env bash
# Scheduler at scale (issue 4), see bench/README.md and docs/benchmarks.md.
# The real embedded etcd (loopback, temp dir) and the real controller and
# scheduler, with simulated nodes and fake agents (no Docker). Per trial:
#   throughput: 5,000 nodes, 100 services of 1,000 replicas written at once;
#   latency:    1,000 nodes, 1,000 services of 10 replicas written at
#               50 services/s;
# and once, for context, the throughput run with the controller's default
# batch of 100 operations (what it uses on an external etcd).
# Progress goes to stderr, the Markdown report to stdout and to
# $BENCH_OUT/report.md with the raw outputs.
#
# Knobs: BENCH_TRIALS (3), BENCH_OUT (a new /tmp dir),
# SCHED_NODES (5000), SCHED_REPLICAS (100000), SCHED_LAT_NODES (1000),
# SCHED_LAT_RATE (50 services/s).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"

TRIALS=${BENCH_TRIALS:-3}
NODES=${SCHED_NODES:-5000}
REPLICAS=${SCHED_REPLICAS:-100000}
LAT_NODES=${SCHED_LAT_NODES:-1000}
LAT_RATE=${SCHED_LAT_RATE:-50}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
OUT=${BENCH_OUT:-/tmp/ruche-bench-sched-$STAMP}
mkdir -p "$OUT"
TOOL=$OUT/schedbench
log() { printf '==> %s\n' "$*" >&2; }

go build -o "$TOOL" ./bench/scheduler
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# field FILE NAME: a value of a run's output.
field() { awk -F'\t' -v k="$2" '$1 == k { print $2 }' "$1"; }

run() { # name args...
	local name=$1
	shift
	log "$name: schedbench $*"
	if ! "$TOOL" -label "$name" "$@" >"$OUT/$name.tsv" 2>"$OUT/$name.err"; then
		log "$name FAILED: $(tail -n1 "$OUT/$name.err")"
		return 0
	fi
	log "$name: $(field "$OUT/$name.tsv" placements_per_s) placements/s, p99 $(field "$OUT/$name.tsv" latency_p99_ms) ms, RSS peak $(field "$OUT/$name.tsv" rss_peak_mib) MiB"
}

for i in $(seq 1 "$TRIALS"); do
	run "throughput-$i" -nodes "$NODES" -replicas "$REPLICAS" -services 100
	run "latency-$i" -nodes "$LAT_NODES" -replicas 10000 -services 1000 -rate "$LAT_RATE"
done
run "throughput-batch100" -nodes "$NODES" -replicas "$REPLICAS" -services 100 -max-txn-ops 0

# median of the values on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

{
	echo "### Run of $STARTED (\`bench/scheduler/run.sh\`, $((SECONDS / 60)) min $((SECONDS % 60)) s)"
	echo
	echo "- ruche: HEAD $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- internal bench 2>/dev/null || echo ' (with uncommitted changes in internal/ or bench/)')"
	echo "- CPU: $(nproc) × $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1); memory $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); Go $(go env GOVERSION)"
	echo "- load average (1, 5, 15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (the machine is shared)"
	echo
	echo "| run | nodes | replicas | placements/s | first→last task/s | p50 latency | p99 latency | all running after | RSS peak | Go heap | etcd db | violations | extra tasks |"
	echo "|-----|------:|---------:|-------------:|------------------:|------------:|------------:|------------------:|---------:|--------:|--------:|-----------:|------------:|"
	for f in "$OUT"/throughput-[0-9]*.tsv "$OUT"/latency-*.tsv "$OUT"/throughput-batch100.tsv; do
		[ -s "$f" ] || continue
		printf '| %s | %s | %s | %s | %s | %s ms | %s ms | %s s | %s MiB | %s MiB | %s MiB | %s | %s |\n' \
			"$(field "$f" run)" "$(field "$f" nodes)" "$(field "$f" replicas)" "$(field "$f" placements_per_s)" "$(field "$f" first_to_last_per_s)" \
			"$(field "$f" latency_p50_ms)" "$(field "$f" latency_p99_ms)" "$(field "$f" all_running_s)" \
			"$(field "$f" rss_peak_mib)" "$(field "$f" go_heap_inuse_mib)" "$(field "$f" etcd_db_mib)" \
			"$(field "$f" violations)" "$(field "$f" tasks_shutdown)"
	done
	echo
	tput=$(for f in "$OUT"/throughput-[0-9]*.tsv; do field "$f" placements_per_s; done | median)
	p99=$(for f in "$OUT"/latency-*.tsv; do field "$f" latency_p99_ms; done | median)
	rss=$(for f in "$OUT"/throughput-[0-9]*.tsv; do field "$f" rss_peak_mib; done | median)
	verdict() { awk -v v="$1" -v g="$2" -v op="$3" 'BEGIN { if (v == "n/a") print "not measured"; else if ((op == ">=" && v >= g) || (op == "<=" && v <= g)) print "met"; else print "NOT met" }'; }
	echo "- placements/s at $NODES nodes, $REPLICAS replicas (median of $TRIALS; from the services' write to the last task seen): **$tput** — goal ≥ 5,000: $(verdict "$tput" 5000 ">=")"
	echo "- p99 placement latency at $LAT_NODES nodes, $LAT_RATE deploys/s (median of $TRIALS): **$p99 ms** — goal ≤ 50 ms: $(verdict "$p99" 50 "<=")"
	echo "- RSS of the process (etcd + controller + $NODES fake agents' watches + the measuring watch) at $REPLICAS replicas (median of peaks): **$rss MiB**"
} >"$OUT/report.md"
cat "$OUT/report.md"
log "report and raw outputs: $OUT"
