#!/usr/bin/env bash
# Runs every test tier this machine supports and prints ctest's summary,
# followed by each skipped test with its reason.
#   unit  no privileges
#   node  root: real namespaces, devices, BPF and cgroups on this kernel
#   vm    the node tests that need what this kernel lacks (netem, BPF LSM,
#         cgroup v2), inside Debian's stock kernel under qemu (tests/vm/);
#         skipped, with the reason, when qemu cannot run here
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."

if ((EUID != 0)); then
  echo "run-tests: not root: the node tier will skip (it needs real namespaces and cgroups)"
fi

# Every tier but vm, one test at a time (node tests measure rates and
# latencies); then the vm tier, two guests at a time, but for the boots that
# measure latencies, which run alone (RUN_SERIAL, tests/vm/CMakeLists.txt).
ctest --test-dir "$build" --output-on-failure --timeout 600 -LE '^vm$'
rc=$?
log="$build/Testing/Temporary/LastTest.log"
host_log="$build/Testing/Temporary/LastTest-host.log"
[[ -f $log ]] && cp "$log" "$host_log"
vm_start=$SECONDS
ctest --test-dir "$build" --output-on-failure -L '^vm$' -j2
vm_rc=$?
vm_wall=$((SECONDS - vm_start))
((rc == 0)) && rc=$vm_rc

# ctest lists skipped tests but not why; the reason is in each test's output.
if [[ -f $host_log ]]; then
  log_for_skips=$host_log
  python3 - "$log_for_skips" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
skipped = []
# One block per test, from its "N/M Testing: name" line to the next one (the
# dashed lines also separate a test's header from its output).
for block in re.split(r'^(?=\d+/\d+ Testing: )', text, flags=re.M)[1:]:
    m = re.search(r'^\d+/\d+ Test: (\S+)', block, re.M)
    # A vm test's output has the guest's allowed skips; the vm summary below
    # lists those.
    if not m or m.group(1).startswith("vm.") or "[  SKIPPED ]" not in block:
        continue
    reason = re.search(r'Skipped\s*\n(.*)', block)
    skipped.append((m.group(1), reason.group(1).strip() if reason else "(no reason printed)"))
if skipped:
    print("\nSkipped tests and why:")
    for name, why in skipped:
        print(f"  {name}: {why}")
PY
fi

# The vm tier: which kernel the guests ran and every test that ran in them
# (ctest shows a test's output only when it fails).
if [[ -f $log ]]; then
  python3 - "$log" "$vm_wall" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
blocks = re.split(r"^\d+/\d+ Testing: ", text, flags=re.M)[1:]
vm = [b for b in blocks if b.startswith("vm.")]
if not vm:
    sys.exit(0)
kernels = sorted(set(re.findall(r"^vm-run: kernel (\S+) \((\S+)\), (\w+),", text, re.M)))
print("\nvm tier: guest kernel " + (", ".join(f"{k} ({p}, {a})" for k, p, a in kernels) or "(none booted)"))
total = 0.0
for b in vm:
    name = b.split("\n", 1)[0].strip()
    secs = re.search(r"^Test time =\s*([\d.]+) sec", b, re.M)
    total += float(secs.group(1)) if secs else 0.0
    summaries = re.findall(r"^nq-vm: (\S+): (\d+ ran: .*)$", b, re.M)
    why = re.search(r"^vm-run: (SKIPPED|FAILED): (.*)$", b, re.M)
    finished = re.search(r"^vm-run: guest finished in .*; (command exit code \d+)$", b, re.M)
    line = ("; ".join(f"{binary} {counts}" if len(summaries) > 1 else counts
                      for binary, counts in summaries)
            if summaries else (finished.group(1) if finished else ""))
    if why:
        line = (line + "; " if line else "") + why.group(1).lower() + ": " + why.group(2)
    kernel = re.search(r"^vm-run: kernel (\S+) ", b, re.M)
    print(f"  {name} ({secs.group(1) if secs else '?'} s, {kernel.group(1) if kernel else '?'}): "
          f"{line or 'no test report'}")
    # A guest killed for its timeout: what it was running (vm-run's hang report).
    for what in re.findall(r"^vm-run: ((?:binary|test) running.*)$", b, re.M):
        print(f"      {what}")
    for verdict, test, rest in re.findall(
            r"^nq-vm:   (PASSED|FAILED|SKIPPED|SKIP NOT ALLOWED)\s+(\S+) \([^)]*\)(.*)$", b, re.M):
        print(f"      {verdict:<16} {test}{rest if verdict.startswith('SKIP') else ''}")
print(f"vm tier: {total:.0f} s of guest time, {sys.argv[2]} s wall time "
      "(two guests at a time, a timing boot alone: tests/vm/CMakeLists.txt)")
PY
fi
exit $rc
