#!/usr/bin/env bash
# nodequake on a local kind cluster (docs/kind.md): create the cluster (one
# control plane, two workers), build the agent and controller images from
# deploy/docker and load them into the nodes, make the mTLS certificates,
# helm install the chart with deploy/kind/values.yaml, deploy the sandbox app
# (deploy/kind/sandbox.yaml), then run a first experiment and show the kill
# switch with nqctl through `kubectl port-forward`.
#
#   scripts/kind-up.sh [all|cluster|images|install|sandbox|experiment|killswitch]
#   scripts/kind-down.sh          # delete the cluster and the local state
#
# Needs docker, kind, kubectl, helm and openssl; not run by `make test` (no
# Docker or kind there), only checked with bash -n and shellcheck.
#
# Environment: NQ_KIND_CLUSTER (nodequake), NQ_KIND_TAG (kind),
# NQ_KIND_STATE (~/.cache/nodequake-kind: certificates, tokens),
# NQCTL (a local nqctl binary; default: the one in the controller image).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${NQ_KIND_CLUSTER:-nodequake}
tag=${NQ_KIND_TAG:-kind}
state=${NQ_KIND_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodequake-kind}
ns=nodequake-system
ctx=kind-$cluster
api_port=19444
ks_port=18090

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() {
  echo "kind-up: $*" >&2
  exit 1
}
k() { kubectl --context "$ctx" "$@"; }

need() {
  local missing=()
  for tool in docker kind kubectl helm openssl; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    die "missing: ${missing[*]} (helm and kubectl: scripts/install-helm.sh puts both in a cache dir)"
  fi
  docker info >/dev/null 2>&1 || die "docker is not running (or you may not use it)"
}

# nqctl: a local binary ($NQCTL), else the controller image's, on the host
# network with the repository and the credentials mounted. $nqdir is where
# the credentials are as nqctl sees them.
if [[ -n ${NQCTL:-} ]]; then
  nqdir=$state
else
  nqdir=/nq
fi
nqctl() {
  if [[ -n ${NQCTL:-} ]]; then
    (cd "$repo" && "$NQCTL" "$@")
    return
  fi
  docker run --rm -i --network host --user "$(id -u):$(id -g)" \
    -v "$repo:/work:ro" -w /work -v "$state:/nq:ro" \
    --entrypoint nqctl "nodequake/controller:$tag" "$@"
}

cluster_up() {
  say "kind cluster $cluster (1 control plane, 2 workers)"
  if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    echo "exists"
  else
    kind create cluster --name "$cluster" --config "$repo/deploy/kind/cluster.yaml" --wait 120s
  fi
  k get nodes -o wide
}

images() {
  say "images nodequake/agent:$tag and nodequake/controller:$tag"
  DOCKER_BUILDKIT=1 docker build -f "$repo/deploy/docker/agent.Dockerfile" \
    -t "nodequake/agent:$tag" "$repo"
  DOCKER_BUILDKIT=1 docker build -f "$repo/deploy/docker/controller.Dockerfile" \
    -t "nodequake/controller:$tag" "$repo"
  kind load docker-image --name "$cluster" "nodequake/agent:$tag" "nodequake/controller:$tag"
}

# One CA; the agents' certificate names nodequake-agent (what the controller
# verifies), the controller's nodequake-controller (the only identity the
# agents let mutate, and the name nqctl verifies), yours nqctl-kind (role sre
# in deploy/kind/values.yaml). The first SAN is the identity.
cert() {
  local name=$1 sans=$2
  [[ -s $state/$name.crt ]] && return
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$state/$name.key" -subj "/CN=${sans%%,*}" -out "$state/$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n' \
    "DNS:${sans//,/,DNS:}" >"$state/$name.ext"
  openssl x509 -req -in "$state/$name.csr" -CA "$state/ca.crt" -CAkey "$state/ca.key" \
    -CAcreateserial -days 30 -extfile "$state/$name.ext" -out "$state/$name.crt" 2>/dev/null
  rm -f "$state/$name.csr" "$state/$name.ext"
}

