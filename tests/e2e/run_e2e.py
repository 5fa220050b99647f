#!/usr/bin/env python3
"""End-to-end tests for the built sluice binary.

Runs the real daemon against a real nginx TLS upstream and talks to it with
curl and Python's urllib, as users do (DESIGN.md sections 1, 3.1, 3.2, 8).

    python3 tests/e2e/run_e2e.py --sluice build/sluice
    python3 tests/e2e/run_e2e.py --nginx-only        # check the nginx/cert fixture alone
    python3 tests/e2e/run_e2e.py --sluice build/sluice --keep -v

Standard library only. Needs openssl, curl and nginx (scripts/install-deps.sh).
The last line printed is exactly "N passed, M failed"; the exit status is
non-zero when anything failed.
"""

import argparse
import hashlib
import http.client
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
import traceback
import urllib.error
import urllib.request

NGINX = "/usr/sbin/nginx"
BIG_SIZE = 50 * 1024 * 1024
HUGE_SIZE = 1024 * 1024 * 1024
RSS_LIMIT_KIB = 64 * 1024
RSS_GROWTH_LIMIT_KIB = 24 * 1024   # a streaming proxy must not hold the body
SECRET_TOKEN = "e2e-secret-token-5b1f"
ITEMS_JSON = b'{"items":[1,2,3]}'
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy")

VERBOSE = False


def log(msg):
    print(msg, flush=True)


def debug(msg):
    if VERBOSE:
        print("  . " + msg, flush=True)


