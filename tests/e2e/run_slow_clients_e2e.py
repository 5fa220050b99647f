#!/usr/bin/env python3
"""Slow and idle clients against the built sluice binary (issue 6 point 3, shared case 27,
DESIGN.md §4 limits).

Runs the real daemon in front of a real nginx TLS upstream and holds many client
connections open from one thread (selectors, non-blocking sockets):

  * slow-loris: 300 connections dribble a request head one byte every 0.5 s; each is cut
    (408 or close, then EOF) within header_read_timeout + 1 s of its first byte, while a
    normal client is served every 200 ms in under 1 s;
  * silent: 300 connections that send nothing are cut within header_read_timeout + 1 s
    (client_idle_timeout is left long, so only the head deadline can cut them);
  * idle keep-alive: 100 connections make one request, then are closed within
    client_idle_timeout + 1 s;
  * descriptor exhaustion: sluice under RLIMIT_NOFILE 256 with 300 connections stays
    alive and near idle (accept backoff), counts sluice_accept_errors_total if it has it,
    and serves a normal request once the connections are gone; a Prometheus scrape that
    arrives meanwhile leaves it near idle too, and is answered once descriptors are free;
  * case 27 scaled down: 2000 silent + 2000 dribbling 1 byte/5 s + 1000 idle after one
    request, all cut within their deadline + 1 s, a normal client served throughout,
    VmHWM bounded and CPU low while the connections sit.

    python3 tests/e2e/run_slow_clients_e2e.py --sluice build/sluice
    python3 tests/e2e/run_slow_clients_e2e.py --sluice build/sluice -k loris --keep -v

Standard library only. Needs openssl and nginx (scripts/install-deps.sh). The last line
printed is exactly "N passed, M failed"; the exit status is non-zero when anything failed.
"""

import argparse
import collections
import errno
import heapq
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_e2e as e2e  # noqa: E402  (certificates, nginx, sluice process, results)
import run_lifecycle_e2e as lifecycle  # noqa: E402  (one-shot GET, /metrics value)

log = e2e.log
debug = e2e.debug
expect = e2e.expect

UPSTREAM_HOST = "api.example.test"
NORMAL_URL = "http://%s/v1/items" % UPSTREAM_HOST
SLOW_HEAD = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: slow-loris\r\nX-Pad: %s\r\n"
             % (NORMAL_URL, UPSTREAM_HOST, "a" * 4000)).encode()  # never completed
BULK_HOST = "bulk.example.test"   # the idle swarm's requests: another upstream, own pool
ONE_REQUEST = ("GET http://%s/v1/items HTTP/1.1\r\nHost: %s\r\n\r\n"
               % (BULK_HOST, BULK_HOST)).encode()
SLACK = 1.0               # a connection must be cut within its timeout + SLACK
NORMAL_MAX_LATENCY = 1.0
CPU_IDLE_LIMIT = 10.0     # percent of one core while out of descriptors
CPU_SITTING_LIMIT = 20.0  # percent of one core while 5000 connections sit
RSS_LIMIT_KIB = 128 * 1024   # VmHWM with 5000 connections
TICK = os.sysconf("SC_CLK_TCK")

SLUICE_CONF = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
threads: 2
drain_timeout: 2s
log: {level: info, format: text, access_log: false}
limits:
  max_client_connections: %(max_clients)d
  header_read_timeout: %(header_read_timeout)s
  client_idle_timeout: %(client_idle_timeout)s
defaults:
  rate_limit: {requests_per_minute: 600000, burst_size: 10000}
  queue: {max_size: 10000, max_wait: 30s}
upstreams:
  - name: api
    hosts: [%(host)s]
    origin: "https://localhost:%(port)d"
    tls: {ca_file: "%(ca)s"}
  - name: bulk
    hosts: [%(bulk_host)s]
    origin: "https://localhost:%(port)d"
    tls: {ca_file: "%(ca)s"}