certs() {
  say "certificates in $state"
  mkdir -p "$state"
  chmod 0700 "$state"
  if [[ ! -s $state/ca.crt ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
      -keyout "$state/ca.key" -subj "/CN=nodequake-kind-ca" -out "$state/ca.crt" 2>/dev/null
  fi
  cert agent "nodequake-agent,nodequake-agent.$ns.svc"
  cert controller "nodequake-controller,nodequake-controller.$ns.svc"
  cert client "nqctl-kind"
  k create namespace "$ns" --dry-run=client -o yaml | k apply -f -
  # hostPID and hostPath: the namespace must admit privileged pods.
  k label namespace "$ns" pod-security.kubernetes.io/enforce=privileged --overwrite
  local who
  for who in agent controller; do
    k -n "$ns" create secret generic "nodequake-$who-kind-tls" --type kubernetes.io/tls \
      --from-file=tls.crt="$state/$who.crt" --from-file=tls.key="$state/$who.key" \
      --from-file=ca.crt="$state/ca.crt" --dry-run=client -o yaml | k apply -f -
  done
}

install() {
  certs
  say "helm install nodequake (deploy/kind/values.yaml)"
  helm --kube-context "$ctx" upgrade --install nodequake "$repo/charts/nodequake" -n "$ns" \
    -f "$repo/deploy/kind/values.yaml" --set image.tag="$tag" --wait --timeout 10m
  k -n "$ns" rollout status ds/nodequake-agent --timeout 5m
  k -n "$ns" get pods -o wide
  # The kill-switch token, for nqctl killswitch through the port-forward.
  (umask 077 && k -n "$ns" get secret nodequake-killswitch -o jsonpath='{.data.token}' |
    base64 -d >"$state/killswitch-token")
}

sandbox() {
  say "sandbox app: graphql-gateway and postgres in llm-marketplace (chaos-ready: \"true\")"
  k apply -f "$repo/deploy/kind/sandbox.yaml"
  k -n llm-marketplace rollout status deploy/postgres --timeout 5m
  k -n llm-marketplace rollout status deploy/graphql-gateway --timeout 5m
  k -n llm-marketplace get pods -o wide --show-labels
}

# kubectl port-forward to the controller's API and kill switch, stopped when
# this script exits.
forward_pid=
forward() {
  [[ -n $forward_pid ]] && return
  k -n "$ns" port-forward svc/nodequake-controller "$api_port:9444" "$ks_port:8090" \
    >"$state/port-forward.log" 2>&1 &
  forward_pid=$!
  trap 'kill "$forward_pid" 2>/dev/null || true' EXIT

  for _ in $(seq 50); do
    if (echo >"/dev/tcp/127.0.0.1/$api_port") 2>/dev/null; then return; fi
    sleep 0.2
  done
  die "port-forward did not come up: $(cat "$state/port-forward.log")"
}

pg_ip() { k -n llm-marketplace get pod -l app=postgres -o jsonpath='{.items[0].status.podIP}'; }

experiment() {
  forward
  local agent ip
  agent=$(k -n "$ns" get pod -l app.kubernetes.io/component=agent -o name | head -n 1)
  say "what the agent on one node may touch, and what it refuses"
  k -n "$ns" exec "$agent" -- nqctl agent probe
  k -n "$ns" exec "$agent" -- nqctl agent targets -n llm-marketplace --all
  nqctl validate deploy/kind/first-experiment.yaml

  # Targets are pod IPs (packets are matched in the gateway's namespace,
  # before kube-proxy would translate a Service address): ping the pod.
  ip=$(pg_ip)
  say "first experiment: 200 ms from one graphql-gateway pod to postgres ($ip), 30 s"
  echo "ping from every gateway pod meanwhile (one of them is chosen):"
  local pods pod
  pods=$(k -n llm-marketplace get pod -l app=graphql-gateway -o name)
  for pod in $pods; do
    k -n llm-marketplace exec "$pod" -- ping -c 45 -i 1 "$ip" >"$state/ping.${pod#pod/}.log" 2>&1 &
  done
  sleep 5
  nqctl run -f deploy/kind/first-experiment.yaml --controller "127.0.0.1:$api_port" \
    --tls-cert "$nqdir/client.crt" --tls-key "$nqdir/client.key" --tls-ca "$nqdir/ca.crt" \
    --tls-server-name nodequake-controller --poll 5s || true
  wait
  for pod in $pods; do
    echo "-- ${pod#pod/}: round trips (ms), one per second: before, during (30 s), after"
    sed -n 's/.*time=\([0-9.]*\) ms/\1/p' "$state/ping.${pod#pod/}.log" | tr '\n' ' '
    echo
  done
}

killswitch() {
  forward
  local ip pod out
  ip=$(pg_ip)
  say "the kill switch: a 10-minute partition, ended at once"
  nqctl apply -f deploy/kind/partition.yaml --controller "127.0.0.1:$api_port" \
    --tls-cert "$nqdir/client.crt" --tls-key "$nqdir/client.key" --tls-ca "$nqdir/ca.crt" \
    --tls-server-name nodequake-controller
  sleep 3
  nqctl get --controller "127.0.0.1:$api_port" \
    --tls-cert "$nqdir/client.crt" --tls-key "$nqdir/client.key" --tls-ca "$nqdir/ca.crt" \
    --tls-server-name nodequake-controller
  for pod in $(k -n llm-marketplace get pod -l app=graphql-gateway -o name); do
    if out=$(k -n llm-marketplace exec "$pod" -- nc -z -w 2 "$ip" 5432 2>&1); then
      echo "${pod#pod/} -> postgres:5432 connects"
    else
      echo "${pod#pod/} -> postgres:5432 cut off ${out}"
    fi
  done

  say "engage: every agent reverts everything; new experiments are refused"
  nqctl killswitch engage --url "http://127.0.0.1:$ks_port" --token-file "$nqdir/killswitch-token" \
    --reason "kind demo" --actor "${USER:-kind}"
  nqctl get --controller "127.0.0.1:$api_port" \
    --tls-cert "$nqdir/client.crt" --tls-key "$nqdir/client.key" --tls-ca "$nqdir/ca.crt" \
    --tls-server-name nodequake-controller
  for pod in $(k -n llm-marketplace get pod -l app=graphql-gateway -o name); do
    k -n llm-marketplace exec "$pod" -- nc -z -w 2 "$ip" 5432 &&
      echo "${pod#pod/} -> postgres:5432 connects again"
  done
  if nqctl apply -f deploy/kind/partition.yaml --controller "127.0.0.1:$api_port" \
    --tls-cert "$nqdir/client.crt" --tls-key "$nqdir/client.key" --tls-ca "$nqdir/ca.crt" \
    --tls-server-name nodequake-controller; then
    die "an experiment was accepted while the kill switch is engaged"
  fi
  echo "(refused, as it should be)"

  say "release"
  nqctl killswitch release --url "http://127.0.0.1:$ks_port" --token-file "$nqdir/killswitch-token" \
    --actor "${USER:-kind}"
}

need
case "${1:-all}" in
  all)
    cluster_up
    images
    install
    sandbox
    experiment
    killswitch
    ;;
  cluster) cluster_up ;;
  images) images ;;
  install) install ;;
  sandbox) sandbox ;;
  experiment) experiment ;;
  killswitch) killswitch ;;
  *) die "unknown step '$1' (all, cluster, images, install, sandbox, experiment, killswitch)" ;;
esac
