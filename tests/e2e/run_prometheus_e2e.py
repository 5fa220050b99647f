#!/usr/bin/env python3
"""End-to-end test of sluice's admin port with a real Prometheus (issue 4, DESIGN.md §6).

Runs the built daemon against a real nginx TLS upstream, sends a mixed workload
(successes, upstream 503s retried, rate-limit rejections, a circuit breaker that
opens against a port that refuses connections), then:

  * runs `promtool check metrics` on the scraped /metrics and asserts the value of
    every DESIGN §6 metric that this workload implies (types, label names, closed
    label sets and counts);
  * checks /healthz, /readyz, /status (JSON) and the admin port's 404/405;
  * starts a real Prometheus on loopback that scrapes sluice, waits until PromQL
    `sluice_requests_total` > 0, and runs every PromQL expression of
    deploy/grafana/sluice.json through its HTTP API (each must parse and evaluate,
    and every metric it names must exist);
  * reloads the config with SIGHUP (valid, then invalid) and checks the counter;
  * sends SIGTERM with a request queued and checks that /readyz says 503 while
    sluice drains, then that it exits 0.

    python3 tests/e2e/run_prometheus_e2e.py --sluice build/sluice
    python3 tests/e2e/run_prometheus_e2e.py --dashboard-only     # dashboard vs. Prometheus only
    python3 tests/e2e/run_prometheus_e2e.py --sluice build/sluice --keep -v

Standard library only. Needs openssl, nginx, promtool and prometheus (Debian
packages nginx-light and prometheus: scripts/install-deps.sh). The last line printed
is exactly "N passed, M failed"; the exit status is non-zero when anything failed.
"""

import argparse
import http.client
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "sluice.json")
SCRAPE_CONFIG = os.path.join(REPO, "deploy", "prometheus", "prometheus.yml")


def _load_e2e():
    """Certificates and process helpers shared with run_e2e.py."""
    spec = importlib.util.spec_from_file_location("sluice_run_e2e",
                                                  os.path.join(HERE, "run_e2e.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


e2e = _load_e2e()
Certs = e2e.Certs
Results = e2e.Results
clean_env = e2e.clean_env
can_connect = e2e.can_connect
free_port = e2e.free_port
kill_process = e2e.kill_process
run = e2e.run
expect = e2e.expect
expect_eq = e2e.expect_eq

NGINX = "/usr/sbin/nginx"
ITEMS_JSON = b'{"items":[1,2,3]}'

# The workload (every number below is asserted in /metrics).
N_API_GET = 20        # api: GET /v1/items -> 200
N_API_HEAD = 2        # api: HEAD /v1/items -> 200
N_API_POST = 3        # api: POST /echo-request -> 200
N_FLAKY = 3           # flaky: GET /status/503 -> 503, each after 1 + FLAKY_RETRIES attempts
FLAKY_RETRIES = 2
N_LIMITED = 6         # limited: bucket of 1 token, no queue -> 1 x 200 then 429s (queue_full)
BROKEN_THRESHOLD = 3  # broken: refused connects -> 502 x 3, then the circuit is open
N_BROKEN_OPEN = 2     # ... and 503 (circuit open) x 2 without touching the network
N_UNROUTED = 1        # unknown host -> 403, upstream="unrouted"

UPSTREAMS = ("api", "flaky", "limited", "queued", "broken", "drainq")

VERBOSE = False


def log(msg):
    print(msg, flush=True)


def debug(msg):
    if VERBOSE:
        print("  . " + msg, flush=True)


def eventually(check, timeout=5.0, interval=0.1):
    """Runs check() until it stops raising AssertionError (for gauges that settle after the
    response was sent: pooled connections, client connections). Bounded by timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


# --------------------------------------------------------------------------
# the Prometheus text format


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?\s*$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def _float(s):
    return {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(s) or float(s)


class Metrics:
    """A parsed /metrics scrape: TYPE per family and every sample with its labels."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.samples = []    # (name, {label: value}, float)
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 4 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3].strip()
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                raise AssertionError("line %d of /metrics is not a sample: %r" % (n, line))
            labels = {}
            body = m.group(3) or ""
            pos = 0
            while pos < len(body):
                lm = _LABEL_RE.match(body, pos)
                if not lm:
                    raise AssertionError("line %d: bad labels %r" % (n, body))
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
            self.samples.append((m.group(1), labels, _float(m.group(4))))

    def series(self, name, **labels):
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(x) for k, x in labels.items())]

    def get(self, name, default=None, **labels):
        """The one sample of `name` whose labels are exactly `labels`."""
        want = {k: str(v) for k, v in labels.items()}
        hits = [v for n, l, v in self.samples if n == name and l == want]
        if not hits:
            if default is not None:
                return default
            raise AssertionError("no series %s%s in /metrics" % (name, fmt_labels(want)))
        if len(hits) > 1:
            raise AssertionError("%d series %s%s in /metrics" % (len(hits), name,
                                                                  fmt_labels(want)))
        return hits[0]

    def sum(self, name, **labels):
        return sum(v for _, v in self.series(name, **labels))


def fmt_labels(labels):
    return "{%s}" % ",".join('%s="%s"' % kv for kv in sorted(labels.items()))


# DESIGN §6: name -> (type, label names)
DESIGN_METRICS = {
    "sluice_requests_total": ("counter", {"upstream", "method", "code"}),
    "sluice_request_duration_seconds": ("histogram", {"upstream"}),
    "sluice_upstream_attempts_total": ("counter", {"upstream", "outcome"}),
    "sluice_upstream_attempt_duration_seconds": ("histogram", {"upstream"}),
    "sluice_retries_total": ("counter", {"upstream", "reason"}),
    "sluice_ratelimit_wait_seconds": ("histogram", {"upstream"}),
    "sluice_ratelimit_rejected_total": ("counter", {"upstream", "reason"}),
    "sluice_ratelimit_tokens": ("gauge", {"upstream"}),
    "sluice_queue_depth": ("gauge", {"upstream"}),
    "sluice_circuit_state": ("gauge", {"upstream"}),
    "sluice_circuit_transitions_total": ("counter", {"upstream", "to"}),
    "sluice_circuit_rejected_total": ("counter", {"upstream"}),
    "sluice_upstream_connections": ("gauge", {"upstream", "state"}),
    "sluice_upstream_connections_opened_total": ("counter", {"upstream"}),
    "sluice_tls_handshakes_total": ("counter", {"upstream", "resumed"}),
    "sluice_client_connections": ("gauge", set()),
    "sluice_tunnels_active": ("gauge", {"upstream"}),
    "sluice_config_reloads_total": ("counter", {"result"}),
    "sluice_accept_errors_total": ("counter", {"reason"}),
    "sluice_client_connections_rejected_total": ("counter", {"reason"}),
    "sluice_build_info": ("gauge", {"version"}),
}