"""


# --------------------------------------------------------------------------
# fixtures


class Nginx(e2e.Nginx):
    """run_e2e's nginx without its 50 MiB and 1 GiB files: only /v1/items is used here."""

    def prepare_content(self):
        os.makedirs(os.path.join(self.dir, "www"), exist_ok=True)


class Sluice(e2e.Sluice):
    """run_e2e's sluice process with this script's limits, optionally under an fd limit
    that applies to the child only."""

    def __init__(self, binary, d, nginx, certs, header_read_timeout, client_idle_timeout,
                 max_clients=10000, nofile=None):
        os.makedirs(d, exist_ok=True)
        super().__init__(binary, d, nginx, certs)
        self.values = {"max_clients": max_clients, "header_read_timeout": header_read_timeout,
                       "client_idle_timeout": client_idle_timeout, "host": UPSTREAM_HOST,
                       "bulk_host": BULK_HOST, "port": nginx.port, "ca": certs.ca}
        self.nofile = nofile

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(SLUICE_CONF % self.values)

    def _limit_fds(self):   # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def start(self, timeout=15.0):
        self.write_config()
        with open(os.path.join(self.dir, "sluice-stdout.log"), "wb") as out:
            self.proc = subprocess.Popen([self.binary, "--config", self.config],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.PIPE, env=e2e.clean_env(),
                                         start_new_session=True,
                                         preexec_fn=self._limit_fds if self.nofile else None)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        try:
            wait_for(lambda: self.port is not None and self.admin_port is not None, timeout,
                     "sluice to listen")
        except AssertionError as e:
            self.stop()
            raise AssertionError("%s; stderr:\n%s" % (e, self.stderr_tail(20)))
        debug("sluice pid %d on %d, admin %d" % (self.proc.pid, self.port, self.admin_port))
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def alive(self):
        return self.proc.poll() is None


