#!/usr/bin/env bash
# The single-node benchmark (`make bench`), see bench/README.md and
# docs/benchmarks.md. In one run on this machine:
#   1. time for 20 replicas of ruche-hello:latest to converge, three ways:
#      20 parallel `docker run -d` (baseline), `ruche deploy` on `ruche up`
#      with its default networks (ruche's own, as root: counted once every
#      replica's network namespace has its default route, benchtool
#      converge -network-ready, since its containers start before ruche
#      wires them), and
#      `docker service create --replicas 20 --detach=false` (Swarm); and,
#      for context, 20 parallel `docker run -d` on a network of their own
#      (what ruche's per-project network costs dockerd); trials are
#      interleaved (one of each per round) so background load falls on all
#      alike;
#      and, for context too, bench/netwire: a prototype of the platform
#      wiring its containers itself (no Docker network, a veth pair, an
#      address and a route by netlink, a waiter holding the command until
#      then), what private networks would leave of a replica's start;
#      and `ruche deploy` on a second `ruche up --networks docker` (a
#      Docker network per project network);
#   2. VmRSS of an idle `ruche up` running 50 replicas (and of dockerd).
# Progress goes to stderr, the Markdown report to stdout and to
# $BENCH_OUT/report.md with the logs.
#
# Everything it creates is named bench-*: containers bench-run-* and
# bench-runnet-*, bench-runnone-*, bench-wire-* (and the bridge
# bench-wire0 with its veth pairs bwh*), the network bench-runnet, the Swarm
# service bench-swarmn and its overlay network bench-swarmnet, the ruche projects bench-ruche
# and bench-idle, the Swarm service bench-swarm. It
# refuses to run when Swarm is already active (someone else's swarm), and
# always leaves the swarm it created, also on failure or Ctrl-C.
#
# Knobs: BENCH_TRIALS (5), BENCH_IDLE_WAIT seconds (60),
# BENCH_SCENARIOS ("docker-run docker-run-net docker-run-none wired ruche
# ruche-docker swarm swarm-net rss"), BENCH_OUT
# (a new /tmp dir), BENCH_SKIP_BUILD=1 to reuse bin/ruche and the image,
# BENCH_RUCHE_BIN=path to measure another ruche binary than bin/ruche (an
# A/B of two builds: alternate runs, one per binary).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
export DOCKER_CLI_HINTS=false

TRIALS=${BENCH_TRIALS:-5}
REPLICAS=20
IDLE_REPLICAS=50
IDLE_WAIT=${BENCH_IDLE_WAIT:-60}
SCENARIOS=${BENCH_SCENARIOS:-"docker-run docker-run-net docker-run-none wired ruche ruche-docker swarm swarm-net rss"}
# The overlay network of swarm-net, a range no host route reaches or lies
# in (checked before use): containers get addresses from it, in their own
# namespaces only.
SWARMNET_SUBNET=10.213.77.0/24
# The bridge of the wired prototype, checked the same way; its first
# address goes on the bridge, the containers' in their namespaces; no NAT,
# no route out, and nothing sends traffic on it.
WIRE_SUBNET=10.213.78.0/24
# ruche up's --private-range (ruche's networks): the nodes' /24, then one
# per network (bench-ruche, bench-idle).
PRIVNET_RANGE=10.213.80.0/22
WIRE_BRIDGE=bench-wire0
TRIAL_TIMEOUT=3m
IMAGE=ruche-hello:latest
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
OUT=${BENCH_OUT:-/tmp/ruche-bench-$STAMP}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/bench-ruche-work.XXXXXX)
RESULTS=$OUT/results.tsv
: >"$RESULTS"
RUCHE=${BENCH_RUCHE_BIN:-$PWD/bin/ruche}
RUNNET=bench-runnet
TOOL=$WORK/benchtool

. bench/lib.sh

# --- cleanup: only what this run created, found by its bench- names -------

RUCHE_PID=""
PN_PID="" # the ruche up --networks docker
PN_CONFIG=$WORK/ruche-pn/admin.conf
SWARM_OURS=0
GWBRIDGE_EXISTED=1

# wait_gone PREFIX SECONDS: until no container is named PREFIX*.
wait_gone() {
	local end=$((SECONDS + $2))
	while [ -n "$(containers_named "$1")" ]; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}

