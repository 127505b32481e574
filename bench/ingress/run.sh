#!/usr/bin/env bash
# The ingress benchmark of issue 3 (part of `make bench`), see
# bench/README.md and docs/benchmarks.md. In one run on this machine, with
# one replica of ruche-hello:latest deployed by ruche as the backend of all:
#   peak     wrk, 1 KiB answers over HTTP/1.1 keep-alive: the backend direct,
#            ruche's ingress, nginx (upstream keep-alive), HAProxy, Caddy;
#            several rounds, order rotated, medians;
#   half     p99 added by each proxy at half its own peak (constant rate,
#            open loop, bench/ingress/ingresstool load) vs direct;
#   same     the same at one rate for all, ruche's half peak (context: the
#            proxies compared at equal load);
#   sustain  60 s at 10,000 req/s through ruche, then nginx;
#   h2       h2load over HTTPS, HTTP/2: ruche (tls: internal) and nginx
#            (context);
#   tls1     the same over HTTP/1.1 (h2load --h1, keep-alive, as many
#            connections as wrk; context);
#   logcost  the backend alone, with and without Docker's log (context);
#   rel      300 req/s of GET and POST for 60 s against 2 replicas during a
#            rolling update and a scale 2→1→2, then a SIGKILL during GETs;
#   swarm    the same against Docker Swarm's routing mesh;
#   gobench  go test -bench BenchmarkProxy -benchmem ./internal/proxy.
# Progress goes to stderr, the Markdown report to stdout and to
# $OUT/report.md with the raw results and every log.
#
# Everything it creates is named bench-ing*: the ruche projects bench-ing
# and bench-ingrel (containers bench-ing-*, bench-ingrel-*), the Swarm
# stack bench-ingswarm; nginx, HAProxy and Caddy run in the foreground on
# free loopback ports with config files in a temporary dir, stopped by
# their pids. Swarm is always left, also on failure or Ctrl-C.
#
# Knobs: BENCH_ING_SCENARIOS ("gobench peak half same sustain h2 tls1 logcost rel swarm"),
# BENCH_ING_ROUNDS (3), BENCH_ING_SECONDS (wrk, 15), BENCH_ING_CONNS (64),
# BENCH_ING_HALF_SECONDS (12), BENCH_ING_SUSTAIN_SECONDS (60),
# BENCH_ING_REL_SECONDS (60), BENCH_OUT (results go to $BENCH_OUT/ingress),
# BENCH_SKIP_BUILD=1 to reuse bin/ruche and the image, BENCH_RUCHE_BIN=path
# to measure another ruche binary than bin/ruche (an A/B of two builds).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
export DOCKER_CLI_HINTS=false

SCENARIOS=${BENCH_ING_SCENARIOS:-"gobench peak half same sustain h2 tls1 logcost rel swarm"}
ROUNDS=${BENCH_ING_ROUNDS:-3}
WRK_SECONDS=${BENCH_ING_SECONDS:-15}
CONNS=${BENCH_ING_CONNS:-64}
HALF_SECONDS=${BENCH_ING_HALF_SECONDS:-12}
SUSTAIN_RATE=10000
SUSTAIN_SECONDS=${BENCH_ING_SUSTAIN_SECONDS:-60}
REL_RATE=300
REL_SECONDS=${BENCH_ING_REL_SECONDS:-60}
KILL_SECONDS=20
IMAGE=ruche-hello:latest
HOST=bench.ruche.test     # the plain-HTTP route
TLS_HOST=secure.ruche.test # the same replica behind tls: internal
REL_HOST=rel.ruche.test
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
OUT=${BENCH_OUT:+$BENCH_OUT/ingress}
OUT=${OUT:-/tmp/ruche-bench-ingress-$STAMP}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/bench-ing-work.XXXXXX)
RESULTS=$OUT/results.tsv
: >"$RESULTS"
RUCHE=${BENCH_RUCHE_BIN:-$PWD/bin/ruche}
TOOL=$WORK/ingresstool
PORTS_TOOL=$WORK/benchtool

. bench/lib.sh
now() { date +%s.%N; }
failed() { # what why: a figure that could not be measured
	printf 'failed\t%s\twhy=%s\n' "$1" "$(echo "$2" | tr '\t\n' '  ' | cut -c1-300)" >>"$RESULTS"
	log "NOT MEASURED: $1: $2"
}

