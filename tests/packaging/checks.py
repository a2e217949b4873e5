#!/usr/bin/python3
"""Drift and run checks of the packaging against the daemons as built.

Every image name, flag, environment variable, port, probe path, grace period and metric that
docker/, k8s/, deploy/systemd/ and the Grafana dashboard name must exist in the daemons; and the
daemons, built by docker/build-dist.sh, must start with exactly the manifests' flags and
environment as uid 1000 on a read-only filesystem (tests/packaging/sandbox.sh), answer their
probes, and stop cleanly on SIGTERM within the grace period.

Usage: checks.py --repo DIR --dist DIR --rendered FILE --compose FILE
  The environment must hold AIPALQ_REDIS_URL and AIPALQ_DATABASE_URL of running test services:
  they replace the manifests' connection URLs (which name cluster hosts), and nothing else does.
Prints "PASS name" / "FAIL name: why" lines; exits 1 if any check failed.
"""
import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

RESULTS = []
NOTES = []


def result(name, ok, why=""):
    RESULTS.append((name, ok))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why), flush=True)
    return ok


def note(msg):
    NOTES.append(msg)
    print("NOTE " + msg, flush=True)


# ---------------------------------------------------------------- what the daemons say

class Daemon:
    """What one daemon accepts, read from its --help, its binary and its library."""

    def __init__(self, name, dist):
        self.name = name
        self.binary = os.path.join(dist, "usr/local/bin", name)
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(dist, "usr/local/lib"))
        p = subprocess.run([self.binary, "--help"], capture_output=True, text=True, env=env)
        self.help = p.stdout + p.stderr
        self.help_rc = p.returncode
        v = subprocess.run([self.binary, "--version"], capture_output=True, text=True, env=env)
        self.version = v.stdout.strip()
        self.flags = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", self.help))
        words = set(re.findall(r"\bAIPALQ?_[A-Z0-9_]+\b", self.help))
        for f in [self.binary] + [os.path.join(dist, "usr/local/lib", x)
                                  for x in os.listdir(os.path.join(dist, "usr/local/lib"))]:
            if os.path.isfile(f) and not os.path.islink(f):
                s = subprocess.run(["strings", "-n", "6", f], capture_output=True, text=True).stdout
                words |= set(w for w in re.findall(r"^AIPALQ?_[A-Z0-9_]+$", s, re.M))
        # "Every flag can also be set as AIPAL_WORKER_<FLAG>" (the worker's --help).
        m = re.search(r"\b(AIPAL_[A-Z]+_)<FLAG>", self.help)
        if m:
            words |= {m.group(1) + f.upper().replace("-", "_") for f in self.flags
                      if f not in ("help", "version")}
        # Names of internal constants are not variables.
        self.env = {w for w in words if not w.startswith(("AIPALQ_OK", "AIPALQ_E", "AIPALQ__"))}

    def default(self, pattern):
        m = re.search(pattern, self.help)
        return m.group(1) if m else None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def port_free(port):
    for host in ("0.0.0.0", "127.0.0.1"):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def http_get(port, path, timeout=3):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception as e:  # connection refused, timeout
        return None, str(e).encode()


# ---------------------------------------------------------------- launch specifications

class Spec:
    """One way the packaging starts a daemon: a container, a Compose service, a unit."""

    def __init__(self, where, daemon, argv, env, writable, ports, probes, grace, prestop=0,
                 healthcheck=None, container=True):
        self.where = where          # e.g. "k8s Deployment/aipal-api"
        self.daemon = daemon        # "aipal-api" | "aipal-worker"
        self.argv = argv            # flags after the binary
        self.env = env              # environment as the daemon gets it
        self.writable = writable    # writable paths (volumes, tmpfs, state directories)
        self.ports = ports          # declared container ports {name or str(number): number}
        self.probes = probes        # [(kind, path, port number)]
        self.grace = grace          # seconds between SIGTERM and SIGKILL
        self.prestop = prestop      # seconds of preStop sleep before SIGTERM
        self.healthcheck = healthcheck  # argv of a Docker/Compose HEALTHCHECK
        self.container = container


def arg_value(argv, flag):
    """Value of --flag in argv (--flag V or --flag=V); None when absent."""
    for i, a in enumerate(argv):
        if a == "--" + flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--" + flag + "="):
            return a.split("=", 1)[1]
    return None


def has_flag(argv, flag):
    return any(a == "--" + flag or a.startswith("--" + flag + "=") for a in argv)


def setting(spec, flag, env_name, default):
    v = arg_value(spec.argv, flag)
    if v is None:
        v = spec.env.get(env_name) or None
    return v if v is not None else default


