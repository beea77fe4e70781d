"""We cannot run GitHub Actions here: .github/workflows/*.yml must parse as YAML (Debian's
python3-yaml) and every `run:` step must call only what exists in this repository: make
targets of the Makefile, python -m asyncrace subcommands and their options, pytest
options (through PYTEST_ARGS), files it names."""
import re
import shlex
import subprocess
import sys
from functools import lru_cache

import pytest
import yaml

from asyncrace.__main__ import build_parser
from asyncrace.paths import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# Tools a step may use that are not this repository's (Debian's, or the runner's).
TOOLS = {"apt-get", "tar", "find", "curl", "touch", "[", "test", "echo"}
SHELL_WORDS = {"&&", "||", "|", ";", "then", "fi", "if", "else", "do", "done", "for", ">>"}


@lru_cache(maxsize=1)
def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*):(?!=)", text, re.MULTILINE))


@lru_cache(maxsize=1)
def pytest_options() -> set[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return set(re.findall(r"(--[a-z][\w-]*)", done.stdout))


def subcommand_options(name: str) -> set[str] | None:
    subparsers = next(a for a in build_parser()._actions if a.dest == "subcommand").choices
    if name not in subparsers:
        return None
    return {s for a in subparsers[name]._actions for s in a.option_strings}


def run_steps(path) -> list[tuple[str, str]]:
    workflow = yaml.safe_load(path.read_text())
    steps = []
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            assert "run" in step or "uses" in step, f"{path.name}: {job_name}: a step does nothing"
            if "run" in step:
                steps.append((f"{job_name}: {step.get('name', step['run'][:40])}", step["run"]))
    return steps


def commands(script: str) -> list[list[str]]:
    """The simple commands of a step's shell script (expressions and variables neutral)."""
    script = re.sub(r"\$\{\{[^}]*\}\}", "1", script).replace("\\\n", " ")
    found = []
    for line in script.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in words + [";"]:
            if word in SHELL_WORDS or word.endswith(";"):
                if word.endswith(";") and word != ";":
                    current.append(word[:-1])
                if current:
                    found.append(current)
                current = []
            else:
                current.append(word)
    return found


def check(command: list[str]) -> list[str]:
    """What in one command does not exist in this repository."""
    while command and re.match(r"^[A-Z_]+=", command[0]):    # VAR=value prefixes
        command = command[1:]
    if not command:
        return []
    name, args = command[0], command[1:]
    if name == "make":
        problems = [f"make target {a!r} is not in the Makefile" for a in args
                    if not a.startswith("-") and "=" not in a and a not in make_targets()]
        for a in args:
            if a.startswith("PYTEST_ARGS="):
                problems += [f"pytest option {o} does not exist" for o in shlex.split(a.split("=", 1)[1])
                             if o.startswith("--") and o.split("=")[0] not in pytest_options()]
        return problems
    if name in ("python3", sys.executable) and args[:2] == ["-m", "asyncrace"]:
        options = subcommand_options(args[2]) if len(args) > 2 else None
        if options is None:
            return [f"python -m asyncrace {' '.join(args[2:3])}: no such subcommand"]
        return [f"python -m asyncrace {args[2]}: no option {o}" for o in args[3:]
                if o.startswith("--") and o.split("=")[0] not in options]
    if name in ("python3", sys.executable) and args[:1] == ["-c"]:
        return []
    if name == "sh":
        return [] if (ROOT / args[0]).is_file() else [f"sh {args[0]}: no such file"]
    if name in TOOLS or name.startswith("$") or name.startswith("["):
        return []
    return [f"{name}: not a command this repository provides or a known tool"]


def test_there_is_a_nightly_workflow():
    assert ROOT / ".github" / "workflows" / "nightly.yml" in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_calls_only_what_exists(path):
    problems = []
    for where, script in run_steps(path):
        for command in commands(script):
            problems += [f"{where}: {p}" for p in check(command)]
    assert not problems, "\n".join(problems)


def test_the_checker_sees_what_does_not_exist():
    """(The check above must be able to fail.)"""
    assert check(["make", "soak"]) == ["make target 'soak' is not in the Makefile"]
    assert check(["make", "nightly", "PYTEST_ARGS=--shard 1/4 --no-such-flag"]) == [
        "pytest option --no-such-flag does not exist"]
    assert check(["python3", "-m", "asyncrace", "fold", "x"]) == ["python -m asyncrace fold: no such subcommand"]
    assert check(["python3", "-m", "asyncrace", "merge", "a", "--onto", "b"]) == [
        "python -m asyncrace merge: no option --onto"]
    assert check(["frobnicate"]) and not check(["make", "nightly", "PYTEST_ARGS=--shard 1/4"])


def test_the_nightly_runs_shards_merges_compares_and_keeps_the_report():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    jobs = workflow["jobs"]
    shard = jobs["shard"]
    assert shard["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    scripts = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    assert "make nightly" in scripts["shard"] and "--shard ${{ matrix.shard }}/${SHARDS}" in scripts["shard"]
    assert "asyncrace merge" in scripts["report"] and "--baseline" in scripts["report"]
    uploads = [s["with"]["name"] for job in jobs.values() for s in job["steps"]
               if s.get("uses", "").startswith("actions/upload-artifact")]
    assert "nightly-report" in uploads and "shard-${{ matrix.shard }}" in uploads
    assert workflow[True]["schedule"], "on: schedule (YAML reads the key `on` as true)"


def test_the_nightly_proves_a_fix_in_parts_and_adds_them_up():
    """One search over four machines: each part searched by `search --shard K/4`, uploaded
    whatever it found, and the parts added up by `search-sum`, which fails on a missing
    part, a failing schedule or a part not searched to its end."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["proof"]["strategy"]["matrix"]["part"] == [1, 2, 3, 4]
    scripts = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    assert "asyncrace search dropped_writer" in scripts["proof"]
    assert "--shard ${{ matrix.part }}/4" in scripts["proof"]
    assert "asyncrace search-sum parts/*.json" in scripts["proof-sum"]
    assert jobs["proof-sum"]["needs"] == "proof" and jobs["proof-sum"]["if"] == "always()"


def test_the_nightly_proves_the_tokio_fix_under_the_scheduler():
    """The unmodified tokio program's fix searched to the end of preemption bound 1 by
    `search` (one process per schedule), from the build job's packed build (the tokio
    binary in it), whatever it finds uploaded."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    job = workflow["jobs"]["tokio-proof"]
    assert job["needs"] == "build"
    script = "\n".join(s.get("run", "") for s in job["steps"])
    assert "python3 -m asyncrace search tokio_shutdown_order --variant fixed --strategy dpor " \
        "--bound 1" in script and "tar -xzf build.tar.gz" in script
    build = "\n".join(s.get("run", "") for s in workflow["jobs"]["build"]["steps"])
    assert "python3 -m asyncrace build" in build.split("tar -czf")[0]
