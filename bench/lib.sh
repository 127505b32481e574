# bench/lib.sh: what the bench scripts share, sourced by them (not run).
# Only functions that are the same in every script that uses them; each
# script keeps its own knobs, names and cleanup. Needs bash, set -euo
# pipefail in the caller, and the repository root as working directory.

log() { printf '==> %s\n' "$*" >&2; }

# want SCENARIO: whether SCENARIO is in the caller's $SCENARIOS.
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# containers_named PREFIX: IDs of containers whose name starts with PREFIX.
containers_named() {
	docker ps -a --format '{{.ID}} {{.Names}}' | awk -v p="$1" 'index($2, p) == 1 { print $1 }'
}

remove_containers() {
	local ids
	ids=$(containers_named "$1")
	[ -z "$ids" ] || docker rm -f $ids >/dev/null
}

# need_docker: exits when no Docker engine answers.
need_docker() {
	docker version --format '{{.Server.Version}}' >/dev/null || { echo "no Docker engine answers" >&2; exit 1; }
}

# remove_leftovers PREFIX...: containers of an earlier run, by name prefix.
remove_leftovers() {
	local p
	for p in "$@"; do
		if [ -n "$(containers_named "$p")" ]; then
			log "removing leftover containers $p* of an earlier run"
			remove_containers "$p"
		fi
	done
}

# dockerd_pid: the pid of the dockerd serving /var/run/docker.sock (empty
# when it cannot be told).
dockerd_pid() {
	ss -Hxlp src /var/run/docker.sock | sed -n 's/.*"dockerd",pid=\([0-9]*\).*/\1/p' | head -n1
}

# build_ruche_and_image: bin/ruche and $IMAGE (FROM scratch + static
# examples/hello), unless BENCH_SKIP_BUILD=1; docker build's errors go
# through $WORK/build.err.
build_ruche_and_image() {
	[ "${BENCH_SKIP_BUILD:-0}" != 1 ] || return 0
	log "building ruche (make build)"
	make -s build >&2
	log "building the image $IMAGE (FROM scratch + static examples/hello)"
	CGO_ENABLED=0 go build -trimpath -o examples/hello/hello ./examples/hello
	DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" examples/hello >/dev/null 2>"$WORK/build.err" || {
		cat "$WORK/build.err" >&2
		exit 1
	}
}

# machine_host_facts: the report's lines on the host (CPU, memory,
# kernel, OS), as Markdown list items.
machine_host_facts() {
	echo "- CPU: $(nproc) × $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "- memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "- kernel: $(uname -sr)"
	echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME")"
}

# wait_ruche_up: until `$RUCHE status` answers; exits when ruche up
# ($RUCHE_PID, log $OUT/ruche-up.log) ends first. Then prints the status.
wait_ruche_up() {
	for _ in $(seq 1 120); do
		"$RUCHE" status >/dev/null 2>&1 && break
		kill -0 "$RUCHE_PID" 2>/dev/null || { tail -n 20 "$OUT/ruche-up.log" >&2; echo "ruche up exited" >&2; exit 1; }
		sleep 0.5
	done
	"$RUCHE" status >&2
}

# run_testbed_bench NAME WHY FLAG...: the testbed benchmarks (failover,
# managers): needs root (WHY says for what), builds bin/ruche unless
# BENCH_SKIP_BUILD=1 and ./bench/NAME into $OUT (BENCH_OUT, by default
# bench/results/NAME-<time>), then runs it with -bin bin/ruche -out $OUT
# and FLAG..., its progress also to $OUT/progress.log.
run_testbed_bench() {
	local name=$1 why=$2
	shift 2
	if [ "$(id -u)" != 0 ]; then
		echo "bench/$name: needs root ($why)" >&2
		exit 1
	fi
	local stamp out
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	out=${BENCH_OUT:-bench/results/$name-$stamp}
	mkdir -p "$out"
	if [ "${BENCH_SKIP_BUILD:-}" != 1 ]; then
		make --no-print-directory build >&2
	fi
	go build -o "$out/$name" "./bench/$name"
	echo "==> bench/$name: results in $out" >&2
	"$out/$name" -bin bin/ruche -out "$out" "$@" 2> >(tee "$out/progress.log" >&2)
}