def dockerfile(repo, daemon):
    """ENTRYPOINT, CMD, ENV, EXPOSE, VOLUME, HEALTHCHECK and apt packages of docker/Dockerfile.X."""
    path = os.path.join(repo, "docker", "Dockerfile." + daemon.split("-", 1)[1])
    text = open(path).read()
    joined = re.sub(r"\\\n", " ", text)
    stages = re.split(r"^FROM\s", joined, flags=re.M)
    info = {"path": path, "env": {}, "expose": [], "volumes": [], "entrypoint": None, "cmd": [],
            "healthcheck": None, "apt_build": set(), "apt_runtime": set(), "user": None}
    for idx, stage in enumerate(stages[1:]):
        apt = set()
        for m in re.finditer(r"apt-get install ([^&]*)", stage):
            apt |= {w for w in m.group(1).split() if not w.startswith("-")}
        if idx == 0:
            info["apt_build"] = apt
        else:
            info["apt_runtime"] = apt
    final = stages[-1]
    for line in final.splitlines():
        line = line.strip()
        if line.startswith("ENTRYPOINT "):
            info["entrypoint"] = json.loads(line[len("ENTRYPOINT "):])
        elif line.startswith("CMD "):
            info["cmd"] = json.loads(line[4:])
        elif line.startswith("ENV "):
            for k, v in re.findall(r"(\w+)=(\S+)", line[4:]):
                info["env"][k] = v
        elif line.startswith("EXPOSE "):
            info["expose"] += [int(p.split("/")[0]) for p in line.split()[1:]]
        elif line.startswith("VOLUME "):
            info["volumes"] += json.loads(line[len("VOLUME "):])
        elif line.startswith("USER "):
            info["user"] = line.split()[1]
        elif line.startswith("HEALTHCHECK "):
            m = re.search(r"CMD (\[.*\])", line)
            info["healthcheck"] = json.loads(m.group(1)) if m else None
    return info


def port_of_url(url):
    m = re.match(r"https?://[^/:]+:(\d+)(/.*)?$", url)
    return (int(m.group(1)), m.group(2) or "/") if m else (None, None)


def k8s_specs(objs, images):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    specs = []
    for name, d in sorted(by_kind.get("Deployment", {}).items()):
        pod = d["spec"]["template"]["spec"]
        for c in pod["containers"]:
            daemon = images.get(c["image"].split(":")[0].rsplit("/", 1)[-1])
            if not daemon:
                continue
            df = daemon["dockerfile"]
            env = dict(df["env"])
            for ef in c.get("envFrom", []):
                if "configMapRef" in ef:
                    env.update(by_kind["ConfigMap"][ef["configMapRef"]["name"]].get("data", {}))
                if "secretRef" in ef:
                    s = by_kind["Secret"][ef["secretRef"]["name"]]
                    env.update(s.get("stringData", {}))
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"]
                elif "valueFrom" in e:
                    ref = e["valueFrom"].get("configMapKeyRef") or e["valueFrom"].get("secretKeyRef")
                    src = by_kind["ConfigMap" if "configMapKeyRef" in e["valueFrom"] else "Secret"][ref["name"]]
                    env[e["name"]] = (src.get("data") or src.get("stringData") or {})[ref["key"]]
            ports = {}
            for p in c.get("ports", []):
                ports[str(p["containerPort"])] = p["containerPort"]
                if "name" in p:
                    ports[p["name"]] = p["containerPort"]
            probes = []
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                pr = c.get(kind)
                if pr and "httpGet" in pr:
                    port = pr["httpGet"]["port"]
                    probes.append((kind, pr["httpGet"].get("path", "/"), ports.get(str(port), port)))
                elif pr:
                    probes.append((kind, None, None))
            pre = 0
            ps = c.get("lifecycle", {}).get("preStop", {})
            if "exec" in ps and ps["exec"]["command"][:1] == ["sleep"]:
                pre = int(ps["exec"]["command"][1])
            elif "sleep" in ps:
                pre = int(ps["sleep"]["seconds"])
            argv = (c.get("command") or [])[1:] if c.get("command") else list(c.get("args") or df["cmd"])
            s = Spec(f"k8s Deployment/{name}", daemon["name"], argv, env,
                     [m["mountPath"] for m in c.get("volumeMounts", [])], ports, probes,
                     pod.get("terminationGracePeriodSeconds", 30), pre)
            s.k8s = (d, pod, c)
            specs.append(s)
    return specs


def compose_specs(compose, images):
    specs = []
    for name, svc in sorted(compose["services"].items()):
        daemon = images.get(svc.get("image", "").split(":")[0].rsplit("/", 1)[-1])
        if not daemon:
            continue
        df = daemon["dockerfile"]
        env = dict(df["env"])
        env.update({k: str(v) for k, v in (svc.get("environment") or {}).items()})
        writable = [t.split(":")[0] for t in svc.get("tmpfs", [])]
        writable += [v.split(":")[1] if isinstance(v, str) else v["target"] for v in svc.get("volumes", [])]
        hc = svc.get("healthcheck", {}).get("test")
        hc = hc[1:] if hc and hc[0] == "CMD" else hc
        grace = svc.get("stop_grace_period", "10s")
        m = re.match(r"(?:(\d+)m)?(?:(\d+)s)?$", grace)
        grace = int(m.group(1) or 0) * 60 + int(m.group(2) or 0)
        argv = svc.get("command") or df["cmd"]
        if isinstance(argv, str):
            argv = shlex.split(argv)
        s = Spec(f"compose service {name}", daemon["name"], list(argv), env, writable, {}, [],
                 grace, healthcheck=hc)
        s.compose = svc
        specs.append(s)
    return specs


