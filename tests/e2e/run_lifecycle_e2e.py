#!/usr/bin/env python3
"""Lifecycle end to end (DESIGN 3.9, shared case 28): the built sluice binary under SIGHUP and
SIGTERM, against a slow plain-HTTP upstream on loopback, and --check-config.

  python3 tests/e2e/run_lifecycle_e2e.py --sluice build/sluice

Prints one PASS/FAIL line per check and `N passed, M failed` last; exits 1 on any failure.
"""
import argparse
import http.server
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback

LISTEN_RE = re.compile(r"proxy listening on [0-9.]+:(\d+)")
ADMIN_RE = re.compile(r"admin listening on [0-9.]+:(\d+)")


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """GET /slow sleeps 2 s; anything else answers at once. Counts requests."""
    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_GET(self):
        with SlowHandler.lock:
            SlowHandler.count += 1
        if self.path.startswith("/slow"):
            time.sleep(2.0)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def config(upstream_port, rpm, burst, listen_port=0, admin_port=0, extra="",
           log="{level: info, access_log: false}"):
    return f"""listen: 127.0.0.1:{listen_port}
admin_listen: 127.0.0.1:{admin_port}
threads: 2
drain_timeout: 10s
log: {log}
defaults:
  retry: {{enabled: false}}
  circuit_breaker: {{enabled: false}}
upstreams:
  - name: slow
    hosts: [slow.example.test]
    origin: http://127.0.0.1:{upstream_port}
    rate_limit: {{requests_per_minute: {rpm}, burst_size: {burst}}}
    queue: {{max_size: 10000, max_wait: 60s}}
{extra}"""


