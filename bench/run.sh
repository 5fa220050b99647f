#!/usr/bin/env bash
# Load benchmark: wrk -> sluice (plain HTTP, absolute-form) -> nginx (TLS, keep-alive),
# next to wrk straight at the nginx upstream and, as peers (DESIGN.md section 9), nginx
# and HAProxy configured as the same kind of proxy (plain HTTP in, pooled verified TLS
# out, one worker each). See bench/README.md.
#
#   bench/run.sh [options] [SLUICE_BINARY]        (default binary: build/sluice)
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/run.sh [options] [SLUICE_BINARY]

  -d, --duration D        wrk duration per target (default 10s)
  -c, --connections N     wrk connections (default 50)
  -t, --threads N         wrk threads (default 2)
  -p, --proxy-threads N   sluice threads / nginx workers / HAProxy threads (default 1)
      --no-peers          skip the nginx-proxy and HAProxy rows
      --keep              keep the temp dir (configs, logs, raw wrk output)
  -h, --help              this text

SLUICE_BINARY defaults to build/sluice (relative to the repository root).
Needs wrk, nginx, openssl, curl and python3 (scripts/install-deps.sh); HAProxy is
used as a peer when it is installed.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION=10s
CONNECTIONS=50
THREADS=2
PROXY_THREADS=1
PEERS=1
KEEP=0
SLUICE="$ROOT/build/sluice"

while [ $# -gt 0 ]; do
  case "$1" in
    -d|--duration) DURATION="$2"; shift 2 ;;
    -c|--connections) CONNECTIONS="$2"; shift 2 ;;
    -t|--threads) THREADS="$2"; shift 2 ;;
    -p|--proxy-threads) PROXY_THREADS="$2"; shift 2 ;;
    --no-peers) PEERS=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) SLUICE="$1"; shift ;;
  esac
done

# ---------------------------------------------------------------- prerequisites
NGINX="$(command -v nginx || true)"
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; }
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -n "$NGINX" ] || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} -- run scripts/install-deps.sh first" >&2
  exit 1