# phase NAME: what the machine's CPUs did from here to the next phase (or
# phase_end), from /proc/stat, as a "cpu" result line: busy, steal (time
# the hypervisor gave to others), idle; and which commands used the CPU,
# from /proc/<pid>/stat. Processes of this run are marked "(bench)": its
# ruche up, backend replica and proxies (and their children), and "clients
# (bench)", the commands this script ran and waited for (wrk, h2load,
# ingresstool, curl, the docker CLI). Other processes count with their own
# time only; one that started and ended within the phase is missed (the
# busy share still counts it). The machine is shared: this tells whose
# work a figure competed with.
PHASE=""
CLK_TCK=$(getconf CLK_TCK)
BACKEND_PID=""
proc_ticks() { # "pid<TAB>name<TAB>ticks"
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v self=$$ -v mine="${RUCHE_PID:-} ${BACKEND_PID:-} ${PROXY_PID[*]:-}" '
		BEGIN { n = split(mine, m, " "); for (i = 1; i <= n; i++) own[m[i]] = 1 }
		{
			c = $0; sub(/^[0-9]+ \(/, "", c); sub(/\) [A-Za-z] .*$/, "", c); gsub(/[ \t,:]/, "_", c)
			if (c ~ /^kworker/) c = "kworker"
			s = $0; sub(/^.*\) /, "", s); split(s, f, " ")
			t = f[12] + f[13]
			if ($1 == self) { c = "clients"; t = f[14] + f[15] }
			if (($1 in own) || (f[2] in own) || $1 == self) c = c "(bench)"
			printf "%s\t%s\t%d\n", $1, c, t
		}'
}
phase_end() {
	[ -n "$PHASE" ] || return 0
	local now_cpu top secs
	read -ra now_cpu < <(head -n1 /proc/stat)
	secs=$(awk -v a="$PHASE_T" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
	top=$(proc_ticks | awk -F'\t' -v hz="$CLK_TCK" -v secs="$secs" 'NR == FNR { base[$1] = $3; next }
		{ d = $3 - base[$1]; if (d > 0) use[$2] += d }
		END { for (c in use) printf "%.0f %s\n", 100 * use[c] / hz / secs, c }' "$WORK/phase.ticks" - |
		sort -rn | awk '$1 >= 3' | head -n 8 | awk '{ printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $1 }')
	awk -v name="$PHASE" -v a="${PHASE_CPU[*]}" -v b="${now_cpu[*]}" -v top="$top" 'BEGIN {
		split(a, x, " "); split(b, y, " "); total = 0
		for (i = 2; i <= 9; i++) { d[i] = y[i] - x[i]; total += d[i] }
		if (total <= 0) exit
		busy = d[2] + d[3] + d[4] + d[7] + d[8]
		printf "cpu\t%s\tbusy=%.1f\tsteal=%.1f\tidle=%.1f\tiowait=%.1f\ttop=%s\n", name, 100 * busy / total, 100 * d[9] / total, 100 * d[5] / total, 100 * d[6] / total, top
	}' >>"$RESULTS"
	PHASE=""
}
phase() {
	phase_end
	PHASE=$1
	read -ra PHASE_CPU < <(head -n1 /proc/stat)
	PHASE_T=$(date +%s.%N)
	proc_ticks >"$WORK/phase.ticks"
}

# --- cleanup: only what this run created ---------------------------------------

RUCHE_PID=""
declare -A PROXY_PID=()
SWARM_OURS=0
SWARM_PREEXISTING=0
GWBRIDGE_EXISTED=1

stop_pid() { # name pid: TERM, then KILL after 10 s
	local name=$1 pid=$2
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) did not stop on SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

stop_proxies() {
	local p
	for p in "${!PROXY_PID[@]}"; do
		stop_pid "$p" "${PROXY_PID[$p]}"
		unset "PROXY_PID[$p]"
	done
}

leave_swarm() {
	[ "$SWARM_OURS" = 1 ] || return 0
	log "leaving the swarm"
	docker stack rm bench-ingswarm >/dev/null 2>&1 || true
	docker swarm leave --force >/dev/null || log "docker swarm leave failed: check \`docker info\`"
	SWARM_OURS=0
	remove_containers bench-ingswarm_ || true
	if [ "$GWBRIDGE_EXISTED" = 0 ]; then
		docker network rm docker_gwbridge >/dev/null 2>&1 || log "could not remove docker_gwbridge (in use?)"
	fi
}