def clean_env(**extra):
    """The environment without any proxy settings (curl and urllib honour them)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
    env.update(extra)
    return env


def run(cmd, timeout=60, check=True, **kw):
    debug("run: " + " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=kw.pop("env", clean_env()), **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                 p.stderr.decode(errors="replace").strip()))
    return p


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port, host="127.0.0.1", timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def kill_process(proc, sig=signal.SIGTERM, timeout=10, group=False):
    """Stop a process we started: sig, then SIGKILL. Returns its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                if group:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    return proc.returncode


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_proc_status(pid, key):
    """A value in KiB from /proc/PID/status (VmHWM, VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError("%s not in /proc/%d/status" % (key, pid))


# --------------------------------------------------------------------------
# certificates


class Certs:
    """A test CA, a server cert for localhost/127.0.0.1, a cert for a wrong
    host name (same CA) and an unrelated second CA."""

    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")
        self.other_ca = os.path.join(d, "other-ca.pem")
        self.other_ca_key = os.path.join(d, "other-ca.key")
        self.server = os.path.join(d, "server.pem")
        self.server_key = os.path.join(d, "server.key")
        self.wrong = os.path.join(d, "wronghost.pem")
        self.wrong_key = os.path.join(d, "wronghost.key")

    def _make_ca(self, cert, key, cn):
        run(["openssl", "req", "-x509", "-new", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
             "-days", "2", "-subj", "/CN=" + cn, "-sha256",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash"])

    def _make_leaf(self, cert, key, cn, san):
        csr = cert + ".csr"
        ext = cert + ".ext"
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn,
             "-addext", "subjectAltName=" + san])
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n"
                    "subjectAltName=%s\n" % san)
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
             "-CAcreateserial", "-out", cert, "-days", "2", "-sha256", "-extfile", ext])

    def generate(self):
        self._make_ca(self.ca, self.ca_key, "sluice e2e test CA")
        self._make_ca(self.other_ca, self.other_ca_key, "sluice e2e unrelated CA")
        self._make_leaf(self.server, self.server_key, "localhost",
                        "DNS:localhost,IP:127.0.0.1")
        self._make_leaf(self.wrong, self.wrong_key, "wrong.example.net",
                        "DNS:wrong.example.net")


# --------------------------------------------------------------------------
# nginx


NGINX_CONF = r"""
%(user)s
worker_processes 1;
master_process on;
pid %(dir)s/nginx.pid;
error_log %(dir)s/nginx-error.log info;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    client_body_temp_path %(dir)s/client_body_temp;
    proxy_temp_path %(dir)s/proxy_temp;
    fastcgi_temp_path %(dir)s/fastcgi_temp;
    uwsgi_temp_path %(dir)s/uwsgi_temp;
    scgi_temp_path %(dir)s/scgi_temp;
    log_format e2e '$request_method $request_uri $status $http_host $body_bytes_sent';
    access_log %(dir)s/nginx-access.log e2e;
    keepalive_timeout 65s;
    keepalive_requests 100000;
    client_max_body_size 64m;
    sendfile on;

    server {
        listen 127.0.0.1:%(port)d ssl;
        server_name localhost;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        ssl_protocols TLSv1.2 TLSv1.3;
        root %(dir)s/www;

        location = /v1/items {
            default_type application/json;
            return 200 '{"items":[1,2,3]}';
        }
        location = /echo-headers {
            default_type text/plain;
            return 200 "$http_host|$http_via|$http_authorization|$http_connection\n";
        }
        location = /echo-request {
            default_type text/plain;
            return 200 "$request_method|$http_content_length|$http_content_type|$http_transfer_encoding\n";
        }
        location = /big {
            default_type application/octet-stream;
            alias %(dir)s/www/big.bin;
        }
        location = /huge {
            default_type application/octet-stream;
            alias %(dir)s/www/huge.bin;
        }
        location = /status/503 {
            default_type text/plain;
            return 503 "upstream says 503\n";
        }
        location /upload/ {
            dav_methods PUT DELETE;
            create_full_put_path on;
        }
    }

    server {
        listen 127.0.0.1:%(port2)d ssl;
        server_name localhost;
        ssl_certificate %(wrong_cert)s;
        ssl_certificate_key %(wrong_key)s;
        location / {
            default_type text/plain;
            return 200 "wrong host cert\n";
        }
    }
}
"""


class Nginx:
    """A foreground nginx TLS upstream on free loopback ports, its files all under `d`.
    Other e2e scripts subclass it with their own `conf_template`, `ports` and content."""
    conf_template = NGINX_CONF
    ports = 2  # self.port, and self.port2 for the wrong-host certificate

    def __init__(self, d, certs):
        self.dir = d
        self.certs = certs
        self.proc = None
        self.port = None
        self.port2 = None
        self.big = os.path.join(d, "www", "big.bin")
        self.big_sha = None

    def prepare(self):
        for t in ("client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp"):
            os.makedirs(os.path.join(self.dir, t), exist_ok=True)
        self.prepare_content()

    def prepare_content(self):
        os.makedirs(os.path.join(self.dir, "www", "upload"), exist_ok=True)
        h = hashlib.sha256()
        block = os.urandom(1 << 20)
        with open(self.big, "wb") as f:
            for i in range(BIG_SIZE >> 20):
                chunk = block[:-8] + i.to_bytes(8, "big")   # no two MiB identical
                h.update(chunk)
                f.write(chunk)
        self.big_sha = h.hexdigest()
        # 1 GiB, sparse: costs no disk, and nginx serves it as fast as it can.
        with open(os.path.join(self.dir, "www", "huge.bin"), "wb") as f:
            f.truncate(HUGE_SIZE)

    def _write_conf(self):
        conf = self.conf_template % {
            "user": "user root;" if os.geteuid() == 0 else "",
            "dir": self.dir, "port": self.port, "port2": self.port2,
            "cert": self.certs.server, "key": self.certs.server_key,
            "wrong_cert": self.certs.wrong, "wrong_key": self.certs.wrong_key,
        }
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return path

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "nginx-error.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def access_log_lines(self):
        try:
            with open(os.path.join(self.dir, "nginx-access.log"), errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def start(self, attempts=8, ready_timeout=10.0):
        if not os.access(NGINX, os.X_OK):
            raise RuntimeError("%s not found: run scripts/install-deps.sh" % NGINX)
        self.prepare()
        last = ""
        for attempt in range(attempts):
            self.port = free_port()
            self.port2 = free_port() if self.ports > 1 else None
            if self.port == self.port2:
                continue
            conf = self._write_conf()
            out = open(os.path.join(self.dir, "nginx-stderr.log"), "ab")
            self.proc = subprocess.Popen(
                [NGINX, "-p", self.dir + "/", "-c", conf, "-e",
                 os.path.join(self.dir, "nginx-error.log"), "-g", "daemon off;"],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=clean_env(),
                start_new_session=True)
            out.close()
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if can_connect(self.port) and (self.port2 is None or can_connect(self.port2)):
                    debug("nginx ready on %s (pid %d)" % ((self.port, self.port2),
                                                          self.proc.pid))
                    return
                time.sleep(0.05)
            last = self.error_log()
            with open(os.path.join(self.dir, "nginx-stderr.log"), errors="replace") as f:
                last += f.read()
            self.stop()
            if "Address already in use" in last:
                debug("nginx port clash, retrying (attempt %d)" % (attempt + 1))
                continue
            raise RuntimeError("nginx did not start:\n" + last[-3000:])
        raise RuntimeError("nginx could not bind a free port in %d attempts:\n%s"
                           % (attempts, last[-3000:]))

    def stop(self):
        if self.proc is not None:
            # SIGQUIT is nginx's graceful stop; its workers follow the master.
            kill_process(self.proc, signal.SIGQUIT, timeout=10, group=True)
            self.proc = None


# --------------------------------------------------------------------------
# sluice


SLUICE_CONF = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
threads: 2
drain_timeout: 5s
unknown_hosts: reject
connect_ports: [443, %(port)d]
log: {level: info, format: text, access_log: true}
defaults:
  rate_limit: {requests_per_minute: 600000, burst_size: 10000}
upstreams:
  - name: api
    hosts: [api.example.test]
    origin: "https://localhost:%(port)d"
    tls: {ca_file: "%(ca)s"}
  - name: flaky
    hosts: [flaky.example.test]
    origin: "https://localhost:%(port)d"
    tls: {ca_file: "%(ca)s"}
    retry: {max_retries: 1, initial_delay: 100ms}
    circuit_breaker: {failure_threshold: 100}
  - name: bad
    hosts: [bad.example.test]
    origin: "https://localhost:%(port)d"
    tls: {ca_file: "%(other_ca)s"}
  - name: queued
    hosts: [queued.example.test]
    origin: "https://localhost:%(port)d"
    tls: {ca_file: "%(ca)s"}
    rate_limit: {requests_per_minute: 1, burst_size: 1}
    queue: {max_size: 10, max_wait: 2m}
  - name: tunnel
    hosts: [localhost]
    origin: "https://localhost:%(port)d"
  - name: wronghost
    hosts: [wronghost.example.test]
    origin: "https://localhost:%(port2)d"
    tls: {ca_file: "%(ca)s"}
"""

LISTEN_RE = re.compile(r"proxy listening on (\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)")
ADMIN_RE = re.compile(r"admin\S*\s+(?:\S+\s+)?listening on (\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)")


