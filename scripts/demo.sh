#!/usr/bin/env bash
# `make demo`: the seed's story on local sandbox pods, no Kubernetes needed.
#
#   1. the seed's cast (experiments/sandbox/pods.yaml) as real network
#      namespaces + cgroups + processes, and a request workload between two
#      of them: `nqctl sandbox load`, graphql-gateway -> postgres, 20/s;
#   2. nodequake-agent on those pods, a local Prometheus (Debian's package)
#      scraping the workload, the agent and the controller with the project's
#      recording rules (monitoring/), and nodequake-controller;
#   3. `nqctl run -f` of the demo Workflow: pre-chaos SLO check -> network
#      latency 500 ms +- 100 ms gateway -> postgres (netem, or the agent's
#      eBPF delay line where the kernel has no sch_netem; the partition
#      scenario where it has neither) -> CPU stress 80 % on the gateway
#      -> post-chaos check -> report; then what Prometheus measured before,
#      during and after each fault;
#   4. a pod freeze and a pod kill through the agent's own API, and the
#      controller's kill switch;
#   5. everything torn down. Every command can be pasted by hand.
set -euo pipefail

build=${1:-build}
cd "$(dirname "$0")/.."
repo=$(pwd)
bin=$(realpath "$build/bin")
if ((EUID != 0)); then
  echo "demo: run as root (it creates network namespaces, cgroups and BPF programs)" >&2
  exit 1
fi
if [[ ! -x /usr/bin/prometheus ]]; then
  echo "demo: /usr/bin/prometheus is missing (Debian package prometheus: scripts/install-deps.sh)" >&2
  exit 1
fi
started=$(date +%s)

work=$(mktemp -d /tmp/nodequake-demo.XXXXXX)
export NQ_SANDBOX_STATE_DIR=$work/sandbox
# Demo-only names, so a sandbox of your own (nqbr0, 10.213.0.0/24) is left alone.
sandbox_net=(--bridge nqbrdemo --subnet 10.213.250.0/24 --netns-prefix nqdemo- --cgroup-parent nodequake-demo)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
agent_metrics=127.0.0.1:$(free_port)
load_metrics=127.0.0.1:$(free_port)
ctl_metrics=127.0.0.1:$(free_port)
killswitch=127.0.0.1:$(free_port)
prom=127.0.0.1:$(free_port)
sock=$work/agent.sock
export NQ_CONTROLLER=unix://$work/controller.sock
export NQ_TOKEN_FILE=$work/operator.token
export NQ_KILLSWITCH_URL=http://$killswitch
export NQ_KILLSWITCH_TOKEN_FILE=$work/killswitch.token
agent_pid='' load_pid='' prom_pid='' ctl_pid=''

