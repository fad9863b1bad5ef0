#!/usr/bin/python3
"""Offline checks of the deployment files: Dockerfile, docker-compose.yml and
the Helm chart helm/fetchd. No Docker engine and no cluster: docker-compose
(v1.29) parses the compose file, promtool and fetchd check what it mounts
(and that the fetchd replicas share the redis service and are all scraped),
helm lints and renders the chart, tools/validate-k8s.js validates the
rendered manifests against the Kubernetes schemas, and fetchd --check_config
validates the config the chart renders. The chart is checked with default
values, with each values file in helm/fetchd/ci/ and with the --set
combinations in CHART_VARIANTS.

Run from the source root (ctest does):
  check_deploy.py compose    --docker-compose BIN --promtool BIN --fetchd BIN
  check_deploy.py chart      --helm BIN --node BIN --tools DIR
  check_deploy.py chart-config --helm BIN --fetchd BIN
  check_deploy.py image-libs --binary BIN...
  check_deploy.py self-test  (all of the tool flags above)

self-test breaks a copy of each file on purpose and fails unless the check
rejects it for the expected reason (and passes the unbroken copy).
Exit status 0 = all good, 1 = a check failed, 2 = usage or a missing tool.
"""

import argparse
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml  # python3-yaml (Debian), which docker-compose depends on too

ROOT = os.getcwd()
CHART = os.path.join("helm", "fetchd")
ALL_FEATURES = os.path.join(CHART, "ci", "all-features-values.yaml")
# Extra renders of the chart (label, --set arguments), checked like the
# values files in ci/: the cluster limiter on Redis as the README shows it.
CHART_VARIANTS = [
    ("limiter.mode=redis, external address",
     ["--set", "limiter.mode=redis", "--set", "limiter.redis.address=redis:6379"]),
    ("limiter.mode=redis, bundled Redis",
     ["--set", "limiter.mode=redis", "--set", "limiter.bundledRedis.enabled=true"]),
    ("limiter.mode=redis alone (the bundled Redis)",
     ["--set", "limiter.mode=redis"]),
]
# Copies the chart ships, and where they come from.
CHART_COPIES = {
    os.path.join(CHART, "files", "alerts.yml"): os.path.join("deploy", "prometheus", "alerts.yml"),
    os.path.join(CHART, "files", "fetchd-dashboard.json"): os.path.join(
        "deploy", "grafana", "fetchd-dashboard.json"),
}
# Present in debian:12-slim already.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}


class CheckError(Exception):
    """A check failed; the message says what and why."""


def need_tool(path, name, hint):
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        print(f"check_deploy: {name} not found at {path!r}: {hint}", file=sys.stderr)
        sys.exit(2)