stop_ruche() {
	[ -n "$RUCHE_PID" ] || return 0
	if kill -0 "$RUCHE_PID" 2>/dev/null; then
		for p in bench-ing bench-ingrel; do
			timeout 90 "$RUCHE" rm "$p" --timeout 60s >>"$OUT/ruche-cli.log" 2>&1 || true
		done
		log "stopping ruche up (pid $RUCHE_PID)"
		stop_pid "ruche up" "$RUCHE_PID"
	fi
	RUCHE_PID=""
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	[ -z "${LOAD_PID:-}" ] || stop_pid "load generator" "$LOAD_PID"
	stop_proxies
	leave_swarm
	stop_ruche
	remove_containers bench-ing-
	remove_containers bench-ingrel-
	for p in bench-ing bench-ingrel; do
		for id in $(docker network ls -q --filter "label=ruche.project=$p"); do
			docker network rm "$id" >/dev/null || log "could not remove network $id of project $p"
		done
	done
	rm -rf "$WORK"
	if [ "$SWARM_PREEXISTING" = 0 ] && [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]; then
		log "WARNING: Swarm is still active on this daemon: run \`docker swarm leave --force\`"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- preflight: tools ------------------------------------------------------------

# The peers and load tools come from Debian. Installed here only when
# missing (make prereqs installs them too); no service is started or
# enabled: each runs in the foreground with this run's config.
need=()
for c in nginx:nginx haproxy:haproxy caddy:caddy wrk:wrk h2load:nghttp2-client openssl:openssl curl:curl; do
	command -v "${c%%:*}" >/dev/null 2>&1 || need+=("${c#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "missing packages: ${need[*]} (run as root to install them)" >&2; exit 1; }
	log "installing ${need[*]} (Debian packages; their services are not started)"
	POLICY_OURS=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		POLICY_OURS=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null || { [ "$POLICY_OURS" = 0 ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
	[ "$POLICY_OURS" = 0 ] || rm -f /usr/sbin/policy-rc.d
	if [ -d /run/systemd/system ]; then
		for u in nginx haproxy caddy; do systemctl disable --now "$u" >/dev/null 2>&1 || true; done
	fi
fi

need_docker
remove_leftovers bench-ing- bench-ingrel- bench-ingswarm_
DOCKERD_PID=$(dockerd_pid)

# --- build -----------------------------------------------------------------------

build_ruche_and_image
go build -o "$TOOL" ./bench/ingress/ingresstool
go build -o "$PORTS_TOOL" ./bench/benchtool
IMAGE_ID=$(docker image inspect -f '{{.Id}}' "$IMAGE")

# --- the machine -------------------------------------------------------------------

{
	echo "- ruche: version $("$RUCHE" --version 2>/dev/null | awk '{print $NF}') (${BENCH_RUCHE_BIN:-bin/ruche}; HEAD is $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
	machine_host_facts
	echo "- Docker engine: $(docker version --format '{{.Server.Version}}'), storage driver $(docker info --format '{{.Driver}}'), logging driver $(docker info --format '{{.LoggingDriver}}')"
	echo "- Go: $(go env GOVERSION)"
	echo "- peers: $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), Caddy $(caddy version | awk '{print $1}'); load: wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'), h2load $(h2load --version | awk '{print $2}'), bench/ingress/ingresstool (constant rate)"
	echo "- image: $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }')), 1 replica for the performance figures"
	echo "- wrk: -t2 -c$CONNS -d${WRK_SECONDS}s, $ROUNDS rounds, order rotated; constant-rate runs: $CONNS connections"
} >"$OUT/machine.md"
cat "$OUT/machine.md" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the proxy's Go benchmark first, on a machine this run does not load yet ------

if want gobench; then phase gobench; fi
if want gobench; then
	log "go test -run - -bench BenchmarkProxy -benchmem ./internal/proxy"
	if go test -run - -bench BenchmarkProxy -benchmem -count 1 ./internal/proxy >"$OUT/gobench.txt" 2>&1; then
		for b in BenchmarkProxyHotPath BenchmarkProxyEndToEnd BenchmarkProxyEndToEndH1; do
			"$TOOL" gobench -label "$b" <"$OUT/gobench.txt" >>"$RESULTS" 2>>"$OUT/gobench.txt" || failed "$b" "not in the go test output (see gobench.txt)"
		done
		grep '^Benchmark' "$OUT/gobench.txt" >&2 || true
	else
		failed BenchmarkProxyHotPath "go test failed: $(tail -n 3 "$OUT/gobench.txt")"
	fi
fi

# --- ruche up and the backend --------------------------------------------------------

mapfile -t PORTS < <("$PORTS_TOOL" ports 10)
API_PORT=${PORTS[0]} HTTP_PORT=${PORTS[3]} HTTPS_PORT=${PORTS[4]}
NGINX_PORT=${PORTS[5]} HAPROXY_PORT=${PORTS[6]} CADDY_PORT=${PORTS[7]} NGINX_TLS_PORT=${PORTS[8]} SWARM_PORT=${PORTS[9]}
export RUCHE_CONFIG=$WORK/ruche/admin.conf

need_ruche() { want peak || want half || want same || want sustain || want h2 || want tls1 || want rel; }
if need_ruche; then
	log "starting ruche up (data dir $WORK/ruche, API 127.0.0.1:$API_PORT, ingress 127.0.0.1:$HTTP_PORT and :$HTTPS_PORT)"
	"$RUCHE" up --data-dir "$WORK/ruche" --node-name "bench-ing-$$" \
		--api-addr "127.0.0.1:$API_PORT" --store-addr "127.0.0.1:${PORTS[1]}" \
		--store-peer-addr "127.0.0.1:${PORTS[2]}" \
		--http-addr "127.0.0.1:$HTTP_PORT" --https-addr "127.0.0.1:$HTTPS_PORT" >"$OUT/ruche-up.log" 2>&1 &
	RUCHE_PID=$!
	wait_ruche_up
fi

# curl_ok URL HOST [curl args...]: 200 through the given address.
curl_ok() {
	local url=$1 host=$2
	shift 2
	[ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $host" "$@" "$url" 2>/dev/null)" = 200 ]
}

wait_for() { # what seconds command...
	local what=$1 end=$((SECONDS + $2))
	shift 2
	until "$@"; do
		[ $SECONDS -lt $end ] || { log "timed out waiting for $what"; return 1; }
		sleep 0.5
	done
}

BACKEND=""
if want peak || want half || want same || want sustain || want h2 || want tls1; then
	cat >"$WORK/bench-ing.yml" <<EOF
name: bench-ing
services:
  web:
    image: $IMAGE
    environment:
      HELLO_VERSION: bench
      # No log line per request: Docker carries each one through
      # containerd-shim and dockerd (about half a core at 10,000/s), a cost
      # outside every proxy that competed with them for the 2 cores. The
      # logcost scenario shows what the line costs.
      HELLO_QUIET: "1"
    deploy:
      replicas: 1
    x-ruche:
      routes:
        - host: $HOST
          port: 8080
          tls: none
        - host: $TLS_HOST
          port: 8080
          tls: internal
EOF
	log "deploying the backend (project bench-ing, 1 replica, routes $HOST and $TLS_HOST)"
	"$RUCHE" deploy -f "$WORK/bench-ing.yml" --timeout 3m >"$OUT/deploy-bench-ing.log" 2>&1 || { cat "$OUT/deploy-bench-ing.log" >&2; exit 1; }
	backend_addr() { BACKEND=$("$RUCHE" routes -o json 2>>"$OUT/ruche-cli.log" | "$TOOL" addrs -host "$HOST" 2>/dev/null | head -n1) && [ -n "$BACKEND" ]; }
	wait_for "a ready replica in ruche routes" 60 backend_addr
	"$RUCHE" routes >"$OUT/routes.txt" 2>&1 || true
	log "backend replica at $BACKEND (from ruche routes -o json)"
	BACKEND_PID=$(docker inspect -f '{{.State.Pid}}' $(containers_named bench-ing-web-) 2>/dev/null | head -n1 || true)
	wait_for "the backend" 30 curl_ok "http://$BACKEND/bytes/1024" "$HOST"
	wait_for "ruche's ingress" 30 curl_ok "http://127.0.0.1:$HTTP_PORT/bytes/1024" "$HOST"
fi

# --- the peers: nginx, HAProxy, Caddy, in the foreground, by pid --------------------------

start_nginx() {
	local d=$WORK/nginx
	mkdir -p "$d/tmp" && chmod 1777 "$d/tmp"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$TLS_HOST" \
		-addext "subjectAltName=DNS:$TLS_HOST" -keyout "$d/key.pem" -out "$d/cert.pem" >/dev/null 2>&1
	cat >"$d/nginx.conf" <<EOF
# What an operator would write: upstream keep-alive on, no access log
# (ruche up writes none either without --access-log: equal footing).
# keepalive_requests is raised from 1000 because h2load's clients do not
# reconnect when nginx ends a connection after that many requests.
worker_processes auto;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    upstream hello {
        server $BACKEND;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        listen 127.0.0.1:$NGINX_TLS_PORT ssl http2;
        ssl_certificate $d/cert.pem;
        ssl_certificate_key $d/key.pem;
        location / {
            proxy_pass http://hello;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
EOF
	nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >"$OUT/nginx.log" 2>&1 &
	PROXY_PID[nginx]=$!
}

start_haproxy() {
	local d=$WORK/haproxy
	mkdir -p "$d"
	cat >"$d/haproxy.cfg" <<EOF
# Defaults an operator would keep: keep-alive both sides, connection reuse
# "safe", one thread per core.
global
    maxconn 4096
    nbthread $(nproc)
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend hello
backend hello
    server hello1 $BACKEND
EOF
	haproxy -db -f "$d/haproxy.cfg" >"$OUT/haproxy.log" 2>&1 &
	PROXY_PID[haproxy]=$!
}

start_caddy() {
	local d=$WORK/caddy
	mkdir -p "$d"
	cat >"$d/Caddyfile" <<EOF
# Plain HTTP on loopback, no admin endpoint, no automatic HTTPS.
{
	admin off
	auto_https off
	storage file_system $d/data
}
http://:$CADDY_PORT {
	bind 127.0.0.1
	reverse_proxy $BACKEND
}
EOF
	HOME=$d XDG_DATA_HOME=$d/data XDG_CONFIG_HOME=$d/config \
		caddy run --config "$d/Caddyfile" --adapter caddyfile >"$OUT/caddy.log" 2>&1 &
	PROXY_PID[caddy]=$!
}

declare -A URL=()
TARGETS=()
if want peak || want half || want same || want sustain || want h2 || want tls1; then
	URL[direct]="http://$BACKEND/bytes/1024"
	URL[ruche]="http://127.0.0.1:$HTTP_PORT/bytes/1024"
	URL[nginx]="http://127.0.0.1:$NGINX_PORT/bytes/1024"
	URL[haproxy]="http://127.0.0.1:$HAPROXY_PORT/bytes/1024"
	URL[caddy]="http://127.0.0.1:$CADDY_PORT/bytes/1024"
	TARGETS=(direct ruche)
	for p in nginx haproxy caddy; do
		log "starting $p on 127.0.0.1 (log $OUT/$p.log)"
		"start_$p"
		if wait_for "$p" 20 curl_ok "${URL[$p]}" "$HOST"; then
			TARGETS+=("$p")
		else
			failed "$p" "did not answer 200 through 127.0.0.1 (see $p.log): $(tail -n 3 "$OUT/$p.log")"
			stop_pid "$p" "${PROXY_PID[$p]}"
			unset "PROXY_PID[$p]"
		fi
	done
	echo "- backend: one replica at $BACKEND (its address on the project network, from \`ruche routes -o json\`); every proxy points at it" >>"$OUT/machine.md"
fi
addr_of() { # target: host:port of its URL
	local u=${URL[$1]#http://}
	echo "${u%%/*}"
}

# --- 1. peak requests/s: wrk ------------------------------------------------------------

# tree_ticks PID: CPU ticks (user + system) of the process and its children
# (nginx's workers), 0 without a pid.
tree_ticks() {
	[ -n "$1" ] || { echo 0; return; }
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v p="$1" '{
		s = $0; sub(/^.*\) /, "", s); split(s, f, " ")
		if ($1 == p || f[2] == p) t += f[12] + f[13] } END { print t + 0 }'
}

# proxy_pid TARGET: the process that does the proxying (none for direct).
proxy_pid() {
	case $1 in
	ruche) echo "$RUCHE_PID" ;;
	direct) echo "" ;;
	*) echo "${PROXY_PID[$1]:-}" ;;
	esac
}

# run_wrk TARGET SECONDS LABEL: one wrk run; with a label, its result line,
# plus the CPU seconds the proxy and the backend used meanwhile.
run_wrk() {
	local t=$1 s=$2 label=$3 raw pp p0 b0 p1 b1
	pp=$(proxy_pid "$t")
	p0=$(tree_ticks "$pp") b0=$(tree_ticks "$BACKEND_PID")
	raw=$(wrk -t2 -c"$CONNS" -d"${s}s" --latency -H "Host: $HOST" "${URL[$t]}" 2>&1) || true
	p1=$(tree_ticks "$pp") b1=$(tree_ticks "$BACKEND_PID")
	printf -- '--- %s\n%s\n' "$label" "$raw" >>"$OUT/wrk.log"
	[ -n "$label" ] || return 0
	local line
	if ! line=$(printf '%s\n' "$raw" | "$TOOL" wrk -label "$label" 2>>"$OUT/wrk.log"); then
		failed "$label" "wrk output not understood (see wrk.log)"
		return
	fi
	[ -z "$pp" ] || line+=$(printf '\tproxy_cpu_s=%s' "$(awk -v d=$((p1 - p0)) -v hz="$CLK_TCK" 'BEGIN { print d / hz }')")
	[ -z "$BACKEND_PID" ] || [[ $label != peak/* ]] || line+=$(printf '\tbackend_cpu_s=%s' "$(awk -v d=$((b1 - b0)) -v hz="$CLK_TCK" 'BEGIN { print d / hz }')")
	printf '%s\n' "$line" >>"$RESULTS"
	log "$label: $(printf '%s\n' "$line" | tr '\t' '\n' | grep -E '^(rps|p99|errors|proxy_cpu_s)=' | paste -sd' ')"
}

if want peak; then phase peak; fi
if want peak; then
	log "peak: ${#TARGETS[@]} targets, warm-up 3 s each, then $ROUNDS rounds of wrk ${WRK_SECONDS}s"
	for t in "${TARGETS[@]}"; do run_wrk "$t" 3 ""; done
	n=${#TARGETS[@]}
	for r in $(seq 1 "$ROUNDS"); do
		for k in $(seq 0 $((n - 1))); do
			t=${TARGETS[$(((r - 1 + k) % n))]}
			run_wrk "$t" "$WRK_SECONDS" "peak/$t/$r"
		done
	done
fi

# peak_median TARGET: median wrk requests/s of the target.
peak_median() {
	awk -F'\t' -v l="peak/$1/" '$1 == "wrk" && index($2, l) == 1 {
		for (i = 3; i <= NF; i++) if ($i ~ /^rps=/) print substr($i, 5) }' "$RESULTS" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f\n", m }'
}

# run_load LABEL ADDR HOST RATE SECONDS WARMUP CONNS REQ...: a constant-rate
# run in the foreground; its lines go to the results.
run_load() {
	local label=$1 addr=$2 host=$3 rate=$4 secs=$5 warm=$6 conns=$7
	shift 7
	local reqs=() r
	for r in "$@"; do reqs+=(-req "$r"); done
	if "$TOOL" load -label "$label" -addr "$addr" -host "$host" -rate "$rate" -duration "${secs}s" \
		-warmup "${warm}s" -conns "$conns" "${reqs[@]}" >"$WORK/load.out" 2>>"$OUT/load.log"; then
		cat "$WORK/load.out" >>"$RESULTS"
		log "$label: $(head -n1 "$WORK/load.out" | tr '\t' '\n' | grep -E '^(rate|ok|failed|p50|p99|p999|late)=' | paste -sd' ')"
	else
		[ $? != 130 ] || exit 130
		failed "$label" "load generator failed: $(tail -n1 "$OUT/load.log")"
	fi
}

# --- 2. p99 added at half of each proxy's peak ------------------------------------------

# added_pair SCENARIO I PROXY RATE: the proxy and the backend direct at
# RATE, one after the other; which goes first alternates with I.
added_pair() {
	local sc=$1 i=$2 p=$3 rate=$4 order t
	if [ $((i % 2)) = 0 ]; then order=("$p" direct); else order=(direct "$p"); fi
	for t in "${order[@]}"; do
		run_load "$sc/$p/$t" "$(addr_of "$t")" "$HOST" "$rate" "$HALF_SECONDS" 2 "$CONNS" "GET /bytes/1024"
	done
}

if want half; then phase half; fi
if want half; then
	i=0
	for p in "${TARGETS[@]}"; do
		[ "$p" != direct ] || continue
		if ! peak=$(peak_median "$p"); then
			failed "half/$p" "no peak measured for $p (run with the peak scenario)"
			continue
		fi
		rate=$((peak / 2))
		log "half: $p at $rate req/s (half its median peak), then the backend direct at the same rate"
		added_pair half "$i" "$p" "$rate"
		i=$((i + 1))
	done
fi

# --- 2b. p99 added at one rate for all: ruche's half peak (context) ---------------------

if want same; then phase same; fi
if want same; then
	if ! peak=$(peak_median ruche); then
		failed "same/ruche" "no peak measured for ruche (run with the peak scenario)"
	else
		rate=$((peak / 2))
		i=0
		for p in "${TARGETS[@]}"; do
			[ "$p" != direct ] || continue
			log "same: $p at $rate req/s (ruche's half peak), then the backend direct at the same rate"
			added_pair same "$i" "$p" "$rate"
			i=$((i + 1))
		done
	fi
fi

# --- 3. 60 s at 10,000 req/s --------------------------------------------------------------

if want sustain; then phase sustain; fi
if want sustain; then
	for t in ruche nginx; do
		[[ " ${TARGETS[*]} " == *" $t "* ]] || continue
		log "sustain: $t at $SUSTAIN_RATE req/s for ${SUSTAIN_SECONDS}s"
		run_load "sustain/$t" "$(addr_of "$t")" "$HOST" "$SUSTAIN_RATE" "$SUSTAIN_SECONDS" 3 "$CONNS" "GET /bytes/1024"
	done
fi

# --- 4. HTTPS: h2load over HTTP/2 and over HTTP/1.1 ---------------------------------------

# run_tls SCENARIO TARGET PORT CAFILE: h2load over HTTPS, HTTP/2 (h2: 32
# clients, 10 streams each) or HTTP/1.1 (tls1: --h1, 64 keep-alive
# connections, one request at a time each, as wrk in the peak phase).
run_tls() {
	local sc=$1 t=$2 port=$3 ca=$4 v curlproto expect args
	case $sc in
	h2) curlproto=--http2 expect="200 2" args=(-c32 -m10) ;;
	tls1) curlproto=--http1.1 expect="200 1.1" args=(--h1 -c"$CONNS" -m1) ;;
	esac
	# Check the certificate against its CA, and the protocol, with curl first.
	if ! v=$(curl -sS -o /dev/null -w '%{http_code} %{http_version}' --max-time 10 "$curlproto" --cacert "$ca" \
		--resolve "$TLS_HOST:$port:127.0.0.1" "https://$TLS_HOST:$port/bytes/1024" 2>&1) || [ "$v" != "$expect" ]; then
		failed "$sc/$t" "curl $curlproto --cacert over HTTPS: $v"
		return
	fi
	h2load -t2 "${args[@]}" -D 15 --warm-up-time=2 --connect-to="127.0.0.1:$port" \
		"https://$TLS_HOST:$port/bytes/1024" >"$OUT/h2load-$sc-$t.txt" 2>&1 || true
	if "$TOOL" h2load -label "$sc/$t" <"$OUT/h2load-$sc-$t.txt" >>"$RESULTS" 2>>"$OUT/load.log"; then
		log "$sc/$t: $(tail -n1 "$RESULTS" | tr '\t' '\n' | grep -E '^(rps|proto|failed|errored)=' | paste -sd' ')"
	else
		failed "$sc/$t" "h2load: $(tail -n 3 "$OUT/h2load-$sc-$t.txt")"
	fi
}

for sc in h2 tls1; do
	want "$sc" || continue
	phase "$sc"
	log "$sc: waiting for ruche's certificate of $TLS_HOST (internal CA)"
	if wait_for "an HTTPS answer for $TLS_HOST" 60 curl_ok "https://$TLS_HOST:$HTTPS_PORT/bytes/1024" "$TLS_HOST" \
		--cacert "$WORK/ruche/pki/ca.crt" --resolve "$TLS_HOST:$HTTPS_PORT:127.0.0.1"; then
		run_tls "$sc" ruche "$HTTPS_PORT" "$WORK/ruche/pki/ca.crt"
	else
		failed "$sc/ruche" "no HTTPS answer for $TLS_HOST on 127.0.0.1:$HTTPS_PORT trusting $WORK/ruche/pki/ca.crt"
	fi
	[ -z "${PROXY_PID[nginx]:-}" ] || run_tls "$sc" nginx "$NGINX_TLS_PORT" "$WORK/nginx/cert.pem"
done

# --- context: what the backend's request log costs ----------------------------------

# hello logs every request to stderr (unless HELLO_QUIET=1, as in the
# phases above), which Docker's json-file driver carries through
# containerd-shim and dockerd to disk: a per-request cost outside every
# proxy. Two plain containers of the same image, logging each request, one
# with --log-driver none, measured directly with wrk, alternately.
if want logcost; then phase logcost; fi
if want logcost; then
	log "logcost: the backend alone, with Docker's json-file log and with --log-driver none"
	docker run -d --name bench-ing-side-log -e HELLO_VERSION=bench "$IMAGE" >/dev/null
	docker run -d --name bench-ing-side-nolog --log-driver none -e HELLO_VERSION=bench "$IMAGE" >/dev/null
	for v in log nolog; do
		ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "bench-ing-side-$v")
		URL[side-$v]="http://$ip:8080/bytes/1024"
		wait_for "bench-ing-side-$v" 20 curl_ok "${URL[side-$v]}" "$HOST" || failed "logcost/$v" "the container did not answer"
		run_wrk "side-$v" 3 ""
	done
	for r in $(seq 1 "$ROUNDS"); do
		if [ $((r % 2)) = 1 ]; then order=(log nolog); else order=(nolog log); fi
		for v in "${order[@]}"; do run_wrk "side-$v" 10 "logcost/$v/$r"; done
	done
	remove_containers bench-ing-side-
fi

phase_end
stop_proxies
if [ -n "$RUCHE_PID" ] && [ -n "$BACKEND" ] && want rel; then
	timeout 90 "$RUCHE" rm bench-ing --timeout 60s >>"$OUT/ruche-cli.log" 2>&1 || log "ruche rm bench-ing failed"
fi

# --- 5. reliability: rollouts under load, ruche then Swarm ------------------------------------

# with_load SCENARIO ADDR HOST SECONDS REQS -- actions...: runs the load in
# the background and, from 5 s into its recorded phase, each action in turn
# ("name:command"), recording when each began and ended.
LOAD_PID=""
with_load() {
	local sc=$1 addr=$2 host=$3 secs=$4 reqs=$5
	shift 6
	local args=() r
	IFS=',' read -ra rs <<<"$reqs"
	for r in "${rs[@]}"; do args+=(-req "$r"); done
	"$TOOL" load -label "rel/$sc" -addr "$addr" -host "$host" -rate "$REL_RATE" -duration "${secs}s" -warmup 2s \
		-conns 32 "${args[@]}" >"$WORK/rel.out" 2>>"$OUT/load.log" &
	LOAD_PID=$!
	sleep 7 # 2 s warm-up, then 5 s of steady load
	local a name cmd s rc
	for a in "$@"; do
		name=${a%%:*} cmd=${a#*:}
		s=$(now)
		log "rel/$sc: $name"
		rc=0
		bash -c "$cmd" >>"$OUT/rel-$sc.log" 2>&1 || rc=$?
		printf 'action\trel/%s\tname=%s\tstart=%s\tend=%s\trc=%s\n' "$sc" "$name" "$s" "$(now)" "$rc" >>"$RESULTS"
		[ "$rc" = 0 ] || log "rel/$sc: $name FAILED (exit $rc; see rel-$sc.log)"
		sleep 3
	done
	if wait "$LOAD_PID"; then
		cat "$WORK/rel.out" >>"$RESULTS"
		log "rel/$sc: $(head -n1 "$WORK/rel.out" | tr '\t' '\n' | grep -E '^(sent|failed|errors)=' | paste -sd' ')"
	else
		failed "rel/$sc" "load generator failed: $(tail -n1 "$OUT/load.log")"
	fi
	LOAD_PID=""
}

kill_one() { # container name prefix: SIGKILL the first one
	local id
	id=$(containers_named "$1" | head -n1)
	[ -n "$id" ] || { echo "no container named $1*" >&2; return 1; }
	echo "docker kill -s KILL $id ($1*)"
	docker kill -s KILL "$id"
}

rel_compose() { # version
	cat <<EOF
name: bench-ingrel
services:
  web:
    image: $IMAGE
    environment:
      HELLO_VERSION: "$1"
    healthcheck:
      test: ["CMD", "/hello", "health"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 2
      update_config:
        order: start-first
    x-ruche:
      routes:
        - host: $REL_HOST
          port: 8080
          tls: none
EOF
}

if want rel; then phase rel; fi
if want rel && [ -n "$RUCHE_PID" ]; then
	rel_compose 1 >"$WORK/rel-1.yml"
	rel_compose 2 >"$WORK/rel-2.yml"
	log "rel: deploying bench-ingrel (2 replicas, healthcheck, start-first)"
	if "$RUCHE" deploy -f "$WORK/rel-1.yml" --timeout 3m >"$OUT/rel-ruche-roll.log" 2>&1 &&
		wait_for "$REL_HOST through ruche" 30 curl_ok "http://127.0.0.1:$HTTP_PORT/" "$REL_HOST"; then
		with_load ruche-roll "127.0.0.1:$HTTP_PORT" "$REL_HOST" "$REL_SECONDS" "GET /,POST /echo" -- \
			"rolling update:\"$RUCHE\" deploy -f \"$WORK/rel-2.yml\" --timeout 3m" \
			"scale to 1:\"$RUCHE\" scale bench-ingrel/web=1 --timeout 3m" \
			"scale to 2:\"$RUCHE\" scale bench-ingrel/web=2 --timeout 3m"
		"$RUCHE" ps >>"$OUT/rel-ruche-roll.log" 2>&1 || true
		with_load ruche-kill "127.0.0.1:$HTTP_PORT" "$REL_HOST" "$KILL_SECONDS" "GET /" -- \
			"SIGKILL:$(declare -f containers_named kill_one); kill_one bench-ingrel-web-"
		"$RUCHE" ps >>"$OUT/rel-ruche-kill.log" 2>&1 || true
	else
		failed rel/ruche-roll "deploying bench-ingrel failed (see rel-ruche-roll.log)"
	fi
fi
phase_end
stop_ruche

# --- Swarm's routing mesh ----------------------------------------------------------------------

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

swarm_compose() { # version
	cat <<EOF
version: "3.8"
services:
  web:
    image: $IMAGE_ID
    environment:
      HELLO_VERSION: "$1"
    healthcheck:
      test: ["CMD", "/hello", "health"]
      interval: 1s
      timeout: 2s
      retries: 2
    ports:
      - target: 8080
        published: $SWARM_PORT
        protocol: tcp
        mode: ingress
    deploy:
      replicas: 2
      update_config:
        order: start-first
EOF
}

if want swarm; then phase swarm; fi
if want swarm; then
	state=$(docker info --format '{{.Swarm.LocalNodeState}}')
	if [ "$state" != inactive ]; then
		SWARM_PREEXISTING=1
		failed rel/swarm-roll "Swarm is already active on this daemon (state $state): not this benchmark's to change"
	else
		docker network inspect docker_gwbridge >/dev/null 2>&1 || GWBRIDGE_EXISTED=0
		log "docker swarm init on loopback (advertise and listen 127.0.0.1)"
		SWARM_OURS=1
		docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
		swarm_compose 1 >"$WORK/swarm.yml"
		log "docker stack deploy bench-ingswarm (2 replicas of the image by ID, published on $SWARM_PORT)"
		mesh_wait=60
		if docker stack deploy --detach=false --resolve-image never -c "$WORK/swarm.yml" bench-ingswarm >"$OUT/rel-swarm-roll.log" 2>&1; then
			# The routing mesh is IPVS in the ingress sandbox: without it
			# (no /proc/net/ip_vs once dockerd has set the mesh up) it
			# cannot answer; do not wait long for it.
			[ -e /proc/net/ip_vs ] || mesh_wait=20
			wait_for "the routing mesh on 127.0.0.1:$SWARM_PORT" "$mesh_wait" curl_ok "http://127.0.0.1:$SWARM_PORT/" "$REL_HOST" || mesh_wait=0
		else
			mesh_wait=0
		fi
		if [ "$mesh_wait" != 0 ]; then
			echo "- Swarm: single node, advertise/listen 127.0.0.1:2377; the routing mesh publishes port $SWARM_PORT on every address (dockerd: $(ss -Hltnp "sport = :$SWARM_PORT" | awk '{print $4}' | paste -sd' ')): Swarm's ingress mode has no host IP option. The bench sends to 127.0.0.1 only" >>"$OUT/machine.md"
			with_load swarm-roll "127.0.0.1:$SWARM_PORT" "$REL_HOST" "$REL_SECONDS" "GET /,POST /echo" -- \
				"rolling update:docker service update --detach=false --no-resolve-image --env-add HELLO_VERSION=2 bench-ingswarm_web" \
				"scale to 1:docker service scale --detach=false bench-ingswarm_web=1" \
				"scale to 2:docker service scale --detach=false bench-ingswarm_web=2"
			with_load swarm-kill "127.0.0.1:$SWARM_PORT" "$REL_HOST" "$KILL_SECONDS" "GET /" -- \
				"SIGKILL:$(declare -f containers_named kill_one); kill_one bench-ingswarm_web."
		else
			why="the Swarm stack did not come up or its routing mesh did not answer on 127.0.0.1:$SWARM_PORT (see rel-swarm-roll.log)"
			if [ ! -e /proc/net/ip_vs ]; then
				why="Swarm's routing mesh cannot work on this machine: the kernel has no IPVS (/proc/net/ip_vs is missing; see dockerd-swarm.log for dockerd's errors)"
				iptables -t nat -S DOCKER-INGRESS >/dev/null 2>&1 || why+="; no DOCKER-INGRESS rule was set up"
				why+="; $(docker service ls --filter name=bench-ingswarm_web --format '{{.Replicas}}' 2>/dev/null) tasks running, but 127.0.0.1:$SWARM_PORT did not answer"
			fi
			failed rel/swarm-roll "$why"
			failed rel/swarm-kill "$why"
		fi
		if [ -n "$DOCKERD_LOG" ]; then
			tail -n "+$((DOCKERD_LOG_START + 1))" "$DOCKERD_LOG" | grep -E 'level=(error|warning)' | tail -n 200 >"$OUT/dockerd-swarm.log" || true
		fi
		if swarm_pulled; then
			echo "- image pulls by Swarm tasks: ATTEMPTED, see $DOCKERD_LOG" >>"$OUT/machine.md"
		elif [ -n "$DOCKERD_LOG" ]; then
			echo "- image pulls by Swarm tasks: none (image given by ID; checked in dockerd's log)" >>"$OUT/machine.md"
		fi
		leave_swarm
	fi
fi

phase_end

# --- report ----------------------------------------------------------------------------------

echo "- load average (1, 5, 15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (the machine and dockerd are shared with whatever else runs; wrk, the load generator, the proxy and the backend share the same $(nproc) cores)" >>"$OUT/machine.md"
{
	echo "### Run of $STARTED (\`bench/ingress/run.sh\`, $((SECONDS / 60)) min $((SECONDS % 60)) s)"
	echo
	cat "$OUT/machine.md"
	echo
	"$TOOL" report "$RESULTS"
} >"$OUT/report.md"
cat "$OUT/report.md"
log "report, raw results and logs: $OUT"
