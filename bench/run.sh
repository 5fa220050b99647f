#!/usr/bin/env bash
# Load benchmark: wrk -> sluice (plain HTTP, absolute-form) -> nginx (TLS, keep-alive),
# next to wrk straight at the nginx upstream and, as peers (DESIGN.md section 9), nginx
# and HAProxy configured as the same kind of proxy (plain HTTP in, pooled verified TLS
# out, one worker each). One run of each; bench/compare runs interleaved rounds. See
# bench/README.md.
#
#   bench/run.sh [options] [SLUICE_BINARY]   (default: build-release/sluice, else build/sluice)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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

SLUICE_BINARY defaults to build-release/sluice (scripts/run.sh), else build/sluice.
Needs wrk, nginx, openssl, curl and python3 (scripts/install-deps.sh); HAProxy is
used as a peer when it is installed.
EOF
}

DURATION=10s
CONNECTIONS=50
THREADS=2
PROXY_THREADS=1
PEERS=1
KEEP=0
SLUICE="$(shipped_sluice)"

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
positive "$CONNECTIONS" "$THREADS" "$PROXY_THREADS"
SLUICE="$(resolve_sluice "$SLUICE")"
bench_init sluice-bench wrk

make_certs
start_upstream
sluice_config "$TMP/sluice.yaml" "$PROXY_THREADS"
start_sluice "$SLUICE" "$TMP/sluice.yaml" "$TMP/sluice.log"
proxy_lua

NGINX_PROXY_PORT=""
HAPROXY_PORT=""
if [ "$PEERS" = 1 ]; then
  start_nginx_proxy "$PROXY_THREADS"
  if [ -n "$HAPROXY" ]; then
    start_haproxy "$PROXY_THREADS"
  else
    log "haproxy not installed: skipping that peer"
  fi
fi

ROWS=()
# bench LABEL URL [LUA] [PIDS for RSS...]
bench() {
  local label="$1" url="$2" script="$3" rss="-"
  shift 3
  local out="$TMP/wrk-${label//[^a-zA-Z0-9]/_}.txt"
  log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency $url   [$label]"
  run_wrk "$out" "$THREADS" "$CONNECTIONS" "$DURATION" "$url" "$script"
  cat "$out"
  if [ $# -gt 0 ]; then rss="$(( $(peak_rss_kib "$@") / 1024 )) MiB"; fi
  ROWS+=("$label|$WRK_RPS|${WRK_P50_MS}ms|${WRK_P99_MS}ms|$WRK_ERRORS|$rss")
}

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
SLUICE_HWM="$(status_kib "$SLUICE_PID" VmHWM)"

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
