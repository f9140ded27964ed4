#!/usr/bin/env bash
# bench-status.sh: requests/s of the status page's "/" served by breachcast
# (from its in-memory snapshot) against nginx serving the very same bytes as a
# static file, on loopback, with the same wrk settings, run alternately.
#
# Target: breachcast at least 0.5x nginx.
#
# Usage: scripts/bench-status.sh
# Environment: DURATION (10s) CONNS (64) THREADS (2) RUNS (3) MODES ("gzip identity")
# Installs nginx-light and wrk from Debian when missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
MODES=${MODES:-gzip identity}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need curl; then
	if [ "$(id -u)" != 0 ]; then
		echo "bench-status: nginx, wrk and curl are needed: apt-get install nginx-light wrk curl (as root)" >&2
		exit 1
	fi
	echo "bench-status: installing nginx-light, wrk and curl from Debian" >&2
	flock /tmp/breachcast-apt.lock sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light wrk curl' >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d)
srv_pid=""
ngx_pid=""
cleanup() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
	[ -n "$ngx_pid" ] && kill "$ngx_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/wsload" ./cmd/wsload

# The status server: the demo incident with ten updates, served from memory.
"$work/wsload" -serve -addr 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
srv_pid=$!
for _ in $(seq 1 100); do
	grep -q LISTENING "$work/serve.out" 2>/dev/null && break
	sleep 0.1
done
addr=$(awk '/LISTENING/ {print $2}' "$work/serve.out")
[ -n "$addr" ] || { echo "bench-status: the status server did not start:" >&2; cat "$work/serve.err" >&2; exit 1; }

# nginx serves the same bytes of "/" as a static file (gzip_static uses the
# pre-compressed copy, as breachcast serves its pre-compressed snapshot).
mkdir -p "$work/site"
curl -fsS "http://$addr/" -o "$work/site/index.html"
gzip -9 -n -k "$work/site/index.html"
chmod 755 "$work" && chmod -R a+rX "$work/site" # nginx workers run as an unprivileged user
ngx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 10000000;
	keepalive_timeout 75s;
	gzip_static on;
	gzip_vary on;
	etag on;
	server {
		listen 127.0.0.1:$ngx_port;
		root $work/site;
		client_body_temp_path $work/tmp;
		location / { add_header Cache-Control "public, max-age=5, stale-while-revalidate=30"; }
	}
}
EOF
mkdir -p "$work/tmp"
"$NGINX" -c "$work/nginx.conf" -p "$work" 2>"$work/nginx.err" &
ngx_pid=$!
for _ in $(seq 1 50); do
	curl -fsS -o /dev/null "http://127.0.0.1:$ngx_port/" 2>/dev/null && break
	sleep 0.1
done

size() { curl -fsS -o /dev/null -w '%{size_download}' "$@"; }
echo "page: breachcast $(size "http://$addr/") bytes, nginx $(size "http://127.0.0.1:$ngx_port/") bytes (identity);" \
	"gzip: $(size -H 'Accept-Encoding: gzip' "http://$addr/") / $(size -H 'Accept-Encoding: gzip' "http://127.0.0.1:$ngx_port/") bytes"
echo "wrk -t$THREADS -c$CONNS -d$DURATION, $RUNS alternating runs per server and mode, $(nproc) cores shared by wrk and the server"

rps() { # url [header]
	local out
	if [ $# -gt 1 ]; then
		out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -H "$2" "$1")
	else
		out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "$1")
	fi
	if echo "$out" | grep -q "Non-2xx"; then
		echo "bench-status: non-2xx answers from $1:" >&2
		echo "$out" >&2
		exit 1
	fi
	echo "$out" | awk '/Requests\/sec/ {print $2}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for mode in $MODES; do
	hdr=()
	[ "$mode" = gzip ] && hdr=("Accept-Encoding: gzip")
	bc=""
	ng=""
	for i in $(seq 1 "$RUNS"); do
		b=$(rps "http://$addr/" "${hdr[@]}")
		n=$(rps "http://127.0.0.1:$ngx_port/" "${hdr[@]}")
		echo "  $mode run $i: breachcast $b req/s, nginx $n req/s"
		bc="$bc $b"
		ng="$ng $n"
	done
	mb=$(echo "$bc" | median)
	mn=$(echo "$ng" | median)
	ratio=$(awk -v b="$mb" -v n="$mn" 'BEGIN {printf "%.2f", b/n}')
	verdict=$(awk -v r="$ratio" 'BEGIN {print (r >= 0.5) ? "meets" : "MISSES"}')
	echo "$mode: median breachcast $mb req/s, nginx $mn req/s, ratio $ratio ($verdict the 0.5 target)"
done