def wait_for(cond, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def cpu_seconds(pid):
    """utime + stime of every thread of the process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class CpuSampler(threading.Thread):
    """Samples a process's CPU time every 100 ms, for the CPU share over any window."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.samples.append((time.monotonic(), cpu_seconds(self.pid)))
            except OSError:
                return
            self.halt.wait(0.1)

    def percent(self, start, end):
        """CPU % of one core between the samples nearest inside [start, end]."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.2:
            return None, 0.0
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return 100.0 * (c1 - c0) / (t1 - t0), t1 - t0

    def stop(self):
        self.halt.set()
        self.join(2)


class NormalClient(threading.Thread):
    """A well-behaved client: a fresh-connection GET through sluice every 200 ms."""

    def __init__(self, port, period=0.2):
        super().__init__(daemon=True)
        self.port = port
        self.period = period
        self.results = []   # (latency s, status or error text)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t0 = time.monotonic()
            try:
                outcome = lifecycle.get(self.port, NORMAL_URL, timeout=5)[0]
            except Exception as e:   # a reset, a timeout, a garbled head
                outcome = "%s: %s" % (type(e).__name__, e)
            latency = time.monotonic() - t0
            self.results.append((latency, outcome))
            self.halt.wait(max(0.0, self.period - latency))

    def stop(self):
        self.halt.set()
        self.join(10)

    def problems(self):
        bad = [r for r in self.results if r[1] != 200 or r[0] >= NORMAL_MAX_LATENCY]
        out = []
        if len(self.results) < 3:
            out.append("normal client made only %d requests" % len(self.results))
        if bad:
            out.append("normal client: %d of %d requests failed or took >= %.1f s, e.g. %s"
                       % (len(bad), len(self.results), NORMAL_MAX_LATENCY,
                          ", ".join("%.2fs %s" % r for r in bad[:5])))
        return out

    def summary(self):
        lat = [r[0] for r in self.results]
        return "normal client %d requests, max latency %s" % (
            len(lat), "%.0f ms" % (1000 * max(lat)) if lat else "-")


# --------------------------------------------------------------------------
# many client connections, one thread


class Conn:
    """One client connection of a swarm. `kind` is silent (never sends), dribble (sends a
    never-ending head, one byte every `interval`) or idle (one full request, then quiet).
    t0 is when the server's deadline starts from the client's view: connect() (silent),
    first byte sent (dribble), response complete (idle); cut is when EOF or a reset came."""

    def __init__(self, kind, limit, interval=None):
        self.kind = kind
        self.limit = limit          # the sluice timeout that must cut this connection
        self.interval = interval
        self.sock = None
        self.started = None         # when connect() was called
        self.sent = 0
        self.t0 = None
        self.cut = None
        self.data = b""             # bytes received after t0 (the answer to the cut)
        self.reply = b""            # the idle kind's answer to its one request
        self.how = None             # 408 / close / reset / other
        self.error = None

    def latency(self):
        return self.cut - self.t0

    def soonest(self):
        """The cut's delay from the earliest moment sluice's clock can have started: the
        connect() for silent and dribble (a first head is timed from the accept), the
        response for idle."""
        return self.cut - (self.t0 if self.kind == "idle" else self.started)


def response_complete(buf):
    """Whether buf holds one whole response with a Content-Length or chunked body."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    lines = head.decode("latin-1").lower().split("\r\n")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip() == "content-length":
            return len(body) >= int(value)
        if name.strip() == "transfer-encoding" and "chunked" in value:
            return body.endswith(b"0\r\n\r\n")
    return False


def classify_cut(data):
    """What came before the EOF: 408 (a 408 status line; check_408 checks its headers),
    close (nothing) or other."""
    if not data:
        return "close"
    if data.startswith(b"HTTP/1.1 408 "):
        return "408"
    return "other"


def check_408(data):
    """What a DESIGN §5 408 lacks."""
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    problems = []
    if "\r\nproxy-status: sluice; error=http_request_error" not in head:
        problems.append("no 'Proxy-Status: sluice; error=http_request_error'")
    if "\r\nconnection: close" not in head:
        problems.append("no 'Connection: close'")
    return problems


class Swarm:
    """Opens connections with non-blocking connects, evenly over `spread` seconds (a
    connect storm would only test the kernel's accept queue), and drives them all from
    one selector until every one is cut or it is past every deadline. Bookkeeping is O(1)
    an event, so that the loop keeps up with 5000 connections."""

    def __init__(self, port, conns, spread):
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.conns = conns
        self.spread = spread
        self.timers = []        # heap of (when, seq, conn): next dribble byte
        self.seq = 0
        self.live = set()       # opened, neither cut nor failed
        self.waiting = set()    # live, t0 not reached yet
        self.last_deadline = 0.0
        self.open_at = None     # when every connection had reached its t0

    def add(self, conn):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        conn.sock = s
        conn.started = time.monotonic()
        self.live.add(conn)
        self.waiting.add(conn)
        err = s.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            self._fail(conn, "connect: %s" % os.strerror(err))
            return
        self.sel.register(s, selectors.EVENT_WRITE, conn)

    def _set_t0(self, conn, t0):
        conn.t0 = t0
        self.waiting.discard(conn)
        self.last_deadline = max(self.last_deadline, t0 + conn.limit)

    def _fail(self, conn, why):
        conn.error = why
        self._close(conn)

    def _close(self, conn):
        self.live.discard(conn)
        self.waiting.discard(conn)
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _connected(self, conn, now):
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(conn, "connect: %s" % os.strerror(err))
            return
        self.sel.modify(conn.sock, selectors.EVENT_READ, conn)
        if conn.kind == "silent":
            self._set_t0(conn, conn.started)   # sluice's clock cannot start before connect()
        elif conn.kind == "dribble":
            self._send_byte(conn, now)
        else:
            try:
                conn.sock.send(ONE_REQUEST)   # small: fits the empty send buffer
            except OSError:
                pass   # closed at once: the read side tells how

    def _send_byte(self, conn, now):
        try:
            conn.sock.send(SLOW_HEAD[conn.sent:conn.sent + 1])
        except OSError:
            return  # cut by the server: the read side tells how
        if conn.sent == 0:
            self._set_t0(conn, now)
        conn.sent += 1
        self.seq += 1
        heapq.heappush(self.timers, (now + conn.interval, self.seq, conn))

    def _readable(self, conn, now):
        try:
            chunk = conn.sock.recv(65536)
        except ConnectionResetError:
            chunk = None
        except BlockingIOError:
            return
        if conn.kind == "idle" and conn.t0 is None:
            if not chunk:
                self._fail(conn, "closed before its response: %r" % conn.reply[:200])
                return
            conn.reply += chunk
            if response_complete(conn.reply):
                if not conn.reply.startswith(b"HTTP/1.1 200 "):
                    self._fail(conn, "request answered %r" % conn.reply[:200])
                    return
                self._set_t0(conn, now)
            return
        if chunk:
            conn.data += chunk
            return
        if conn.t0 is None:
            self._fail(conn, "closed before its first byte was sent: %r" % conn.data[:200])
            return
        conn.cut = now
        conn.how = "reset" if chunk is None else classify_cut(conn.data)
        self._close(conn)

    def run(self, setup_timeout=10.0):
        """Connections that do not reach their t0 within setup_timeout of their connect()
        fail; the rest are watched until cut or past their deadline + SLACK + 0.5 s."""
        begin = time.monotonic()
        n = len(self.conns)
        to_open = collections.deque((begin + self.spread * i / n, c)
                                    for i, c in enumerate(self.conns))
        next_check = begin
        while to_open or self.live:
            now = time.monotonic()
            while to_open and to_open[0][0] <= now:
                self.add(to_open.popleft()[1])
            if now >= next_check:   # a scan of the slow starters, 4 times a second
                next_check = now + 0.25
                for c in [c for c in self.waiting if now > c.started + setup_timeout]:
                    self._fail(c, "no t0 within %.0f s of connect()" % setup_timeout)
            if not to_open and not self.waiting:
                if self.open_at is None:
                    self.open_at = now
                if now > self.last_deadline + SLACK + 0.5:
                    break
            wake = [now + 0.05]
            if self.timers:
                wake.append(self.timers[0][0])
            if to_open:
                wake.append(to_open[0][0])
            for key, _ in self.sel.select(max(0.0, min(wake) - now)):
                if key.events == selectors.EVENT_WRITE:   # registered while connecting
                    self._connected(key.data, time.monotonic())
                else:
                    self._readable(key.data, time.monotonic())
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                conn = heapq.heappop(self.timers)[2]
                if conn in self.live and not conn.data:
                    self._send_byte(conn, now)
        for c in list(self.live):
            self._close(c)
        self.sel.close()

    def report(self, kind):
        """(problems, summary) for the connections of one kind."""
        conns = [c for c in self.conns if c.kind == kind]
        limit = conns[0].limit
        problems = []
        errors = [c for c in conns if c.error]
        if errors:
            problems.append("%d %s connections failed, e.g. %s"
                            % (len(errors), kind, errors[0].error))
        uncut = [c for c in conns if c.error is None and c.cut is None]
        if uncut:
            problems.append("%d of %d %s connections were still open past their deadline "
                            "(%.0f s + %.0f s)" % (len(uncut), len(conns), kind, limit, SLACK))
        cut = [c for c in conns if c.cut is not None]
        late = [c for c in cut if c.latency() > limit + SLACK]
        # Half the timeout: a cut at once (a keep-alive that is not kept, the wrong timer)
        # is what this catches, not the lag of this loop seeing a response late.
        early = [c for c in cut if c.soonest() < limit / 2]
        if late:
            problems.append("%d %s connections cut late (max %.2f s > %.1f s)"
                            % (len(late), kind, max(c.latency() for c in late), limit + SLACK))
        if early:
            problems.append("%d %s connections cut early (min %.2f s, timeout %.1f s)"
                            % (len(early), kind, min(c.soonest() for c in early), limit))
        hows = {}
        for c in cut:
            hows[c.how] = hows.get(c.how, 0) + 1
        others = [c for c in cut if c.how == "other"]
        if others:
            problems.append("%d %s connections got something other than a 408 before the "
                            "close: %r" % (len(others), kind, others[0].data[:200]))
        bad408 = [(c, check_408(c.data)) for c in cut if c.how == "408"]
        bad408 = [(c, p) for c, p in bad408 if p]
        if bad408:
            problems.append("%d %s 408 responses are incomplete: %s; %r"
                            % (len(bad408), kind, ", ".join(bad408[0][1]),
                               bad408[0][0].data[:300]))
        lat = [c.latency() for c in cut]
        summary = "%d %s: max cut %s (limit %.1f s + %.0f s), %s" % (
            len(conns), kind, "%.2f s" % max(lat) if lat else "-", limit, SLACK,
            " ".join("%s=%d" % kv for kv in sorted(hows.items())) or "none cut")
        if uncut:
            summary += ", %d not cut" % len(uncut)
        return problems, summary


# --------------------------------------------------------------------------
# tests


class Ctx(e2e.Ctx):
    """run_e2e's context; each test starts its own sluice with its own limits."""

    def __init__(self, binary, tmp):
        os.chmod(tmp, 0o755)   # for nginx's workers
        certs = e2e.Certs(tmp)
        super().__init__(tmp, certs, Nginx(tmp, certs), None)
        self.binary = binary
        self.summary = []   # the measured numbers, printed at the end

    def new_sluice(self, name, **limits):
        return Sluice(self.binary, os.path.join(self.tmp, name), self.nginx, self.certs,
                      **limits)


def swarm_with_normal_client(c, sluice, conns, label, spread=0.2):
    """Drives the conns while a normal client runs; asserts every kind's deadline and
    the normal client's service. Returns the swarm."""
    normal = NormalClient(sluice.port)
    normal.start()
    swarm = Swarm(sluice.port, conns, spread)
    try:
        swarm.run()
    finally:
        normal.stop()
    problems = []
    for kind in sorted({conn.kind for conn in conns}, key=[x.kind for x in conns].index):
        p, s = swarm.report(kind)
        problems += p
        c.summary.append("%s: %s" % (label, s))
    problems += normal.problems()
    c.summary.append("%s: %s" % (label, normal.summary()))
    if not sluice.alive():
        problems.append("sluice exited with %r" % sluice.proc.returncode)
    expect(not problems, "; ".join(problems))
    return swarm


def t_slow_loris(c):
    with c.new_sluice("loris", header_read_timeout="2s", client_idle_timeout="60s") as s:
        swarm_with_normal_client(c, s, [Conn("dribble", 2.0, 0.5) for _ in range(300)],
                                 "slow-loris")


def t_silent(c):
    with c.new_sluice("silent", header_read_timeout="2s", client_idle_timeout="60s") as s:
        swarm_with_normal_client(c, s, [Conn("silent", 2.0) for _ in range(300)], "silent")


def t_idle_keepalive(c):
    with c.new_sluice("idle", header_read_timeout="10s", client_idle_timeout="2s") as s:
        swarm_with_normal_client(c, s, [Conn("idle", 2.0) for _ in range(100)], "idle")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


FD_LIMIT = 256


def exhaust(s, n=300):
    """Opens n silent connections to a sluice under RLIMIT_NOFILE FD_LIMIT and waits until
    it holds every descriptor it may (a few may stay spare). Returns the sockets."""
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=5))
        wait_for(lambda: fd_count(s.proc.pid) >= FD_LIMIT - 8, 10,
                 "sluice to use its %d descriptors" % FD_LIMIT)
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks):
    for sock in socks:
        sock.close()