fi
HAPROXY="$(command -v haproxy || true)"
[ -n "$HAPROXY" ] || { [ -x /usr/sbin/haproxy ] && HAPROXY=/usr/sbin/haproxy; } || true
case "$SLUICE" in /*) ;; *) SLUICE="$PWD/$SLUICE" ;; esac
if [ ! -x "$SLUICE" ]; then
  echo "sluice binary not found: $SLUICE (build it, or pass its path)" >&2
  exit 1
fi
for n in "$CONNECTIONS" "$THREADS" "$PROXY_THREADS"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $n" >&2; exit 2; }
done

# The benchmark talks to 127.0.0.1 only: proxy variables in the environment must not
# divert curl.
unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY

TMP="$(mktemp -d /tmp/sluice-bench.XXXXXX)"
chmod 755 "$TMP"
PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# can_connect PORT: one TCP connect with a short timeout.
can_connect() {
  timeout 0.5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# wait_port PID PORT: poll until PORT accepts or PID dies (bounded, 10 s).
wait_port() {
  local pid="$1" port="$2"
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || return 1
    can_connect "$port" && return 0
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------- certificates
log "generating a test CA and a server certificate (EC P-256)"
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$TMP/ca.key" -out "$TMP/ca.pem" -days 2 -subj "/CN=sluice bench CA" -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$TMP/server.key" -out "$TMP/server.csr" -subj "/CN=localhost" 2>/dev/null
cat >"$TMP/server.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF
openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" \
  -CAcreateserial -out "$TMP/server.pem" -days 2 -sha256 -extfile "$TMP/server.ext" 2>/dev/null

# ---------------------------------------------------------------- nginx
NGINX_USER=""
[ "$(id -u)" = 0 ] && NGINX_USER="user root;"

# start_nginx NAME WORKERS SERVER_BLOCK_TEMPLATE -> sets STARTED_PID, STARTED_PORT.
# The template's @PORT@ is replaced by a free port; a port clash is retried.
start_nginx() {
  local name="$1" workers="$2" server="$3" dir="$TMP/$1" port pid
  mkdir -p "$dir"
  for _ in 1 2 3 4 5 6 7 8; do
    port="$(free_port)"
    cat >"$dir/nginx.conf" <<EOF
$NGINX_USER
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
${server//@PORT@/$port}
}
EOF
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' \
      >>"$dir/stderr.log" 2>&1 &
    pid=$!
    if wait_port "$pid" "$port"; then
      PIDS+=("$pid")
      STARTED_PID="$pid"
      STARTED_PORT="$port"
      return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if ! grep -q "Address already in use" "$dir/error.log" "$dir/stderr.log" 2>/dev/null; then
      cat "$dir/error.log" "$dir/stderr.log" >&2 2>/dev/null || true
      die "nginx ($name) did not start"
    fi
  done
  die "nginx ($name) found no free port"
}

log "starting the nginx TLS upstream (1 worker)"
start_nginx upstream 1 "
    server {
        listen 127.0.0.1:@PORT@ ssl;
        server_name localhost;
        ssl_certificate $TMP/server.pem;
        ssl_certificate_key $TMP/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / { default_type text/plain; return 200 \"ok\"; }
    }"
UPSTREAM_PORT="$STARTED_PORT"

curl -sS --fail --cacert "$TMP/ca.pem" -o /dev/null "https://localhost:$UPSTREAM_PORT/" ||
  die "the nginx upstream does not answer over verified TLS"

# ---------------------------------------------------------------- sluice
cat >"$TMP/sluice.yaml" <<EOF
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
threads: $PROXY_THREADS
unknown_hosts: reject
log: {level: info, format: text, access_log: true}
upstreams:
  - name: bench
    hosts: [bench.test]
    origin: "https://localhost:$UPSTREAM_PORT"
    tls: {ca_file: "$TMP/ca.pem"}
    rate_limit: {requests_per_minute: 1000000000, burst_size: 1000000}
EOF
log "starting sluice ($SLUICE, threads: $PROXY_THREADS)"
"$SLUICE" --config "$TMP/sluice.yaml" 2>"$TMP/sluice.log" >/dev/null </dev/null &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
SLUICE_PORT=""
for _ in $(seq 300); do
  SLUICE_PORT="$(grep -oE 'proxy listening on [0-9.]+:[0-9]+' "$TMP/sluice.log" 2>/dev/null |
    head -1 | sed -E 's/.*:([0-9]+)$/\1/' || true)"
  [ -n "$SLUICE_PORT" ] && break
  kill -0 "$SLUICE_PID" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$SLUICE_PORT" ]; then
  tail -n 30 "$TMP/sluice.log" >&2 || true
  die "sluice did not log 'proxy listening on IP:PORT'"
fi
body="$(curl -sS --max-time 10 -x "http://127.0.0.1:$SLUICE_PORT" http://bench.test/ || true)"
if [ "$body" != "ok" ]; then
  tail -n 30 "$TMP/sluice.log" >&2 || true
  die "a request through sluice did not return the upstream's 'ok' (got: ${body:0:200})"
fi

cat >"$TMP/proxy.lua" <<'EOF'
-- absolute-form targets, as HTTP_PROXY clients send them
wrk.path = "http://bench.test/"
wrk.headers["Host"] = "bench.test"
EOF

# ---------------------------------------------------------------- peers
NGINX_PROXY_PORT=""
NGINX_PROXY_PID=""
HAPROXY_PORT=""
HAPROXY_PID=""
if [ "$PEERS" = 1 ]; then
  log "starting nginx as a proxy peer ($PROXY_THREADS worker(s), pooled verified TLS)"
  start_nginx proxy "$PROXY_THREADS" "
    upstream bench_up {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:@PORT@;
        location / {
            proxy_pass https://bench_up;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host localhost:$UPSTREAM_PORT;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $TMP/ca.pem;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
            proxy_buffering off;
        }
    }"
  NGINX_PROXY_PORT="$STARTED_PORT"
  NGINX_PROXY_PID="$STARTED_PID"
  [ "$(curl -sS --max-time 10 -x "http://127.0.0.1:$NGINX_PROXY_PORT" http://bench.test/)" = ok ] ||
    die "nginx proxy peer does not answer"

  if [ -n "$HAPROXY" ]; then
    log "starting HAProxy as a proxy peer (nbthread $PROXY_THREADS)"
    mkdir -p "$TMP/haproxy"
    for _ in 1 2 3 4 5 6 7 8; do
      port="$(free_port)"
      cat >"$TMP/haproxy/haproxy.cfg" <<EOF
global
    nbthread $PROXY_THREADS
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always
frontend fe
    bind 127.0.0.1:$port
    default_backend be
backend be
    http-request set-header Host localhost:$UPSTREAM_PORT
    server up 127.0.0.1:$UPSTREAM_PORT ssl verify required ca-file $TMP/ca.pem sni str(localhost) verifyhost localhost pool-max-conn 64
EOF
      "$HAPROXY" -db -f "$TMP/haproxy/haproxy.cfg" >"$TMP/haproxy/stderr.log" 2>&1 &
      HAPROXY_PID=$!
      if wait_port "$HAPROXY_PID" "$port"; then
        PIDS+=("$HAPROXY_PID")
        HAPROXY_PORT="$port"
        break
      fi
      kill -TERM "$HAPROXY_PID" 2>/dev/null || true
      wait "$HAPROXY_PID" 2>/dev/null || true
      HAPROXY_PID=""
      grep -qiE "address already in use|cannot bind" "$TMP/haproxy/stderr.log" ||
        { cat "$TMP/haproxy/stderr.log" >&2; die "HAProxy did not start"; }
    done
    [ -n "$HAPROXY_PORT" ] || die "HAProxy found no free port"
    [ "$(curl -sS --max-time 10 -x "http://127.0.0.1:$HAPROXY_PORT" http://bench.test/)" = ok ] ||
      die "HAProxy peer does not answer"
  else
    log "haproxy not installed: skipping that peer"
  fi
fi

# ---------------------------------------------------------------- runs
ROWS=()

# peak_rss_kib PID... : the largest VmHWM among the processes.
peak_rss_kib() {
  local max=0 pid v
  for pid in "$@"; do
    v="$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
    [ -n "$v" ] && [ "$v" -gt "$max" ] && max="$v"
  done
  echo "$max"
}

# bench LABEL URL [LUA] [PIDS for RSS...]
bench() {
  local label="$1" url="$2" script="$3"
  shift 3
  local out="$TMP/wrk-${label//[^a-zA-Z0-9]/_}.txt" args=()
  [ -n "$script" ] && args+=(-s "$script")
  log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency ${args[*]} $url   [$label]"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${args[@]}" "$url" | tee "$out"
  local rps p50 p99 errs non2xx rss="-"
  rps="$(awk '/^Requests\/sec:/{print $2}' "$out")"
  p50="$(awk '/Latency Distribution/{f=1;next} f && $1=="50%"{print $2; exit}' "$out")"
  p99="$(awk '/Latency Distribution/{f=1;next} f && $1=="99%"{print $2; exit}' "$out")"
  errs="$(awk '/Socket errors:/{gsub(",","");print $4+$6+$8+$10}' "$out")"
  non2xx="$(awk '/Non-2xx or 3xx responses:/{print $5}' "$out")"
  errs=$(( ${errs:-0} + ${non2xx:-0} ))
  if [ $# -gt 0 ]; then rss="$(( $(peak_rss_kib "$@") / 1024 )) MiB"; fi
  ROWS+=("$label|${rps:-?}|${p50:-?}|${p99:-?}|$errs|$rss")
}

# The nginx worker processes are the master's children.
workers_of() { pgrep -P "$1" 2>/dev/null | tr '\n' ' '; }

bench "sluice" "http://127.0.0.1:$SLUICE_PORT" "$TMP/proxy.lua" "$SLUICE_PID"
if [ -n "$NGINX_PROXY_PORT" ]; then
  # shellcheck disable=SC2046
  bench "nginx (proxy)" "http://127.0.0.1:$NGINX_PROXY_PORT" "$TMP/proxy.lua" \
    $(workers_of "$NGINX_PROXY_PID")
fi
if [ -n "$HAPROXY_PORT" ]; then
  bench "haproxy (proxy)" "http://127.0.0.1:$HAPROXY_PORT" "$TMP/proxy.lua" "$HAPROXY_PID"
fi
bench "nginx upstream direct (TLS)" "https://localhost:$UPSTREAM_PORT/" ""

kill -0 "$SLUICE_PID" 2>/dev/null || die "sluice died during the run (see $TMP/sluice.log)"
SLUICE_HWM="$(awk '/^VmHWM:/{print $2}' "/proc/$SLUICE_PID/status")"

# ---------------------------------------------------------------- report
echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION; proxies with $PROXY_THREADS thread(s)/worker(s); $(nproc) CPU(s)"
printf '%-30s %14s %10s %10s %8s %10s\n' target requests/s p50 p99 errors "peak RSS"
printf '%-30s %14s %10s %10s %8s %10s\n' ------ ---------- --- --- ------ --------
for row in "${ROWS[@]}"; do
  IFS='|' read -r a b c d e f <<<"$row"
  printf '%-30s %14s %10s %10s %8s %10s\n' "$a" "$b" "$c" "$d" "$e" "$f"
done
echo
echo "sluice peak RSS (VmHWM): ${SLUICE_HWM} KiB ($(( SLUICE_HWM / 1024 )) MiB)"
