"""The C self-test programs (build/tools/conformance, simtest, casetest, in each build
flavour) as one pytest id per C test, read from the program's own --list.

A program runs once per (program, arguments, flavour) in a pytest process, all its tests
together, and each test id reads its line (runners/selftest.h has the dialect):

    RUN name / PASS name 3ms / FAIL name: file:line: what / SKIP name: why / summary

A test with no result line is a failure that says why: the program died in it (the last
RUN without a result), timed out, or never reached it. A sanitizer report on stderr fails
every test of that run.
"""
import os
import re
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .paths import BUILD, ROOT, shown
from .sanitizers import environment, reports

FLAVOURS = {"release": BUILD, "asan": BUILD / "asan", "tsan": BUILD / "tsan"}
TIMEOUT_S = 300
TAIL_CHARS = 4000
LINE = re.compile(r"^(PASS|FAIL|SKIP) (\S+?)(?::? (.*))?$")


class SelfTestError(Exception):
    """The program could not be asked for its tests (missing build, bad --list)."""


def program(name: str, flavour: str) -> Path:
    return FLAVOURS[flavour] / "tools" / name


def listed(path: Path, *args: str) -> list[str]:
    """The program's own test names: `PROGRAM [ARGS] --list`."""
    if not path.is_file():
        raise SelfTestError(f"{shown(path)} is not built: run make")
    done = subprocess.run([str(path), *args, "--list"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    names = done.stdout.split()
    if done.returncode != 0 or not names:
        raise SelfTestError(f"{shown(path)} --list: exit {done.returncode}, "
                            f"{done.stderr.strip()[:300] or 'no names'}")
    return names


@dataclass
class Run:
    command: str
    results: dict[str, tuple[str, str]] = field(default_factory=dict)  # name: (status, text)
    notes: dict[str, list[str]] = field(default_factory=dict)
    running: str | None = None         # a RUN line without its result: where it ended
    returncode: int | None = None      # None: killed at the timeout
    stderr: str = ""
    sanitizer_reports: list[str] = field(default_factory=list)

    def verdict(self, name: str) -> tuple[str, str]:
        """(PASS | FAIL | SKIP, what to say) for one test."""
        status, text = self.results.get(name, (None, ""))
        notes = "\n".join(self.notes.get(name, []))
        if self.sanitizer_reports:
            return "FAIL", (f"{self.command}: a sanitizer report in this run:\n  "
                            + "\n  ".join(self.sanitizer_reports[:10]) + self._tail())
        if status is not None:
            return status, "\n".join(filter(None, (text, notes)))
        if self.returncode is None:
            why = f"killed after {TIMEOUT_S}s" + (f", inside {self.running}" if self.running else "")
        elif self.running == name:
            why = f"the program died in this test ({_ended(self.returncode)})"
        elif self.running:
            why = f"the program died in {self.running} ({_ended(self.returncode)}) before this test"
        else:
            why = f"the program ended ({_ended(self.returncode)}) without running this test"
        return "FAIL", f"{self.command}: no result line: {why}\n{notes}{self._tail()}"

    def _tail(self) -> str:
        return f"\n--- stderr (tail) ---\n{self.stderr[-TAIL_CHARS:]}" if self.stderr.strip() else ""


def _ended(returncode: int) -> str:
    return f"killed by signal {-returncode}" if returncode < 0 else f"exit {returncode}"


def parse(stdout: str) -> tuple[dict, dict, str | None]:
    results: dict[str, tuple[str, str]] = {}
    notes: dict[str, list[str]] = {}
    running = None
    for line in stdout.splitlines():
        if line.startswith("RUN "):
            running = line[4:].strip()
            continue
        if line.startswith("  ") and running:
            notes.setdefault(running, []).append(line[2:])
            continue
        m = LINE.match(line)
        if m:
            results[m.group(2)] = (m.group(1), m.group(3) or "")
            if m.group(2) == running:
                running = None
    return results, notes, running


@lru_cache(maxsize=None)
def run(name: str, flavour: str, args: tuple[str, ...] = ()) -> Run:
    """Runs every test of the program once (per pytest process) and keeps each line; the
    sanitizer builds with the sanitizers' settings (sanitizers.py)."""
    path = program(name, flavour)
    argv = [str(path), *args]
    command = " ".join([shown(path), *args])
    env = dict(os.environ) if flavour == "release" else environment()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
        returncode = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        returncode = None
    results, notes, running = parse(out)
    return Run(command, results, notes, running, returncode, err, reports(err))