class Sluice:
    def __init__(self, binary, d, nginx, certs):
        self.binary = binary
        self.dir = d
        self.nginx = nginx
        self.certs = certs
        self.proc = None
        self.port = None
        self.admin_port = None
        self.lines = []
        self.lock = threading.Lock()
        self.found = threading.Event()
        self.reader = None
        self.config = os.path.join(d, "sluice.yaml")
        self.sanitized = self._sanitized()

    def _sanitized(self):
        """An ASan/TSan build: its memory use says nothing about sluice's."""
        try:
            p = run(["ldd", self.binary], check=False, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return False
        return re.search(rb"lib[at]san\.so", p.stdout) is not None

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(SLUICE_CONF % {"port": self.nginx.port, "port2": self.nginx.port2,
                                   "ca": self.certs.ca, "other_ca": self.certs.other_ca})

    def _read_stderr(self):
        logf = open(os.path.join(self.dir, "sluice-stderr.log"), "w")
        try:
            for raw in self.proc.stderr:      # keep draining so sluice never blocks on stderr
                line = raw.decode(errors="replace").rstrip("\n")
                logf.write(line + "\n")
                logf.flush()
                with self.lock:
                    self.lines.append(line)
                if VERBOSE:
                    print("  | " + line, flush=True)
                if self.admin_port is None:
                    m = ADMIN_RE.search(line)
                    if m:
                        self.admin_port = int(m.group(2))
                if self.port is None:
                    m = LISTEN_RE.search(line)
                    if m:
                        self.port = int(m.group(2))
                        self.found.set()
        finally:
            logf.close()
            self.found.set()

    def start(self, timeout=15.0):
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("sluice binary %s not found or not executable" % self.binary)
        self.write_config()
        self.stdout_path = os.path.join(self.dir, "sluice-stdout.log")
        with open(self.stdout_path, "wb") as out:   # the contract is: logs on stderr
            self.proc = subprocess.Popen([self.binary, "--config", self.config],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.PIPE, env=clean_env(),
                                         start_new_session=True)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        self.found.wait(timeout)
        if self.port is None:
            if not self.reader.is_alive():      # stderr closed: it is exiting
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
            rc = self.proc.poll()
            with open(self.stdout_path, errors="replace") as f:
                stdout = f.read()[-2000:]
            why = ("it exited with code %s" % rc) if rc is not None else (
                "none within %.0fs" % timeout)
            raise RuntimeError("no 'proxy listening on' line on sluice's stderr (%s); "
                               "stderr:\n%s%s"
                               % (why, self.stderr_tail(40),
                                  "\nstdout:\n" + stdout if stdout else ""))
        # The admin line may come just after the proxy one.
        deadline = time.monotonic() + 1.0
        while self.admin_port is None and time.monotonic() < deadline:
            time.sleep(0.02)
        debug("sluice pid %d proxy port %d admin port %s" % (self.proc.pid, self.port,
                                                           self.admin_port))

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
# clients


class Response:
    def __init__(self, status, headers, body, raw_headers=""):
        self.status = status
        self.headers = headers     # lower-case name -> list of values
        self.body = body
        self.raw_headers = raw_headers

    def header(self, name, default=None):
        v = self.headers.get(name.lower())
        return v[-1] if v else default

    def __repr__(self):
        return "<%s %r body=%r>" % (self.status, self.raw_headers.strip(), self.body[:200])


def parse_header_dump(text):
    """The last response head in a curl -D dump (skipping 1xx and CONNECT heads)."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    if not blocks:
        return 0, {}, ""
    block = blocks[-1]
    lines = block.splitlines()
    m = re.match(r"HTTP/\S+\s+(\d{3})", lines[0])
    status = int(m.group(1)) if m else 0
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.setdefault(k.strip().lower(), []).append(v.strip())
    return status, headers, block


class Ctx:
    def __init__(self, tmp, certs, nginx, sluice):
        self.tmp = tmp
        self.certs = certs
        self.nginx = nginx
        self.sluice = sluice
        self.n = 0

    @property
    def proxy(self):
        return "http://127.0.0.1:%d" % self.sluice.port

    def curl(self, url, *args, proxy=True, timeout=30, body_file=None):
        """curl; returns Response (status 0 and curl's error when it failed)."""
        self.n += 1
        hdr = os.path.join(self.tmp, "curl-%d.hdr" % self.n)
        out = body_file or os.path.join(self.tmp, "curl-%d.body" % self.n)
        cmd = ["curl", "-sS", "--max-time", str(timeout), "-D", hdr, "-o", out]
        if proxy:
            cmd += ["-x", self.proxy]
        else:
            cmd += ["--noproxy", "*"]
        cmd += list(args) + [url]
        p = run(cmd, timeout=timeout + 10, check=False)
        if p.returncode != 0:
            raise AssertionError("curl %s failed (exit %d): %s"
                                 % (" ".join(cmd[1:]), p.returncode,
                                    p.stderr.decode(errors="replace").strip()))
        with open(hdr, errors="replace") as f:
            status, headers, raw = parse_header_dump(f.read())
        body = b""
        if body_file is None:
            with open(out, "rb") as f:
                body = f.read()
        return Response(status, headers, body, raw)

    def curl_exit(self, url, *args, timeout=30):
        """Direct curl (no proxy); returns (exit code, stderr)."""
        cmd = ["curl", "-sS", "--max-time", str(timeout), "--noproxy", "*", "-o", os.devnull]
        cmd += list(args) + [url]
        p = run(cmd, timeout=timeout + 10, check=False)
        return p.returncode, p.stderr.decode(errors="replace").strip()

    def nginx_url(self, path, port=None):
        return "https://localhost:%d%s" % (port or self.nginx.port, path)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def expect_proxy_status(r, error):
    ps = r.header("proxy-status", "")
    expect(ps.lower().startswith("sluice") and ("error=" + error) in ps,
           "Proxy-Status %r does not name sluice with error=%s (response %r)"
           % (ps, error, r))


# --------------------------------------------------------------------------
# tests: the nginx fixture alone (--nginx-only, and always as a sanity check)


def t_nginx_items(c):
    r = c.curl(c.nginx_url("/v1/items"), "--cacert", c.certs.ca, proxy=False)
    expect_eq(r.status, 200, "status")
    expect_eq(r.body, ITEMS_JSON, "body")
    expect_eq(r.header("content-type"), "application/json", "content-type")


def t_nginx_echo_headers(c):
    r = c.curl(c.nginx_url("/echo-headers"), "--cacert", c.certs.ca, "-H", "Via: 1.1 x",
               "-H", "Authorization: Bearer t", proxy=False)
    expect_eq(r.status, 200, "status")
    expect_eq(r.body, ("localhost:%d|1.1 x|Bearer t|\n" % c.nginx.port).encode(), "body")


def t_nginx_big(c):
    out = os.path.join(c.tmp, "big-direct.bin")
    r = c.curl(c.nginx_url("/big"), "--cacert", c.certs.ca, proxy=False, body_file=out)
    expect_eq(r.status, 200, "status")
    expect_eq(os.path.getsize(out), BIG_SIZE, "size")
    expect_eq(sha256_file(out), c.nginx.big_sha, "sha256")
    os.unlink(out)


def t_nginx_503(c):
    r = c.curl(c.nginx_url("/status/503"), "--cacert", c.certs.ca, proxy=False)
    expect_eq(r.status, 503, "status")


def t_nginx_put(c):
    data = os.path.join(c.tmp, "put-direct.bin")
    with open(data, "wb") as f:
        f.write(os.urandom(100000))
    r = c.curl(c.nginx_url("/upload/direct.bin"), "--cacert", c.certs.ca, "-T", data,
               proxy=False)
    expect(r.status in (201, 204), "PUT status %r" % r.status)
    r = c.curl(c.nginx_url("/upload/direct.bin"), "--cacert", c.certs.ca, proxy=False)
    expect_eq(r.status, 200, "GET status")
    with open(data, "rb") as f:
        expect(r.body == f.read(), "PUT then GET body differs")


def t_nginx_keepalive_http11(c):
    out = run(["curl", "-sS", "--noproxy", "*", "--cacert", c.certs.ca, "-o", os.devnull,
               "-o", os.devnull, "-w", "%{http_version} %{num_connects}\\n",
               c.nginx_url("/v1/items"), c.nginx_url("/v1/items")]).stdout.decode()
    expect_eq(out.split(), ["1.1", "1", "1.1", "0"], "http_version/num_connects")


def t_nginx_wrong_host_cert(c):
    rc, err = c.curl_exit(c.nginx_url("/", c.nginx.port2), "--cacert", c.certs.ca)
    expect_eq(rc, 60, "curl exit code for the wrong-host cert (%s)" % err)


def t_nginx_other_ca(c):
    rc, err = c.curl_exit(c.nginx_url("/v1/items"), "--cacert", c.certs.other_ca)
    expect_eq(rc, 60, "curl exit code against an unrelated CA (%s)" % err)


NGINX_TESTS = [
    ("nginx: /v1/items direct with --cacert", t_nginx_items),
    ("nginx: /echo-headers direct", t_nginx_echo_headers),
    ("nginx: /big direct is 50 MiB", t_nginx_big),
    ("nginx: /status/503", t_nginx_503),
    ("nginx: PUT/GET /upload", t_nginx_put),
    ("nginx: HTTP/1.1 keep-alive", t_nginx_keepalive_http11),
    ("nginx: wrong-host cert fails verification", t_nginx_wrong_host_cert),
    ("nginx: unrelated CA fails verification", t_nginx_other_ca),
]


# --------------------------------------------------------------------------
# tests: through sluice


def t_curl_items(c):
    r = c.curl("http://api.example.test/v1/items")
    expect_eq(r.status, 200, "status")
    expect_eq(r.body, ITEMS_JSON, "body")
    expect_eq(r.header("content-type"), "application/json", "content-type")


def t_urllib_proxyhandler(c):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": c.proxy}))
    try:
        with opener.open("http://api.example.test/v1/items", timeout=30) as resp:
            expect_eq(resp.status, 200, "status")
            expect_eq(resp.read(), ITEMS_JSON, "body")
    except urllib.error.HTTPError as e:
        raise AssertionError("status %d, Proxy-Status %r, body %r"
                             % (e.code, e.headers.get("Proxy-Status"), e.read()[:300]))


URLLIB_CHILD = r"""
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen("http://api.example.test/v1/items", timeout=30) as r:
        sys.stdout.write("%d\n" % r.status)
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write("%d\n%s" % (e.code, e.read()[:300].decode(errors="replace")))
"""


def t_urllib_env(c):
    env = clean_env(HTTP_PROXY=c.proxy, http_proxy=c.proxy)
    env.pop("REQUEST_METHOD", None)   # urllib ignores HTTP_PROXY in CGI context
    p = run([sys.executable, "-c", URLLIB_CHILD], env=env, check=False, timeout=60)
    expect_eq(p.returncode, 0, "child exit code (stderr: %s)"
              % p.stderr.decode(errors="replace").strip()[-500:])
    expect_eq(p.stdout.decode(), "200\n" + ITEMS_JSON.decode(), "child output")


def t_upstream_headers(c):
    r = c.curl("http://api.example.test/echo-headers",
               "-H", "Authorization: Bearer " + SECRET_TOKEN)
    expect_eq(r.status, 200, "status")
    parts = r.body.decode(errors="replace").rstrip("\n").split("|")
    expect_eq(len(parts), 4, "echo fields in %r" % r.body)
    host, via, auth, _conn = parts
    expect_eq(host, "localhost:%d" % c.nginx.port, "Host seen by nginx")
    expect(re.fullmatch(r"1\.1 sluice-\S+", via), "Via seen by nginx %r is not "
           "'1.1 sluice-...'" % via)
    expect_eq(auth, "Bearer " + SECRET_TOKEN, "Authorization seen by nginx")


def t_response_via(c):
    r = c.curl("http://api.example.test/v1/items")
    vias = ", ".join(r.headers.get("via", []))
    expect(re.search(r"1\.1 sluice-\S+", vias), "response Via %r lacks 1.1 sluice-..." % vias)


def t_hop_by_hop_removed(c):
    r = c.curl("http://api.example.test/echo-headers", "-H", "Connection: keep-alive, X-Hop",
               "-H", "X-Hop: secret", "-H", "Keep-Alive: timeout=5")
    expect_eq(r.status, 200, "status")
    conn = r.body.decode(errors="replace").rstrip("\n").split("|")[3]
    expect("x-hop" not in conn.lower(), "Connection forwarded upstream: %r" % conn)


def t_head(c):
    conn = http.client.HTTPConnection("127.0.0.1", c.sluice.port, timeout=30)
    try:
        conn.request("HEAD", "http://api.example.test/v1/items")
        r = conn.getresponse()
        body = r.read()
        expect_eq(r.status, 200, "HEAD status")
        expect_eq(body, b"", "HEAD body")
        cl = r.getheader("Content-Length")
        expect(cl in (None, str(len(ITEMS_JSON))), "HEAD Content-Length %r" % cl)
        # Same connection: the HEAD response must not have left bytes behind.
        conn.request("GET", "http://api.example.test/v1/items")
        r = conn.getresponse()
        expect_eq(r.status, 200, "GET after HEAD status")
        expect_eq(r.read(), ITEMS_JSON, "GET after HEAD body")
    finally:
        conn.close()


def t_curl_head(c):
    r = c.curl("http://api.example.test/v1/items", "-I", timeout=10)
    expect_eq(r.status, 200, "status")
    cl = r.header("content-length")
    expect(cl in (None, str(len(ITEMS_JSON))), "HEAD Content-Length %r" % cl)


def t_post(c):
    r = c.curl("http://api.example.test/echo-request", "-d", '{"a":1}',
               "-H", "Content-Type: application/json")
    expect_eq(r.status, 200, "status")
    method, clen, ctype, te = r.body.decode(errors="replace").rstrip("\n").split("|")
    expect_eq(method, "POST", "method seen by nginx")
    expect_eq(ctype, "application/json", "Content-Type seen by nginx")
    expect(clen == "7" or te.lower() == "chunked",
           "nginx saw neither Content-Length: 7 nor chunked (CL=%r TE=%r)" % (clen, te))


def t_connect_tunnel(c):
    # curl -x with an https:// URL: CONNECT to nginx through sluice, then curl's own TLS with
    # nginx, verified end to end against the test CA (DESIGN §3.8).
    r = c.curl(c.nginx_url("/v1/items"), "--proxytunnel", "--cacert", c.certs.ca)
    expect_eq(r.status, 200, "status through the tunnel")
    expect_eq(r.body, ITEMS_JSON, "body through the tunnel")
    # A CONNECT to a port not in connect_ports is refused by sluice itself.
    p = run(["curl", "-sS", "--max-time", "10", "-x", c.proxy, "--proxytunnel", "-o", os.devnull,
             "https://localhost:%d/" % c.sluice.admin_port], timeout=20, check=False)
    err = p.stderr.decode(errors="replace")
    expect(p.returncode != 0 and "403" in err,
           "CONNECT to the admin port: curl exit %d, %s" % (p.returncode, err.strip()))


def t_put_roundtrip(c):
    data = os.path.join(c.tmp, "put-proxy.bin")
    payload = os.urandom(3 * 1024 * 1024 + 17)
    with open(data, "wb") as f:
        f.write(payload)
    r = c.curl("http://api.example.test/upload/via-sluice.bin", "-T", data)
    expect(r.status in (201, 204), "PUT status %r (%r)" % (r.status, r))
    r = c.curl("http://api.example.test/upload/via-sluice.bin")
    expect_eq(r.status, 200, "GET status")
    expect_eq(len(r.body), len(payload), "GET size")
    expect(r.body == payload, "body read back differs from the body PUT")


def t_chunked_post(c):
    r = c.curl("http://api.example.test/echo-request", "-H", "Transfer-Encoding: chunked",
               "-H", "Content-Type: text/plain", "--data-binary", "hello chunked")
    expect_eq(r.status, 200, "status")
    method = r.body.decode(errors="replace").split("|")[0]
    expect_eq(method, "POST", "method seen by nginx")


def t_pipelined(c):
    req = ("GET http://api.example.test/v1/items HTTP/1.1\r\nHost: api.example.test\r\n\r\n"
           "GET http://api.example.test/echo-headers HTTP/1.1\r\nHost: api.example.test\r\n"
           "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", c.sluice.port), timeout=30) as s:
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3})", data)
    expect_eq(statuses, [b"200", b"200"], "statuses of two pipelined requests")
    i = data.find(ITEMS_JSON)
    j = data.find(b"localhost:%d|" % c.nginx.port)
    expect(0 <= i < j, "responses out of order or missing: %r" % data[:600])