# DESIGN §6: label values are closed sets.
CLOSED_LABELS = {
    ("sluice_upstream_attempts_total", "outcome"):
        {"success", "http_5xx", "http_429", "connect_error", "tls_error", "timeout", "reset"},
    ("sluice_retries_total", "reason"): {"status", "connect_error", "timeout", "reset"},
    ("sluice_accept_errors_total", "reason"): {"fd_exhausted", "other"},
    ("sluice_client_connections_rejected_total", "reason"): {"max_client_connections"},
    ("sluice_ratelimit_rejected_total", "reason"): {"queue_full", "wait_too_long"},
    ("sluice_circuit_transitions_total", "to"): {"closed", "open", "half_open"},
    ("sluice_upstream_connections", "state"): {"active", "idle"},
    ("sluice_tls_handshakes_total", "resumed"): {"true", "false"},
    ("sluice_config_reloads_total", "result"): {"success", "failure"},
}


def family_samples(m, family, mtype):
    """Samples belonging to a family (histograms: _bucket/_sum/_count; prometheus-cpp
    declares counters by the name with _total)."""
    if mtype == "histogram":
        names = {family + "_bucket", family + "_sum", family + "_count"}
    else:
        names = {family}
    return [(n, l, v) for n, l, v in m.samples if n in names]


def family_type(m, family):
    # The text format 0.0.4 declares a counter either as "x_total" or as "x".
    t = m.types.get(family)
    if t is None and family.endswith("_total"):
        t = m.types.get(family[:-len("_total")])
    return t


# --------------------------------------------------------------------------
# nginx: a TLS upstream with the few endpoints the workload needs


NGINX_CONF = r"""
%(user)s
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/nginx-error.log info;
events { worker_connections 256; }
http {
    client_body_temp_path %(dir)s/client_body_temp;
    proxy_temp_path %(dir)s/proxy_temp;
    fastcgi_temp_path %(dir)s/fastcgi_temp;
    uwsgi_temp_path %(dir)s/uwsgi_temp;
    scgi_temp_path %(dir)s/scgi_temp;
    access_log %(dir)s/nginx-access.log;
    keepalive_timeout 65s;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:%(port)d ssl;
        server_name localhost;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        ssl_protocols TLSv1.2 TLSv1.3;
        location = /v1/items {
            default_type application/json;
            return 200 '{"items":[1,2,3]}';
        }
        location = /echo-request {
            default_type text/plain;
            return 200 "$request_method|$http_content_length\n";
        }
        location = /status/503 {
            default_type text/plain;
            return 503 "upstream says 503\n";
        }
    }
}
"""


class Nginx(e2e.Nginx):
    """run_e2e.py's nginx with this test's endpoints: one port, no large files."""
    conf_template = NGINX_CONF
    ports = 1

    def __init__(self, d, certs):
        super().__init__(os.path.join(d, "nginx"), certs)

    def prepare_content(self):
        pass


# --------------------------------------------------------------------------
# sluice


SLUICE_CONF = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
threads: 2
drain_timeout: 15s
unknown_hosts: reject
log: {level: info, format: text, access_log: true}
defaults:
  rate_limit: {requests_per_minute: 600000, burst_size: 10000}
  retry: {max_retries: 0}
  tls: {ca_file: "%(ca)s"}
upstreams:
  - name: api
    hosts: [api.example.test]
    origin: "https://localhost:%(port)d"
  - name: flaky
    hosts: [flaky.example.test]
    origin: "https://localhost:%(port)d"
    retry: {max_retries: %(flaky_retries)d, initial_delay: 10ms, max_delay: 50ms, jitter: 0}
    circuit_breaker: {failure_threshold: 1000}
  - name: limited
    hosts: [limited.example.test]
    origin: "https://localhost:%(port)d"
    rate_limit: {requests_per_minute: 1, burst_size: 1}
    queue: {max_size: 0}
  - name: queued
    hosts: [queued.example.test]
    origin: "https://localhost:%(port)d"
    rate_limit: {requests_per_minute: 120, burst_size: 1}
    queue: {max_size: 10, max_wait: 20s}
  - name: broken
    hosts: [broken.example.test]
    origin: "https://127.0.0.1:%(dead_port)d"
    circuit_breaker: {failure_threshold: %(threshold)d, recovery_timeout: 10m}
    timeouts: {connect: 2s}
  - name: drainq
    hosts: [drainq.example.test]
    origin: "https://localhost:%(port)d"
    rate_limit: {requests_per_minute: 15, burst_size: 1}
    queue: {max_size: 10, max_wait: 30s}
%(extra)s"""

LISTEN_RE = re.compile(r"proxy listening on (\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)")
ADMIN_RE = re.compile(r"admin listening on (\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)")


class Sluice:
    def __init__(self, binary, d, nginx, certs, dead_port):
        self.binary = binary
        self.dir = d
        self.nginx = nginx
        self.certs = certs
        self.dead_port = dead_port
        self.proc = None
        self.port = None
        self.admin_port = None
        self.lines = []
        self.lock = threading.Lock()
        self.both = threading.Event()
        self.reader = None
        self.config = os.path.join(d, "sluice.yaml")

    def write_config(self, extra=""):
        with open(self.config, "w") as f:
            f.write(SLUICE_CONF % {"port": self.nginx.port, "ca": self.certs.ca,
                                   "dead_port": self.dead_port, "threshold": BROKEN_THRESHOLD,
                                   "flaky_retries": FLAKY_RETRIES, "extra": extra})

    def _read_stderr(self):
        logf = open(os.path.join(self.dir, "sluice-stderr.log"), "w")
        try:
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                logf.write(line + "\n")
                logf.flush()
                with self.lock:
                    self.lines.append(line)
                if VERBOSE:
                    print("  | " + line, flush=True)
                if self.port is None:
                    m = LISTEN_RE.search(line)
                    if m:
                        self.port = int(m.group(2))
                if self.admin_port is None:
                    m = ADMIN_RE.search(line)
                    if m:
                        self.admin_port = int(m.group(2))
                if self.port is not None and self.admin_port is not None:
                    self.both.set()
        finally:
            logf.close()
            self.both.set()

    def start(self, timeout=15.0):
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("sluice binary %s not found or not executable" % self.binary)
        self.write_config()
        with open(os.path.join(self.dir, "sluice-stdout.log"), "wb") as out:
            self.proc = subprocess.Popen([self.binary, "--config", self.config],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.PIPE, env=clean_env(),
                                         start_new_session=True)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        self.both.wait(timeout)
        if self.port is None or self.admin_port is None:
            rc = self.proc.poll()
            missing = " and ".join(s for s, p in (("'proxy listening on'", self.port),
                                                 ("'admin listening on IP:PORT'",
                                                  self.admin_port)) if p is None)
            raise RuntimeError("no %s line on sluice's stderr (%s); stderr:\n%s"
                               % (missing, "exit code %s" % rc if rc is not None
                                  else "none within %.0fs" % timeout, self.stderr_tail(40)))

    def stderr_text(self):
        with self.lock:
            return "\n".join(self.lines)

    def stderr_tail(self, n=30):
        with self.lock:
            return "\n".join(self.lines[-n:])

    def stop(self):
        if self.proc is not None:
            kill_process(self.proc, signal.SIGTERM, timeout=20)
            if self.reader is not None:
                self.reader.join(timeout=5)


# --------------------------------------------------------------------------
# Prometheus


PROMETHEUS_CONF = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sluice
    scrape_interval: 1s
    scrape_timeout: 1s
    metrics_path: /metrics
    static_configs:
      - targets: [%(targets)s]
"""