nqctl() { "$bin/nqctl" "$@"; }
agent() { "$bin/nqctl" agent --agent "unix://$sock" "$@"; }
measure() { "$bin/nqctl" sandbox measure "$@"; }
step() { printf '\n\033[1m== [%3ds] %s\033[0m\n' "$(($(date +%s) - started))" "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
# Stops one of our children by pid and reaps it.
stop_pid() {
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
}
promql() { # promql QUERY -> the first sample's value, or nothing
  python3 - "$prom" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = f"http://{sys.argv[1]}/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
r = json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
if r: print(r[0]["value"][1])
EOF
}

cleanup() {
  set +e
  # The controller first (it reverts what its runs hold), the workload before
  # the pods (it sits in the gateway's cgroup), the agent last of the daemons.
  stop_pid "$ctl_pid"
  stop_pid "$load_pid"
  stop_pid "$prom_pid"
  stop_pid "$agent_pid"
  nqctl sandbox down --all >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

gw=llm-marketplace/graphql-gateway-0
pg=llm-marketplace/postgres-0
redis=llm-marketplace/redis-0

step "Sandbox pods: real netns + veth + cgroups + nq-echo (experiments/sandbox/pods.yaml)"
show nqctl sandbox up -f experiments/sandbox/pods.yaml "${sandbox_net[@]}"
nqctl sandbox list

step "Workload: graphql-gateway -> postgres, 20 requests/s, metrics on $load_metrics"
# In the gateway's netns and in its container's cgroups, as the gateway's own
# process would be: the network faults cut its path, the CPU stress competes
# with it for the container's 1-CPU limit.
echo "\$ nqctl sandbox load --from $gw --to $pg --rate 20 --timeout 1s --metrics $load_metrics --join-cgroup &"
# The binary itself, not the nqctl() function: a backgrounded function is a
# subshell, and its pid is not the one to signal.
"$bin/nqctl" sandbox load --from $gw --to $pg --rate 20 --timeout 1s --metrics "$load_metrics" \
  --join-cgroup >"$work/load.log" 2>&1 &
load_pid=$!

step "Agent: journal in $work/journal, API on $sock, metrics on $agent_metrics"
"$bin/nodequake-agent" --state-dir "$work/journal" --socket "$sock" \
  --sandbox-dir "$NQ_SANDBOX_STATE_DIR" --metrics-address "$agent_metrics" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do agent probe >/dev/null 2>&1 && break; sleep 0.1; done
show agent probe
show agent targets --all

step "Prometheus on $prom: scrapes the workload, the agent and the controller every second"
mkdir -p "$work/prometheus"
cat >"$work/prometheus/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ['$repo/monitoring/prometheus-chaos-rules.yaml']
scrape_configs:
  - {job_name: llm-marketplace-workload, static_configs: [{targets: ['$load_metrics']}]}
  - {job_name: nodequake-agent, static_configs: [{targets: ['$agent_metrics']}]}
  - {job_name: nodequake-controller, static_configs: [{targets: ['$ctl_metrics']}]}
EOF
/usr/bin/prometheus --config.file="$work/prometheus/prometheus.yml" \
  --storage.tsdb.path="$work/prometheus/data" --web.listen-address="$prom" \
  --log.level=warn >"$work/prometheus/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://$prom/-/ready', timeout=1)" 2>/dev/null && break
  sleep 0.2
done
echo "rules: monitoring/prometheus-chaos-rules.yaml (chaos:slo:error_rate:1m, chaos:slo:latency:p95:1m, ...)"

step "Controller: agent on $sock, Prometheus http://$prom, kill switch http://$killswitch"
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/operator.token"
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/killswitch.token"
echo "tokens: [{name: demo, role: operator, tokenFile: operator.token}]" >"$work/access.yaml"
"$bin/nodequake-controller" --agent "unix:$sock" --socket "$work/controller.sock" \
  --state-dir "$work/controller" --access-file "$work/access.yaml" \
  --prometheus-url "http://$prom" --metrics-address "$ctl_metrics" \
  --killswitch-listen "$killswitch" --killswitch-token-file "$work/killswitch.token" \
  --lease 10s --abort-interval 2s --recovery-poll 1s 2>"$work/controller.log" &
ctl_pid=$!
for _ in $(seq 100); do nqctl get >/dev/null 2>&1 && break; sleep 0.1; done
nqctl get >/dev/null

step "Baseline: waiting for the first recorded SLO values (the rules evaluate every 15 s)"
for _ in $(seq 120); do
  p95=$(promql 'chaos:slo:latency:p95:1m') err=$(promql 'chaos:slo:error_rate:1m')
  [[ -n $p95 && -n $err ]] && break
  sleep 1
done
printf 'chaos:slo:error_rate:1m = %s   chaos:slo:latency:p95:1m = %s s\n' "${err:-none}" "${p95:-none}"

step "Which latency engine? The agent's Probe"
# delay_engine: "netem" where the kernel has sch_netem, "ebpf" (the agent's
# eBPF + TAP delay line, docs/delay-line.md) where it has TCX links instead,
# empty where neither can delay.
read -r engine engine_reason < <(agent --json probe | python3 -c \
  'import json,sys; p=json.load(sys.stdin); print(p.get("delay_engine") or "none", p.get("delay_engine_reason", ""))')
if [[ $engine != none ]]; then
  workflow=experiments/sandbox/demo-workflow.yaml
  fault="network latency 500 ms +- 100 ms graphql-gateway -> postgres"
  echo "latency engine: $engine ($engine_reason) -- the seed's latency scenario (500 ms +- 100 ms gateway -> postgres)"
else
  workflow=experiments/sandbox/demo-workflow-partition.yaml
  fault="network partition graphql-gateway -> postgres"
  echo "no latency engine on this kernel ($(uname -r): $engine_reason) -- running the seed's partition scenario (gateway -> postgres cut) instead"
fi

step "The workflow: pre-check -> ${fault%% graphql*} (30 s) -> CPU stress 80 % (30 s) -> post-check -> report"
show nqctl validate "$workflow"
echo "\$ nqctl run -f $workflow --poll 5s"
set +e
nqctl run -f "$workflow" --poll 5s | tee "$work/run.out"
run_rc=${PIPESTATUS[0]}
set -e
id=$(sed -n 's/^experiment \([^ ]*\) submitted.*/\1/p' "$work/run.out")
echo "-- nqctl run exited $run_rc (0 = succeeded); the report again: nqctl report $id"

step "Measured by Prometheus on the workload's own counters, per window of the run"
nqctl audit --experiment "$id" -o json >"$work/audit.jsonl"
nqctl report "$id" -o json >"$work/report.json"
python3 - "$prom" "$work/audit.jsonl" "$work/report.json" "$fault" >"$work/figures.txt" <<'EOF'
import datetime, json, sys, time, urllib.parse, urllib.request

prom, audit_file, report_file, fault = sys.argv[1:5]
def ts(text):  # RFC 3339 with up to nanoseconds
    date, _, frac = text.rstrip("Z").partition(".")
    t = datetime.datetime.fromisoformat(date).replace(tzinfo=datetime.timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)
def q(expr, at):
    url = f"http://{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    r = json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
    return float(r[0]["value"][1]) if r else None

events = [json.loads(l) for l in open(audit_file) if l.strip()]
inject = {e["details"]["step"]: ts(e["time"]) for e in events if e["action"] == "inject"}
revert = {e["details"]["step"]: ts(e["time"]) for e in events if e["action"] == "revert"}
submit = min(ts(e["time"]) for e in events)
# The workload started some 20 s before the run: 15 s of it are the baseline.
windows = [("before (15 s up to the pre-check)", submit - 15, submit)]
names = {"network": fault, "stress": "CPU stress 80 % on graphql-gateway"}
for step in sorted(inject, key=inject.get):
    if step in revert:
        windows.append((names.get(step, step), inject[step], revert[step]))
# After: the first 20 s after the last revert (waited for if need be).
last_revert = max(revert.values()) if revert else submit
if time.time() < last_revert + 21:
    time.sleep(last_revert + 21 - time.time())
windows.append(("after (20 s from the last revert)", last_revert, last_revert + 20))

sel = 'namespace="llm-marketplace"'
print(f"{'WINDOW':<64} {'SECONDS':>7} {'REQUESTS':>8} {'ERRORS':>7} {'ERROR RATE':>10} {'P95':>9}")
for name, a, b in windows:
    w = max(1, round(b - a))
    total = q(f'sum(increase(http_requests_total{{{sel}}}[{w}s]))', b) or 0.0
    errs = q(f'sum(increase(http_requests_total{{{sel},code=~"5.."}}[{w}s]))', b) or 0.0
    p95 = q(f'histogram_quantile(0.95, sum by (le) (increase(http_request_duration_seconds_bucket{{{sel}}}[{w}s])))', b)
    rate = f"{100 * errs / total:.1f}%" if total else "-"
    p95s = "-" if p95 is None or p95 != p95 else (f"{p95*1000:.1f} ms" if p95 < 1 else f"{p95:.2f} s")
    print(f"{name:<64} {w:>7} {total:>8.0f} {errs:>7.0f} {rate:>10} {p95s:>9}")
# Recovery as the controller measured it on the recorded SLOs (1-minute
# windows): per workflow phase, and the post-check's own.
rep = json.load(open(report_file))
for ph in rep.get("phases", []):
    rec = ph.get("recovery")
    if rec and any(s.get("type") not in ("SLOCheck", "Report") for s in ph.get("steps", [])):
        print(f"recovery after {ph.get('name', ph.get('phase'))}: {rec.get('duration_ms', 0) / 1000:.1f} s "
              f"until chaos:slo:* were back within bounds ({'recovered' if rec.get('recovered') else 'NOT recovered'})")
rec = rep.get("recovery") or (rep.get("slo") or {}).get("recovery")
if rec:
    print(f"post-check: within bounds after {rec.get('duration_ms', 0) / 1000:.1f} s "
          f"({'recovered' if rec.get('recovered') else 'NOT recovered'})")
EOF
cat "$work/figures.txt"

step "Through the agent's own API: a frozen postgres and a killed redis"
show agent apply --id demo-freeze --pod $pg --pod-failure --ttl 2m
echo "-- gateway -> postgres must time out (the process is frozen, the network is fine):"
measure --from $gw --to $pg --rtt 1 --timeout 1s || true
show agent revert demo-freeze
measure --from $gw --to $pg --rtt 5
show agent apply --id demo-kill --pod $redis --pod-kill --ttl 1m
start=$(date +%s%N)
for _ in $(seq 300); do
  measure --from $gw --to $redis --connect --timeout 200ms >/dev/null 2>&1 && break
  sleep 0.05
done
echo "-- redis answers again after $(( ($(date +%s%N) - start) / 1000000 )) ms (its shim restarts it like a kubelet)"
agent revert demo-kill >/dev/null

step "Kill switch: an SRE stops a running experiment and blocks new ones"
nqctl apply -f experiments/sandbox/demo-killswitch.yaml
for _ in $(seq 50); do agent list 2>/dev/null | grep -q controller/ && break; sleep 0.1; done
show agent list
# Exit 2: engaged, but not every agent confirmed within its deadline (0.8 s,
# so the SRE gets an answer within a second). Engaging again re-sends
# RevertAll; the agents' leases end the rest anyway.
if ! show nqctl killswitch engage --reason "demo: SRE pressed the kill switch"; then
  echo "-- not every agent confirmed in time (a busy machine?): engaging again re-sends RevertAll"
  sleep 1
  show nqctl killswitch engage --reason "demo: SRE pressed the kill switch" || true
fi
show agent list
echo "-- a new experiment is refused:"
nqctl apply -f experiments/sandbox/demo-killswitch.yaml || true
show nqctl killswitch release

step "Teardown"
stop_pid "$ctl_pid"; ctl_pid=
stop_pid "$load_pid"; load_pid=
echo "-- the workload over the whole demo:"
tail -n 1 "$work/load.log"
stop_pid "$prom_pid"; prom_pid=
stop_pid "$agent_pid"; agent_pid=
tail -n 2 "$work/agent.log"
nqctl sandbox down --all
left=
for f in /run/netns/nqdemo-* /sys/fs/cgroup/*/nodequake-demo; do
  [[ -e $f ]] && left+="$f "
done

step "What was injected, what was measured"
echo "injected (workflow $workflow, experiment $id): $fault for 30 s, then CPU stress 80 % on graphql-gateway for 30 s;"
echo "  then, through the agent: postgres frozen, redis killed; through the controller: the kill switch."
echo "measured (Prometheus, the gateway's requests to postgres):"
sed 's/^/  /' "$work/figures.txt"
echo "the workflow ended with exit code $run_rc; the demo took $(($(date +%s) - started)) s; left behind: ${left:-nothing}"
