"""The runner conformance program (runners/conformance.c), for every runner in
every build flavour: release, ASan+UBSan and TSan.

A flavour that is not built fails (make all sanitizers), unless --allow-missing-builds
(or ASYNCRACE_ALLOW_MISSING_BUILDS=1) says to skip it.

One test per (runner, flavour). A test fails with the program's FAIL lines, on
any sanitizer report in its stderr, on a non-zero exit, or when it is still
running after TIMEOUT_S (it is killed and the partial output is shown). The
runner names come from the built program itself (--list-runners).
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLAVOURS = {
    "release": "build/tools/conformance",
    "asan": "build/asan/tools/conformance",
    "tsan": "build/tsan/tools/conformance",
}
SANITIZER_REPORTS = (
    "ERROR: AddressSanitizer",
    "WARNING: ThreadSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
)
TIMEOUT_S = 120
TAIL_CHARS = 6000


def built_runner_names():
    """Runner names from the first flavour that is built; [] when none is."""
    for relative in FLAVOURS.values():
        program = ROOT / relative
        if program.exists():
            listed = subprocess.run([str(program), "--list-runners"], capture_output=True,
                                    text=True, timeout=30)
            if listed.returncode == 0 and listed.stdout.split():
                return listed.stdout.split()
    return []


def cases():
    runners = built_runner_names()
    if not runners:  # nothing built yet: one placeholder per flavour, each failing
        return [pytest.param(None, f, id=f"unbuilt-{f}") for f in FLAVOURS]
    return [pytest.param(r, f, id=f"{r}-{f}") for r in runners for f in FLAVOURS]


def tail(text):
    return text if len(text) <= TAIL_CHARS else "...\n" + text[-TAIL_CHARS:]


def sanitizer_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env.setdefault("TSAN_OPTIONS", "second_deadlock_stack=1:atexit_sleep_ms=0")
    return env


@pytest.mark.parametrize("runner, flavour", cases())
def test_conformance(runner, flavour, allow_missing_builds):
    relative = FLAVOURS[flavour]
    program = ROOT / relative
    if runner is None or not program.exists():
        message = f"{relative} is not built: run `make {relative}`"
        if allow_missing_builds:
            pytest.skip(message + " (skipped: --allow-missing-builds)")
        pytest.fail(message + " (or pass --allow-missing-builds to skip)", pytrace=False)
    command = [str(program), "--runner", runner]
    shown = f"{relative} --runner {runner}"

    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=sanitizer_env())
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{shown}: still running after {TIMEOUT_S} s, killed\n"
                    f"--- stdout so far ---\n{out}--- stderr so far ---\n{tail(err)}")
    print(out, end="")

    problems = [line for line in out.splitlines() if line.startswith("FAIL ")]
    reports = [r for r in SANITIZER_REPORTS if r in err]
    if reports:
        problems.append(f"sanitizer report ({', '.join(reports)}):\n{tail(err)}")
    summary = re.search(rf"^conformance {re.escape(runner)}: (\d+) passed, (\d+) failed"
                        rf"(, (\d+) skipped)?$", out, re.MULTILINE)
    if not summary:
        problems.append(f"no summary line (exit status {proc.returncode})\n"
                        f"--- stdout ---\n{out}--- stderr ---\n{tail(err)}")
    elif proc.returncode != 0 and not problems:
        problems.append(f"exit status {proc.returncode}\n--- stderr ---\n{tail(err)}")
    assert not problems, f"{shown}:\n" + "\n".join(problems)