class Prometheus:
    def __init__(self, binary, d, admin_port):
        self.binary = binary
        self.dir = os.path.join(d, "prometheus")
        self.admin_port = admin_port
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, "prometheus.log")

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def start(self, attempts=5, ready_timeout=60.0):
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "prometheus.yml")
        targets = '"127.0.0.1:%d"' % self.admin_port if self.admin_port else ""
        with open(conf, "w") as f:
            f.write(PROMETHEUS_CONF % {"targets": targets})
        for attempt in range(attempts):
            self.port = free_port()
            data = os.path.join(self.dir, "data-%d" % attempt)
            with open(self.log_path, "ab") as out:
                self.proc = subprocess.Popen(
                    [self.binary, "--config.file=" + conf, "--storage.tsdb.path=" + data,
                     "--web.listen-address=127.0.0.1:%d" % self.port,
                     "--storage.tsdb.retention.time=1h", "--log.level=info"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=clean_env(),
                    cwd=self.dir, start_new_session=True)
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(self.url("/-/ready"), timeout=2) as r:
                        if r.status == 200:
                            debug("prometheus ready on 127.0.0.1:%d" % self.port)
                            return
                except (urllib.error.URLError, OSError):
                    pass
                time.sleep(0.1)
            tail = self.log_tail()
            self.stop()
            if "address already in use" in tail:
                continue
            raise RuntimeError("prometheus not ready within %.0fs:\n%s" % (ready_timeout, tail))
        raise RuntimeError("prometheus could not bind a free port:\n" + self.log_tail())

    def url(self, path, **params):
        q = ("?" + urllib.parse.urlencode(params)) if params else ""
        return "http://127.0.0.1:%d%s%s" % (self.port, path, q)

    def api(self, path, **params):
        """GET an /api/v1 endpoint; returns the decoded JSON (errors included)."""
        try:
            with urllib.request.urlopen(self.url(path, **params), timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return json.loads(body)
            except ValueError:
                return {"status": "error", "error": "HTTP %d: %r" % (e.code, body[:300])}

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)

    def stop(self):
        if self.proc is not None:
            kill_process(self.proc, signal.SIGTERM, timeout=20)
            self.proc = None


# --------------------------------------------------------------------------
# the Grafana dashboard


def dashboard_panels(panels):
    for p in panels or []:
        yield p
        yield from dashboard_panels(p.get("panels"))   # rows (collapsed ones hold panels)


def dashboard_exprs(dash):
    """(panel title, raw expr) for every target of every panel."""
    out = []
    for p in dashboard_panels(dash.get("panels")):
        for t in p.get("targets") or []:
            if "expr" in t:
                out.append((p.get("title", "?"), t["expr"]))
    return out


_UPSTREAM_VAR = re.compile(r"\$\{upstream(?::[a-z]+)?\}|\[\[upstream\]\]|\$upstream\b")


def substitute(expr):
    """Grafana's variables, as Prometheus sees them after interpolation."""
    e = _UPSTREAM_VAR.sub(".*", expr)
    e = e.replace("${__rate_interval}", "1m").replace("$__rate_interval", "1m")
    e = e.replace("${__interval}", "15s").replace("$__interval", "15s")
    e = e.replace("${__range}", "1h").replace("$__range", "1h")
    left = re.findall(r"\$\{?[A-Za-z_][A-Za-z0-9_]*", e)
    if left:
        raise AssertionError("unknown Grafana variable(s) %s left in %r" % (left, expr))
    return e


def load_dashboard(path):
    with open(path) as f:
        return json.load(f)


def t_dashboard_structure(c):
    dash = load_dashboard(c.dashboard)
    expect(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36,
           "schemaVersion %r" % dash.get("schemaVersion"))
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    expect(ds is not None and ds.get("type") == "datasource" and ds.get("query") == "prometheus",
           "no datasource variable of type prometheus: %r" % ds)
    up = variables.get("upstream")
    expect(up is not None and up.get("type") == "query", "no query variable 'upstream'")
    q = up.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    expect_eq(q, "label_values(sluice_requests_total, upstream)", "upstream variable query")
    expect(up.get("multi") is True, "upstream variable is not multi-value")
    ids = set()
    n_targets = 0
    for p in dashboard_panels(dash.get("panels")):
        expect(p.get("id") not in ids, "duplicate panel id %r" % p.get("id"))
        ids.add(p.get("id"))
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        expect(targets, "panel %r has no targets" % p.get("title"))
        for t in targets:
            expect(t.get("expr"), "panel %r has a target without expr" % p.get("title"))
            dsu = (t.get("datasource") or p.get("datasource") or {}).get("uid")
            expect_eq(dsu, "${datasource}", "datasource of panel %r" % p.get("title"))
            n_targets += 1
    expect(n_targets >= 10, "only %d PromQL targets" % n_targets)
    for title, expr in dashboard_exprs(dash):
        substitute(expr)
    # The metrics every panel family named in the brief must be on the dashboard.
    text = " ".join(e for _, e in dashboard_exprs(dash))
    for name in ("sluice_requests_total", "sluice_request_duration_seconds_bucket",
                 "sluice_upstream_attempts_total", "sluice_retries_total",
                 "sluice_ratelimit_wait_seconds_bucket", "sluice_ratelimit_rejected_total",
                 "sluice_queue_depth", "sluice_ratelimit_tokens", "sluice_circuit_state",
                 "sluice_circuit_transitions_total", "sluice_upstream_connections",
                 "sluice_upstream_connections_opened_total", "sluice_tls_handshakes_total",
                 "sluice_client_connections", "sluice_tunnels_active",
                 "sluice_config_reloads_total"):
        expect(re.search(r"\b%s\b" % name, text), "no panel queries %s" % name)
    def value_mappings(p):
        out = {}
        for m in p.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
            if m.get("type") == "value":
                out.update({k: v.get("text") for k, v in (m.get("options") or {}).items()})
        return out

    mapped = [p for p in dashboard_panels(dash.get("panels"))
              if any("sluice_circuit_state" in (t.get("expr") or "")
                     for t in p.get("targets") or [])
              and {"0", "1", "2"} <= set(value_mappings(p))]
    expect(mapped, "no circuit-state panel maps 0/1/2 to closed/open/half-open")


def t_dashboard_exprs_parse(c):
    """Every expression through /api/v1/query: status success, no parse error."""
    dash = load_dashboard(c.dashboard)
    bad = []
    nonempty = 0
    exprs = dashboard_exprs(dash)
    for title, raw in exprs:
        expr = substitute(raw)
        r = c.prom.query(expr)
        if r.get("status") != "success":
            bad.append("%s: %s\n        %s" % (title, r.get("error"), expr))
            continue
        if r["data"]["result"]:
            nonempty += 1
        debug("%-40s %d series  %s" % (title[:40], len(r["data"]["result"]), expr))
    log("      %d PromQL expressions, %d returned data" % (len(exprs), nonempty))
    expect(not bad, "%d of %d expressions failed:\n      %s"
           % (len(bad), len(exprs), "\n      ".join(bad)))
    if c.sluice is not None:
        # Series from the workload exist: most expressions must return data.
        expect(nonempty >= len(exprs) // 2, "only %d of %d expressions returned data"
               % (nonempty, len(exprs)))


def t_dashboard_metric_names(c):
    """Every sluice_* name the dashboard queries is one Prometheus has scraped (a typo
    parses fine and shows an empty panel)."""
    names = set(c.prom.api("/api/v1/label/__name__/values")["data"])
    dash = load_dashboard(c.dashboard)
    used = set()
    for _, expr in dashboard_exprs(dash):
        used |= set(re.findall(r"\bsluice_[a-zA-Z0-9_]+", expr))
    missing = sorted(used - names)
    expect(not missing, "the dashboard queries metrics sluice does not export: %s" % missing)
    # The upstream variable's label_values() query, as Grafana runs it.
    r = c.prom.api("/api/v1/label/upstream/values", **{"match[]": "sluice_requests_total"})
    expect_eq(r.get("status"), "success", "label values query")
    for u in ("api", "flaky", "limited", "broken"):
        expect(u in r["data"], "upstream variable would not offer %r: %r" % (u, r["data"]))


# --------------------------------------------------------------------------
# clients


def proxy_request(c, method, url, body=None, headers=None, timeout=30):
    """One request through sluice on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", c.sluice.port, timeout=timeout)
    try:
        conn.request(method, url, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def admin_request(c, method, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", c.sluice.admin_port, timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def scrape(c):
    status, headers, body = admin_request(c, "GET", "/metrics")
    expect_eq(status, 200, "GET /metrics status")
    return Metrics(body.decode())


class Ctx:
    def __init__(self, tmp, dashboard):
        self.tmp = tmp
        self.dashboard = dashboard
        self.certs = None
        self.nginx = None
        self.sluice = None
        self.prom = None
        self.sent = {}          # (upstream, method, code) -> count, as the clients saw it
        self.metrics = None     # the scrape after the workload
        self.version = None


def count(c, upstream, method, status):
    key = (upstream, method, status)
    c.sent[key] = c.sent.get(key, 0) + 1


# --------------------------------------------------------------------------
# tests


def t_admin_basics(c):
    for path in ("/healthz", "/readyz"):
        status, _, _ = admin_request(c, "GET", path)
        expect_eq(status, 200, "GET %s" % path)
    status, headers, body = admin_request(c, "GET", "/metrics")
    expect_eq(status, 200, "GET /metrics")
    ctype = headers.get("content-type", "")
    expect(ctype.startswith("text/plain") and "0.0.4" in ctype,
           "/metrics Content-Type %r is not the text format 0.0.4" % ctype)
    expect(b"sluice_build_info" in body, "no sluice_build_info in /metrics")
    status, _, body = admin_request(c, "HEAD", "/metrics")
    expect_eq(status, 200, "HEAD /metrics")
    expect_eq(body, b"", "HEAD /metrics body")
    status, _, _ = admin_request(c, "GET", "/no-such-page")
    expect_eq(status, 404, "GET /no-such-page")
    status, _, _ = admin_request(c, "POST", "/metrics")
    expect_eq(status, 405, "POST /metrics")


def t_workload(c):
    for _ in range(N_API_GET):
        s, _, b = proxy_request(c, "GET", "http://api.example.test/v1/items")
        expect_eq((s, b), (200, ITEMS_JSON), "api GET")
        count(c, "api", "GET", s)
    for _ in range(N_API_HEAD):
        s, _, _ = proxy_request(c, "HEAD", "http://api.example.test/v1/items")
        expect_eq(s, 200, "api HEAD")
        count(c, "api", "HEAD", s)
    for _ in range(N_API_POST):
        s, _, b = proxy_request(c, "POST", "http://api.example.test/echo-request",
                                body=b'{"a":1}', headers={"Content-Type": "application/json"})
        expect_eq((s, b), (200, b"POST|7\n"), "api POST")
        count(c, "api", "POST", s)
    for _ in range(N_FLAKY):
        s, _, b = proxy_request(c, "GET", "http://flaky.example.test/status/503")
        expect_eq((s, b), (503, b"upstream says 503\n"), "flaky: the upstream's own 503")
        count(c, "flaky", "GET", s)
    limited = []
    for _ in range(N_LIMITED):
        s, h, _ = proxy_request(c, "GET", "http://limited.example.test/v1/items")
        limited.append(s)
        count(c, "limited", "GET", s)
        if s == 429:
            expect("retry-after" in h, "429 without Retry-After")
    expect_eq(limited, [200] + [429] * (N_LIMITED - 1),
              "limited (1 token, no queue): statuses")
    # queued: 2 tokens a second, burst 1: the second request waits ~0.5 s in the queue.
    t0 = time.monotonic()
    for _ in range(2):
        s, _, b = proxy_request(c, "GET", "http://queued.example.test/v1/items")
        expect_eq(s, 200, "queued status")
        count(c, "queued", "GET", s)
    expect(time.monotonic() - t0 >= 0.3, "the queued request did not wait for its token")
    broken = []
    for _ in range(BROKEN_THRESHOLD + N_BROKEN_OPEN):
        s, h, _ = proxy_request(c, "GET", "http://broken.example.test/v1/items")
        broken.append((s, h.get("proxy-status", "")))
        count(c, "broken", "GET", s)
    statuses = [s for s, _ in broken]
    expect_eq(statuses, [502] * BROKEN_THRESHOLD + [503] * N_BROKEN_OPEN,
              "broken: refused connects, then circuit open (Proxy-Status %r)"
              % [p for _, p in broken])
    expect("connection_refused" in broken[0][1], "Proxy-Status %r" % broken[0][1])
    expect("circuit open" in broken[-1][1], "Proxy-Status %r" % broken[-1][1])
    for _ in range(N_UNROUTED):
        s, _, _ = proxy_request(c, "GET", "http://nowhere.example.test/")
        expect_eq(s, 403, "unknown host")
        count(c, "unrouted", "GET", s)


def t_promtool_check_metrics(c):
    # sluice counts a request when it has finished sending the response, so a client can
    # read its response a moment before the counter moves: wait (bounded) until every
    # request sent is counted, then check that scrape.
    total = float(sum(c.sent.values()))
    got = {}

    def all_counted():
        status, _, body = admin_request(c, "GET", "/metrics")
        expect_eq(status, 200, "GET /metrics")
        m = Metrics(body.decode())
        got["body"] = body
        expect_eq(m.sum("sluice_requests_total"), total,
                  "sum of sluice_requests_total (= requests sent, within 5 s)")
        expect_eq(m.sum("sluice_request_duration_seconds_count"), total,
                  "sum of sluice_request_duration_seconds_count (= requests sent, within 5 s)")
    try:
        eventually(all_counted, timeout=5.0, interval=0.05)
    except AssertionError as e:
        log("      (%s)" % e)   # the count tests below say which series is off
    body = got["body"]
    with open(os.path.join(c.tmp, "metrics.txt"), "wb") as f:
        f.write(body)
    p = subprocess.run([c.promtool, "check", "metrics"], input=body, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode(errors="replace").strip()
    debug("promtool: %s" % out)
    expect(p.returncode == 0, "promtool check metrics exited %d:\n%s" % (p.returncode, out))
    c.metrics = Metrics(body.decode())


def need_metrics(c):
    if c.metrics is None:
        c.metrics = scrape(c)
    return c.metrics


def t_families(c):
    """Every DESIGN §6 family: its TYPE, exactly its label names, closed label values."""
    m = need_metrics(c)
    problems = []
    for family, (mtype, labels) in DESIGN_METRICS.items():
        t = family_type(m, family)
        if t != mtype:
            problems.append("%s: TYPE %r, want %r" % (family, t, mtype))
        samples = family_samples(m, family, mtype)
        if not samples:
            problems.append("%s: no samples" % family)
        for n, l, _ in samples:
            names = set(l) - ({"le"} if n.endswith("_bucket") else set())
            if names != labels:
                problems.append("%s%s: labels %s, want %s"
                                % (n, fmt_labels(l), sorted(names), sorted(labels)))
                break
    for (family, label), allowed in CLOSED_LABELS.items():
        for l, _ in m.series(family):
            if l.get(label) not in allowed:
                problems.append("%s%s: %s=%r not in %s" % (family, fmt_labels(l), label,
                                                          l.get(label), sorted(allowed)))
    for l, _ in m.series("sluice_requests_total"):
        if not re.fullmatch(r"[1-5]\d\d", l.get("code", "")):
            problems.append("sluice_requests_total%s: code is not a status" % fmt_labels(l))
    extra = sorted({n for n, _, _ in m.samples if n.startswith("sluice_")}
                   - {s for f, (t, _) in DESIGN_METRICS.items()
                      for s in ([f + "_bucket", f + "_sum", f + "_count"]
                                if t == "histogram" else [f])})
    if extra:
        log("      (metrics beyond DESIGN §6: %s)" % ", ".join(extra))
    expect(not problems, "\n      ".join(problems))


def t_histogram_buckets(c):
    m = need_metrics(c)
    for family in ("sluice_request_duration_seconds", "sluice_upstream_attempt_duration_seconds",
                   "sluice_ratelimit_wait_seconds"):
        les = sorted({_float(l["le"]) for l, _ in m.series(family + "_bucket", upstream="api")})
        expect(les and les[-1] == math.inf, "%s: no +Inf bucket" % family)
        finite = [x for x in les if x != math.inf]
        expect(finite and finite[0] <= 0.001 + 1e-12 and finite[-1] >= 60,
               "%s buckets %s do not span 1 ms .. 60 s" % (family, finite))


def t_request_counts(c):
    """sluice_requests_total and the request histogram equal what the clients saw."""
    expect(c.sent, "the workload did not run")
    m = need_metrics(c)
    for (u, method, code), n in sorted(c.sent.items()):
        expect_eq(m.get("sluice_requests_total", upstream=u, method=method, code=code),
                  float(n), 'sluice_requests_total{upstream="%s",method="%s",code="%s"}'
                  % (u, method, code))
    by_upstream = {}
    for (u, _, _), n in c.sent.items():
        by_upstream[u] = by_upstream.get(u, 0) + n
    for u, n in sorted(by_upstream.items()):
        expect_eq(m.sum("sluice_requests_total", upstream=u), float(n),
                  "sum of sluice_requests_total{upstream=%r} (unexpected codes?)" % u)
        expect_eq(m.get("sluice_request_duration_seconds_count", upstream=u), float(n),
                  "sluice_request_duration_seconds_count{upstream=%r}" % u)
        expect_eq(m.get("sluice_request_duration_seconds_bucket", upstream=u, le="+Inf"),
                  float(n), "sluice_request_duration_seconds_bucket{upstream=%r,le=+Inf}" % u)
    expect(m.get("sluice_request_duration_seconds_sum", upstream="queued") >= 0.3,
           "the queued request's wait is not in sluice_request_duration_seconds_sum")


def t_attempts_and_retries(c):
    m = need_metrics(c)
    api_n = N_API_GET + N_API_HEAD + N_API_POST
    want = {
        ("api", "success"): api_n,
        ("flaky", "http_5xx"): N_FLAKY * (1 + FLAKY_RETRIES),
        ("limited", "success"): 1,
        ("queued", "success"): 2,
        ("broken", "connect_error"): BROKEN_THRESHOLD,
    }
    for (u, outcome), n in want.items():
        expect_eq(m.get("sluice_upstream_attempts_total", upstream=u, outcome=outcome),
                  float(n), "sluice_upstream_attempts_total{upstream=%r,outcome=%r}"
                  % (u, outcome))
        expect_eq(m.sum("sluice_upstream_attempts_total", upstream=u), float(n),
                  "sum of sluice_upstream_attempts_total{upstream=%r}" % u)
        expect_eq(m.get("sluice_upstream_attempt_duration_seconds_count", upstream=u),
                  float(n), "sluice_upstream_attempt_duration_seconds_count{upstream=%r}" % u)
    expect_eq(m.get("sluice_retries_total", upstream="flaky", reason="status"),
              float(N_FLAKY * FLAKY_RETRIES), 'sluice_retries_total{upstream="flaky",'
              'reason="status"}')
    expect_eq(m.sum("sluice_retries_total"), float(N_FLAKY * FLAKY_RETRIES),
              "sum of sluice_retries_total (only flaky retries)")


def t_ratelimit(c):
    m = need_metrics(c)
    n429 = c.sent.get(("limited", "GET", 429), 0)
    expect(n429 > 0, "the workload got no 429")
    expect_eq(m.get("sluice_ratelimit_rejected_total", upstream="limited", reason="queue_full"),
              float(n429), 'sluice_ratelimit_rejected_total{upstream="limited",'
              'reason="queue_full"} (= number of 429s)')
    expect_eq(m.get("sluice_ratelimit_rejected_total", 0.0, upstream="limited",
                    reason="wait_too_long"), 0.0, "wait_too_long rejections")
    expect_eq(m.sum("sluice_ratelimit_rejected_total"), float(n429),
              "sum of sluice_ratelimit_rejected_total")
    tokens = m.get("sluice_ratelimit_tokens", upstream="limited")
    expect(0 <= tokens < 1, "sluice_ratelimit_tokens{limited} = %r, want [0, 1)" % tokens)
    tokens = m.get("sluice_ratelimit_tokens", upstream="api")
    expect(9900 <= tokens <= 10000, "sluice_ratelimit_tokens{api} = %r, want about 10000 - %d"
           % (tokens, N_API_GET + N_API_HEAD + N_API_POST))
    wait_sum = m.get("sluice_ratelimit_wait_seconds_sum", upstream="queued")
    wait_n = m.get("sluice_ratelimit_wait_seconds_count", upstream="queued")
    expect(1 <= wait_n <= 2, "sluice_ratelimit_wait_seconds_count{queued} = %r" % wait_n)
    expect(0.3 <= wait_sum <= 2.0, "sluice_ratelimit_wait_seconds_sum{queued} = %r, want "
           "about 0.5 s" % wait_sum)

    def settled():
        mm = scrape(c)
        for u in UPSTREAMS:
            expect_eq(mm.get("sluice_queue_depth", upstream=u), 0.0,
                      "sluice_queue_depth{upstream=%r}" % u)
    eventually(settled)


def t_circuit(c):
    m = need_metrics(c)
    for u in ("api", "flaky", "limited", "queued"):
        expect_eq(m.get("sluice_circuit_state", upstream=u), 0.0,
                  "sluice_circuit_state{upstream=%r}" % u)
        expect_eq(m.sum("sluice_circuit_transitions_total", upstream=u), 0.0,
                  "transitions of %r" % u)
    expect_eq(m.get("sluice_circuit_state", upstream="broken"), 1.0,
              'sluice_circuit_state{upstream="broken"} (1 = open)')
    expect_eq(m.get("sluice_circuit_transitions_total", upstream="broken", to="open"), 1.0,
              'sluice_circuit_transitions_total{upstream="broken",to="open"}')
    for to in ("closed", "half_open"):
        expect_eq(m.get("sluice_circuit_transitions_total", 0.0, upstream="broken", to=to), 0.0,
                  'transitions{upstream="broken",to=%r}' % to)
    expect_eq(m.get("sluice_circuit_rejected_total", upstream="broken"), float(N_BROKEN_OPEN),
              'sluice_circuit_rejected_total{upstream="broken"}')
    expect_eq(m.sum("sluice_circuit_rejected_total"), float(N_BROKEN_OPEN),
              "sum of sluice_circuit_rejected_total")


def t_connections(c):
    m = need_metrics(c)
    opened = m.get("sluice_upstream_connections_opened_total", upstream="api")
    expect(1 <= opened <= N_API_GET + N_API_HEAD + N_API_POST,
           "sluice_upstream_connections_opened_total{api} = %r" % opened)
    handshakes = m.sum("sluice_tls_handshakes_total", upstream="api")
    expect_eq(handshakes, opened, "TLS handshakes to api (= connections opened)")
    expect_eq(m.get("sluice_upstream_connections_opened_total", 0.0, upstream="broken"), 0.0,
              "connections opened to the refusing port")
    expect_eq(m.sum("sluice_tls_handshakes_total", upstream="broken"), 0.0,
              "TLS handshakes to the refusing port")
    for u in UPSTREAMS:
        expect_eq(m.get("sluice_tunnels_active", upstream=u), 0.0,
                  "sluice_tunnels_active{upstream=%r}" % u)
    expect_eq(m.get("sluice_build_info", version=c.version), 1.0,
              'sluice_build_info{version="%s"}' % c.version)
    expect_eq(len(m.series("sluice_build_info")), 1, "sluice_build_info series")
    expect_eq(m.sum("sluice_config_reloads_total"), 0.0, "config reloads before any SIGHUP")

    def settled():
        mm = scrape(c)
        expect_eq(mm.get("sluice_upstream_connections", upstream="api", state="active"), 0.0,
                  "active connections to api after the workload")
        idle = mm.get("sluice_upstream_connections", upstream="api", state="idle")
        expect(1 <= idle <= opened, "idle connections to api: %r (opened %r)" % (idle, opened))
        expect_eq(mm.get("sluice_client_connections"), 0.0,
                  "sluice_client_connections after every client closed")
    eventually(settled)


def t_status(c):
    status, headers, body = admin_request(c, "GET", "/status")
    expect_eq(status, 200, "GET /status")
    expect("json" in headers.get("content-type", ""), "Content-Type %r"
           % headers.get("content-type"))
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise AssertionError("/status is not JSON (%s): %r" % (e, body[:300]))
    ups = doc.get("upstreams") if isinstance(doc, dict) else None
    if isinstance(ups, dict):
        ups = [dict(v, name=v.get("name", k)) for k, v in ups.items()]
    expect(isinstance(ups, list), "/status has no 'upstreams' list: %r" % body[:300])
    by_name = {u.get("name"): u for u in ups}
    for name in UPSTREAMS:
        expect(name in by_name, "/status has no entry for upstream %r" % name)
        u = by_name[name]
        for field in ("name", "tokens", "queue_depth", "circuit_state", "connections"):
            expect(field in u, "/status %r lacks %r: %r" % (name, field, u))
        expect(isinstance(u["tokens"], (int, float)), "%r tokens %r" % (name, u["tokens"]))
        expect_eq(u["queue_depth"], 0, "/status %r queue_depth" % name)
        conns = u["connections"]
        expect(isinstance(conns, dict) and "active" in conns and "idle" in conns,
               "/status %r connections %r lacks active/idle" % (name, conns))
    expect(by_name["broken"]["circuit_state"] in ("open", 1),
           "/status broken circuit_state %r" % by_name["broken"]["circuit_state"])
    expect(by_name["api"]["circuit_state"] in ("closed", 0),
           "/status api circuit_state %r" % by_name["api"]["circuit_state"])
    expect(by_name["api"]["connections"]["idle"] >= 1,
           "/status api idle connections %r" % by_name["api"]["connections"])
    expect(by_name["limited"]["tokens"] < 1, "/status limited tokens %r"
           % by_name["limited"]["tokens"])


def t_prometheus_scrapes(c):
    """A real Prometheus scrapes the admin port; PromQL sees sluice_requests_total > 0."""
    deadline = time.monotonic() + 30
    last = None
    while True:
        r = c.prom.query("sum(sluice_requests_total)")
        last = r
        res = r.get("data", {}).get("result", []) if r.get("status") == "success" else []
        if res and float(res[0]["value"][1]) > 0:
            break
        if time.monotonic() >= deadline:
            targets = c.prom.api("/api/v1/targets")
            raise AssertionError("no sluice_requests_total > 0 in Prometheus within 30 s "
                                 "(last answer %r; targets %r)"
                                 % (last, json.dumps(targets)[:1500]))
        time.sleep(0.5)
    total = float(res[0]["value"][1])
    expect_eq(total, float(sum(c.sent.values())),
              "sum(sluice_requests_total) in Prometheus (= requests sent)")
    r = c.prom.query('up{job="sluice"}')
    expect_eq([x["value"][1] for x in r["data"]["result"]], ["1"], 'up{job="sluice"}')
    targets = c.prom.api("/api/v1/targets")["data"]["activeTargets"]
    expect(len(targets) == 1 and targets[0]["health"] == "up" and not targets[0]["lastError"],
           "scrape target %r" % targets)
    r = c.prom.query('sluice_circuit_state{upstream="broken"}')
    expect_eq([x["value"][1] for x in r["data"]["result"]], ["1"],
              'PromQL sluice_circuit_state{upstream="broken"}')
    # rate() needs two scrapes: wait for a third so the dashboard has something to show.
    deadline = time.monotonic() + 15
    while True:
        r = c.prom.query("count_over_time(sluice_build_info[1m])")
        res = r.get("data", {}).get("result", [])
        if res and float(res[0]["value"][1]) >= 3:
            break
        expect(time.monotonic() < deadline, "Prometheus did not scrape sluice 3 times in 15 s")
        time.sleep(0.5)


def wait_reloads(c, result, n, timeout=10.0):
    def check():
        got = scrape(c).get("sluice_config_reloads_total", 0.0, result=result)
        expect_eq(got, float(n), 'sluice_config_reloads_total{result="%s"}' % result)
    eventually(check, timeout=timeout, interval=0.1)


def t_reload(c):
    c.sluice.proc.send_signal(signal.SIGHUP)
    wait_reloads(c, "success", 1)
    m = scrape(c)
    expect_eq(m.get("sluice_circuit_state", upstream="broken"), 1.0,
              "breaker state of an unchanged upstream kept across a reload")
    expect_eq(m.sum("sluice_requests_total"), float(sum(c.sent.values())),
              "sluice_requests_total after a reload")
    with open(c.sluice.config) as f:
        good = f.read()
    try:
        with open(c.sluice.config, "a") as f:
            f.write("no_such_key: 1\n")
        c.sluice.proc.send_signal(signal.SIGHUP)
        wait_reloads(c, "failure", 1)
    finally:
        with open(c.sluice.config, "w") as f:
            f.write(good)
    expect_eq(scrape(c).get("sluice_config_reloads_total", result="success"), 1.0,
              "successful reloads after a failed one")
    status, _, _ = admin_request(c, "GET", "/readyz")
    expect_eq(status, 200, "/readyz after a rejected reload")


def t_drain(c):
    """SIGTERM (DESIGN 3.9, shared case 28): /readyz says 503 at once while /healthz stays 200,
    a queued request gets 503 draining, a request still arriving on an open connection gets
    503 with Connection: close, and sluice exits 0."""
    s, _, _ = proxy_request(c, "GET", "http://drainq.example.test/v1/items")
    expect_eq(s, 200, "drainq: first request (takes the only token)")
    result = {}

    def queued():
        try:
            st, hd, _ = proxy_request(c, "GET", "http://drainq.example.test/v1/items", timeout=60)
            result["status"], result["proxy_status"] = st, hd.get("proxy-status", "")
        except Exception as e:   # reported below
            result["error"] = repr(e)

    th = threading.Thread(target=queued, daemon=True)
    th.start()

    def is_queued():
        expect_eq(scrape(c).get("sluice_queue_depth", upstream="drainq"), 1.0,
                  'sluice_queue_depth{upstream="drainq"} with one request waiting')
    eventually(is_queued, timeout=3.0, interval=0.05)
    status, _, body = admin_request(c, "GET", "/status")
    entry = [u for u in json.loads(body)["upstreams"] if u.get("name") == "drainq"]
    expect(entry and entry[0]["queue_depth"] == 1, "/status drainq while queued: %r" % entry)

    # A client in the middle of sending a request head keeps the drain open for a moment.
    slow = socket.create_connection(("127.0.0.1", c.sluice.port), timeout=10)
    slow.sendall(b"GET http://api.example.test/v1/items HTTP/1.1\r\nHost: api.exa")
    time.sleep(0.2)  # the client's pace is the input: the head is still incomplete

    c.sluice.proc.send_signal(signal.SIGTERM)

    def not_ready():
        status, _, _ = admin_request(c, "GET", "/readyz")
        expect_eq(status, 503, "/readyz while draining")
        status, _, _ = admin_request(c, "GET", "/healthz")
        expect_eq(status, 200, "/healthz while draining")
    eventually(not_ready, timeout=2.0, interval=0.05)
    th.join(timeout=30)
    expect(not th.is_alive(), "the queued request was not answered within 30 s of SIGTERM")
    expect("error" not in result, "the queued request failed: %s" % result.get("error"))
    expect_eq(result.get("status"), 503, "the queued request's status after SIGTERM")
    expect("draining" in result.get("proxy_status", ""),
           "queued request's Proxy-Status %r" % result.get("proxy_status"))

    slow.sendall(b"mple.test\r\n\r\n")
    data = b""
    while True:
        chunk = slow.recv(65536)
        if not chunk:
            break
        data += chunk
    slow.close()
    expect(data.startswith(b"HTTP/1.1 503"), "request arriving while draining: %r" % data[:200])
    expect(b"connection: close" in data.lower(), "no Connection: close while draining: %r"
           % data[:300])
    try:
        rc = c.sluice.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("sluice still running 20 s after SIGTERM")
    expect_eq(rc, 0, "exit code after SIGTERM")


SLUICE_TESTS = [
    ("admin: /healthz /readyz 200, /metrics GET+HEAD, 404, 405", t_admin_basics),
    ("workload: successes, retried 503s, 429s, queueing, breaker opens, unknown host",
     t_workload),
    ("promtool check metrics on /metrics", t_promtool_check_metrics),
    ("every DESIGN §6 family: TYPE, label names, closed label values", t_families),
    ("histograms: buckets 1 ms .. 60 s", t_histogram_buckets),
    ("sluice_requests_total and request histogram = requests sent", t_request_counts),
    ("upstream attempts by outcome, attempt histogram, retries by reason",
     t_attempts_and_retries),
    ("rate limit: rejections by reason = 429s, tokens, wait histogram, queue depth",
     t_ratelimit),
    ("circuit: state open, transitions, fast-failed requests", t_circuit),
    ("connections, TLS handshakes, tunnels, client connections, build info",
     t_connections),
    ("/status JSON: an entry per upstream with the documented fields", t_status),
    ("Prometheus scrapes sluice: PromQL sluice_requests_total > 0", t_prometheus_scrapes),
    ("dashboard: structure and variables", t_dashboard_structure),
    ("dashboard: every PromQL expression parses and runs in Prometheus",
     t_dashboard_exprs_parse),
    ("dashboard: every metric it queries exists", t_dashboard_metric_names),
    ("SIGHUP: reload counted (success, then failure), state kept", t_reload),
    ("SIGTERM: /readyz 503, queued and late requests get 503 draining, exit 0", t_drain),
]

DASHBOARD_ONLY_TESTS = [
    ("dashboard: structure and variables", t_dashboard_structure),
    ("dashboard: every PromQL expression parses in Prometheus (no data)",
     t_dashboard_exprs_parse),
]


# --------------------------------------------------------------------------
# runner


def find_tool(name):
    return shutil.which(name) or (("/usr/bin/" + name) if os.access("/usr/bin/" + name,
                                                                    os.X_OK) else None)


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", help="path to the built sluice binary")
    ap.add_argument("--dashboard", default=DASHBOARD, help="the Grafana dashboard JSON")
    ap.add_argument("--dashboard-only", action="store_true",
                    help="only check the dashboard against a Prometheus (no sluice)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo logs and queries")
    args = ap.parse_args()
    VERBOSE = args.verbose
    e2e.VERBOSE = args.verbose
    if not args.dashboard_only and not args.sluice:
        ap.error("--sluice PATH is required (or --dashboard-only)")
    tests = DASHBOARD_ONLY_TESTS if args.dashboard_only else SLUICE_TESTS

    res = Results()
    tools = {t: find_tool(t) for t in ("promtool", "prometheus", "openssl")}
    missing = [t for t, p in tools.items() if p is None]
    if not args.dashboard_only and not os.access(NGINX, os.X_OK):
        missing.append(NGINX)
    if missing:
        res.fail_all(tests, "%s not found: run scripts/install-deps.sh (Debian packages "
                            "prometheus, nginx-light, openssl)" % ", ".join(missing))
        log("%d passed, %d failed" % (res.passed, res.failed))
        return 1

    tmp = tempfile.mkdtemp(prefix="sluice-prom-e2e-")
    os.chmod(tmp, 0o755)
    ctx = Ctx(tmp, os.path.abspath(args.dashboard))
    ctx.promtool = tools["promtool"]
    dead = None
    t0 = time.monotonic()
    try:
        if args.dashboard_only:
            ctx.prom = Prometheus(tools["prometheus"], tmp, None)
            try:
                ctx.prom.start()
            except Exception as e:
                res.fail_all(tests, "prometheus did not start: %s" % e)
                return 1
            log("prometheus on 127.0.0.1:%d, temp dir %s" % (ctx.prom.port, tmp))
            for name, fn in tests:
                res.run(name, fn, ctx)
            return 0 if res.failed == 0 else 1

        sluice_bin = os.path.abspath(args.sluice)
        try:
            out = run([sluice_bin, "--version"], timeout=10).stdout.decode().split()
            ctx.version = out[-1] if out else None
            ctx.certs = Certs(tmp)
            ctx.certs.generate()
            ctx.nginx = Nginx(tmp, ctx.certs)
            ctx.nginx.start()
            # A port that refuses connections: bound, never listening, held until the end.
            dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            dead.bind(("127.0.0.1", 0))
            ctx.sluice = Sluice(sluice_bin, tmp, ctx.nginx, ctx.certs, dead.getsockname()[1])
            ctx.sluice.start()
        except Exception as e:
            log("fixture did not start: %s: %s" % (type(e).__name__, e))
            res.fail_all(tests, "fixture (certificates, nginx, sluice) did not start")
            return 1
        log("nginx on 127.0.0.1:%d; sluice %s pid %d on :%d, admin :%d; temp dir %s"
            % (ctx.nginx.port, ctx.version, ctx.sluice.proc.pid, ctx.sluice.port,
               ctx.sluice.admin_port, tmp))
        for name, fn in tests:
            if fn is t_prometheus_scrapes:
                try:
                    ctx.prom = Prometheus(tools["prometheus"], tmp, ctx.sluice.admin_port)
                    ctx.prom.start()
                    log("prometheus on 127.0.0.1:%d" % ctx.prom.port)
                except Exception as e:
                    ctx.prom = None
                    log("prometheus did not start: %s" % e)
            if ctx.prom is None and fn in (t_prometheus_scrapes, t_dashboard_exprs_parse,
                                           t_dashboard_metric_names):
                res.fail_all([(name, fn)], "prometheus did not start")
                continue
            if ctx.sluice.proc.poll() is not None:
                res.fail_all([(name, fn)], "sluice exited with %r" % ctx.sluice.proc.returncode)
                continue
            res.run(name, fn, ctx)
        return 0 if res.failed == 0 else 1
    finally:
        if ctx.prom is not None:
            if res.failed:
                log("---- last lines of prometheus log ----")
                log(ctx.prom.log_tail(15))
            ctx.prom.stop()
        if ctx.sluice is not None:
            ctx.sluice.stop()
            if res.failed:
                log("---- last lines of sluice stderr ----")
                log(ctx.sluice.stderr_tail(30))
        if ctx.nginx is not None:
            ctx.nginx.stop()
        if dead is not None:
            dead.close()
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        log("took %.1fs" % (time.monotonic() - t0))
        log("%d passed, %d failed" % (res.passed, res.failed))


if __name__ == "__main__":
    try:
        rc = main()
    except KeyboardInterrupt:
        rc = 130
    sys.exit(rc if rc is not None else 1)