def dockerfile_specs(images):
    specs = []
    for short, d in sorted(images.items()):
        df = d["dockerfile"]
        # Docker's stop timeout is set by whoever runs the image (docker stop -t, Compose
        # stop_grace_period, Kubernetes): no grace period to check here.
        s = Spec(f"image {short} (defaults)", d["name"], list(df["cmd"]), dict(df["env"]),
                 list(df["volumes"]), {str(p): p for p in df["expose"]}, [], None,
                 healthcheck=df["healthcheck"])
        specs.append(s)
    return specs


def systemd_specs(repo):
    sd = os.path.join(repo, "deploy", "systemd")
    specs = []
    if not os.path.isdir(sd):
        return specs
    for unit in sorted(f for f in os.listdir(sd) if f.endswith(".service")):
        text = open(os.path.join(sd, unit)).read()
        inst = "maintenance" if "@" in unit else None
        if inst:
            text = text.replace("%i", inst)
        kv = re.findall(r"^(\w+)=(.*)$", text, re.M)
        env, writable, argv, daemon, grace = {}, ["/tmp"], [], None, 90
        for k, v in kv:
            if k == "EnvironmentFile":
                base = os.path.basename(v.lstrip("-"))
                src = os.path.join(sd, base + ".example")
                if not os.path.exists(src):
                    src = os.path.join(sd, base)
                if os.path.exists(src):
                    for line in open(src):
                        line = line.strip()
                        if line and not line.startswith("#") and "=" in line:
                            a, b = line.split("=", 1)
                            env[a] = b
                else:
                    env["__missing_env_file__"] = src
            elif k == "Environment":
                a, b = v.split("=", 1)
                env[a] = b
            elif k == "StateDirectory":
                writable += ["/var/lib/" + d for d in v.split()]
            elif k == "ExecStart":
                parts = shlex.split(v)
                daemon = os.path.basename(parts[0])
                argv = parts[1:]
            elif k == "TimeoutStopSec":
                grace = int(v)
        if daemon:
            s = Spec(f"systemd {unit}" + (f" (instance {inst})" if inst else ""), daemon, argv, env,
                     writable, {}, [], grace, container=False)
            s.unit_text = text
            specs.append(s)
    return specs


# ---------------------------------------------------------------- static checks

def listen_port(spec, d):
    """(host, port) the daemon of spec listens on for HTTP, from flags, env and its defaults."""
    if spec.daemon == "aipal-api":
        default = d.default(r"--listen HOST:PORT.*?\(default ([^;)\s]+)")
        v = setting(spec, "listen", "AIPAL_API_LISTEN", default)
        host, port = v.rsplit(":", 1)
        return host.strip("[]"), int(port)
    default = d.default(r"--health-port PORT.*?\(default (\d+)")
    port = int(setting(spec, "health-port", "AIPAL_WORKER_HEALTH_PORT", default))
    return setting(spec, "health-addr", "AIPAL_WORKER_HEALTH_ADDR", "0.0.0.0"), port


def stop_budget(spec, d):
    """Seconds the daemon may take after SIGTERM, by its own settings."""
    if spec.daemon == "aipal-api":
        return float(setting(spec, "drain-timeout", "AIPAL_API_DRAIN_TIMEOUT",
                             d.default(r"--drain-timeout S.*?\(default (\d+)")))
    return float(setting(spec, "shutdown-timeout", "AIPAL_WORKER_SHUTDOWN_TIMEOUT",
                         d.default(r"--shutdown-timeout SECONDS.*?\(default (\d+)")))


def probe_paths(daemon, d, openapi):
    if daemon == "aipal-api":
        return set(openapi.get("paths", {}))
    m = re.search(r"HTTP port for ([/\w, ]+)", d.help)
    return set(re.findall(r"/\w+", m.group(1))) if m else set()