def cpu_percent(pid, seconds):
    """CPU % of one core that the process uses over the next `seconds` (a measurement
    window, not a wait)."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def t_fd_exhaustion(c):
    with c.new_sluice("emfile", header_read_timeout="10s", client_idle_timeout="10s",
                      nofile=FD_LIMIT) as s:
        pid = s.proc.pid
        base = fd_count(pid)
        socks = exhaust(s)
        try:
            held = fd_count(pid)
            cpu = cpu_percent(pid, 3.0)
            expect(s.alive(), "sluice exited with %r while out of descriptors"
                   % s.proc.returncode)
            warnings = sum("accept failed" in line for line in s.stderr_text().splitlines())
        finally:
            close_all(socks)
        t0 = time.monotonic()
        status = lifecycle.get(s.port, NORMAL_URL, timeout=10)[0]
        recovery = time.monotonic() - t0
        # Only now: the admin port needs a descriptor too.
        errors = lifecycle.metric(s.admin_port, "sluice_accept_errors_total",
                                  'reason="fd_exhausted"')
        c.summary.append(
            "fd exhaustion: %d fds at start, %d held of %d, CPU %.1f %% over 3 s, "
            "%d 'accept failed' log lines, normal request %s after %.2f s, "
            "sluice_accept_errors_total{reason=\"fd_exhausted\"} %s"
            % (base, held, FD_LIMIT, cpu, warnings, status, recovery,
               "ABSENT" if errors is None else "%g" % errors))
        problems = []
        if cpu >= CPU_IDLE_LIMIT:
            problems.append("sluice used %.1f %% of a core while out of descriptors (limit "
                            "%.0f %%): accept not backing off?" % (cpu, CPU_IDLE_LIMIT))
        if status != 200 or recovery > 5.0:
            problems.append("normal request after the connections closed: %s in %.2f s"
                            % (status, recovery))
        if errors is not None and errors <= 0:
            problems.append("sluice_accept_errors_total{reason=\"fd_exhausted\"} is %g" % errors)
        if not s.alive():
            problems.append("sluice exited with %r" % s.proc.returncode)
        expect(not problems, "; ".join(problems))


def t_admin_while_exhausted(c):
    """A Prometheus scrape that arrives while sluice is out of descriptors: the admin
    listener must back off too, and the scrape is answered once descriptors are free."""
    with c.new_sluice("emfile-admin", header_read_timeout="10s", client_idle_timeout="10s",
                      nofile=FD_LIMIT) as s:
        socks = exhaust(s)
        try:
            scrape = socket.create_connection(("127.0.0.1", s.admin_port), timeout=5)
            scrape.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            cpu = cpu_percent(s.proc.pid, 2.0)
        finally:
            close_all(socks)
        with scrape:
            answer = scrape.recv(64)
        c.summary.append("fd exhaustion + pending admin scrape: CPU %.1f %% over 2 s, then %r"
                         % (cpu, answer[:15]))
        expect(cpu < CPU_IDLE_LIMIT, "sluice used %.1f %% of a core while a scrape waited on "
               "the admin port and it was out of descriptors (limit %.0f %%): the admin "
               "accept loop does not back off" % (cpu, CPU_IDLE_LIMIT))
        expect(answer.startswith(b"HTTP/1.1 200 "), "the scrape got %r" % answer)


def t_case27(c):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    expect(nofile >= 6000, "RLIMIT_NOFILE hard limit %d is too low for 5000 connections" % hard)
    with c.new_sluice("case27", header_read_timeout="3s", client_idle_timeout="3s",
                      max_clients=6000, nofile=nofile) as s:
        sampler = CpuSampler(s.proc.pid)
        sampler.start()
        before = e2e.read_proc_status(s.proc.pid, "VmHWM")
        conns = []
        for _ in range(1000):   # the three kinds interleaved
            conns += [Conn("silent", 3.0), Conn("dribble", 3.0, 5.0), Conn("silent", 3.0),
                      Conn("dribble", 3.0, 5.0), Conn("idle", 3.0)]
        try:
            swarm = swarm_with_normal_client(c, s, conns, "case 27", spread=1.0)
        finally:
            sampler.stop()
            hwm = e2e.read_proc_status(s.proc.pid, "VmHWM")
            rss = e2e.read_proc_status(s.proc.pid, "VmRSS")
            c.summary.append("case 27: VmHWM %d KiB (%d at start), VmRSS %d KiB after"
                             % (hwm, before, rss))
        first_cut = min(conn.cut for conn in swarm.conns)
        cpu, span = sampler.percent(swarm.open_at, first_cut)
        c.summary.append("case 27: CPU %s over the %.2f s all 5000 sat open"
                         % ("n/a" if cpu is None else "%.1f %%" % cpu, span))
        problems = []
        if cpu is None:
            problems.append("no window with all 5000 connections open before the first cut")
        elif cpu >= CPU_SITTING_LIMIT:
            problems.append("sluice used %.1f %% of a core while 5000 connections sat "
                            "(limit %.0f %%)" % (cpu, CPU_SITTING_LIMIT))
        if not s.sanitized and hwm >= RSS_LIMIT_KIB:
            problems.append("VmHWM %d KiB >= %d KiB with 5000 connections"
                            % (hwm, RSS_LIMIT_KIB))
        expect(not problems, "; ".join(problems))


TESTS = [
    ("slow-loris: 300 heads at 1 byte/0.5 s cut within header_read_timeout + 1 s, "
     "normal client served", t_slow_loris),
    ("silent: 300 connections cut within header_read_timeout + 1 s", t_silent),
    ("idle keep-alive: 100 connections closed within client_idle_timeout + 1 s", t_idle_keepalive),
    ("RLIMIT_NOFILE 256 + 300 connections: alive, CPU < 10 %, serves after", t_fd_exhaustion),
    ("RLIMIT_NOFILE 256 + a scrape on the admin port: CPU < 10 %, scrape answered after",
     t_admin_while_exhausted),
    ("case 27: 2000 silent + 2000 dribbling + 1000 idle cut in time, normal client served, "
     "bounded RSS, low CPU", t_case27),
]


def raise_own_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else min(hard, 20000)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", required=True, help="path to the built sluice binary")
    ap.add_argument("-k", dest="only", action="append", default=[], metavar="TEXT",
                    help="run only the tests whose name contains TEXT (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo sluice's log")
    args = ap.parse_args()
    e2e.VERBOSE = args.verbose
    tests = [(n, f) for n, f in TESTS
             if not args.only or any(t.lower() in n.lower() for t in args.only)]
    raise_own_fd_limit()

    t0 = time.monotonic()
    res = e2e.Results()
    ctx = Ctx(os.path.abspath(args.sluice), tempfile.mkdtemp(prefix="sluice-slow-"))
    try:
        try:
            ctx.certs.generate()
            ctx.nginx.start()
        except Exception as e:
            res.fail_all(tests, "fixture did not start: %s: %s" % (type(e).__name__, e))
            return 1
        for name, fn in tests:
            res.run(name, fn, ctx)
        log("---- measured ----")
        for line in ctx.summary:
            log("  " + line)
        return 0 if res.failed == 0 else 1
    finally:
        ctx.nginx.stop()
        if not args.keep:
            shutil.rmtree(ctx.tmp, ignore_errors=True)
        log("slow-clients e2e took %.1fs%s" % (time.monotonic() - t0,
                                              ", temp dir kept: " + ctx.tmp if args.keep else ""))
        log("%d passed, %d failed" % (res.passed, res.failed))


if __name__ == "__main__":
    sys.exit(main())
