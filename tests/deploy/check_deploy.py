#!/usr/bin/python3
"""Offline checks of the deployment files: Dockerfile, docker-compose.yml and
the Helm chart helm/fetchd. No Docker engine and no cluster: docker-compose
(v1.29) parses the compose file, promtool and fetchd check what it mounts,
helm lints and renders the chart, tools/validate-k8s.js validates the
rendered manifests against the Kubernetes schemas, and fetchd --check_config
validates the config the chart renders.

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

    def lint(self, chart, values=None):
        cmd = [self.binary, "lint", "--strict", chart]
        if values:
            cmd += ["-f", values]
        return run_ok(cmd, f"helm lint {chart} {values or '(default values)'}", env=self.env)

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


# --- chart ----------------------------------------------------------------

def check_chart_invariants(objects, label):
    """Properties the README promises, checked on the rendered objects."""
    deploy = find_object(objects, "Deployment")
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


def check_chart(args, scratch):
    helm = Helm(args.helm, scratch)
    for copy, source in CHART_COPIES.items():
        if not filecmp.cmp(copy, source, shallow=False):
            raise CheckError(f"{copy} differs from {source}: copy it again "
                             f"(cp {source} {copy})")
    rendered_files = []
    for values in (None, ALL_FEATURES):
        label = values or "default values"
        helm.lint(CHART, values)
        rendered = helm.template(CHART, values)
        objects = manifests(rendered)
        check_chart_invariants(objects, label)
        kinds = sorted({o["kind"] for o in objects})
        print(f"chart ({label}): {len(objects)} objects: {', '.join(kinds)}")
        path = os.path.join(scratch, f"rendered-{len(rendered_files)}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(rendered)
        rendered_files.append(path)
    optional = {"HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"}
    default_kinds = {o["kind"] for o in manifests(open(rendered_files[0]).read())}
    full_kinds = {o["kind"] for o in manifests(open(rendered_files[1]).read())}
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


def check_chart_config(args, scratch):
    helm = Helm(args.helm, scratch)
    for values in (None, ALL_FEATURES):
        label = values or "default values"
        text = rendered_config(helm, CHART, values)
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
    for name in ("fetchd", "prometheus", "grafana", "demo"):
        if name not in services:
            raise CheckError(f"{compose_file}: no service {name!r}")
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            if not os.path.exists(source):
                raise CheckError(f"{compose_file}: service {name}: mount source {source} "
                                 "does not exist")
    mounts = dict((t, s) for s, t in bind_mounts(services["fetchd"]))
    fetchd_config = mounts.get("/etc/fetchd/fetchd.json")
    if not fetchd_config:
        raise CheckError(f"{compose_file}: fetchd mounts no /etc/fetchd/fetchd.json")
    fetchd_check_config(args.fetchd, fetchd_config, f"{compose_file} fetchd config")
    prom = dict((t, s) for s, t in bind_mounts(services["prometheus"])).get("/etc/prometheus")
    if not prom:
        raise CheckError(f"{compose_file}: prometheus mounts nothing at /etc/prometheus")
    run_ok([args.promtool, "check", "config", os.path.join(prom, "prometheus.yml")],
           f"{compose_file}: promtool check config of the Prometheus config")
    print(f"{compose_file}: config OK; fetchd config and Prometheus config checked")


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

    # The Prometheus config the compose stack mounts: broken copy.
    prom = os.path.join(scratch, "prometheus")
    shutil.copytree(os.path.join("deploy", "prometheus"), prom)
    edit(os.path.join(prom, "prometheus.yml"), "scrape_interval: 15s", "scrape_interval: 15 s")
    bad_compose = os.path.join(scratch, "compose-bad-prom.yml")
    shutil.copy("docker-compose.yml", bad_compose)
    edit(bad_compose, "./deploy/prometheus:/etc/prometheus", f"{prom}:/etc/prometheus")
    expect_failure("compose Prometheus config", lambda: check_compose(args, bad_compose),
                   r"(?s)promtool check config.*not a valid duration string")

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