def static_checks(specs, daemons, openapi, queues):
    for s in specs:
        d = daemons[s.daemon]
        bad = [a for a in s.argv if a.startswith("--") and a[2:].split("=")[0] not in d.flags]
        result(f"{s.where}: flags exist in {s.daemon} --help", not bad, f"unknown {bad}")
        unknown = sorted(k for k in s.env if k not in d.env)
        result(f"{s.where}: environment variables are read by {s.daemon}", not unknown,
               f"not read by the daemon: {unknown}")
        host, port = listen_port(s, d)
        if s.container:
            result(f"{s.where}: listens on all interfaces (reachable from probes)",
                   host in ("0.0.0.0", "::", ""), f"listens on {host}")
        if s.ports:
            result(f"{s.where}: declared port {port} is the one {s.daemon} listens on",
                   port in s.ports.values(), f"declares {sorted(set(s.ports.values()))}, listens on {port}")
        paths = probe_paths(s.daemon, d, openapi)
        for kind, path, pport in s.probes:
            ok = path is not None and path in paths and pport == port
            result(f"{s.where}: {kind} GET {path} port {pport} is a real endpoint", ok,
                   f"known paths {sorted(paths)}, port {port}")
        if s.healthcheck:
            url = next((a for a in s.healthcheck if a.startswith("http")), "")
            hport, hpath = port_of_url(url)
            result(f"{s.where}: healthcheck {url} is a real endpoint",
                   hport == port and hpath in paths, f"port {port}, known paths {sorted(paths)}")
        budget = stop_budget(s, d)
        if s.grace is not None:
            result(f"{s.where}: grace period {s.grace}s >= preStop {s.prestop}s + stop deadline "
                   f"{budget:g}s + 5s", s.grace >= s.prestop + budget + 5,
                   "SIGKILL would cut the graceful stop")
        if s.daemon == "aipal-worker":
            qs = setting(s, "queues", "AIPAL_WORKER_QUEUES", None)
            s.queues = qs.split(",") if qs else list(queues)
            bad = [q for q in s.queues if q not in queues]
            result(f"{s.where}: queues {s.queues} exist", not bad, f"unknown {bad}; known {queues}")