class Sluice:
    def __init__(self, binary, path):
        self.lines = []
        self.proc = subprocess.Popen([binary, "--config", path], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
        self.port = self.admin = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(10):
            raise RuntimeError("sluice did not start: %s" % "".join(self.lines[-20:]))

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            m = LISTEN_RE.search(line)
            if m:
                self.port = int(m.group(1))
            m = ADMIN_RE.search(line)
            if m:
                self.admin = int(m.group(1))
            if self.port and self.admin:
                self.ready.set()

    def log_has(self, text, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in l for l in self.lines):
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def exchange(port, target, host, timeout, close=True):
    """Sends one GET on a fresh connection (with `Connection: close` unless `close` is false) and
    returns every byte received until the connection ends."""
    connection = "Connection: close\r\n" if close else ""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{connection}\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def get_keep_alive(port, url, timeout=30):
    """One keep-alive request (no `Connection: close`) on a fresh connection, read until the
    proxy closes it: (status, headers text)."""
    return parse_head(exchange(port, url, url.split("/")[2], timeout, close=False))


def parse_head(data):
    """(status, headers text) of the response at the start of `data`."""
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    status = int(head.split(" ", 2)[1]) if head.startswith("HTTP/") else 0
    return status, head


def get(port, url, timeout=30):
    """One request through the proxy on a fresh connection: (status, headers text)."""
    return parse_head(exchange(port, url, url.split("/")[2], timeout))


def metric(admin_port, name, labels=""):
    """The value of one series on the admin port's /metrics, or None."""
    for line in exchange(admin_port, "/metrics", "x", 5).decode().splitlines():
        if line.startswith(name + "{" + labels) or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def t_reload_under_load(ctx):
    """SIGHUP while a client sends continuously: a rate change takes effect, nothing fails;
    an invalid file is rejected and the old config keeps serving."""
    up = ctx["upstream_port"]
    path = os.path.join(ctx["tmp"], "reload.yaml")
    with open(path, "w") as f:
        f.write(config(up, rpm=600000, burst=1000))
    s = Sluice(ctx["sluice"], path)
    try:
        stop = threading.Event()
        results = []

        def client():
            while not stop.is_set():
                results.append(get(s.port, "http://slow.example.test/fast")[0])

        workers = [threading.Thread(target=client) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.0)  # load before the reload (the input of the test)
        with open(path, "w") as f:
            f.write(config(up, rpm=120, burst=1))  # 2/s from now on
        s.proc.send_signal(signal.SIGHUP)
        assert s.log_has("config reloaded"), "no 'config reloaded' in the log"
        before = len(results)
        time.sleep(3.0)  # measure the new rate over 3 s
        after_rate = (len(results) - before) / 3.0
        # An invalid file: rejected with its position, the 2/s config keeps serving.
        with open(path, "w") as f:
            f.write(config(up, rpm=120, burst=1) + "bogus_key: 1\n")
        s.proc.send_signal(signal.SIGHUP)
        assert s.log_has("reload rejected"), "invalid config was not rejected"
        assert any(re.search(r"reload\.yaml:\d+:\d+: bogus_key", l) for l in s.lines), \
            "rejection lacks FILE:LINE:COLUMN"
        time.sleep(1.0)
        stop.set()
        for w in workers:
            w.join(30)
        failures = [r for r in results if r != 200]
        assert not failures, "%d of %d requests failed across reloads: %s" % (
            len(failures), len(results), sorted(set(failures)))
        assert after_rate < 4.0, "rate after reload %.1f/s, want about 2/s" % after_rate
        assert metric(s.admin, "sluice_config_reloads_total", 'result="success"') == 1.0
        assert metric(s.admin, "sluice_config_reloads_total", 'result="failure"') == 1.0
    finally:
        s.stop()


def t_sigterm_with_requests_in_flight(ctx):
    """20 requests in flight to a 2 s upstream, SIGTERM: all 20 get 200, the 5 sent keep-alive
    with `Connection: close` (their connection ends with them), a new connection is refused,
    exit 0 within drain_timeout."""
    up = ctx["upstream_port"]
    path = os.path.join(ctx["tmp"], "drain.yaml")
    with open(path, "w") as f:
        f.write(config(up, rpm=600000, burst=1000))
    s = Sluice(ctx["sluice"], path)
    try:
        base = SlowHandler.count
        statuses = []
        keep_alive_heads = []
        lock = threading.Lock()

        def one():
            st = get(s.port, "http://slow.example.test/slow")[0]
            with lock:
                statuses.append(st)

        def one_keep_alive():
            st, head = get_keep_alive(s.port, "http://slow.example.test/slow")
            with lock:
                statuses.append(st)
                keep_alive_heads.append(head)

        threads = [threading.Thread(target=one) for _ in range(15)]
        threads += [threading.Thread(target=one_keep_alive) for _ in range(5)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while SlowHandler.count - base < 20 and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting for the event "all 20 reached the upstream"
        assert SlowHandler.count - base == 20, "only %d requests reached the upstream" % (
            SlowHandler.count - base)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        assert s.log_has("draining"), "no drain in the log"
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        assert refused, "a new connection was accepted after SIGTERM"
        for t in threads:
            t.join(30)
        rc = s.proc.wait(timeout=15)
        elapsed = time.monotonic() - t0
        assert statuses.count(200) == 20, "statuses %r" % statuses
        for head in keep_alive_heads:
            assert "\r\nconnection: close" in head.lower(), (
                "a response finished while draining lacks Connection: close:\n" + head)
        assert rc == 0, "exit code %d" % rc
        assert elapsed < 10.0, "exit after %.1f s, drain_timeout is 10 s" % elapsed
    finally:
        s.stop()


def t_check_config(ctx):
    """--check-config exits 0 on a good file and 2 with FILE:LINE:COLUMN on a bad one, without
    opening a socket."""
    good = os.path.join(ctx["tmp"], "good.yaml")
    with open(good, "w") as f:
        f.write(config(ctx["upstream_port"], 60, 1, listen_port=1, admin_port=2))
    p = subprocess.run([ctx["sluice"], "--check-config", good], capture_output=True, text=True)
    assert p.returncode == 0, "good config: exit %d: %s" % (p.returncode, p.stderr)
    bad = os.path.join(ctx["tmp"], "bad.yaml")
    with open(bad, "w") as f:
        f.write("listen: 127.0.0.1:3128\nthreads: -1\ndefaults:\n  retry: {jitter: 2}\n")
    p = subprocess.run([ctx["sluice"], "--check-config", bad], capture_output=True, text=True)
    assert p.returncode == 2, "bad config: exit %d" % p.returncode
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert any(re.match(re.escape(bad) + r":2:\d+: threads", l) for l in lines), p.stderr
    assert any(re.match(re.escape(bad) + r":4:\d+: defaults\.retry\.jitter", l) for l in lines), \
        p.stderr


def t_rebind_on_reload(ctx):
    """A reload that changes listen moves the listener."""
    up = ctx["upstream_port"]
    path = os.path.join(ctx["tmp"], "rebind.yaml")
    with open(path, "w") as f:
        f.write(config(up, 600000, 1000))
    s = Sluice(ctx["sluice"], path)
    old_port = s.port
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            new_port = probe.getsockname()[1]
        with open(path, "w") as f:
            f.write(config(up, 600000, 1000, listen_port=new_port))
        s.proc.send_signal(signal.SIGHUP)
        assert s.log_has("config reloaded"), "reload failed: %s" % "".join(s.lines[-5:])
        assert get(new_port, "http://slow.example.test/fast")[0] == 200
        try:
            socket.create_connection(("127.0.0.1", old_port), timeout=2).close()
            assert False, "the old listener still accepts"
        except ConnectionRefusedError:
            pass
    finally:
        s.stop()


def t_access_log_flush(ctx):
    """Access lines wait in their thread's buffer at most log.access_log_flush_interval, and what
    is buffered at SIGTERM is written before the exit."""
    up = ctx["upstream_port"]
    path = os.path.join(ctx["tmp"], "flush.yaml")
    with open(path, "w") as f:
        f.write(config(up, 600000, 1000,
                       log="{level: info, access_log: true, access_log_flush_interval: 200ms}"))
    s = Sluice(ctx["sluice"], path)
    try:
        assert get(s.port, "http://slow.example.test/fast/timer")[0] == 200
        assert s.log_has("path=/fast/timer status=200"), "no access line 5 s after the request"
    finally:
        s.stop()

    with open(path, "w") as f:
        f.write(config(up, 600000, 1000,
                       log="{level: info, access_log: true, access_log_flush_interval: 1m}"))
    s = Sluice(ctx["sluice"], path)
    try:
        for i in range(3):
            assert get(s.port, "http://slow.example.test/fast/held%d" % i)[0] == 200
        # The input of the test: a line that was written at once would have arrived by now.
        assert not s.log_has("path=/fast/held", timeout=0.5), "written before the 1m interval"
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=15) == 0, "exit code after SIGTERM"
        for i in range(3):
            assert s.log_has("path=/fast/held%d status=200" % i), "line %d lost at exit" % i
    finally:
        s.stop()

    # A reload to a shorter interval reaches the line already waiting under the 1m one.
    s = Sluice(ctx["sluice"], path)
    try:
        assert get(s.port, "http://slow.example.test/fast/before-reload")[0] == 200
        with open(path, "w") as f:
            f.write(config(up, 600000, 1000,
                           log="{level: info, access_log: true, access_log_flush_interval: 0s}"))
        s.proc.send_signal(signal.SIGHUP)
        assert s.log_has("config reloaded"), "reload failed: %s" % "".join(s.lines[-5:])
        assert get(s.port, "http://slow.example.test/fast/after-reload")[0] == 200
        for name in ("before-reload", "after-reload"):
            assert s.log_has("path=/fast/%s status=200" % name), \
                "%s still waits for the 1m interval after a reload to 0s" % name
    finally:
        s.stop()


TESTS = [
    ("SIGHUP under load: rate change applies, zero failures, invalid file rejected",
     t_reload_under_load),
    ("SIGTERM with 20 requests in flight: all 200, new connections refused, exit 0",
     t_sigterm_with_requests_in_flight),
    ("--check-config: exit 0 / 2 with FILE:LINE:COLUMN", t_check_config),
    ("SIGHUP with a new listen address rebinds", t_rebind_on_reload),
    ("access lines: written within the flush interval, at SIGTERM, and a reload shortens it",
     t_access_log_flush),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    args = ap.parse_args()
    server = ThreadingServer(("127.0.0.1", 0), SlowHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="sluice-lifecycle-") as tmp:
        ctx = {"sluice": args.sluice, "tmp": tmp, "upstream_port": server.server_address[1]}
        for name, fn in TESTS:
            t0 = time.monotonic()
            try:
                fn(ctx)
                passed += 1
                print("PASS  %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
            except Exception as e:
                failed += 1
                print("FAIL  %s: %s" % (name, e), flush=True)
                traceback.print_exc()
    server.shutdown()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
