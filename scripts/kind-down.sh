#!/usr/bin/env bash
# Deletes the kind cluster scripts/kind-up.sh made, and its local state
# (certificates, tokens, logs). The images stay in docker; remove them with
# `docker image rm nodequake/agent:kind nodequake/controller:kind`.
#
#   scripts/kind-down.sh
set -euo pipefail

cluster=${NQ_KIND_CLUSTER:-nodequake}
state=${NQ_KIND_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodequake-kind}

command -v kind >/dev/null || {
  echo "kind-down: kind is missing" >&2
  exit 1
}
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  # The agents revert on SIGTERM, but the nodes (and every pod netns and
  # cgroup in them) go away with the cluster anyway.
  kind delete cluster --name "$cluster"
else
  echo "no kind cluster $cluster"
fi
# Only our own directory: refuse anything that does not look like it.
if [[ -d $state && $(basename "$state") == nodequake-kind* ]]; then
  rm -rf -- "$state"
  echo "removed $state"
fi