def run(cmd, env=None, cwd=None):
    """Runs cmd; returns (returncode, stdout + stderr)."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, cwd=cwd, timeout=120, check=False)
    return proc.returncode, proc.stdout


def run_ok(cmd, what, **kwargs):
    code, out = run(cmd, **kwargs)
    if code != 0:
        raise CheckError(f"{what} failed (exit {code}): {' '.join(cmd)}\n{out.strip()}")
    return out


class Helm:
    """helm with its cache/config/data homes in a scratch folder."""

    def __init__(self, binary, scratch):
        self.binary = binary
        self.env = dict(os.environ)
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            self.env[var] = os.path.join(scratch, "helm-home")

    def lint(self, chart, values=None, extra=()):
        cmd = [self.binary, "lint", "--strict", chart, *extra]
        if values:
            cmd += ["-f", values]
        return run_ok(cmd, f"helm lint {chart} {values or '(default values)'} {' '.join(extra)}",
                      env=self.env)

    def template(self, chart, values=None, extra=()):
        cmd = [self.binary, "template", "rel", chart, "--namespace", "fetch",
               "--kube-version", "1.29.0", *extra]
        if values:
            cmd += ["-f", values]
        code, out = run(cmd, env=self.env)
        if code != 0:
            raise CheckError(f"helm template {chart} {values or '(default values)'} failed "
                             f"(exit {code}):\n{out.strip()}")
        return out


def manifests(rendered):
    return [d for d in yaml.safe_load_all(rendered) if d]


def find_object(objects, kind, name_suffix=""):
    for obj in objects:
        if obj.get("kind") == kind and obj["metadata"]["name"].endswith(name_suffix):
            return obj
    raise CheckError(f"rendered chart has no {kind} named *{name_suffix}")


def fetchd_deployment(objects):
    """The Deployment running fetchd (not the bundled Redis)."""
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        containers = obj["spec"]["template"]["spec"]["containers"]
        if any(c["name"] == "fetchd" for c in containers):
            return obj
    raise CheckError("rendered chart has no Deployment with a container named fetchd")


def chart_variants():
    """(label, values file or None, --set arguments) of every checked render."""
    ci = os.path.join(CHART, "ci")
    files = sorted(os.path.join(ci, f) for f in os.listdir(ci) if f.endswith(".yaml"))
    return ([("default values", None, [])]
            + [(f, f, []) for f in files]
            + [(label, None, extra) for label, extra in CHART_VARIANTS])


def selects(selector, labels):
    """Whether matchLabels `selector` selects pods labelled `labels`."""
    return all(labels.get(k) == v for k, v in selector.items())


def peer_selects(peer, labels):
    """Whether a NetworkPolicyPeer names pods labelled `labels` by podSelector
    (in the policy's namespace)."""
    return ("podSelector" in peer and "namespaceSelector" not in peer
            and selects(peer["podSelector"].get("matchLabels", {}), labels))


# --- chart ----------------------------------------------------------------

def check_chart_invariants(objects, label):
    """Properties the README promises, checked on the rendered objects."""
    deploy = fetchd_deployment(objects)
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    drain = None
    for arg in container.get("args", []):
        m = re.fullmatch(r"--drain_seconds=(\d+)", arg)
        if m:
            drain = int(m.group(1))
    if drain is None:
        raise CheckError(f"{label}: Deployment args have no --drain_seconds")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = 0
    hook = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if hook[:1] == ["sleep"]:
        pre_stop = int(hook[1])
    if grace <= pre_stop + drain:
        raise CheckError(f"{label}: terminationGracePeriodSeconds {grace} is not above "
                         f"preStop {pre_stop}s + drain {drain}s")
    sc = container.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True or sc.get("runAsNonRoot") is not True:
        raise CheckError(f"{label}: container must run non-root with a read-only root")
    for probe in ("livenessProbe", "readinessProbe"):
        if "grpc" not in container.get(probe, {}):
            raise CheckError(f"{label}: {probe} is not a gRPC probe")
    headless = [o for o in objects if o.get("kind") == "Service"
                and o["spec"].get("clusterIP") == "None"]
    if not headless:
        raise CheckError(f"{label}: no headless Service")
    check_limiter_invariants(objects, label)


def check_limiter_invariants(objects, label):
    """The cluster limiter as rendered: fetchd's config, its Redis, the
    password file, POD_NAME, the NetworkPolicy and the bundled Redis."""
    deploy = fetchd_deployment(objects)
    pod = deploy["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "fetchd")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    config_map = volumes["config"]["configMap"]["name"]
    config = json.loads(next(o for o in objects if o.get("kind") == "ConfigMap"
                             and o["metadata"]["name"] == config_map)["data"]["fetchd.json"])
    limiter = config.get("limiter")
    redis_deploys = [o for o in objects if o.get("kind") == "Deployment" and o is not deploy]
    if not limiter or limiter.get("mode") != "REDIS":
        if redis_deploys:
            raise CheckError(f"{label}: a Redis Deployment is rendered but fetchd's "
                             "limiter mode is not REDIS")
        return
    env = {e["name"]: e for e in container.get("env", [])}
    if (env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            != "metadata.name"):
        raise CheckError(f"{label}: limiter mode REDIS but POD_NAME (fetchd's replica_id) "
                         "is not the pod name")
    hpa = [o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"]
    most = hpa[0]["spec"]["maxReplicas"] if hpa else deploy["spec"]["replicas"]
    if limiter.get("expectedReplicas", 1) < most:
        raise CheckError(f"{label}: limiter.expectedReplicas {limiter.get('expectedReplicas')} "
                         f"is below the most replicas the chart runs ({most})")
    address = limiter["redis"]["address"]
    password_file = limiter["redis"].get("passwordFile")
    if password_file:
        directory, name = os.path.split(password_file)
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        secret = volumes.get(mounts.get(directory), {}).get("secret", {})
        if name not in [i["path"] for i in secret.get("items", [])]:
            raise CheckError(f"{label}: limiter.redis.passwordFile {password_file} is not a "
                             "file of a Secret volume mounted in the fetchd container")
    policy = next((o for o in objects if o.get("kind") == "NetworkPolicy"
                   and selects(o["spec"]["podSelector"]["matchLabels"],
                               pod_labels(deploy))), None)
    if not redis_deploys:
        if address.startswith("unix:"):
            return
        port = int(address.rsplit(":", 1)[1])
        if policy and not any(any(p.get("port") == port for p in rule.get("ports", []))
                              for rule in policy["spec"].get("egress", [])):
            raise CheckError(f"{label}: NetworkPolicy {policy['metadata']['name']} allows no "
                             f"egress to the Redis port {port}")
        return
    check_bundled_redis(objects, label, deploy, redis_deploys, address, policy)


def pod_labels(deploy):
    return deploy["spec"]["template"]["metadata"]["labels"]


def check_bundled_redis(objects, label, deploy, redis_deploys, address, policy):
    if len(redis_deploys) != 1:
        raise CheckError(f"{label}: {len(redis_deploys)} Redis Deployments, wanted 1")
    redis = redis_deploys[0]
    labels = pod_labels(redis)
    if selects(deploy["spec"]["selector"]["matchLabels"], labels):
        raise CheckError(f"{label}: fetchd's Deployment selector matches the Redis pods")
    strategy = redis["spec"].get("strategy", {}).get("type")
    if redis["spec"].get("replicas") != 1 or strategy != "Recreate":
        raise CheckError(f"{label}: the bundled Redis must be 1 replica, strategy Recreate")
    container = redis["spec"]["template"]["spec"]["containers"][0]
    args = container.get("args", [])
    pairs = list(zip(args, args[1:]))
    if ("--save", "") not in pairs or ("--appendonly", "no") not in pairs:
        raise CheckError(f"{label}: the bundled Redis must run without persistence "
                         f"(--save \"\" --appendonly no), args {args}")
    sc = container.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True or sc.get("runAsNonRoot") is not True:
        raise CheckError(f"{label}: the bundled Redis must run non-root with a read-only root")
    host, port = address.rsplit(":", 1)
    service = next((o for o in objects if o.get("kind") == "Service"
                    and o["metadata"]["name"] == host), None)
    if not service or not selects(service["spec"]["selector"], labels):
        raise CheckError(f"{label}: fetchd's Redis address {address} is not a Service of "
                         "the bundled Redis' pods")
    if int(port) not in [p["port"] for p in service["spec"]["ports"]]:
        raise CheckError(f"{label}: Service {host} has no port {port}")
    if policy:
        if not any(any(peer_selects(peer, labels) for peer in rule.get("to", []))
                   and any(p.get("port") == int(port) for p in rule.get("ports", []))
                   for rule in policy["spec"].get("egress", [])):
            raise CheckError(f"{label}: NetworkPolicy {policy['metadata']['name']} allows no "
                             f"egress to the bundled Redis (pods {labels}, port {port})")
        redis_policy = next((o for o in objects if o.get("kind") == "NetworkPolicy"
                             and selects(o["spec"]["podSelector"]["matchLabels"], labels)), None)
        if not redis_policy:
            raise CheckError(f"{label}: no NetworkPolicy for the bundled Redis")


def check_chart(args, scratch):
    helm = Helm(args.helm, scratch)
    for copy, source in CHART_COPIES.items():
        if not filecmp.cmp(copy, source, shallow=False):
            raise CheckError(f"{copy} differs from {source}: copy it again "
                             f"(cp {source} {copy})")
    rendered_files = []
    kinds_of = {}
    for label, values, extra in chart_variants():
        helm.lint(CHART, values, extra)
        rendered = helm.template(CHART, values, extra)
        objects = manifests(rendered)
        check_chart_invariants(objects, label)
        kinds = sorted({o["kind"] for o in objects})
        kinds_of[label] = set(kinds)
        print(f"chart ({label}): {len(objects)} objects: {', '.join(kinds)}")
        path = os.path.join(scratch, f"rendered-{len(rendered_files)}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(rendered)
        rendered_files.append(path)
    optional = {"HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"}
    default_kinds = kinds_of["default values"]
    full_kinds = kinds_of[ALL_FEATURES]
    if default_kinds & optional:
        raise CheckError(f"default values render optional objects: {default_kinds & optional}")
    if not optional <= full_kinds:
        raise CheckError(f"all-features values miss {optional - full_kinds}")
    validate_manifests(args, rendered_files)


def validate_manifests(args, files):
    out = run_ok([args.node, os.path.join("tools", "validate-k8s.js"), "--tools", args.tools,
                  *files], "Kubernetes schema validation")
    print(out.strip())


def rendered_config(helm, chart, values=None, extra=()):
    rendered = helm.template(chart, values, ["--show-only", "templates/configmap.yaml", *extra])
    configmap = manifests(rendered)[0]
    return configmap["data"]["fetchd.json"]


def fetchd_check_config(fetchd, path, label):
    code, out = run([fetchd, "--config", path, "--check_config"])
    if code != 0:
        raise CheckError(f"{label}: fetchd --check_config rejected {path} (exit {code}): "
                         f"{out.strip()}")


def offline_config(text, scratch):
    """The rendered config, made checkable here: fetchd --check_config reads
    limiter.redis.passwordFile, a Secret's file that exists only in the pod
    (check_limiter_invariants checks the mount), so it points at a scratch
    file instead."""
    config = json.loads(text)
    redis = config.get("limiter", {}).get("redis", {})
    if redis.get("passwordFile"):
        secret = os.path.join(scratch, "redis-password")
        with open(secret, "w", encoding="utf-8") as f:
            f.write("not-a-password\n")
        redis["passwordFile"] = secret
    return json.dumps(config, indent=2)


def check_chart_config(args, scratch):
    helm = Helm(args.helm, scratch)
    for label, values, extra in chart_variants():
        text = offline_config(rendered_config(helm, CHART, values, extra), scratch)
        path = os.path.join(scratch, "fetchd.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        fetchd_check_config(args.fetchd, path, f"chart ConfigMap ({label})")
        print(f"chart ConfigMap ({label}): fetchd --check_config OK")
    fetchd_check_config(args.fetchd, os.path.join("deploy", "docker", "fetchd.json"),
                        "image default config")
    print("deploy/docker/fetchd.json: fetchd --check_config OK")


# --- compose ----------------------------------------------------------------

def compose_config(args, compose_file):
    """docker-compose config -q, then the normalised config as a dict."""
    base = [args.docker_compose, "-f", compose_file, "--project-directory", ROOT]
    run_ok([*base, "config", "-q"], f"docker-compose config -q ({compose_file})")
    return yaml.safe_load(run_ok([*base, "config"], "docker-compose config"))


def bind_mounts(service):
    """(source, target) of a service's bind mounts, normalised by config."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts.append((volume["source"], volume["target"]))
        else:
            source, target = volume.split(":")[:2]
            mounts.append((source, target))
    return mounts


def check_compose(args, compose_file="docker-compose.yml"):
    config = compose_config(args, compose_file)
    services = config["services"]
    for name in ("fetchd", "redis", "prometheus", "grafana", "demo"):
        if name not in services:
            raise CheckError(f"{compose_file}: no service {name!r}")
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            if not os.path.exists(source):
                raise CheckError(f"{compose_file}: service {name}: mount source {source} "
                                 "does not exist")
    # The fetchd replicas: every service of fetchd's image.
    replicas = {name: service for name, service in services.items()
                if service.get("image") == services["fetchd"].get("image")}
    configs = {}
    for name, service in replicas.items():
        mounts = dict((t, s) for s, t in bind_mounts(service))
        fetchd_config = mounts.get("/etc/fetchd/fetchd.json")
        if not fetchd_config:
            raise CheckError(f"{compose_file}: {name} mounts no /etc/fetchd/fetchd.json")
        fetchd_check_config(args.fetchd, fetchd_config, f"{compose_file} {name} config")
        with open(fetchd_config, encoding="utf-8") as f:
            configs[name] = json.load(f)
    check_compose_limiter(compose_file, services, replicas, configs)
    prom = dict((t, s) for s, t in bind_mounts(services["prometheus"])).get("/etc/prometheus")
    if not prom:
        raise CheckError(f"{compose_file}: prometheus mounts nothing at /etc/prometheus")
    prom_config = os.path.join(prom, "prometheus.yml")
    run_ok([args.promtool, "check", "config", prom_config],
           f"{compose_file}: promtool check config of the Prometheus config")
    with open(prom_config, encoding="utf-8") as f:
        scrape = yaml.safe_load(f).get("scrape_configs", [])
    targets = {t for job in scrape if job.get("job_name") == "fetchd"
               for sc in job.get("static_configs", []) for t in sc.get("targets", [])}
    for name, config in configs.items():
        port = config.get("metrics", {}).get("listen", ":9464").rsplit(":", 1)[1]
        if f"{name}:{port}" not in targets:
            raise CheckError(f"{compose_file}: {prom_config} (job fetchd) scrapes no "
                             f"{name}:{port}")
    print(f"{compose_file}: config OK; {len(replicas)} fetchd replicas "
          f"({', '.join(sorted(replicas))}), their config, Redis and the Prometheus config "
          "checked")


def check_compose_limiter(compose_file, services, replicas, configs):
    """The fetchd replicas share one Redis: its service, their limiter
    configs, distinct replica ids, and no start that waits for Redis."""
    redis = services["redis"]
    command = redis.get("command") or []
    pairs = list(zip(command, command[1:]))
    if ("--save", "") not in pairs or ("--appendonly", "no") not in pairs:
        raise CheckError(f"{compose_file}: redis must run without persistence "
                         f"(--save \"\" --appendonly no), command {command}")
    test = (redis.get("healthcheck") or {}).get("test") or []
    if "redis-cli" not in " ".join(test) or "ping" not in test[-1:]:
        raise CheckError(f"{compose_file}: redis needs the healthcheck redis-cli ping")
    ids = {}
    for name, service in replicas.items():
        limiter = configs[name].get("limiter", {})
        if limiter.get("mode") != "REDIS":
            raise CheckError(f"{compose_file}: {name}: limiter mode is not REDIS")
        host = limiter.get("redis", {}).get("address", "").rsplit(":", 1)[0]
        if host not in services or not services[host].get("image", "").startswith("redis:"):
            raise CheckError(f"{compose_file}: {name}: limiter.redis.address "
                             f"{limiter.get('redis', {}).get('address')!r} is not the "
                             "redis service")
        if limiter.get("expectedReplicas") != len(replicas):
            raise CheckError(f"{compose_file}: {name}: limiter.expectedReplicas is "
                             f"{limiter.get('expectedReplicas')}, the stack runs "
                             f"{len(replicas)} fetchd replicas")
        depends = service.get("depends_on") or {}
        if isinstance(depends, dict) and (depends.get(host) or {}).get(
                "condition") == "service_healthy":
            raise CheckError(f"{compose_file}: {name} must not wait for Redis' health "
                             "(fetchd starts degraded without Redis)")
        # fetchd's replica_id: the config's, else POD_NAME, else the host name.
        rid = (limiter.get("replicaId") or (service.get("environment") or {}).get("POD_NAME")
               or service.get("hostname"))
        if not rid:
            raise CheckError(f"{compose_file}: {name}: no fixed replica id (set hostname)")
        if rid in ids:
            raise CheckError(f"{compose_file}: {name} and {ids[rid]} share the replica id "
                             f"{rid!r}")
        ids[rid] = name


# --- image libraries --------------------------------------------------------

def dockerfile_runtime_packages(dockerfile):
    """Packages apt-get installs in the Dockerfile's last (runtime) stage."""
    with open(dockerfile, encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    stages = re.split(r"^FROM\s", text, flags=re.M)
    runtime = stages[-1]
    packages = set()
    for m in re.finditer(r"apt-get install ([^&\n]*)", runtime):
        packages |= {w for w in m.group(1).split() if not w.startswith("-")}
    return packages


def needed_packages(binary):
    """Debian packages of the shared libraries the binary links directly."""
    out = run_ok(["objdump", "-p", binary], f"objdump -p {binary}")
    needed = re.findall(r"^\s*NEEDED\s+(\S+)", out, flags=re.M)
    ldd = run_ok(["ldd", binary], f"ldd {binary}")
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, flags=re.M))
    resolved = {}
    for lib in needed:
        if lib not in paths:
            raise CheckError(f"{binary}: ldd does not resolve {lib}")
        real = os.path.realpath(paths[lib])
        # dpkg knows a file by the path its package ships it at: with a
        # merged /usr that can be /lib/... or /usr/lib/...
        resolved[lib] = [real, paths[lib]] + [
            re.sub(r"^/usr/lib/", "/lib/", p) for p in (real, paths[lib])]
    # One dpkg -S for all of them: "package:arch: /path" per line (exit 1
    # when some candidate path is unknown, so the status is not used).
    candidates = sorted({p for c in resolved.values() for p in c})
    _, out = run(["dpkg", "-S", *candidates])
    owners = {}
    for line in out.splitlines():
        m = re.match(r"^([^:\s]+)(?::\S+)?: (/\S+)$", line)
        if m:
            owners[m.group(2)] = m.group(1)
    packages = {}
    for lib, candidates in resolved.items():
        owner = next((owners[p] for p in candidates if p in owners), None)
        if owner is None:
            raise CheckError(f"{binary}: no Debian package owns {candidates[0]} ({lib})")
        packages.setdefault(owner, []).append(lib)
    return packages


def check_image_libs(args, dockerfile="Dockerfile"):
    listed = dockerfile_runtime_packages(dockerfile)
    needed = {}
    for binary in args.binary:
        for package, libs in needed_packages(binary).items():
            needed.setdefault(package, set()).update(libs)
    missing = {p: l for p, l in needed.items() if p not in listed | BASE_IMAGE_PACKAGES}
    if missing:
        raise CheckError(f"{dockerfile}: runtime stage lacks "
                         + ", ".join(f"{p} (for {', '.join(sorted(l))})"
                                     for p, l in sorted(missing.items())))
    extra = listed - set(needed) - {"ca-certificates"}
    if extra:
        raise CheckError(f"{dockerfile}: runtime stage installs {', '.join(sorted(extra))}, "
                         "which no binary links")
    print(f"{dockerfile}: runtime packages match the binaries: {', '.join(sorted(listed))}")


# --- self-test --------------------------------------------------------------

def expect_failure(label, check, pattern):
    try:
        check()
    except CheckError as e:
        if re.search(pattern, str(e)):
            print(f"self-test: {label}: rejected as expected")
            return
        raise CheckError(f"self-test: {label}: rejected for the wrong reason "
                         f"(wanted /{pattern}/):\n{e}") from None
    raise CheckError(f"self-test: {label}: the broken copy was accepted")


def edit(path, old, new):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if old not in text:
        raise CheckError(f"self-test: {path} no longer contains {old!r}; update the self-test")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new, 1))


def self_test(args, scratch):
    helm = Helm(args.helm, scratch)

    def chart_copy(name):
        dest = os.path.join(scratch, name, "fetchd")
        shutil.copytree(CHART, dest)
        return dest

    # Positive control: an unbroken copy passes lint, render and validation.
    good = chart_copy("good")
    helm.lint(good)
    path = os.path.join(scratch, "good.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(helm.template(good))
    validate_manifests(args, [path])

    # A broken template: helm lint must fail naming the function.
    bad = chart_copy("bad-template")
    edit(os.path.join(bad, "templates", "service.yaml"), "port: {{ .Values.ports.grpc }}",
         "port: {{ .Values.ports.grpc | nosuchfunction }}")
    expect_failure("broken template", lambda: helm.lint(bad),
                   r'function "nosuchfunction" not defined')

    # A values.schema.json violation: a typo'd key and a wrong type.
    bad = chart_copy("bad-values")
    edit(os.path.join(bad, "values.yaml"), "replicaCount: 2", 'replicaCount: "two"')
    expect_failure("values schema (type)", lambda: helm.lint(bad),
                   r"replicaCount: Invalid type. Expected: integer")
    expect_failure("values schema (unknown config field)",
                   lambda: helm.template(CHART, extra=["--set", "config.limits.maxPerHots=4"]),
                   r"Additional property maxPerHots is not allowed")

    # Grace period not above the drain: the chart refuses to render.
    expect_failure("grace below drain",
                   lambda: helm.template(CHART, extra=["--set", "terminationGracePeriodSeconds=10"]),
                   r"terminationGracePeriodSeconds: must be above")

    # A Kubernetes schema error that renders fine: replicas as a string.
    bad = chart_copy("bad-manifest")
    edit(os.path.join(bad, "templates", "deployment.yaml"),
         "replicas: {{ .Values.replicaCount }}", 'replicas: "{{ .Values.replicaCount }}"')
    path = os.path.join(scratch, "bad-manifest.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(helm.template(bad))
    expect_failure("Kubernetes schema", lambda: validate_manifests(args, [path]),
                   r"Deployment/rel-fetchd: /spec/replicas: must be integer")

    # A config fetchd rejects, rendered by the chart (requestDefaults is free
    # form in the values schema, so only fetchd can catch this one).
    def bad_config():
        text = rendered_config(helm, CHART, extra=["--set", "config.requestDefaults.retry.maxAttempts=1000"])
        p = os.path.join(scratch, "bad-config.json")
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        fetchd_check_config(args.fetchd, p, "chart ConfigMap (broken)")
    expect_failure("config rejected by fetchd", bad_config, r"max_attempts")

    # The cluster limiter: values the chart refuses, a limiter config only
    # fetchd can reject, and broken templates the invariants catch.
    redis = ["--set", "limiter.mode=redis", "--set", "limiter.bundledRedis.enabled=true"]
    expect_failure("values schema (unknown limiter field)",
                   lambda: helm.template(CHART,
                                         extra=[*redis, "--set", "limiter.redis.adress=x"]),
                   r"Additional property adress is not allowed")

    def bad_limiter_config():
        text = rendered_config(helm, CHART, extra=[*redis, "--set", "limiter.syncInterval=5s"])
        p = os.path.join(scratch, "bad-limiter-config.json")
        with open(p, "w", encoding="utf-8") as f:
            f.write(offline_config(text, scratch))
        fetchd_check_config(args.fetchd, p, "chart ConfigMap (broken limiter)")
    expect_failure("limiter config rejected by fetchd", bad_limiter_config, r"sync_interval")

    def broken_render(name, template, old, new, values):
        bad = chart_copy(name)
        edit(os.path.join(bad, "templates", template), old, new)
        return lambda: check_chart_invariants(manifests(helm.template(bad, values)), name)
    bundled = os.path.join(CHART, "ci", "limiter-bundled-redis-values.yaml")
    expect_failure("bundled Redis with persistence",
                   broken_render("redis-persistent", "redis.yaml",
                                 '\n            - --save\n            - ""', "", bundled),
                   r"must run without persistence")
    expect_failure("NetworkPolicy without egress to Redis",
                   broken_render("redis-netpol", "networkpolicy.yaml",
                                 "- port: {{ .Values.limiter.bundledRedis.port }}",
                                 "- port: 6380", bundled),
                   r"allows no egress to the bundled Redis")
    expect_failure("no POD_NAME in redis mode",
                   broken_render("redis-pod-name", "deployment.yaml",
                                 "- name: POD_NAME", "- name: POD_NAME_", bundled),
                   r"POD_NAME \(fetchd's replica_id\)")

    # Compose: an unbroken copy passes, a typo'd key fails.
    good_compose = os.path.join(scratch, "compose-good.yml")
    shutil.copy("docker-compose.yml", good_compose)
    check_compose(args, good_compose)
    bad_compose = os.path.join(scratch, "compose-bad.yml")
    shutil.copy("docker-compose.yml", bad_compose)
    edit(bad_compose, "    healthcheck:\n", "    healthchek:\n")
    expect_failure("compose typo", lambda: check_compose(args, bad_compose),
                   r"Unsupported config option for services.fetchd: 'healthchek'")
    bad_compose = os.path.join(scratch, "compose-bad-type.yml")
    shutil.copy("docker-compose.yml", bad_compose)
    edit(bad_compose, "retries: 3", "retries: three")
    expect_failure("compose type", lambda: check_compose(args, bad_compose),
                   r"retries.*not a valid integer")

    # Compose: the cluster limiter's replicas and Redis.
    bad_compose = os.path.join(scratch, "compose-bad-replica-id.yml")
    shutil.copy("docker-compose.yml", bad_compose)
    edit(bad_compose, "hostname: fetchd-2", "hostname: fetchd-1")
    expect_failure("compose replicas with one replica id",
                   lambda: check_compose(args, bad_compose),
                   r"share the replica id 'fetchd-1'")
    bad_compose = os.path.join(scratch, "compose-bad-wait.yml")
    shutil.copy("docker-compose.yml", bad_compose)
    edit(bad_compose, "    depends_on: [demo]\n",
         "    depends_on:\n      demo: {condition: service_started}\n"
         "      redis: {condition: service_healthy}\n")
    expect_failure("compose fetchd waiting for Redis", lambda: check_compose(args, bad_compose),
                   r"must not wait for Redis")
    bad_compose = os.path.join(scratch, "compose-bad-redis.yml")
    shutil.copy("docker-compose.yml", bad_compose)
    edit(bad_compose, '"--appendonly", "no"', '"--appendonly", "yes"')
    expect_failure("compose Redis with persistence", lambda: check_compose(args, bad_compose),
                   r"redis must run without persistence")

    # The Prometheus config the compose stack mounts: broken copy.
    prom = os.path.join(scratch, "prometheus")
    shutil.copytree(os.path.join("deploy", "prometheus"), prom)
    edit(os.path.join(prom, "prometheus.yml"), "scrape_interval: 15s", "scrape_interval: 15 s")
    bad_compose = os.path.join(scratch, "compose-bad-prom.yml")
    shutil.copy("docker-compose.yml", bad_compose)
    edit(bad_compose, "./deploy/prometheus:/etc/prometheus", f"{prom}:/etc/prometheus")
    expect_failure("compose Prometheus config", lambda: check_compose(args, bad_compose),
                   r"(?s)promtool check config.*not a valid duration string")
    prom = os.path.join(scratch, "prometheus-one-target")
    shutil.copytree(os.path.join("deploy", "prometheus"), prom)
    edit(os.path.join(prom, "prometheus.yml"), ', "fetchd-2:9464"', "")
    bad_compose = os.path.join(scratch, "compose-bad-targets.yml")
    shutil.copy("docker-compose.yml", bad_compose)
    edit(bad_compose, "./deploy/prometheus:/etc/prometheus", f"{prom}:/etc/prometheus")
    expect_failure("compose replica not scraped", lambda: check_compose(args, bad_compose),
                   r"scrapes no fetchd-2:9464")

    # Dockerfile runtime stage without a library fetchd links.
    if args.binary:
        dockerfile = os.path.join(scratch, "Dockerfile")
        shutil.copy("Dockerfile", dockerfile)
        edit(dockerfile, " libprotobuf32 ", " ")
        expect_failure("Dockerfile runtime libraries",
                       lambda: check_image_libs(args, dockerfile),
                       r"runtime stage lacks libprotobuf32 \(for libprotobuf\.so")
    print("self-test: all broken copies rejected for the expected reason")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command",
                        choices=["compose", "chart", "chart-config", "image-libs", "self-test"])
    parser.add_argument("--helm")
    parser.add_argument("--node")
    parser.add_argument("--tools")
    parser.add_argument("--docker-compose")
    parser.add_argument("--promtool")
    parser.add_argument("--fetchd")
    parser.add_argument("--binary", action="append", default=[])
    args = parser.parse_args()

    install = "run scripts/install-tools.sh (part of `make deps`)"
    apt = "run scripts/install-deps.sh"
    if args.command in ("chart", "chart-config", "self-test"):
        need_tool(args.helm, "helm", install)
    if args.command in ("chart", "self-test"):
        need_tool(args.node, "node", apt)
        if not args.tools or not os.path.isdir(os.path.join(args.tools, "npm", "node_modules")):
            need_tool(None, "the npm tools folder", install)
    if args.command in ("compose", "self-test"):
        need_tool(args.docker_compose, "docker-compose", apt)
        need_tool(args.promtool, "promtool", apt)
    if args.command in ("compose", "chart-config", "self-test"):
        need_tool(args.fetchd, "fetchd", "build the fetchd target")
    if args.command == "image-libs" and not args.binary:
        parser.error("image-libs needs --binary")

    with tempfile.TemporaryDirectory(prefix="check_deploy.") as scratch:
        try:
            {
                "compose": lambda: check_compose(args),
                "chart": lambda: check_chart(args, scratch),
                "chart-config": lambda: check_chart_config(args, scratch),
                "image-libs": lambda: check_image_libs(args),
                "self-test": lambda: self_test(args, scratch),
            }[args.command]()
        except CheckError as e:
            print(f"check_deploy {args.command}: FAILED: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