def k8s_checks(objs, specs, images, version, openapi):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    # Images: tag = project version, repository = a Dockerfile of a daemon.
    for s in specs:
        _, pod, c = s.k8s
        repo, _, tag = c["image"].rpartition(":")
        result(f"{s.where}: image {c['image']} is built by docker/Dockerfile.{s.daemon[6:]} "
               f"at the project version", tag == version, f"project version {version}")
    # Security of every container, aipal or not.
    for kind in ("Deployment", "StatefulSet"):
        for name, o in by_kind.get(kind, {}).items():
            pod = o["spec"]["template"]["spec"]
            psc = pod.get("securityContext", {})
            for c in pod["containers"] + pod.get("initContainers", []):
                sc = dict(psc, **c.get("securityContext", {}))
                why = []
                if not sc.get("runAsNonRoot"):
                    why.append("runAsNonRoot")
                if not sc.get("readOnlyRootFilesystem"):
                    why.append("readOnlyRootFilesystem")
                if sc.get("allowPrivilegeEscalation") is not False:
                    why.append("allowPrivilegeEscalation=false")
                if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                    why.append("capabilities.drop ALL")
                if (sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
                    why.append("seccompProfile")
                if "resources" not in c or "limits" not in c["resources"]:
                    why.append("resource limits")
                if images.get(c["image"].split(":")[0].rsplit("/", 1)[-1]):
                    if sc.get("runAsUser") != 1000 or sc.get("runAsGroup") != 1000:
                        why.append("runAsUser/runAsGroup 1000")
                    if pod.get("automountServiceAccountToken") is not False:
                        why.append("automountServiceAccountToken false")
                result(f"k8s {kind}/{name} container {c['name']}: non-root, read-only root, no "
                       f"capabilities, seccomp, limits", not why, "missing " + ", ".join(why))
    # HPA per Deployment, PDB and anti-affinity for the API, service accounts per worker.
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", {}).values()}
    for s in specs:
        d, pod, _ = s.k8s
        n = d["metadata"]["name"]
        result(f"k8s Deployment/{n}: has an HPA", n in hpa_targets)
        sa = pod.get("serviceAccountName")
        result(f"k8s Deployment/{n}: own ServiceAccount {sa}",
               sa in by_kind.get("ServiceAccount", {}) and sa != "default")
    for s in specs:
        if s.daemon == "aipal-api":
            d, pod, _ = s.k8s
            labels = d["spec"]["selector"]["matchLabels"]
            pdb = [p for p in by_kind.get("PodDisruptionBudget", {}).values()
                   if all(p["spec"]["selector"].get("matchLabels", {}).get(k) == v for k, v in labels.items())]
            result(f"{s.where}: PodDisruptionBudget", bool(pdb))
            result(f"{s.where}: pod anti-affinity", "podAntiAffinity" in pod.get("affinity", {}))
    for name, r in list(by_kind.get("Role", {}).items()) + list(by_kind.get("ClusterRole", {}).items()):
        bad = [rule for rule in r.get("rules", [])
               if "*" in rule.get("verbs", []) or "*" in rule.get("resources", [])
               or "secrets" in rule.get("resources", [])
               or set(rule.get("verbs", [])) & {"create", "update", "patch", "delete", "escalate", "bind"}]
        result(f"k8s Role/{name}: least privilege (read-only, no wildcards, no secrets)", not bad, str(bad))
    for name, rb in by_kind.get("RoleBinding", {}).items():
        result(f"k8s RoleBinding/{name}: binds an existing Role",
               rb["roleRef"]["kind"] != "Role" or rb["roleRef"]["name"] in by_kind.get("Role", {}))
    # Services and Ingress point at real ports and API routes.
    for name, svc in by_kind.get("Service", {}).items():
        sel = svc["spec"].get("selector", {})
        targets = []
        for kind in ("Deployment", "StatefulSet"):
            for o in by_kind.get(kind, {}).values():
                lab = o["spec"]["template"]["metadata"].get("labels", {})
                if sel and all(lab.get(k) == v for k, v in sel.items()):
                    targets.append(o)
        names = set()
        for o in targets:
            for c in o["spec"]["template"]["spec"]["containers"]:
                for p in c.get("ports", []):
                    names |= {p.get("name"), p["containerPort"]}
        bad = [p.get("targetPort", p["port"]) for p in svc["spec"]["ports"]
               if p.get("targetPort", p["port"]) not in names]
        result(f"k8s Service/{name}: selects pods and targets their ports", targets and not bad,
               f"no pods" if not targets else f"unknown targetPort {bad}")
    api_paths = set(openapi.get("paths", {}))
    for name, ing in by_kind.get("Ingress", {}).items():
        routed = []
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                routed.append((p["path"], p["pathType"]))
                svc = p["backend"]["service"]["name"]
                result(f"k8s Ingress/{name}: backend {svc} exists", svc in by_kind.get("Service", {}))

        def covered(path):
            for pre, typ in routed:
                if typ == "Exact" and re.sub(r"\{[^}]+\}", "x", path) == pre:
                    return True
                if typ == "Prefix" and (path == pre or path.startswith(pre.rstrip("/") + "/")):
                    return True
            return False
        served = api_paths | {u for u, st in PAGE_URLS.items() if st == 200}
        for pre, typ in routed:
            ok = any(p == pre or (typ == "Prefix" and p.startswith(pre.rstrip("/") + "/")) for p in served)
            result(f"k8s Ingress/{name}: path {pre} ({typ}) is an API route or a file the page at / loads",
                   ok, f"served: {sorted(served)}")
        missing = sorted(p for p in served if p != "/metrics" and not covered(p))
        result(f"k8s Ingress/{name}: routes every API path and page file but /metrics", not missing,
               f"not routed: {missing}")
        result(f"k8s Ingress/{name}: /metrics is not exposed", not covered("/metrics"))
        result(f"k8s Ingress/{name}: TLS", bool(ing["spec"].get("tls")))
        result(f"k8s Ingress/{name}: rate limited",
               any("limit-rps" in k or "rate-limit" in k for k in ing["metadata"].get("annotations", {})))
    result("k8s: NetworkPolicy default deny", any(
        np["spec"].get("podSelector") == {} and set(np["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not np["spec"].get("ingress") and not np["spec"].get("egress")
        for np in by_kind.get("NetworkPolicy", {}).values()))
    # Prometheus annotations point at the metrics port.
    for s in specs:
        d, pod, c = s.k8s
        ann = d["spec"]["template"]["metadata"].get("annotations", {})
        host, port = listen_port(s, DAEMONS[s.daemon])
        result(f"{s.where}: prometheus.io annotations scrape /metrics on port {port}",
               ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(port)
               and ann.get("prometheus.io/path") == "/metrics")
    # Redis: AOF and noeviction.
    conf = "\n".join(cm.get("data", {}).get("redis.conf", "") for cm in by_kind.get("ConfigMap", {}).values())
    result("k8s Redis: appendonly yes, maxmemory set, maxmemory-policy noeviction",
           re.search(r"^appendonly yes$", conf, re.M) and re.search(r"^maxmemory \d", conf, re.M)
           and re.search(r"^maxmemory-policy noeviction$", conf, re.M))
    # Secrets: placeholders only.
    for name, sec in by_kind.get("Secret", {}).items():
        vals = dict(sec.get("stringData", {}))
        real = [k for k, v in vals.items() if re.search(r"PASSWORD|KEY|URL|TOKEN", k) and "CHANGE_ME" not in v]
        result(f"k8s Secret/{name}: placeholders only", not real and not sec.get("data"), f"values in {real}")


def compose_checks(compose, specs, version):
    for s in specs:
        svc = s.compose
        why = []
        if svc.get("user") != "1000:1000":
            why.append("user 1000:1000")
        if not svc.get("read_only"):
            why.append("read_only")
        if "ALL" not in svc.get("cap_drop", []):
            why.append("cap_drop ALL")
        if not any("no-new-privileges" in o for o in svc.get("security_opt", [])):
            why.append("no-new-privileges")
        result(f"{s.where}: 1000:1000, read-only, no capabilities", not why, "missing " + ", ".join(why))
        tag = svc["image"].rpartition(":")[2]
        result(f"{s.where}: image tag is the project version", tag == version, f"{tag} != {version}")
        nets = svc.get("networks", {})
        internal = [n for n in nets if compose.get("networks", {}).get(n, {}).get("internal")]
        result(f"{s.where}: on the internal network", bool(internal))
    redis = compose["services"].get("redis", {})
    cmd = " ".join(redis.get("command", [])) if isinstance(redis.get("command"), list) else str(redis.get("command"))
    result("compose redis: AOF, maxmemory, noeviction",
           "--appendonly yes" in cmd and "--maxmemory-policy noeviction" in cmd and "--maxmemory " in cmd)
    pg = compose["services"].get("postgres", {})
    result("compose postgres: PostgreSQL 15", str(pg.get("image", "")).startswith("postgres:15"))
    result("compose redis: Redis 7", str(redis.get("image", "")).startswith("redis:7"))
    api = [s for s in specs if s.daemon == "aipal-api"]
    result("compose: the API has 3 replicas", api and api[0].compose.get("deploy", {}).get("replicas") == 3)
    for name in ("postgres", "redis"):
        result(f"compose {name}: health check and a volume", bool(compose["services"][name].get("healthcheck"))
               and bool(compose["services"][name].get("volumes")))


def queue_coverage(where, specs, queues):
    covered = set()
    for s in specs:
        if s.daemon == "aipal-worker":
            covered |= set(getattr(s, "queues", []))
    missing = [q for q in queues if q not in covered]
    result(f"{where}: every queue has a worker ({', '.join(queues)})", not missing, f"no worker for {missing}")


def package_checks(repo, dist, images):
    def owner(path):
        p = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if p.returncode != 0:
            real = os.path.realpath(path)
            p = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
        return p.stdout.split(":")[0] if p.returncode == 0 else None

    ldcache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    libdir = os.path.join(dist, "usr/local/lib")
    libaipalq = [os.path.join(libdir, f) for f in os.listdir(libdir) if not os.path.islink(os.path.join(libdir, f))]
    for short, d in images.items():
        needed = set()
        for f in [os.path.join(dist, "usr/local/bin", d["name"])] + libaipalq:
            out = subprocess.run(["readelf", "-d", f], capture_output=True, text=True).stdout
            needed |= set(re.findall(r"NEEDED.*\[(.+?)\]", out))
        pkgs, missing = set(), []
        for lib in sorted(needed):
            if lib.startswith("libaipalq"):
                continue
            m = re.search(r"^\s+" + re.escape(lib) + r" \(libc6,x86-64.*?\) => (\S+)$", ldcache, re.M) or \
                re.search(r"^\s+" + re.escape(lib) + r" .* => (\S+)$", ldcache, re.M)
            pkg = owner(m.group(1)) if m else None
            if pkg is None:
                missing.append(lib)
            else:
                pkgs.add(pkg)
        lacking = sorted(p for p in pkgs if p not in d["dockerfile"]["apt_runtime"] and p != "libc6")
        result(f"image {short}: runtime packages provide every shared library of {d['name']} and "
               f"libaipalq", not lacking and not missing,
               f"add {lacking} to the runtime stage; unresolved {missing}")
    # Build stage: every meson dependency() has its -dev package.
    deps = set()
    for root, dirs, files in os.walk(repo):
        dirs[:] = [x for x in dirs if not x.startswith(("build", ".", "node_modules", "tests"))]
        if "meson.build" in files:
            deps |= set(re.findall(r"dependency\('([\w.+-]+)'", open(os.path.join(root, "meson.build")).read()))
    deps -= {"threads", "check"}
    for short, d in images.items():
        lacking = []
        for dep in sorted(deps):
            pc = subprocess.run(["pkg-config", "--path", dep], capture_output=True, text=True).stdout.strip()
            pkg = owner(pc) if pc else None
            if pkg is None:
                lacking.append(f"{dep} (no .pc here)")
            elif pkg not in d["dockerfile"]["apt_build"]:
                lacking.append(pkg)
        result(f"image {short}: build stage installs the -dev package of every meson dependency",
               not lacking, f"add {lacking}")


def source_labels(repo, name):
    """Label names that the daemons' C sources print for metric `name`."""
    labels = set()
    for sub in ("daemons/api", "daemons/worker"):
        for root, _, files in os.walk(os.path.join(repo, sub)):
            for f in files:
                if f.endswith(".c"):
                    text = open(os.path.join(root, f), errors="replace").read()
                    for m in re.finditer(re.escape(name) + r"\{([^}]*)\}", text):
                        labels |= set(re.findall(r"(\w+)=", m.group(1)))
    return labels


PROMQL_FUNCS = {"sum", "rate", "max", "min", "count", "avg", "histogram_quantile", "by", "without",
                "vector", "or", "and", "unless", "irate", "increase", "on", "ignoring"}


def metric_checks(sources, scraped, repo):
    """Metric names, label names and label values used by the dashboard and the alert rules exist
    in what the running daemons exposed. A family that had no sample yet (task counts before any
    task, 5xx before any error) is known from its # TYPE line, and its label names from the
    daemons' format strings; its label values are then not checked."""
    series, families = {}, set()
    for text in scraped.values():
        families |= set(re.findall(r"^# TYPE (\S+)", text, re.M))
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s", line)
            if m and not line.startswith("#"):
                labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
                series.setdefault(m.group(1), []).append(labels)
    unsampled = set()
    for where, expr in sources:
        problems = []
        names = [n for n in re.findall(r"\b(aipal_[a-z0-9_]+)\b", expr)]
        for n in names:
            if n not in series and n not in families and re.sub(r"_(bucket|sum|count)$", "", n) not in families:
                problems.append(f"no metric {n}")
            elif n not in series:
                series[n] = [dict.fromkeys(source_labels(repo, n), "")]
                unsampled.add(n)
        for n, sel in re.findall(r"\b(aipal_[a-z0-9_]+)\{([^}]*)\}", expr):
            for lab, op, val in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', sel):
                have = [s for s in series.get(n, []) if lab in s]
                if not have:
                    problems.append(f"{n} has no label {lab}")
                elif n in unsampled:
                    continue
                elif op == "=" and not any(s[lab] == val for s in have):
                    problems.append(f'{n}{{{lab}="{val}"}} matches no series (values: '
                                    f'{sorted(set(s[lab] for s in have))})')
        for labs in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for lab in [x.strip() for x in labs.split(",") if x.strip()]:
                if lab in ("le", "pod", "job", "instance", "component", "worker_queue"):
                    continue
                if not any(lab in s for n in names for s in series.get(n, [])):
                    problems.append(f"by ({lab}): no such label on {sorted(set(names))}")
        result(f"{where}: metrics and labels exist", not problems, "; ".join(problems))


# ---------------------------------------------------------------- running the specs

def run_spec(spec, args, daemons, scraped, openapi_out):
    d = daemons[spec.daemon]
    host, port = listen_port(spec, d)
    argv, env = list(spec.argv), dict(spec.env)
    env.pop("__missing_env_file__", None)
    # The manifests' URLs name cluster hosts: the test services take their place.
    for k in ("AIPALQ_REDIS_URL", "AIPALQ_DATABASE_URL"):
        env[k] = os.environ[k]
    for k in ("redis-url", "database-url"):
        if arg_value(argv, k) is not None:
            i = argv.index("--" + k)
            argv[i + 1] = os.environ["AIPALQ_" + k.split("-")[0].upper() + "_URL"]
    run_port = port
    if not port_free(port):
        run_port = free_port()
        note(f"{spec.where}: port {port} is taken on this machine; ran on {run_port} instead")
        if spec.daemon == "aipal-api":
            if arg_value(argv, "listen") is not None:
                i = [j for j, a in enumerate(argv) if a == "--listen"][0]
                argv[i + 1] = f"{host}:{run_port}"
            else:
                env["AIPAL_API_LISTEN"] = f"{host}:{run_port}"
        elif arg_value(argv, "health-port") is not None:
            i = [j for j, a in enumerate(argv) if a == "--health-port"][0]
            argv[i + 1] = str(run_port)
        else:
            env["AIPAL_WORKER_HEALTH_PORT"] = str(run_port)
    env.update(PATH="/usr/bin:/bin", LD_LIBRARY_PATH="/usr/local/lib")
    writable = ":".join(sorted(set(spec.writable)))
    if not spec.container:
        writable = ":".join(sorted(set(spec.writable) | {"/tmp"}))
    log = open(os.path.join(args.logdir, re.sub(r"[^\w.-]+", "_", spec.where) + ".log"), "w")
    cmd = [os.path.join(args.repo, "tests/packaging/sandbox.sh"), args.dist, writable, "--",
           "/usr/local/bin/" + spec.daemon] + argv
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd="/")
    label = f"{spec.where}: runs as uid 1000 on a read-only root"
    try:
        # Probes: the readiness path (or the daemon's health) must answer 200 within 30 s.
        paths = [p for _, p, _ in spec.probes if p] or \
            (["/api/tasks/health", "/"] if spec.daemon == "aipal-api" else ["/healthz", "/readyz"])
        deadline = time.time() + 30
        status = {}
        while time.time() < deadline and proc.poll() is None:
            status = {p: http_get(run_port, p)[0] for p in paths}
            if all(v == 200 for v in status.values()):
                break
            time.sleep(0.3)
        alive = proc.poll() is None
        ok = alive and all(v == 200 for v in status.values())
        result(f"{label} and answers {', '.join(sorted(set(paths)))} with 200", ok,
               f"exited {proc.returncode}" if not alive else f"statuses {status}")
        if ok:
            st, body = http_get(run_port, "/metrics")
            if spec.daemon == "aipal-api" and not openapi_out:
                # The first scrape starts the task counts' refresh; the second has them.
                time.sleep(2)
                st, body = http_get(run_port, "/metrics")
            if st == 200:
                scraped[spec.where] = body.decode()
            if spec.daemon == "aipal-api" and not openapi_out:
                st, body = http_get(run_port, "/openapi.json")
                if st == 200:
                    openapi_out.update(json.loads(body))
                # What the page at / loads: those URLs must be routed by the Ingress too.
                st, body = http_get(run_port, "/")
                for u in re.findall(r'(?:src|href)="(/[^"#?]*)', body.decode(errors="replace")):
                    PAGE_URLS[u] = http_get(run_port, u)[0]
            if spec.healthcheck:
                hc = [a.replace(f":{port}/", f":{run_port}/") for a in spec.healthcheck]
                p = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", "--"] + hc,
                                   capture_output=True, text=True, timeout=15)
                result(f"{spec.where}: HEALTHCHECK command passes as uid 1000", p.returncode == 0,
                       p.stderr.strip()[:200])
        if alive:
            t0 = time.time()
            proc.send_signal(signal.SIGTERM)
            budget = max((spec.grace or 40) - spec.prestop, 1)
            try:
                rc = proc.wait(timeout=budget)
            except subprocess.TimeoutExpired:
                rc = None
            result(f"{spec.where}: SIGTERM stops it cleanly within {budget}s", rc == 0,
                   f"exit {rc} after {time.time() - t0:.1f}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


DAEMONS = {}
PAGE_URLS = {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--dist", required=True)
    ap.add_argument("--rendered", required=True)
    ap.add_argument("--compose", required=True)
    ap.add_argument("--logdir", required=True)
    ap.add_argument("--build", required=True, help="the meson build directory of --dist")
    args = ap.parse_args()
    args.repo, args.dist, args.build = map(os.path.abspath, (args.repo, args.dist, args.build))
    repo = args.repo

    version = re.search(r"version:\s*'([^']+)'", open(os.path.join(repo, "meson.build")).read()).group(1)
    images = {}
    for short in ("aipal-api", "aipal-worker"):
        d = Daemon(short, args.dist)
        DAEMONS[short] = d
        result(f"{short}: built, --help and --version answer", d.help_rc == 0 and bool(d.flags),
               f"--help exit {d.help_rc}")
        df = dockerfile(repo, short)
        images[short] = {"name": short, "dockerfile": df}
        result(f"docker/Dockerfile.{short[6:]}: ENTRYPOINT is /usr/local/bin/{short}, user 1000:1000",
               df["entrypoint"] == [f"/usr/local/bin/{short}"] and df["user"] == "1000:1000",
               f"ENTRYPOINT {df['entrypoint']}, USER {df['user']}")
        result(f"{short}: --version reports the project version {version}", version in d.version, d.version)

    objs = [o for o in yaml.safe_load_all(open(args.rendered)) if o]
    compose = yaml.safe_load(open(args.compose))
    k8s = k8s_specs(objs, images)
    comp = compose_specs(compose, images)
    dock = dockerfile_specs(images)
    units = systemd_specs(repo)
    result("k8s: an aipal-api Deployment and worker Deployments", any(s.daemon == "aipal-api" for s in k8s)
           and any(s.daemon == "aipal-worker" for s in k8s))
    result("compose: aipal-api and worker services", any(s.daemon == "aipal-api" for s in comp)
           and any(s.daemon == "aipal-worker" for s in comp))
    for s in units:
        result(f"{s.where}: environment files exist", "__missing_env_file__" not in s.env,
               s.env.get("__missing_env_file__", ""))

    # A few tasks on a queue no worker consumes, so that the task-count metrics have samples.
    producer = os.path.join(args.build, "examples", "producer")
    if os.path.exists(producer):
        p = subprocess.run([producer, "-q", "packaging_probe", "packaging_probe", "3"], capture_output=True,
                           text=True, env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(args.build, "lib")))
        if p.returncode != 0:
            note("examples/producer could not enqueue: " + p.stderr.strip()[:200])
    # Run everything first: the live API's route table, queues and metrics feed the static checks.
    scraped, openapi = {}, {}
    for s in k8s + comp + dock + units:
        run_spec(s, args, DAEMONS, scraped, openapi)
    result("aipal-api: /openapi.json fetched from a running daemon", bool(openapi.get("paths")))
    # The queues the daemons know: /api/queues of a running API would need one up; the worker's
    # metrics list them (aipal_queue_depth{queue=...}), and so does the API's.
    queues = []
    for text in scraped.values():
        for q in re.findall(r'aipal_queue_depth\{queue="([^"]+)"', text):
            if q not in queues:
                queues.append(q)
    result("daemons: queue names read from their metrics", len(queues) > 0)

    static_checks(k8s + comp + dock + units, DAEMONS, openapi, queues)
    k8s_checks(objs, k8s, images, version, openapi)
    compose_checks(compose, comp, version)
    queue_coverage("k8s", k8s, queues)
    queue_coverage("compose", comp, queues)
    package_checks(repo, args.dist, images)

    # Dashboard and alert rules against what the daemons exposed.
    sources = []
    dash = json.load(open(os.path.join(repo, "k8s/grafana/aipal-overview.json")))

    def walk(p):
        for t in p.get("targets", []):
            sources.append((f"dashboard panel '{p.get('title')}'", t["expr"]))
        for q in p.get("panels", []):
            walk(q)
    for p in dash["panels"]:
        walk(p)
    for o in objs:
        if o["kind"] == "ConfigMap" and "aipal-rules.yml" in o.get("data", {}):
            for g in yaml.safe_load(o["data"]["aipal-rules.yml"])["groups"]:
                for r in g["rules"]:
                    sources.append((f"alert {r['alert']}", r["expr"]))
    result("dashboard: throughput, failures, queue depth and latency panels", all(
        any(w in json.dumps(dash).lower() for w in [k]) for k in ("throughput", "failure", "queue", "latency")))
    metric_checks(sources, scraped, repo)

    failed = sum(1 for _, ok in RESULTS if not ok)
    print(f"checks.py: {len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
