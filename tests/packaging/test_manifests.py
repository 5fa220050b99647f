#!/usr/bin/env python3
"""Checks the container and deployment files against each other and against sluice itself.

    python3 tests/packaging/test_manifests.py --sluice build/sluice [-v]

- Dockerfile: build on debian:bookworm through scripts/docker-build.sh, run on
  debian:bookworm-slim as a numeric non-root user, EXPOSE 3128 9464, the HEALTHCHECK runs
  "sluice healthcheck" on the admin port's /healthz, the image's config is config/docker.yaml
  at /etc/sluice/sluice.yaml, and its version label is the CMake project version. The image
  these files must reference is "<title label>:<version label>" (sluice:0.1.0).
- deploy/docker-compose.yml: the app's HTTP_PROXY names the sluice service and its proxy
  port, the sluice service builds and names that image, mounts its config at /etc/sluice,
  has the same healthcheck, and Prometheus scrapes sluice's admin port at /metrics.
- deploy/kubernetes/*.yaml: a Deployment with the app and the sluice sidecar (that image),
  the ConfigMap mounted at /etc/sluice, readiness /readyz and liveness /healthz on the admin
  port, requests and limits, a locked-down securityContext for every container.
- every config file passes `sluice --check-config`, and every probe and scrape path answers
  200 on a running sluice; the HEALTHCHECK command succeeds against it and fails on an error.

Python standard library + PyYAML (Debian: python3-yaml). The last line printed is
"N passed, M failed"; the exit status is non-zero when anything failed.
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROXY_PORT = 3128
ADMIN_PORT = 9464
ADMIN_RE = re.compile(r"admin listening on (\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+)")
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

VERBOSE = False
SLUICE = None


def log(msg):
    print(msg, flush=True)


def debug(msg):
    if VERBOSE:
        print("  . " + msg, flush=True)


def path(*parts):
    return os.path.join(REPO, *parts)


def load_yaml(rel):
    with open(path(rel)) as f:
        return yaml.safe_load(f)


def load_yaml_docs(rel):
    with open(path(rel)) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def clean_env():
    return {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}


def parse_duration(s):
    """sluice durations: 250ms, 1.5s, 2m, 1h; compose/k8s: '15s' or a number of seconds."""
    if isinstance(s, (int, float)):
        return float(s)
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)\s*", str(s))
    expect(m, f"cannot parse duration {s!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def split_hostport(s):
    """'0.0.0.0:3128' / '[::1]:3128' -> (host, port)."""
    m = re.fullmatch(r"\[?([^\]]*?)\]?:(\d+)", str(s))
    expect(m, f"not HOST:PORT: {s!r}")
    return m.group(1), int(m.group(2))


def check_config_file(file):
    r = subprocess.run([SLUICE, "--check-config", file], capture_output=True, text=True,
                       timeout=30)
    expect(r.returncode == 0,
           f"sluice --check-config {file} exited {r.returncode}: {r.stderr.strip()}")
    return yaml.safe_load(open(file))


def check_config_text(text, name):
    with tempfile.NamedTemporaryFile("w", suffix="-" + name, delete=False) as f:
        f.write(text)
    try:
        check_config_file(f.name)
    finally:
        os.unlink(f.name)
    return yaml.safe_load(text)


def cmake_project_version():
    text = open(path("CMakeLists.txt")).read()
    m = re.search(r"project\(\s*sluice\s+VERSION\s+([0-9][0-9.]*)", text)
    expect(m, "no project(sluice VERSION x.y.z) in CMakeLists.txt")
    return m.group(1)


# --------------------------------------------------------------------------
# Dockerfile


class Dockerfile:
    """The instructions of a Dockerfile, per stage: [(INSTRUCTION, argument text)]."""

    def __init__(self, file):
        self.stages = []      # [{"from": image, "name": alias, "ins": [(op, args)]}]
        self.args = {}        # ARG defaults (any stage)
        logical, buf = [], ""
        for raw in open(file).read().splitlines():
            stripped = raw.strip()
            if not buf and (not stripped or stripped.startswith("#")):
                continue
            if buf and stripped.startswith("#"):
                continue      # comment lines inside a continuation are dropped
            if stripped.endswith("\\"):
                buf += stripped[:-1] + " "
                continue
            logical.append(buf + stripped)
            buf = ""
        expect(not buf, "Dockerfile ends inside a line continuation")
        for line in logical:
            op, _, rest = line.partition(" ")
            op, rest = op.upper(), rest.strip()
            if op == "FROM":
                words = rest.split()
                words = [w for w in words if not w.startswith("--platform")]
                alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                self.stages.append({"from": words[0], "name": alias, "ins": []})
                continue
            expect(self.stages, f"instruction before FROM: {line}")
            self.stages[-1]["ins"].append((op, rest))
            if op == "ARG" and "=" in rest:
                k, v = rest.split("=", 1)
                self.args[k.strip()] = v.strip().strip('"')

    def all(self, op, stage=-1):
        return [a for o, a in self.stages[stage]["ins"] if o == op]

    def one(self, op, stage=-1):
        found = self.all(op, stage)
        expect(len(found) == 1, f"Dockerfile: want exactly one {op} in the final stage, got "
                                f"{len(found)}")
        return found[0]

    def labels(self, stage=-1):
        out = {}
        for a in self.all("LABEL", stage):
            for tok in shlex.split(a):
                k, _, v = tok.partition("=")
                out[k] = v
        return out

    def subst(self, s):
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: self.args.get(m.group(1),
                                                                                m.group(0)), s)


def exec_form(s, what):
    """A JSON exec form ["a", "b"] as a list (shell form is not accepted: no shell in it)."""
    import json
    s = s.strip()
    expect(s.startswith("["), f"{what} must use the exec form [\"...\"], got {s!r}")
    return json.loads(s)


class Context:
    """What every check shares: the parsed files and the expected image name."""

    def __init__(self):
        self.version = cmake_project_version()
        self.docker = Dockerfile(path("Dockerfile"))
        labels = self.docker.labels()
        self.title = self.docker.subst(labels.get("org.opencontainers.image.title", ""))
        self.image_version = self.docker.subst(labels.get("org.opencontainers.image.version", ""))
        self.image = f"{self.title}:{self.image_version}"
        self.compose = load_yaml("deploy/docker-compose.yml")
        self.k8s = {}
        kdir = path("deploy", "kubernetes")
        for name in sorted(os.listdir(kdir)):
            if name.endswith((".yaml", ".yml")):
                self.k8s[name] = load_yaml_docs(os.path.join("deploy", "kubernetes", name))
        self.probe_paths = set()       # every HTTP path a manifest expects on the admin port
        self.healthchecks = []         # every healthcheck command (argv) the files run


def test_dockerfile_stages(ctx):
    d = ctx.docker
    expect(len(d.stages) >= 2, "Dockerfile: want a multi-stage build")
    build = next((s for s in d.stages if s["name"] == "build"), None)
    expect(build, "Dockerfile: no stage named 'build'")
    expect_eq(build["from"], "debian:bookworm", "build stage base image")
    expect_eq(d.stages[-1]["from"], "debian:bookworm-slim", "runtime stage base image")
    runs = [a for o, a in build["ins"] if o == "RUN"]
    expect(any("scripts/docker-build.sh" in r for r in runs),
           "the build stage must RUN scripts/docker-build.sh (the script CI runs)")
    expect(len(runs) == 1, f"the build stage's build steps must all be in the script, got {runs}")
    script = path("scripts", "docker-build.sh")
    expect(os.access(script, os.X_OK), "scripts/docker-build.sh is missing or not executable")
    stage_dir = shlex.split(runs[0])[1]
    copies = [a for a in d.all("COPY") if a.startswith("--from=build")]
    expect(copies, "the runtime stage copies nothing from the build stage")
    for c in copies:
        src = shlex.split(c)[1]
        expect(src.startswith(stage_dir.rstrip("/") + "/"),
               f"COPY --from=build {src}: not from the staging directory {stage_dir}")
    # The runtime stage installs packages but builds nothing.
    runtime_runs = " ".join(d.all("RUN"))
    for tool in ("cmake", "build-essential", "-dev "):
        expect(tool not in runtime_runs, f"runtime stage installs or runs build tool {tool!r}")
    expect("rm -rf /var/lib/apt/lists" in runtime_runs, "runtime stage keeps the apt lists")


def test_dockerfile_image(ctx):
    d = ctx.docker
    expect_eq(ctx.title, "sluice", "org.opencontainers.image.title label")
    expect_eq(ctx.image_version, ctx.version, "image version label vs CMake project version")
    user = d.one("USER").split(":")
    expect(user[0].isdigit() and int(user[0]) != 0,
           f"USER must be a numeric non-root UID (runAsNonRoot can verify it), got {user}")
    exposed = {int(p.split("/")[0]) for a in d.all("EXPOSE") for p in a.split()}
    expect_eq(exposed, {PROXY_PORT, ADMIN_PORT}, "EXPOSE")
    copies = [shlex.split(a) for a in d.all("COPY") if not a.startswith("--")]
    expect(["config/docker.yaml", "/etc/sluice/sluice.yaml"] in copies,
           "config/docker.yaml is not copied to /etc/sluice/sluice.yaml")
    for c in copies:
        expect(os.path.exists(path(c[0])), f"COPY source {c[0]} does not exist")
    entry = exec_form(d.one("ENTRYPOINT"), "ENTRYPOINT")
    cmd = exec_form(d.one("CMD"), "CMD")
    argv = entry + cmd
    expect(os.path.basename(argv[0]) == "sluice", f"the image does not run sluice: {argv}")
    expect_eq(argv[1:], ["--config", "/etc/sluice/sluice.yaml"], "the image's arguments")
    # The HEALTHCHECK: exec form, sluice healthcheck http://127.0.0.1:<admin port>/healthz.
    hc = d.one("HEALTHCHECK")
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", hc)
    expect(m, f"HEALTHCHECK must be CMD [exec form], got {hc!r}")
    argv = exec_form(m.group(1), "HEALTHCHECK")
    expect_eq(argv[:2], ["sluice", "healthcheck"], "HEALTHCHECK command")
    url = urllib.parse.urlsplit(argv[2])
    expect_eq((url.scheme, url.hostname, url.port), ("http", "127.0.0.1", ADMIN_PORT),
              "HEALTHCHECK URL")
    expect_eq(url.path, "/healthz", "HEALTHCHECK path")
    ctx.healthchecks.append(argv)
    ctx.probe_paths.add(url.path)
    ignore = open(path(".dockerignore")).read().split()
    expect("build*" in ignore and ".git" in ignore,
           ".dockerignore must keep build trees and .git out of the context")


def test_docker_config(ctx):
    cfg = check_config_file(path("config", "docker.yaml"))
    expect_eq(split_hostport(cfg["listen"]), ("0.0.0.0", PROXY_PORT), "config/docker.yaml listen")
    expect_eq(split_hostport(cfg["admin_listen"]), ("0.0.0.0", ADMIN_PORT),
              "config/docker.yaml admin_listen")


def test_compose(ctx):
    services = ctx.compose.get("services") or {}
    expect({"app", "sluice", "prometheus"} <= set(services),
           f"compose services: {sorted(services)}")
    compose_dir = path("deploy")
    s = services["sluice"]
    expect_eq(s.get("image"), ctx.image, "compose sluice image")
    build = s.get("build") or {}
    context = os.path.normpath(os.path.join(compose_dir, build.get("context", ".")))
    expect(os.path.isfile(os.path.join(context, build.get("dockerfile", "Dockerfile"))),
           f"compose build context {context} has no {build.get('dockerfile')}")
    expect_eq(os.path.realpath(context), os.path.realpath(REPO), "compose build context")
    # The config mount: a directory at /etc/sluice (or the file itself).
    cfg_file = None
    for v in s.get("volumes") or []:
        src, dst = v.split(":")[:2]
        src = os.path.normpath(os.path.join(compose_dir, src))
        expect(os.path.exists(src), f"compose volume source {src} does not exist")
        if dst == "/etc/sluice":
            cfg_file = os.path.join(src, "sluice.yaml")
        elif dst == "/etc/sluice/sluice.yaml":
            cfg_file = src
    expect(cfg_file, "compose sluice service mounts no config at /etc/sluice")
    cfg = check_config_file(cfg_file)
    listen_host, listen_port = split_hostport(cfg["listen"])
    admin_host, admin_port = split_hostport(cfg["admin_listen"])
    expect_eq(listen_host, "0.0.0.0", f"{cfg_file}: listen host (other containers connect)")
    expect_eq(admin_host, "0.0.0.0", f"{cfg_file}: admin_listen host (Prometheus scrapes)")
    expect_eq((listen_port, admin_port), (PROXY_PORT, ADMIN_PORT), f"{cfg_file}: ports")
    published = {int(str(p).split(":")[-1]) for p in s.get("ports") or []}
    expect(published <= {PROXY_PORT, ADMIN_PORT}, f"compose publishes {published}")
    for p in s.get("ports") or []:
        expect(str(p).startswith("127.0.0.1:"),
               f"compose publishes {p} beyond the host's loopback (an open proxy)")
    # Healthcheck: the image's command.
    test = (s.get("healthcheck") or {}).get("test")
    expect(isinstance(test, list) and test[0] == "CMD", f"compose healthcheck test: {test}")
    expect_eq(test[1:], ctx.healthchecks[0], "compose healthcheck vs the Dockerfile's")
    drain = parse_duration(cfg.get("drain_timeout", "15s"))
    grace = parse_duration(s.get("stop_grace_period", "10s"))
    expect(grace > drain, f"stop_grace_period {grace}s must exceed drain_timeout {drain}s")
    # The app: HTTP_PROXY names the sluice service and its proxy port.
    app = services["app"]
    env = app.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    for var in ("HTTP_PROXY", "http_proxy"):
        expect_eq(env.get(var), f"http://sluice:{listen_port}", f"compose app {var}")
    dep = (app.get("depends_on") or {}).get("sluice") or {}
    expect_eq(dep.get("condition"), "service_healthy", "app depends_on sluice condition")
    # Prometheus scrapes sluice:<admin port><metrics_path>.
    prom = services["prometheus"]
    prom_cfg = None
    for v in prom.get("volumes") or []:
        src, dst = v.split(":")[:2]
        if dst.endswith("prometheus.yml"):
            prom_cfg = os.path.normpath(os.path.join(compose_dir, src))
    expect(prom_cfg and os.path.isfile(prom_cfg), "prometheus service mounts no prometheus.yml")
    targets = []
    for job in yaml.safe_load(open(prom_cfg)).get("scrape_configs") or []:
        for sc in job.get("static_configs") or []:
            for t in sc.get("targets") or []:
                targets.append((t, job.get("metrics_path", "/metrics")))
    expect(targets, f"{prom_cfg}: no scrape targets")
    expect(any(t == f"sluice:{admin_port}" for t, _ in targets),
           f"{prom_cfg} does not scrape sluice:{admin_port}: {targets}")
    for _, mp in targets:
        ctx.probe_paths.add(mp)
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "config", prom_cfg], capture_output=True,
                           text=True, timeout=60)
        expect(r.returncode == 0, f"promtool check config {prom_cfg}: {r.stdout}{r.stderr}")
    else:
        debug("promtool not installed: prometheus.yml only parsed")


def _k8s_objects(ctx, kind):
    return [(f, d) for f, docs in ctx.k8s.items() for d in docs if d.get("kind") == kind]


def _port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError(f"container {container['name']}: no port named {port!r}")


def test_kubernetes(ctx):
    kust = [d for f, docs in ctx.k8s.items() for d in docs if d.get("kind") == "Kustomization"]
    for k in kust:
        for r in k.get("resources") or []:
            expect(os.path.isfile(path("deploy", "kubernetes", r)), f"kustomization: no {r}")
    for f, docs in ctx.k8s.items():
        for d in docs:
            expect(d.get("apiVersion") and d.get("kind") and (d.get("metadata") or {}).get("name")
                   or d.get("kind") == "Kustomization", f"{f}: object without apiVersion/kind/name")
    cms = _k8s_objects(ctx, "ConfigMap")
    deps = _k8s_objects(ctx, "Deployment")
    expect(len(deps) == 1, f"want one Deployment, got {len(deps)}")
    expect(cms, "no ConfigMap")
    f, dep = deps[0]
    spec = dep["spec"]
    tmpl = spec["template"]
    sel = spec["selector"]["matchLabels"]
    labels = tmpl["metadata"]["labels"]
    expect(all(labels.get(k) == v for k, v in sel.items()),
           f"{f}: selector {sel} does not match the pod labels {labels}")
    pod = tmpl["spec"]
    containers = pod.get("containers") or []
    sidecars = [c for c in pod.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    everyone = containers + sidecars
    sluice = [c for c in everyone if c.get("image") == ctx.image]
    expect(len(sluice) == 1, f"{f}: want one container with image {ctx.image}, "
                             f"got {[c.get('image') for c in everyone]}")
    sluice = sluice[0]
    apps = [c for c in containers if c is not sluice]
    expect(apps, f"{f}: no app container next to the sluice sidecar")
    # Config: the ConfigMap mounted at /etc/sluice holds sluice.yaml, which passes the check.
    argv = (sluice.get("command") or []) + (sluice.get("args") or [])
    expect("/etc/sluice/sluice.yaml" in argv or not argv or argv == ["--config",
           "/etc/sluice/sluice.yaml"], f"sluice args {argv}")
    mount = [m for m in sluice.get("volumeMounts") or [] if m["mountPath"] == "/etc/sluice"]
    expect(mount, f"{f}: nothing mounted at /etc/sluice in the sluice container")
    vol = [v for v in pod.get("volumes") or [] if v["name"] == mount[0]["name"]]
    expect(vol and "configMap" in vol[0], f"{f}: /etc/sluice is not a ConfigMap volume")
    cm_name = vol[0]["configMap"]["name"]
    cm = [d for _, d in cms if d["metadata"]["name"] == cm_name]
    expect(cm, f"{f}: ConfigMap {cm_name} is not in deploy/kubernetes")
    items = vol[0]["configMap"].get("items")
    key = next((i["key"] for i in items if i["path"] == "sluice.yaml"), None) if items \
        else "sluice.yaml"
    expect(key in (cm[0].get("data") or {}), f"ConfigMap {cm_name} has no key {key}")
    cfg = check_config_text(cm[0]["data"][key], f"configmap-{cm_name}-data-{key}")
    listen_host, listen_port = split_hostport(cfg.get("listen", "127.0.0.1:3128"))
    admin_host, admin_port = split_hostport(cfg.get("admin_listen", "127.0.0.1:9464"))
    expect_eq(listen_port, PROXY_PORT, "ConfigMap listen port")
    expect_eq(admin_port, ADMIN_PORT, "ConfigMap admin_listen port")
    expect(admin_host in ("0.0.0.0", "::"),
           f"ConfigMap admin_listen {admin_host}: the kubelet probes the pod IP")
    # Probes on the admin port: readiness /readyz, liveness /healthz.
    for kind, want in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        probe = (sluice.get(kind) or {}).get("httpGet")
        expect(probe, f"{f}: sluice has no {kind} httpGet")
        expect_eq(probe["path"], want, f"{kind} path")
        expect_eq(_port_number(sluice, probe["port"]), admin_port, f"{kind} port")
        ctx.probe_paths.add(probe["path"])
    if sluice.get("startupProbe"):
        sp = sluice["startupProbe"]["httpGet"]
        expect_eq(_port_number(sluice, sp["port"]), admin_port, "startupProbe port")
        ctx.probe_paths.add(sp["path"])
    # The app goes through the sidecar on the pod's loopback.
    for app in apps:
        env = {e["name"]: e.get("value") for e in app.get("env") or []}
        proxy = env.get("HTTP_PROXY")
        expect(proxy, f"{f}: app container {app['name']} has no HTTP_PROXY")
        u = urllib.parse.urlsplit(proxy)
        expect_eq((u.scheme, u.hostname, u.port), ("http", "localhost", listen_port),
                  f"{app['name']} HTTP_PROXY")
        if "http_proxy" in env:
            expect_eq(env["http_proxy"], proxy, "http_proxy vs HTTP_PROXY")
    expect(listen_host in ("127.0.0.1", "0.0.0.0", "::1", "::"), f"listen host {listen_host}")
    # Resources and securityContext for every container.
    pod_sc = pod.get("securityContext") or {}
    for c in everyone:
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            expect({"cpu", "memory"} <= set(res.get(part) or {}),
                   f"{c['name']}: resources.{part} needs cpu and memory")
        sc = c.get("securityContext") or {}
        expect(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True,
               f"{c['name']}: runAsNonRoot")
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        expect(uid is None or uid != 0, f"{c['name']}: runAsUser 0")
        expect(sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: readOnlyRootFilesystem")
        expect(sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: allowPrivilegeEscalation")
        expect("ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
               f"{c['name']}: capabilities.drop ALL")
    docker_uid = int(ctx.docker.one("USER").split(":")[0])
    expect_eq((sluice.get("securityContext") or {}).get("runAsUser", docker_uid), docker_uid,
              "sluice runAsUser vs the image's USER")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    drain = parse_duration(cfg.get("drain_timeout", "15s"))
    expect(grace > drain, f"terminationGracePeriodSeconds {grace} must exceed drain_timeout {drain}")


def test_paths_answer_on_a_running_sluice(ctx):
    """Every probe, healthcheck and scrape path the files name exists in sluice (200), and the
    healthcheck command exits 0 against it and 1 on a path that is not there."""
    expect({"/healthz", "/readyz", "/metrics"} <= ctx.probe_paths,
           f"probe paths collected: {sorted(ctx.probe_paths)}")
    work = tempfile.mkdtemp(prefix="sluice-manifests-")
    conf = os.path.join(work, "sluice.yaml")
    with open(conf, "w") as f:
        f.write("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nthreads: 1\n"
                "drain_timeout: 2s\nlog: {level: info}\n")
    errlog = open(os.path.join(work, "stderr"), "w+")
    proc = subprocess.Popen([SLUICE, "--config", conf], stdout=subprocess.DEVNULL, stderr=errlog,
                            env=clean_env())
    try:
        admin = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            errlog.seek(0)
            m = ADMIN_RE.search(errlog.read())
            if m:
                admin = f"{m.group(1)}:{m.group(2)}"
                break
            time.sleep(0.05)
        errlog.seek(0)
        expect(admin, f"sluice never logged its admin port: {errlog.read()}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for p in sorted(ctx.probe_paths):
            with opener.open(f"http://{admin}{p}", timeout=5) as r:
                expect_eq(r.status, 200, f"GET {p}")
                debug(f"GET {p} -> {r.status}")
        for argv in ctx.healthchecks:
            u = urllib.parse.urlsplit(argv[2])
            live = f"http://{admin}{u.path}"
            r = subprocess.run([SLUICE, "healthcheck", live], capture_output=True, text=True,
                               timeout=10, env=clean_env())
            expect_eq(r.returncode, 0, f"sluice healthcheck {live} ({r.stderr.strip()})")
            bad = f"http://{admin}/no-such-path"
            r = subprocess.run([SLUICE, "healthcheck", bad], capture_output=True, text=True,
                               timeout=10, env=clean_env())
            expect_eq(r.returncode, 1, f"sluice healthcheck {bad}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = None
        else:
            rc = proc.returncode
        errlog.close()
        shutil.rmtree(work, ignore_errors=True)
    expect_eq(rc, 0, "sluice exit status after SIGTERM")


TESTS = [
    test_dockerfile_stages,
    test_dockerfile_image,
    test_docker_config,
    test_compose,
    test_kubernetes,
    test_paths_answer_on_a_running_sluice,
]


def main():
    global VERBOSE, SLUICE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True, help="the built sluice binary")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    VERBOSE = a.verbose
    SLUICE = os.path.abspath(a.sluice)
    expect(os.access(SLUICE, os.X_OK), f"{SLUICE} is not executable")
    ctx = Context()
    passed = failed = 0
    for t in TESTS:
        try:
            t(ctx)
            passed += 1
            log(f"PASS {t.__name__}")
        except Exception as e:           # one failed check must not hide the others
            failed += 1
            log(f"FAIL {t.__name__}: {e}")
            if VERBOSE or not isinstance(e, AssertionError):
                traceback.print_exc()
    log(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
