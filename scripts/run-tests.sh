#!/usr/bin/env bash
# Runs every test tier this machine supports and prints ctest's summary,
# followed by each skipped test with its reason.
#   unit  no privileges
#   node  root: real namespaces, devices, BPF and cgroups on this kernel
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."

if ((EUID != 0)); then
  echo "run-tests: not root: the node tier will skip (it needs real namespaces and cgroups)"
fi

ctest --test-dir "$build" --output-on-failure --timeout 600
rc=$?

# ctest lists skipped tests but not why; the reason is in each test's output.
log="$build/Testing/Temporary/LastTest.log"
if [[ -f $log ]]; then
  python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
skipped = []
for block in text.split("----------------------------------------------------------")[1:]:
    m = re.search(r'^\d+/\d+ Test: (\S+)', block, re.M)
    if not m or "[  SKIPPED ]" not in block:
        continue
    reason = re.search(r'Skipped\s*\n(.*)', block)
    skipped.append((m.group(1), reason.group(1).strip() if reason else "(no reason printed)"))
if skipped:
    print("\nSkipped tests and why:")
    for name, why in skipped:
        print(f"  {name}: {why}")
PY
fi
exit $rc