leave_swarm() {
	[ "$SWARM_OURS" = 1 ] || return 0
	log "leaving the swarm"
	docker service rm bench-swarm bench-swarmn >/dev/null 2>&1 || true
	docker swarm leave --force >/dev/null || log "docker swarm leave failed: check \`docker info\`"
	SWARM_OURS=0
	remove_containers bench-swarm. || true
	remove_containers bench-swarmn. || true
	if [ "$GWBRIDGE_EXISTED" = 0 ]; then
		# Swarm created it for this run; it stays after leaving.
		docker network rm docker_gwbridge >/dev/null 2>&1 || log "could not remove docker_gwbridge (in use?)"
	fi
}

# stop_one_ruche PID CONFIG PROJECT...: removes the projects, then stops
# that ruche up.
stop_one_ruche() {
	local pid=$1 conf=$2
	shift 2
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		for p in "$@"; do
			timeout 90 "$RUCHE" --config "$conf" rm "$p" --timeout 60s >>"$OUT/ruche-cli.log" 2>&1 || true
		done
		log "stopping ruche up (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.3
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "ruche up did not stop on SIGTERM; killing pid $pid"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
}

stop_ruche() {
	stop_one_ruche "$RUCHE_PID" "$WORK/ruche/admin.conf" bench-ruche bench-idle
	RUCHE_PID=""
	stop_one_ruche "$PN_PID" "$PN_CONFIG" bench-ruchepn
	PN_PID=""
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	leave_swarm
	stop_ruche
	remove_containers bench-run-
	remove_containers bench-runnet-
	remove_containers bench-runnone-
	remove_containers bench-ruche-
	remove_containers bench-ruchepn-
	remove_containers bench-idle-
	[ ! -x "$WORK/netwire" ] || "$WORK/netwire" -cleanup -prefix bench-wire- -bridge "$WIRE_BRIDGE" || log "could not remove the wired prototype's containers or bridge $WIRE_BRIDGE"
	if docker network inspect "$RUNNET" >/dev/null 2>&1; then
		docker network rm "$RUNNET" >/dev/null || log "could not remove network $RUNNET"
	fi
	# Networks ruche made for the bench projects and could not remove itself.
	for p in bench-ruche bench-idle; do
		for id in $(docker network ls -q --filter "label=ruche.project=$p"); do
			docker network rm "$id" >/dev/null || log "could not remove network $id of project $p"
		done
	done
	rm -rf "$WORK"
	if [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ] && [ "$SWARM_PREEXISTING" = 0 ]; then
		log "WARNING: Swarm is still active on this daemon: run \`docker swarm leave --force\`"
	fi
	exit "$rc"
}
SWARM_PREEXISTING=0
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- preflight -------------------------------------------------------------

need_docker
if { want swarm || want swarm-net; } && [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != inactive ]; then
	SWARM_PREEXISTING=1
	echo "Swarm is already active on this daemon (state $(docker info --format '{{.Swarm.LocalNodeState}}')):" >&2
	echo "it is not this benchmark's to change. Leave it first, or run with BENCH_SCENARIOS=\"docker-run ruche rss\"." >&2
	exit 1
fi
remove_leftovers bench-run- bench-runnet- bench-runnone- bench-wire- bench-ruche- bench-idle- bench-swarm. bench-swarmn.
DOCKERD_PID=$(dockerd_pid)

# --- build -----------------------------------------------------------------

build_ruche_and_image
go build -o "$TOOL" ./bench/benchtool
if want wired; then
	go build -o "$WORK/netwire" ./bench/netwire
	"$WORK/netwire" -cleanup -prefix bench-wire- -bridge "$WIRE_BRIDGE" # a crashed run's
fi
IMAGE_ID=$(docker image inspect -f '{{.Id}}' "$IMAGE")

# --- the machine -------------------------------------------------------------

{
	echo "- ruche: version $("$RUCHE" --version 2>/dev/null | awk '{print $NF}') (${BENCH_RUCHE_BIN:-bin/ruche}; HEAD is $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
	machine_host_facts
	echo "- Docker engine: $(docker version --format '{{.Server.Version}}') (API $(docker version --format '{{.Server.APIVersion}}')), CLI $(docker version --format '{{.Client.Version}}'), storage driver $(docker info --format '{{.Driver}}'), cgroup $(docker info --format '{{.CgroupVersion}}')"
	echo "- Go: $(go env GOVERSION)"
	echo "- image: $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }'))"
	echo "- trials: $TRIALS per scenario, interleaved; $REPLICAS replicas; idle RSS with $IDLE_REPLICAS replicas after ${IDLE_WAIT}s idle"
} >"$OUT/machine.md"
cat "$OUT/machine.md" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the scenes ----------------------------------------------------------------

