#!/usr/bin/env bash
# `make demo`: the agent on local sandbox pods, no Kubernetes needed.
#
# Brings up the seed's cast (experiments/sandbox/pods.yaml) as real network
# namespaces + cgroups + processes, starts nodequake-agent on them, measures a
# baseline, injects a partition and a bandwidth limit through the agent's API,
# measures each effect and the recovery after revert, shows the kill switch,
# and tears everything down. Every command below can be pasted by hand.
set -euo pipefail

build=${1:-build}
cd "$(dirname "$0")/.."
bin=$(realpath "$build/bin")
if ((EUID != 0)); then
  echo "demo: run as root (it creates network namespaces, cgroups and BPF programs)" >&2
  exit 1
fi

work=$(mktemp -d /tmp/nodequake-demo.XXXXXX)
export NQ_SANDBOX_STATE_DIR=$work/sandbox
sock=$work/agent.sock
metrics=127.0.0.1:19464
# Demo-only names, so a sandbox of your own (nqbr0, 10.213.0.0/24) is left alone.
sandbox_net=(--bridge nqbrdemo --subnet 10.213.250.0/24 --netns-prefix nqdemo- --cgroup-parent nodequake-demo)
agent_pid=

nqctl() { "$bin/nqctl" "$@"; }
agent() { "$bin/nqctl" agent --agent "unix://$sock" "$@"; }
measure() { "$bin/nqctl" sandbox measure "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
  set +e
  if [[ -n $agent_pid ]] && kill -0 "$agent_pid" 2>/dev/null; then
    kill -TERM "$agent_pid"
    wait "$agent_pid"
  fi
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
pg_ip=$(nqctl sandbox list --json | python3 -c \
  'import json,sys; print(next(p["ips"][0] for p in json.load(sys.stdin) if p["name"]=="postgres-0"))')

step "Agent: journal in $work/journal, API on $sock, metrics on $metrics"
"$bin/nodequake-agent" --state-dir "$work/journal" --socket "$sock" \
  --sandbox-dir "$NQ_SANDBOX_STATE_DIR" --metrics-address "$metrics" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do agent probe >/dev/null 2>&1 && break; sleep 0.1; done
show agent probe
show agent targets --all

step "Baseline: graphql-gateway -> postgres"
show measure --from $gw --to $pg --connect --rtt 50 --throughput 2s

step "Partition graphql-gateway -> postgres ($pg_ip), direction to"
show agent apply --id demo-partition --pod $gw --partition --direction to --remote "$pg_ip/32" --ttl 2m
echo "-- gateway -> postgres must fail:"
measure --from $gw --to $pg --connect --timeout 1s || true
echo "-- postgres -> gateway still works (only the chosen direction is cut):"
measure --from $pg --to $gw --connect
show agent revert demo-partition
echo "-- after revert:"
measure --from $gw --to $pg --connect --rtt 20

step "Bandwidth: 1 Mbit/s on graphql-gateway's egress to postgres"
show agent apply --id demo-bandwidth --pod $gw --bandwidth 1mbit --direction to --remote "$pg_ip/32" --ttl 2m
measure --from $gw --to $pg --throughput 3s
show agent revert demo-bandwidth
echo "-- after revert:"
measure --from $gw --to $pg --throughput 2s

step "Latency: 500ms +- 100ms (normal) graphql-gateway -> postgres, the seed's scenario"
if agent apply --id demo-latency --pod $gw --delay 500ms --jitter 100ms --distribution normal \
     --direction to --remote "$pg_ip/32" --ttl 2m; then
  measure --from $gw --to $pg --rtt 30 --timeout 5s
  agent revert demo-latency
else
  echo "-- not on this kernel: the agent refuses netem with the missing feature named (above)."
  echo "   Nodes with sch_netem get it; the VM test tier measures it on Debian's stock kernel."
fi

step "CPU stress: 80% of graphql-gateway's 1-CPU limit, closed loop on the cgroup's own usage"
show agent apply --id demo-cpu --pod $gw --cpu-stress 80 --ttl 2m
sleep 6
echo "-- requested vs achieved, as the agent measures the container's cgroup:"
agent list
show agent revert demo-cpu

step "Pod failure: postgres frozen (cgroup freezer), then thawed"
show agent apply --id demo-freeze --pod $pg --pod-failure --ttl 2m
echo "-- gateway -> postgres must time out (the process is frozen, the network is fine):"
measure --from $gw --to $pg --rtt 1 --timeout 1s || true
show agent revert demo-freeze
measure --from $gw --to $pg --rtt 5

step "Pod kill: redis-0's processes SIGKILLed; its shim restarts them like a kubelet"
show agent apply --id demo-kill --pod $redis --pod-kill --ttl 1m
start=$(date +%s%N)
for _ in $(seq 300); do
  measure --from $gw --to $redis --connect --timeout 200ms >/dev/null 2>&1 && break
  sleep 0.05
done
echo "-- redis answers again after $(( ($(date +%s%N) - start) / 1000000 )) ms"
agent revert demo-kill >/dev/null

step "Kill switch: everything reverted, new injections refused until released"
agent apply --id demo-ks-1 --pod $gw --partition --direction both --remote "$pg_ip/32" --ttl 2m >/dev/null
agent apply --id demo-ks-2 --pod $pg --bandwidth 5mbit --ttl 2m >/dev/null
show agent list
show agent revert-all --reason "demo: SRE pressed the kill switch"
echo "-- a new injection is refused:"
agent apply --id demo-ks-3 --pod $gw --partition --ttl 1m || true
show agent release
measure --from $gw --to $pg --connect

step "Metrics (Prometheus, http://$metrics/metrics)"
python3 - "$metrics" <<'EOF'
import sys, urllib.request
body = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in body.splitlines():
    if line.startswith(("nodequake_agent_reverts_total", "nodequake_agent_apply_duration_seconds_count",
                        "nodequake_agent_killswitch", "nodequake_agent_capability{name=\"sch_netem\"")):
        print(" ", line)
EOF

step "Teardown"
kill -TERM "$agent_pid"
wait "$agent_pid" || true
agent_pid=
tail -n 3 "$work/agent.log"
nqctl sandbox down --all
echo
echo "demo: done (agent log was $work/agent.log; everything is removed)"