def t_big_streaming(c):
    pid = c.sluice.proc.pid
    before = read_proc_status(pid, "VmHWM")
    out = os.path.join(c.tmp, "big-proxy.bin")
    # A client slower than the upstream: a proxy without backpressure would
    # buffer the rest of the 50 MiB.
    r = c.curl("http://api.example.test/big", "--limit-rate", "40M", timeout=120,
               body_file=out)
    hwm = read_proc_status(pid, "VmHWM")
    expect_eq(r.status, 200, "status")
    size = os.path.getsize(out)
    expect_eq(size, BIG_SIZE, "downloaded size")
    expect_eq(sha256_file(out), c.nginx.big_sha, "sha256 of the download")
    os.unlink(out)
    debug("VmHWM before %d KiB, after %d KiB" % (before, hwm))
    if c.sluice.sanitized:
        log("      (sanitizer build: VmHWM %d -> %d KiB not checked)" % (before, hwm))
        return
    expect(hwm < RSS_LIMIT_KIB, "sluice VmHWM %d KiB >= %d KiB" % (hwm, RSS_LIMIT_KIB))
    expect(hwm - before < RSS_GROWTH_LIMIT_KIB,
           "sluice VmHWM grew %d KiB (%d -> %d) during a 50 MiB download: not streaming?"
           % (hwm - before, before, hwm))