# run_script FILE NAME-PREFIX [docker run options]: $REPLICAS × docker run -d,
# all launched at once; the script fails if one fails.
run_script() {
	local file=$1 prefix=$2
	shift 2
	cat >"$file" <<EOF
#!/usr/bin/env bash
pids=()
for n in \$(seq 1 $REPLICAS); do
	docker run -d --name $prefix-\$n $* -e HELLO_VERSION=bench $IMAGE >/dev/null &
	pids+=(\$!)
done
rc=0
for p in "\${pids[@]}"; do wait "\$p" || rc=1; done
exit \$rc
EOF
	chmod +x "$file"
}

run_script "$WORK/docker-run.sh" bench-run

# The same on a bridge network of their own, with the aliases ruche gives
# its replicas (the service name and <slot>.<service>): ruche creates a
# network per project, and dockerd sets up more per container on a
# user-defined network (its embedded DNS) than on the default bridge. The
# network exists before the trials (ruche creates its own in its time).
run_script "$WORK/docker-run-net.sh" bench-runnet --network "$RUNNET" --network-alias web --network-alias '$n.web'
run_script "$WORK/docker-run-none.sh" bench-runnone --network none

compose_file() { # project replicas
	cat <<EOF
name: $1
services:
  web:
    image: $IMAGE
    environment:
      HELLO_VERSION: bench
    deploy:
      replicas: $2
EOF
}
compose_file bench-ruche "$REPLICAS" >"$WORK/compose-bench-ruche.yml"
compose_file bench-ruchepn "$REPLICAS" >"$WORK/compose-bench-ruchepn.yml"
compose_file bench-idle "$IDLE_REPLICAS" >"$WORK/compose-bench-idle.yml"

