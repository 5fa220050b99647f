# Shared by the benchmark scripts (bench/run.sh, bench/compare, bench/idle-connections,
# bench/soak): prerequisites, a temp dir cleaned up on exit, a test CA, the nginx TLS
# upstream, sluice and the two peer proxies configured for the same job, and wrk runs.
# Sourced, not run: `. "$(dirname "$0")/lib.sh"`. See bench/README.md.

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { echo "== $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# bench_init PREFIX TOOL... : checks that each TOOL (and nginx, openssl, curl, python3) is
# installed, finds nginx and HAProxy, and makes the temp dir $TMP, removed on exit together
# with every process in PIDS (unless KEEP=1).
bench_init() {
  local prefix="$1" tool
  shift
  NGINX="$(command -v nginx || true)"
  [ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } || true
  HAPROXY="$(command -v haproxy || true)"
  [ -n "$HAPROXY" ] || { [ -x /usr/sbin/haproxy ] && HAPROXY=/usr/sbin/haproxy; } || true
  local missing=()
  [ -n "$NGINX" ] || missing+=(nginx)
  for tool in openssl curl python3 "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    die "missing: ${missing[*]} -- run scripts/install-deps.sh first"
  fi
  # Everything talks to 127.0.0.1: proxy variables in the environment must not divert curl.
  unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY
  TMP="$(mktemp -d "/tmp/$prefix.XXXXXX")"
  chmod 755 "$TMP"
  PIDS=()
  KEEP="${KEEP:-0}"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids "${PIDS[@]}"
  if [ "$KEEP" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
  exit "$rc"
}

# stop_pids PID... : TERM, then KILL after 10 s, and reap.
stop_pids() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# forget_pids PID... : stops them and removes them from PIDS.
forget_pids() {
  local pid keep=() p
  stop_pids "$@"
  for p in "${PIDS[@]}"; do
    for pid in "$@"; do [ "$p" = "$pid" ] && continue 2; done
    keep+=("$p")
  done
  PIDS=("${keep[@]}")
}

# resolve_sluice PATH : absolute path of an executable sluice binary, or die.
resolve_sluice() {
  local s="$1"
  case "$s" in /*) ;; *) s="$PWD/$s" ;; esac
  [ -x "$s" ] || die "sluice binary not found: $s (build it, or pass its path)"
  echo "$s"
}

# shipped_sluice : the binary users run, as scripts/run.sh builds it (build-release/sluice,
# profile-guided) when it is there, else the tests' build (build/sluice).
shipped_sluice() {
  if [ -x "$BENCH_ROOT/build-release/sluice" ]; then
    echo "$BENCH_ROOT/build-release/sluice"
  else
    echo "$BENCH_ROOT/build/sluice"
  fi
}

# sluice_build_kind BINARY : how the binary was built, from its build tree's CMake cache:
# "profile-guided", "instrumented (profile generate)" or "no profile" (also when unknown).
sluice_build_kind() {
  local cache
  cache="$(dirname "$1")/CMakeCache.txt"
  case "$(sed -n 's/^SLUICE_PGO:[A-Z]*=//p' "$cache" 2>/dev/null | tr '[:upper:]' '[:lower:]')" in
    use) echo "profile-guided" ;;
    generate) echo "instrumented (profile generate)" ;;
    *) echo "no profile" ;;
  esac
}

# positive N... : dies unless every N is a positive integer.
positive() {
  local n
  for n in "$@"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "not a positive number: $n"
  done
}

# allowed_cpus : the CPUs this script may run on (its affinity, e.g. a container's cpuset),
# space-separated and ascending.
allowed_cpus() {
  python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))'
}

# pin_split THREADS CPU... : the CPU lists of `bench/compare --pin`, printed as
# "PROXY_CPUS CLIENT_CPUS" (comma-separated lists for taskset -c): the proxy gets the first
# THREADS of the CPUs, wrk and the upstream the others. Status 1, with the reason on stderr,
# when no CPU would be left for them.
pin_split() {
  local t="$1"
  shift
  local cpus=("$@")
  if [ "${#cpus[@]}" -lt 2 ]; then
    echo "--pin needs at least 2 CPUs, one for the proxy and one for wrk and the upstream;" \
      "this script may use ${#cpus[@]} (${cpus[*]:-none found})" >&2
    return 1
  fi
  if [ "$t" -ge "${#cpus[@]}" ]; then
    echo "--pin needs a CPU besides the proxy's: $t proxy thread(s) on ${#cpus[@]} CPU(s)" \
      "(${cpus[*]}); compare at fewer threads, e.g. --threads $(( ${#cpus[@]} - 1 ))" >&2
    return 1
  fi
  local proxy client
  proxy="$(IFS=,; echo "${cpus[*]:0:t}")"
  client="$(IFS=,; echo "${cpus[*]:t}")"
  echo "$proxy $client"
}

# pin_cpus LIST PID... : every thread of each process (and what it starts later) runs only on
# the CPUs in LIST (taskset -c syntax).
pin_cpus() {
  local list="$1" pid
  shift
  for pid in "$@"; do
    taskset -a -c -p "$list" "$pid" >/dev/null || die "taskset -c $list failed for pid $pid"
  done
}

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

# make_certs: $TMP/ca.pem and a server certificate for localhost / 127.0.0.1 (EC P-256).
make_certs() {
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
}

# ---------------------------------------------------------------- nginx

# start_nginx NAME WORKERS SERVER_BLOCK_TEMPLATE -> sets STARTED_PID, STARTED_PORT.
# The template's @PORT@ is replaced by a free port; a port clash is retried.
start_nginx() {
  local name="$1" workers="$2" server="$3" dir="$TMP/$1" port pid user=""
  [ "$(id -u)" = 0 ] && user="user root;"
  mkdir -p "$dir"
  for _ in 1 2 3 4 5 6 7 8; do
    port="$(free_port)"
    cat >"$dir/nginx.conf" <<EOF
$user
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

# start_upstream: the nginx TLS upstream (1 worker) -> UPSTREAM_PORT, UPSTREAM_PID.
start_upstream() {
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
  UPSTREAM_PID="$STARTED_PID"
  curl -sS --fail --cacert "$TMP/ca.pem" -o /dev/null "https://localhost:$UPSTREAM_PORT/" ||
    die "the nginx upstream does not answer over verified TLS"
}

# check_proxy PORT NAME: one request through the proxy must return the upstream's "ok".
check_proxy() {
  local body
  body="$(curl -sS --max-time 10 -x "http://127.0.0.1:$1" http://bench.test/ || true)"
  [ "$body" = ok ] || die "a request through $2 did not return the upstream's 'ok' (got: ${body:0:200})"
}

# ---------------------------------------------------------------- sluice

# sluice_config FILE THREADS [POOL_YAML] : the benchmark config. Policies stay on (DESIGN
# section 9): a token bucket too large to bind, the default circuit breaker and retries; the
# access log as config/sluice.yaml ships it (on, text, stderr). POOL_YAML replaces the pool
# settings (a flow mapping).
sluice_config() {
  cat >"$1" <<EOF
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
threads: $2
unknown_hosts: reject
log: {level: info, format: text, access_log: true}
limits: {max_client_connections: 20000}
upstreams:
  - name: bench
    hosts: [bench.test]
    origin: "https://localhost:$UPSTREAM_PORT"
    tls: {ca_file: "$TMP/ca.pem"}
    rate_limit: {enabled: true, requests_per_minute: 1000000000, burst_size: 1000000}
    queue: {max_size: 1000, max_wait: 30s}
    circuit_breaker: {enabled: true, failure_threshold: 5, recovery_timeout: 30s}
    retry: {enabled: true, max_retries: 3, initial_delay: 1s, retry_on_status: [429, 502, 503, 504]}
    pool: ${3:-{max_connections: 64, idle_timeout: 60s, max_connection_age: 5m\}}
EOF
}

# start_sluice BINARY CONFIG LOG -> SLUICE_PID, SLUICE_PORT, SLUICE_ADMIN_PORT. The ports are
# read from the "proxy/admin listening on IP:PORT" log lines; one request checks the path.
start_sluice() {
  local bin="$1" cfg="$2" out="$3"
  log "starting sluice ($bin, $(awk '/^threads:/{print "threads: " $2}' "$cfg"))"
  "$bin" --config "$cfg" 2>"$out" >/dev/null </dev/null &
  SLUICE_PID=$!
  PIDS+=("$SLUICE_PID")
  SLUICE_PORT=""
  SLUICE_ADMIN_PORT=""
  for _ in $(seq 300); do
    SLUICE_PORT="$(sed -nE 's/.*proxy listening on [0-9.]+:([0-9]+).*/\1/p' "$out" | head -1)"
    SLUICE_ADMIN_PORT="$(sed -nE 's/.*admin listening on [0-9.]+:([0-9]+).*/\1/p' "$out" | head -1)"
    [ -n "$SLUICE_PORT" ] && [ -n "$SLUICE_ADMIN_PORT" ] && break
    kill -0 "$SLUICE_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$SLUICE_PORT" ]; then
    tail -n 30 "$out" >&2 || true
    die "sluice did not log 'proxy listening on IP:PORT'"
  fi
  check_proxy "$SLUICE_PORT" sluice
}

# ---------------------------------------------------------------- peers

# start_nginx_proxy WORKERS [log] -> NGINX_PROXY_PORT, NGINX_PROXY_PID: nginx as the same kind
# of proxy (plain HTTP in, pooled verified keep-alive TLS out with SNI). With "log", one access
# line per request in nginx's default format (combined) to a file, buffered as sluice's are
# (64 KiB, flushed within 1 s: `access_log ... buffer= flush=`); without, no access log.
start_nginx_proxy() {
  local access="access_log off;"
  [ "${2:-}" = log ] && access="access_log $TMP/proxy-$1/access.log combined buffer=64k flush=1s;"
  log "starting nginx as a proxy peer ($1 worker(s), pooled verified TLS${2:+, access log})"
  start_nginx "proxy-$1" "$1" "
    upstream bench_up {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:@PORT@;
        $access
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
  check_proxy "$NGINX_PROXY_PORT" "the nginx proxy"
}

# start_haproxy THREADS [log] -> HAPROXY_PORT, HAPROXY_PID: HAProxy configured the same way.
# With "log", one access line per request (`option httplog`) on its stdout, a file in the temp
# dir (`log stdout format raw`, as in containers; HAProxy writes each line as it is made).
start_haproxy() {
  local dir="$TMP/haproxy-$1" port global_log="" defaults_log=""
  if [ "${2:-}" = log ]; then
    global_log="log stdout format raw local0 info"
    defaults_log="log global
    option httplog"
  fi
  log "starting HAProxy as a proxy peer (nbthread $1${2:+, access log})"
  mkdir -p "$dir"
  HAPROXY_PORT=""
  for _ in 1 2 3 4 5 6 7 8; do
    port="$(free_port)"
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $1
    maxconn 4000
    $global_log
defaults
    mode http
    $defaults_log
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
    "$HAPROXY" -db -f "$dir/haproxy.cfg" >"$dir/access.log" 2>"$dir/stderr.log" &
    HAPROXY_PID=$!
    if wait_port "$HAPROXY_PID" "$port"; then
      PIDS+=("$HAPROXY_PID")
      HAPROXY_PORT="$port"
      break
    fi
    kill -TERM "$HAPROXY_PID" 2>/dev/null || true
    wait "$HAPROXY_PID" 2>/dev/null || true
    grep -qiE "address already in use|cannot bind" "$dir/stderr.log" ||
      { cat "$dir/stderr.log" >&2; die "HAProxy did not start"; }
  done
  [ -n "$HAPROXY_PORT" ] || die "HAProxy found no free port"
  check_proxy "$HAPROXY_PORT" HAProxy
}

# The nginx worker processes are the master's children.
workers_of() { pgrep -P "$1" 2>/dev/null | tr '\n' ' '; }

# ---------------------------------------------------------------- measuring

# proxy_lua [DELAY_MS] : $TMP/proxy.lua, making every wrk request absolute-form (what
# HTTP_PROXY clients send); with DELAY_MS each connection pauses that long between requests.
proxy_lua() {
  cat >"$TMP/proxy.lua" <<'EOF'
-- absolute-form targets, as HTTP_PROXY clients send them
wrk.path = "http://bench.test/"
wrk.headers["Host"] = "bench.test"
EOF
  if [ -n "${1:-}" ]; then
    printf 'function delay() return %s end\n' "$1" >>"$TMP/proxy.lua"
  fi
}

# status_kib PID FIELD : a /proc/PID/status value in KiB (VmRSS, VmHWM), 0 if gone.
status_kib() {
  awk -v f="$2:" '$1==f{print $2; found=1} END{if(!found) print 0}' "/proc/$1/status" 2>/dev/null ||
    echo 0
}

# peak_rss_kib PID... : the largest VmHWM among the processes.
peak_rss_kib() {
  local max=0 pid v
  for pid in "$@"; do
    v="$(status_kib "$pid" VmHWM)"
    [ "$v" -gt "$max" ] && max="$v"
  done
  echo "$max"
}

# reset_peak_rss PID... : restarts VmHWM at the current RSS (Linux >= 4.0), so each round
# reports its own peak; returns 1 when the kernel does not allow it.
reset_peak_rss() {
  local pid ok=0
  for pid in "$@"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || ok=1; done
  return "$ok"
}

# cpu_ticks PID... : user + system CPU time the processes have used, in clock ticks.
cpu_ticks() {
  local pid total=0 t
  for pid in "$@"; do
    # Fields 14 and 15 of /proc/PID/stat, counted after the command name (which may hold spaces).
    t="$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }')"
    total=$(( total + ${t:-0} ))
  done
  echo "$total"
}

# run_wrk OUT THREADS CONNECTIONS DURATION URL [LUA] : runs wrk --latency into OUT and sets
# WRK_RPS, WRK_P50_MS, WRK_P99_MS, WRK_ERRORS (socket errors plus non-2xx/3xx answers: a run
# with errors is no valid measurement) and WRK_REQUESTS. With WRK_CPUS set (a taskset -c
# list), wrk runs on those CPUs only.
run_wrk() {
  local out="$1" t="$2" c="$3" d="$4" url="$5" script="${6:-}" args=()
  [ -n "$script" ] && args+=(-s "$script")
  local pin=()
  [ -n "${WRK_CPUS:-}" ] && pin=(taskset -c "$WRK_CPUS")
  "${pin[@]}" wrk -t"$t" -c"$c" -d"$d" --latency "${args[@]}" "$url" >"$out"
  read -r WRK_RPS WRK_P50_MS WRK_P99_MS WRK_ERRORS WRK_REQUESTS < <(parse_wrk "$out")
}

# parse_wrk FILE : "requests/s p50_ms p99_ms errors requests" of one wrk --latency output.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    /Latency Distribution/ { dist = 1; next }
    dist && $1 == "50%" { p50 = ms($2) }
    dist && $1 == "99%" { p99 = ms($2); dist = 0 }
    /Socket errors:/ { gsub(",", ""); errs += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { errs += $5 }
    / requests in / { requests = $1 }
    END { printf "%s %.3f %.3f %d %d\n", (rps == "" ? 0 : rps), p50, p99, errs, requests }
  ' "$1"
}

# metric ADMIN_PORT NAME [LABEL=\"VALUE\"...] : the value of the series of sluice's /metrics with
# that name and those labels (in any order), e.g. metric 9464 sluice_tls_handshakes_total
# 'resumed="true"'; 0 when absent.
metric() {
  local port="$1" name="$2"
  shift 2
  curl -sS --max-time 5 "http://127.0.0.1:$port/metrics" |
    awk -v name="$name" -v labels="$*" '
      index($0, name "{") == 1 || index($0, name " ") == 1 {
        n = split(labels, want, " ")
        for (i = 1; i <= n; i++) if (index($0, want[i]) == 0) next
        v = $NF
      }
      END { print (v == "" ? 0 : v) }'
}
