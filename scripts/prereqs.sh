#!/usr/bin/env bash
# Makes sure what ruche needs on this machine is there and running:
# Go (to build), the Docker engine (Debian's docker.io if missing), and a
# dockerd answering on the default socket (started here if none runs).
# It starts dockerd only if none answers, and leaves it running.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null 2>&1; then
	echo "Go is required to build ruche (go 1.26 or later at /usr/local/go or on PATH)" >&2
	exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ]; then
		echo "the Docker engine is missing: run as root so it can be installed (apt-get install docker.io)" >&2
		exit 1
	fi
	log "installing the Docker engine (Debian's docker.io)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq docker.io >/dev/null
fi

# Packages the tests use as real parts: curl (client), pebble and
# pebble-challtestsrv (a real ACME server, on loopback only),
# python3-websockets (a WebSocket client, run by Debian's /usr/bin/python3),
# dig (dnsutils: a DNS client, for the private networks' name servers).
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v dig >/dev/null 2>&1 || missing+=(dnsutils)
command -v pebble >/dev/null 2>&1 || missing+=(pebble)
/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 || missing+=(python3-websockets)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi

docker_ok() { timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if ! command -v docker >/dev/null 2>&1; then
	echo "the docker CLI is missing (it ships with docker.io)" >&2
	exit 1
fi
if ! docker_ok; then
	if [ "$(id -u)" != 0 ]; then
		echo "no Docker engine answers and only root can start one" >&2
		exit 1
	fi
	log "starting dockerd (log: /var/log/ruche-dockerd.log)"
	nohup dockerd >/var/log/ruche-dockerd.log 2>&1 &
	echo $! >/run/ruche-dockerd.pid
	for _ in $(seq 1 60); do
		docker_ok && break
		sleep 0.5
	done
	docker_ok || { echo "dockerd did not start; see /var/log/ruche-dockerd.log" >&2; exit 1; }
fi
log "Docker engine $(docker version --format '{{.Server.Version}}') is running"