# subnet_free SUBNET WHAT: refuse a range a route of this host reaches or
# lies in.
subnet_free() {
	if [ -n "$(ip -4 route show to match "${1%/*}" | grep -v '^default')" ] ||
		[ -n "$(ip -4 route show root "$1")" ]; then
		echo "$1 overlaps a route of this host: not using it for $2" >&2
		ip -4 route show >&2
		exit 1
	fi
}
if want ruche || want rss; then
	subnet_free "$PRIVNET_RANGE" ruche
	mapfile -t PORTS < <("$TOOL" ports 3)
	export RUCHE_CONFIG=$WORK/ruche/admin.conf
	log "starting ruche up (data dir $WORK/ruche, API 127.0.0.1:${PORTS[0]}, log $OUT/ruche-up.log)"
	# A node name of its own: an agent removes the containers of its node
	# that its store does not know, so two ruche up sharing a node name on
	# one dockerd would remove each other's replicas.
	# Its default networks (ruche's own, as root); in a range of the
	# bench's, checked above.
	"$RUCHE" up --data-dir "$WORK/ruche" --node-name "bench-node-$$" --private-range "$PRIVNET_RANGE" \
		--api-addr "127.0.0.1:${PORTS[0]}" --store-addr "127.0.0.1:${PORTS[1]}" \
		--store-peer-addr "127.0.0.1:${PORTS[2]}" --http-addr "" --https-addr "" >"$OUT/ruche-up.log" 2>&1 &
	RUCHE_PID=$!
	wait_ruche_up
	echo "- ruche up's replica networks (its default): $(grep -o 'networks=[a-z]*' "$OUT/ruche-up.log" | head -n 1 | cut -d= -f2)" >>"$OUT/machine.md"
fi

if want swarm-net; then subnet_free "$SWARMNET_SUBNET" swarm-net; fi
if want ruche-docker; then
	mapfile -t PN_PORTS < <("$TOOL" ports 3)
	log "starting ruche up --networks docker (data dir $WORK/ruche-pn, API 127.0.0.1:${PN_PORTS[0]}, log $OUT/ruche-pn-up.log)"
	"$RUCHE" up --data-dir "$WORK/ruche-pn" --node-name "bench-pn-$$" --networks docker \
		--api-addr "127.0.0.1:${PN_PORTS[0]}" --store-addr "127.0.0.1:${PN_PORTS[1]}" \
		--store-peer-addr "127.0.0.1:${PN_PORTS[2]}" --http-addr "" --https-addr "" >"$OUT/ruche-pn-up.log" 2>&1 &
	PN_PID=$!
	for _ in $(seq 1 120); do
		"$RUCHE" --config "$PN_CONFIG" status >/dev/null 2>&1 && break
		kill -0 "$PN_PID" 2>/dev/null || { tail -n 20 "$OUT/ruche-pn-up.log" >&2; echo "ruche up --networks docker exited" >&2; exit 1; }
		sleep 0.5
	done
fi
if want wired; then subnet_free "$WIRE_SUBNET" wired; fi
if want swarm || want swarm-net; then
	docker network inspect docker_gwbridge >/dev/null 2>&1 || GWBRIDGE_EXISTED=0
	log "docker swarm init on loopback (advertise and listen 127.0.0.1)"
	SWARM_OURS=1
	docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
	# A single-node swarm has no peer to talk to; check that what it
	# listens on is loopback only.
	if ss -Hltunp | grep '"dockerd"' | awk '{print $5}' | grep -Ev '^(127\.0\.0\.1|\[::1\]):' >&2; then
		echo "Swarm listens on a non-loopback address (above): refusing to go on" >&2
		exit 1
	fi
	echo "- Swarm: single node, advertise/listen 127.0.0.1:2377; dockerd listening sockets during the run: $(ss -Hltunp | grep '"dockerd"' | awk '{print $1 " " $5}' | paste -sd, | sed 's/,/, /g')" >>"$OUT/machine.md"
fi

# Swarm's worker pulls the image of every task it starts unless the image is
# given by ID: with a tag it would ask a registry (traffic off this machine,
# and a failing pull per task). The service therefore uses the image ID, and
# the dockerd log (when it is a file) is watched for pull attempts.
DOCKERD_LOG=""
if [ -n "$DOCKERD_PID" ]; then
	l=$(readlink "/proc/$DOCKERD_PID/fd/2" 2>/dev/null || true)
	[ -f "$l" ] && DOCKERD_LOG=$l
fi
DOCKERD_LOG_START=0
[ -z "$DOCKERD_LOG" ] || DOCKERD_LOG_START=$(wc -l <"$DOCKERD_LOG")
swarm_pulled() {
	[ -n "$DOCKERD_LOG" ] || return 1
	tail -n "+$((DOCKERD_LOG_START + 1))" "$DOCKERD_LOG" | grep 'module=node/agent/taskmanager' | grep -qi pull
}

# --- trials ------------------------------------------------------------------

declare -A BROKEN=()

# measure SCENARIO TRIAL PREFIX [converge flag...] -- command...: one
# converge measurement.
measure() {
	local sc=$1 i=$2 prefix=$3
	shift 3
	local flags=()
	while [ "$1" != -- ]; do
		flags+=("$1")
		shift
	done
	shift
	local out rc=0
	out=$("$TOOL" converge -prefix "$prefix" -count "$REPLICAS" -timeout "$TRIAL_TIMEOUT" "${flags[@]}" -- "$@" 2>>"$OUT/$sc.log") || rc=$?
	if [ "$rc" = 0 ]; then
		printf 'converge\t%s\t%s\t%s\n' "$sc" "$i" "$out" >>"$RESULTS"
		log "$sc trial $i: $(echo "$out" | awk '{ printf "first running after %.2f s, all after %.2f s, command returned after %.2f s", $3, $1, $2 }')"
		return 0
	fi
	if [ "$rc" = 130 ]; then
		log "interrupted"
		exit 130
	fi
	local why
	why=$(grep -h 'benchtool:' "$OUT/$sc.log" | tail -n1 | cut -c1-300)
	printf 'failed\t%s\t%s\t%s\n' "$sc" "$i" "${why:-see $sc.log}" >>"$RESULTS"
	log "$sc trial $i FAILED: $why (log $OUT/$sc.log)"
	return 1
}

skip() { # scenario trial
	printf 'failed\t%s\t%s\t%s\n' "$1" "$2" "not run: an earlier trial failed or could not be cleaned up" >>"$RESULTS"
}

trial_docker_run() {
	echo "--- trial $1" >>"$OUT/docker-run.log"
	measure docker-run "$1" bench-run- -- "$WORK/docker-run.sh" || true
	remove_containers bench-run-
}

trial_docker_run_net() {
	echo "--- trial $1" >>"$OUT/docker-run-net.log"
	measure docker-run-net "$1" bench-runnet- -- "$WORK/docker-run-net.sh" || true
	remove_containers bench-runnet-
	remove_containers bench-runnone-
}

trial_docker_run_none() {
	echo "--- trial $1" >>"$OUT/docker-run-none.log"
	measure docker-run-none "$1" bench-runnone- -- "$WORK/docker-run-none.sh" || true
	remove_containers bench-runnone-
}

trial_wired() {
	echo "--- trial $1" >>"$OUT/wired.log"
	measure wired "$1" bench-wire- -- "$WORK/netwire" -n "$REPLICAS" -prefix bench-wire- -image "$IMAGE" \
		-bridge "$WIRE_BRIDGE" -subnet "$WIRE_SUBNET" -waiter "$PWD/bin/ruche" || true
	"$WORK/netwire" -cleanup -prefix bench-wire- -bridge "$WIRE_BRIDGE" >>"$OUT/wired.log" 2>&1 || true
}

trial_ruche() {
	if [ -n "${BROKEN[ruche]:-}" ]; then skip ruche "$1"; return; fi
	echo "--- trial $1" >>"$OUT/ruche.log"
	measure ruche "$1" bench-ruche- -network-ready -- "$RUCHE" deploy -f "$WORK/compose-bench-ruche.yml" --timeout "$TRIAL_TIMEOUT" || BROKEN[ruche]=1
	if ! timeout 150 "$RUCHE" rm bench-ruche --timeout 2m >>"$OUT/ruche.log" 2>&1 || [ -n "$(containers_named bench-ruche-)" ]; then
		log "ruche rm bench-ruche did not finish cleanly; no more ruche trials"
		BROKEN[ruche]=1
	fi
}

trial_ruche_docker() {
	if [ -n "${BROKEN[ruche-docker]:-}" ]; then skip ruche-docker "$1"; return; fi
	echo "--- trial $1" >>"$OUT/ruche-docker.log"
	measure ruche-docker "$1" bench-ruchepn- -- "$RUCHE" --config "$PN_CONFIG" deploy -f "$WORK/compose-bench-ruchepn.yml" --timeout "$TRIAL_TIMEOUT" || BROKEN[ruche-docker]=1
	if ! timeout 150 "$RUCHE" --config "$PN_CONFIG" rm bench-ruchepn --timeout 2m >>"$OUT/ruche-docker.log" 2>&1 || [ -n "$(containers_named bench-ruchepn-)" ]; then
		log "ruche rm bench-ruchepn did not finish cleanly; no more ruche-docker trials"
		BROKEN[ruche-docker]=1
	fi
}

trial_swarm() {
	if [ -n "${BROKEN[swarm]:-}" ]; then skip swarm "$1"; return; fi
	echo "--- trial $1" >>"$OUT/swarm.log"
	measure swarm "$1" bench-swarm. -- docker service create --name bench-swarm --replicas "$REPLICAS" \
		--detach=false --no-resolve-image -e HELLO_VERSION=bench "$IMAGE_ID" || BROKEN[swarm]=1
	docker service rm bench-swarm >>"$OUT/swarm.log" 2>&1 || true
	if ! wait_gone bench-swarm. 120; then
		log "Swarm did not remove bench-swarm's containers in 120 s; no more Swarm trials"
		BROKEN[swarm]=1
	fi
	if swarm_pulled; then
		log "dockerd tried to pull an image for a Swarm task (see its log): no more Swarm trials"
		BROKEN[swarm]=1
	fi
}

trial_swarm_net() {
	if [ -n "${BROKEN[swarm-net]:-}" ]; then skip swarm-net "$1"; return; fi
	echo "--- trial $1" >>"$OUT/swarm-net.log"
	measure swarm-net "$1" bench-swarmn. -- docker service create --name bench-swarmn --replicas "$REPLICAS" \
		--network bench-swarmnet --endpoint-mode dnsrr \
		--detach=false --no-resolve-image -e HELLO_VERSION=bench "$IMAGE_ID" || BROKEN[swarm-net]=1
	docker service rm bench-swarmn >>"$OUT/swarm-net.log" 2>&1 || true
	if ! wait_gone bench-swarmn. 120; then
		log "Swarm did not remove bench-swarmn's containers in 120 s; no more swarm-net trials"
		BROKEN[swarm-net]=1
	fi
}

ALL=(docker-run docker-run-net docker-run-none wired ruche ruche-docker swarm swarm-net)
ACTIVE=()
for sc in "${ALL[@]}"; do want "$sc" && ACTIVE+=("$sc"); done

if want docker-run-net; then
	docker network create --label ruche.bench=1 "$RUNNET" >/dev/null
fi
if want swarm-net; then
	docker network create -d overlay --subnet "$SWARMNET_SUBNET" --label ruche.bench=1 bench-swarmnet >/dev/null
fi
if [ ${#ACTIVE[@]} -gt 0 ]; then
	log "warm-up: one container of $IMAGE"
	docker run -d --name bench-run-warmup -e HELLO_VERSION=bench "$IMAGE" >/dev/null
	remove_containers bench-run-
fi
for i in $(seq 1 "$TRIALS"); do
	[ ${#ACTIVE[@]} -gt 0 ] || break
	# Rotate the order each round so no scenario always goes first.
	for k in $(seq 0 $((${#ACTIVE[@]} - 1))); do
		sc=${ACTIVE[$(((i - 1 + k) % ${#ACTIVE[@]}))]}
		case $sc in
		docker-run) trial_docker_run "$i" ;;
		docker-run-net) trial_docker_run_net "$i" ;;
		docker-run-none) trial_docker_run_none "$i" ;;
		wired) trial_wired "$i" ;;
		ruche) trial_ruche "$i" ;;
		ruche-docker) trial_ruche_docker "$i" ;;
		swarm) trial_swarm "$i" ;;
		swarm-net) trial_swarm_net "$i" ;;
		esac
	done
done
leave_swarm

# --- idle memory -----------------------------------------------------------------

if want rss; then
	log "idle RSS: deploying $IDLE_REPLICAS replicas (project bench-idle)"
	if timeout 360 "$RUCHE" deploy -f "$WORK/compose-bench-idle.yml" --timeout 5m >"$OUT/rss.log" 2>&1; then
		log "converged; idle for ${IDLE_WAIT}s, then 7 samples over 30 s"
		sleep "$IDLE_WAIT"
		running=$(containers_named bench-idle- | wc -l)
		echo "containers bench-idle-* before sampling: $running" >>"$OUT/rss.log"
		procs=("ruche-up=$RUCHE_PID")
		[ -z "$DOCKERD_PID" ] || procs+=("dockerd=$DOCKERD_PID")
		"$TOOL" rss -samples 7 -every 5s "${procs[@]}" >>"$RESULTS"
		grep '^rss' "$RESULTS" | awk -F'\t' '{ printf "==> %s VmRSS max %.1f MiB (samples KiB: %s)\n", $2, $3 / 1024, $4 }' >&2
	else
		log "deploying $IDLE_REPLICAS replicas failed (log $OUT/rss.log): RSS not measured"
	fi
	timeout 150 "$RUCHE" rm bench-idle --timeout 2m >>"$OUT/rss.log" 2>&1 || log "ruche rm bench-idle failed"
fi
stop_ruche

# --- report ---------------------------------------------------------------------

echo "- load average (1, 5, 15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (dockerd and the machine are shared with whatever else runs)" >>"$OUT/machine.md"
if want swarm; then
	if [ -z "$DOCKERD_LOG" ]; then
		echo "- image pulls by Swarm tasks: not checked (dockerd's log is not a file)" >>"$OUT/machine.md"
	elif swarm_pulled; then
		echo "- image pulls by Swarm tasks: ATTEMPTED, see $DOCKERD_LOG" >>"$OUT/machine.md"
	else
		echo "- image pulls by Swarm tasks: none (image given by ID; checked in dockerd's log)" >>"$OUT/machine.md"
	fi
fi
{
	echo "### Run of $STARTED (\`bench/run.sh\`, $((SECONDS / 60)) min $((SECONDS % 60)) s)"
	echo
	cat "$OUT/machine.md"
	echo
	"$TOOL" report -replicas "$REPLICAS" -idle-replicas "$IDLE_REPLICAS" "$RESULTS"
} >"$OUT/report.md"
cat "$OUT/report.md"
log "report, raw results and logs: $OUT"