def t_huge_streaming(c):
    """A 1 GiB download through sluice keeps its RSS under 64 MiB (issue: streamed bodies)."""
    pid = c.sluice.proc.pid
    r = c.curl("http://api.example.test/huge", "-w", "%{size_download}", timeout=240,
               body_file=os.devnull)
    hwm = read_proc_status(pid, "VmHWM")
    expect_eq(r.status, 200, "status")
    if c.sluice.sanitized:
        return
    expect(hwm < RSS_LIMIT_KIB, "sluice VmHWM %d KiB >= %d KiB after 1 GiB" % (hwm, RSS_LIMIT_KIB))


def t_unknown_host(c):
    r = c.curl("http://unknown.example.test/v1/items")
    expect_eq(r.status, 403, "status")
    expect_proxy_status(r, "http_request_denied")


def t_bad_ca(c):
    r = c.curl("http://bad.example.test/v1/items")
    expect_eq(r.status, 502, "status")
    expect_proxy_status(r, "tls_certificate_error")


def t_wrong_host_cert(c):
    r = c.curl("http://wronghost.example.test/")
    expect_eq(r.status, 502, "status")
    expect_proxy_status(r, "tls_certificate_error")


def wait_access_line(c, pred, what, timeout=5.0):
    """The first access line (stderr) for which pred(line) holds, written within the default
    1 s access_log_flush_interval; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for line in c.sluice.stderr_text().splitlines():
            if pred(line):
                return line
        if time.monotonic() >= deadline:
            raise AssertionError("no access line for %s" % what)
        time.sleep(0.05)


def t_secrets_not_logged(c):
    # The access line of the request that carried the token must be there before its absence
    # means anything.
    wait_access_line(c, lambda l: "path=/echo-headers status=200" in l, "/echo-headers")
    text = c.sluice.stderr_text()
    expect(SECRET_TOKEN not in text, "the Authorization token appears in sluice's log")


def t_access_bytes_in(c):
    # A body that sluice read before the attempt failed: the 502's line counts it.
    r = c.curl("http://bad.example.test/bytes-in", "--data-binary", "hello")
    expect_eq(r.status, 502, "status")
    line = wait_access_line(c, lambda l: "path=/bytes-in " in l, "the POST that got 502")
    expect("status=502 bytes_in=5 " in line, "access line of the 502: %s" % line)
    # A Content-Length over limits.max_request_body: 413, logged with its method and path.
    with socket.create_connection(("127.0.0.1", c.sluice.port), timeout=10) as s:
        s.sendall(b"POST http://api.example.test/too-big HTTP/1.1\r\nHost: api.example.test\r\n"
                  b"Content-Length: 99999999999\r\n\r\n")
        expect(s.recv(4096).startswith(b"HTTP/1.1 413"), "no 413 for the oversized body")
    line = wait_access_line(c, lambda l: "path=/too-big " in l, "the oversized POST")
    expect("method=POST host=api.example.test path=/too-big status=413 " in line,
           "access line of the 413: %s" % line)
    # Bytes that came with the CONNECT head (sent before the 200) count toward the tunnel's.
    with socket.create_connection(("127.0.0.1", c.sluice.port), timeout=10) as s:
        authority = "localhost:%d" % c.nginx.port
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nhello" % (authority, authority))
                  .encode())
        got = b""
        while b"\r\n\r\n" not in got:
            piece = s.recv(4096)
            if not piece:
                break
            got += piece
        expect(got.startswith(b"HTTP/1.1 200"), "CONNECT answer: %r" % got[:80])
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):  # nginx drops the connection: "hello" is no TLS record
            pass
    line = wait_access_line(c, lambda l: "method=CONNECT" in l and "bytes_in=5 " in l,
                            "the CONNECT with 5 early bytes")
    expect("status=200 " in line, "access line of the tunnel: %s" % line)


def t_access_client_gone_while_queued(c):
    # The burst's one token goes to the first request; the second waits in the queue (the rate
    # is one a minute) until its client leaves, and that still gets its access line: status 0,
    # nothing was sent.
    r = c.curl("http://queued.example.test/v1/items")
    expect_eq(r.status, 200, "status of the request that took the token")
    with socket.create_connection(("127.0.0.1", c.sluice.port), timeout=10) as s:
        s.sendall(b"GET http://queued.example.test/gone HTTP/1.1\r\n"
                  b"Host: queued.example.test\r\n\r\n")
        metrics_url = "http://127.0.0.1:%d/metrics" % c.sluice.admin_port
        depth = 'sluice_queue_depth{upstream="queued"} 1'
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(metrics_url, timeout=5) as m:
                if depth in m.read().decode():
                    break
            if time.monotonic() >= deadline:
                raise AssertionError("the second request never queued")
            time.sleep(0.05)
    line = wait_access_line(c, lambda l: "path=/gone " in l, "the request whose client left")
    expect("upstream=queued " in line and " status=0 " in line, "access line: %s" % line)
    # It was seen queued before the client closed: its wait cannot be 0.
    expect(" queue_wait_s=0.000000 " not in line, "no queue wait in: %s" % line)


def t_access_client_gone_mid_body(c):
    # Clients that leave in the middle of their request body get a line with status 0 (nothing
    # was sent to them), not none, and not a 400 written to a closed socket: one while sluice
    # reads the part it keeps for retries, one while the body streams past that part
    # (retry.buffer_limit, 1 MiB by default).
    def upload_then_leave(path, declared, sent):
        with socket.create_connection(("127.0.0.1", c.sluice.port), timeout=10) as s:
            s.sendall(("PUT http://api.example.test%s HTTP/1.1\r\nHost: api.example.test\r\n"
                       "Content-Length: %d\r\n\r\n" % (path, declared)).encode())
            s.sendall(b"x" * sent)
    upload_then_leave("/upload/gone-prefix", 1000, 10)
    line = wait_access_line(c, lambda l: "path=/upload/gone-prefix " in l, "the short upload")
    expect(" status=0 bytes_in=10 " in line, "access line: %s" % line)
    upload_then_leave("/upload/gone-stream", 10 * 1024 * 1024, 2 * 1024 * 1024)
    line = wait_access_line(c, lambda l: "path=/upload/gone-stream " in l, "the streamed upload")
    expect(" status=0 " in line, "access line: %s" % line)


def t_client_reset_at_once_is_not_refused(c):
    # A client that resets its connection right after sending a request may be gone before
    # sluice asks for its address: that is not a client refused by client_cidrs (a 403 line
    # with an empty client= before), and gets no line at all.
    import struct
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", c.sluice.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(b"GET http://api.example.test/v1/items HTTP/1.1\r\n"
                  b"Host: api.example.test\r\n\r\n")
        s.close()  # RST
    r = c.curl("http://api.example.test/v1/items?after-resets")
    expect_eq(r.status, 200, "status")
    # Access lines are written in order on each thread; the marker's line is there once this
    # thread's batch is. Give the other thread's batch the same flush interval.
    wait_access_line(c, lambda l: "path=/v1/items " in l and "client=127" in l, "the marker")
    time.sleep(1.2)
    bad = [l for l in c.sluice.stderr_text().splitlines() if " access " in l and "client= " in l]
    expect(not bad, "lines for reset clients: %s" % bad[:2])


def t_sigterm(c):
    proc = c.sluice.proc
    expect(proc.poll() is None, "sluice already exited with %r" % proc.returncode)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("sluice still running 20 s after SIGTERM")
    debug("sluice exited %d after %.2f s" % (rc, time.monotonic() - t0))
    expect_eq(rc, 0, "exit code after SIGTERM")


SLUICE_TESTS = [
    ("curl -x: GET /v1/items", t_curl_items),
    ("urllib ProxyHandler: GET /v1/items", t_urllib_proxyhandler),
    ("urllib HTTP_PROXY env (child process): GET /v1/items", t_urllib_env),
    ("upstream sees Host localhost:PORT, Via 1.1 sluice-, Authorization", t_upstream_headers),
    ("response carries Via 1.1 sluice-", t_response_via),
    ("hop-by-hop headers named in Connection are not forwarded", t_hop_by_hop_removed),
    ("HEAD then GET on one keep-alive connection", t_head),
    ("curl -I (HEAD)", t_curl_head),
    ("POST with a body (curl -d)", t_post),
    ("POST with a chunked body", t_chunked_post),
    ("PUT 3 MiB then GET it back byte-identical", t_put_roundtrip),
    ("curl -x ... https:// through a CONNECT tunnel, TLS verified end to end", t_connect_tunnel),
    ("pipelined requests answered in order", t_pipelined),
    ("/big 50 MiB streamed byte-identical, VmHWM < 64 MiB", t_big_streaming),
    ("/huge 1 GiB streamed, VmHWM < 64 MiB", t_huge_streaming),
    ("unknown host -> 403 http_request_denied", t_unknown_host),
    ("upstream CA mismatch -> 502 tls_certificate_error", t_bad_ca),
    ("upstream cert for another host -> 502 tls_certificate_error", t_wrong_host_cert),
    ("Authorization never logged", t_secrets_not_logged),
    ("access log: bytes_in of a 502 and of CONNECT early data; a 413 names its request",
     t_access_bytes_in),
    ("access line for a client that left while queued", t_access_client_gone_while_queued),
    ("access line for a client that left mid-body", t_access_client_gone_mid_body),
    ("a client that resets at once is not logged as refused", t_client_reset_at_once_is_not_refused),
    ("SIGTERM -> exit 0 within 20 s", t_sigterm),
]


# --------------------------------------------------------------------------
# runner


class Skip(Exception):
    pass


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def run(self, name, fn, ctx):
        t0 = time.monotonic()
        try:
            fn(ctx)
        except Skip as e:
            self.skipped += 1
            log("SKIP  %s: %s" % (name, e))
            return
        except Exception as e:   # AssertionError and anything unexpected
            self.failed += 1
            detail = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            self.failures.append((name, detail))
            log("FAIL  %s (%.2fs)\n      %s" % (name, time.monotonic() - t0,
                                               detail.strip().replace("\n", "\n      ")))
            return
        self.passed += 1
        log("PASS  %s (%.2fs)" % (name, time.monotonic() - t0))

    def fail_all(self, tests, why):
        for name, _ in tests:
            self.failed += 1
            self.failures.append((name, why))
            log("FAIL  %s\n      %s" % (name, why))


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", help="path to the built sluice binary")
    ap.add_argument("--nginx-only", action="store_true",
                    help="only check the nginx/cert fixture (no sluice)")
    ap.add_argument("-k", dest="only", action="append", default=[], metavar="TEXT",
                    help="run only the sluice tests whose name contains TEXT (repeatable)")
    ap.add_argument("--skip", action="append", default=[], metavar="TEXT",
                    help="leave out the sluice tests whose name contains TEXT (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo commands and logs")
    args = ap.parse_args()
    VERBOSE = args.verbose
    global SLUICE_TESTS
    SLUICE_TESTS = [(n, f) for n, f in SLUICE_TESTS
                    if (not args.only or any(t.lower() in n.lower() for t in args.only))
                    and not any(t.lower() in n.lower() for t in args.skip)]
    if not args.nginx_only and not args.sluice:
        ap.error("--sluice PATH is required (or --nginx-only)")

    for tool in ("openssl", "curl"):
        if not shutil.which(tool):
            log("%s not found: run scripts/install-deps.sh" % tool)
            log("0 passed, 1 failed")
            return 1

    tmp = tempfile.mkdtemp(prefix="sluice-e2e-")
    os.chmod(tmp, 0o755)
    res = Results()
    certs = Certs(tmp)
    nginx = Nginx(tmp, certs)
    sluice = None
    sluice_binary = os.path.abspath(args.sluice) if args.sluice else None
    ctx = None
    t0 = time.monotonic()
    try:
        try:
            certs.generate()
            nginx.start()
        except Exception as e:
            res.fail_all([("fixture: certificates and nginx", None)],
                         "%s: %s" % (type(e).__name__, e))
            if not args.nginx_only:
                res.fail_all(SLUICE_TESTS, "fixture did not start")
            return 1
        log("nginx on 127.0.0.1:%d (wrong-host cert on :%d), temp dir %s"
            % (nginx.port, nginx.port2, tmp))
        ctx = Ctx(tmp, certs, nginx, None)
        for name, fn in NGINX_TESTS:
            res.run(name, fn, ctx)
        if args.nginx_only:
            return 0 if res.failed == 0 else 1

        sluice = Sluice(sluice_binary, tmp, nginx, certs)
        ctx.sluice = sluice
        try:
            sluice.start()
        except Exception as e:
            log("sluice did not start: %s" % e)
            res.fail_all(SLUICE_TESTS, "sluice did not start")
            return 1
        log("sluice pid %d on 127.0.0.1:%d (admin %s)"
            % (sluice.proc.pid, sluice.port, sluice.admin_port))
        for name, fn in SLUICE_TESTS:
            if fn is not t_sigterm and sluice.proc.poll() is not None:
                res.fail_all([(name, fn)], "sluice exited with %r" % sluice.proc.returncode)
                continue
            res.run(name, fn, ctx)
        return 0 if res.failed == 0 else 1
    finally:
        if sluice is not None:
            sluice.stop()
        nginx.stop()
        if res.failed and sluice is not None:
            log("---- last lines of sluice stderr ----")
            log(sluice.stderr_tail(40))
            log("-------------------------------------")
        if res.failed and nginx.error_log().strip():
            errs = [l for l in nginx.error_log().splitlines()
                    if "[error]" in l or "[crit]" in l or "[emerg]" in l or "[alert]" in l]
            if errs:
                log("---- nginx error log (errors) ----")
                log("\n".join(errs[-20:]))
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        log("e2e took %.1fs" % (time.monotonic() - t0))
        if res.skipped:
            log("%d skipped" % res.skipped)
        log("%d passed, %d failed" % (res.passed, res.failed))


if __name__ == "__main__":
    try:
        rc = main()
    except KeyboardInterrupt:
        rc = 130
    sys.exit(rc if rc is not None else 1)
