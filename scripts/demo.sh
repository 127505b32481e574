#!/usr/bin/env bash
# The quick start: build ruche, start `ruche up` (default data dir) if it is
# not running, build the example image and deploy examples/hello.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
log() { printf '==> %s\n' "$*" >&2; }

RUCHE=bin/ruche
mkdir -p .demo
PID=
if ! $RUCHE status >/dev/null 2>&1; then
	log "starting ruche up (log: .demo/ruche.log)"
	nohup $RUCHE up >.demo/ruche.log 2>&1 &
	PID=$!
	echo "$PID" >.demo/ruche.pid
	for _ in $(seq 1 120); do
		$RUCHE status >/dev/null 2>&1 && break
		if ! kill -0 "$PID" 2>/dev/null; then
			echo "ruche up exited:" >&2
			tail -n 20 .demo/ruche.log >&2
			exit 1
		fi
		sleep 0.5
	done
	$RUCHE status >/dev/null
elif [ -f .demo/ruche.pid ] && [ "$(cat "/proc/$(cat .demo/ruche.pid)/comm" 2>/dev/null)" = ruche ]; then
	PID=$(cat .demo/ruche.pid) # started by an earlier make demo
fi

log "building the example image ruche-hello:latest (FROM scratch + a static Go binary)"
CGO_ENABLED=0 go build -trimpath -o examples/hello/hello ./examples/hello
DOCKER_BUILDKIT=0 docker build -q -t ruche-hello:latest examples/hello >/dev/null 2>&1 || \
	docker build -q -t ruche-hello:latest examples/hello >/dev/null

log "deploying examples/hello/compose.yml"
$RUCHE deploy -f examples/hello/compose.yml
echo
$RUCHE ps hello
port=$($RUCHE ps hello -o json | sed -n 's/.*"published": \([0-9]*\).*/\1/p' | head -n1)
echo
if [ -n "$PID" ]; then
	echo "ruche is running (pid $PID, log .demo/ruche.log)."
else
	echo "ruche was already running, not started by make demo (its pid and log are wherever it was started)."
fi
echo "Try it, through the ingress (each request goes to a ready replica):"
echo "          curl -H 'Host: hello.localhost' http://127.0.0.1/"
for _ in 1 2 3; do curl -s -H 'Host: hello.localhost' http://127.0.0.1/ || true; done
if [ -n "$port" ]; then
	echo "or one replica directly: curl http://127.0.0.1:$port/"
fi
echo "Then:     bin/ruche routes; bin/ruche logs hello/web; bin/ruche scale hello/web=5; bin/ruche status"
if [ -n "$PID" ]; then
	echo "Stop:     kill $PID   (containers keep running; the next ruche up adopts them)"
fi
