"""Keep what a debugger needs for one failing iteration, re-run alone with --trap.

Where rr can record (probed once per run by recording /bin/true): ``rr record`` (with
--chaos for timing-dependent failures), retried until the failure comes back, then
``rr pack``, and the ``rr replay`` command saved. Where it cannot, or when rr never saw the
failure: the iteration runs under ``gdb -batch``, which prints every thread's backtrace
and writes the core itself (so kernel.core_pattern does not matter), and the program's
stderr is kept: with --trap it prints its log of the last race-point events there.

An external reproducer's failure gets the same where it can be trapped (a declared
``trap`` flag) or where it crashed and the program is an ELF executable; otherwise its
failing iteration is re-run once, plainly, and its stdout and stderr kept.

Always: command.txt and replay.sh re-run that iteration alone. Attempts and disk are
bounded; capture.json says which bound was hit.
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .paths import ROOT
from .program import ContractInvocation, Invocation, core_limit, invocation_from_dict, stall_timeout
from .results import atomic_write_json, atomic_write_text

ATTEMPTS = 5
DISK_BUDGET = 200 * 1024 * 1024     # bytes of captures per run before cores are skipped
RR_PROBE_TIMEOUT_S = 60
RR_FAILED = re.compile(r"^\[(FATAL|ERROR)", re.MULTILINE)
# Only these stops mean the trapped failure (abort) or a crash was reached.
FAILURE_STOP = re.compile(r"received signal (SIGABRT|SIGSEGV|SIGBUS|SIGFPE|SIGILL|SIGTRAP)")


@dataclass(frozen=True)
class RrVerdict:
    can_record: bool
    reason: str

    def line(self) -> str:
        return "rr: can record here" if self.can_record else f"rr: cannot record here: {self.reason}"

    @classmethod
    def from_dict(cls, d: dict) -> "RrVerdict":
        return cls(bool(d["can_record"]), str(d["reason"]))


def probe_rr() -> RrVerdict:
    """Can rr record on this machine? Records /bin/true once and reads rr's own answer."""
    rr = shutil.which("rr")
    if rr is None:
        return RrVerdict(False, "rr is not installed (make deps)")
    with tempfile.TemporaryDirectory(prefix="asyncrace-rr-") as tmp:
        try:
            done = subprocess.run([rr, "record", "-o", f"{tmp}/trace", "/bin/true"],
                                  capture_output=True, text=True, timeout=RR_PROBE_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return RrVerdict(False, f"rr record /bin/true took over {RR_PROBE_TIMEOUT_S}s")
    if done.returncode == 0:
        return RrVerdict(True, "rr record /bin/true works")
    return RrVerdict(False, rr_reason(done.stderr, done.returncode))


def rr_reason(stderr: str, returncode: int) -> str:
    """rr's fatal line without its source location:
    '[FATAL ./src/PerfCounters_x86.h:114:compute_cpu_microarch()] AMD CPU type 0xf20 ...'
    -> 'AMD CPU type 0xf20 ...'."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if RR_FAILED.match(line)]
    if not (fatal or lines):
        return f"rr record /bin/true exited {returncode} and said nothing"
    return re.sub(r"^\[(FATAL|ERROR)[^\]]*\]\s*", "", (fatal or lines)[0])


@dataclass(frozen=True)
class Failure:
    """One failing iteration of a cell, to capture."""
    cell: str
    inv: Invocation
    iteration: int
    outcome: str
    rare: bool      # timing-dependent (natural, chaos): rr records with --chaos
    schedule: str | None = None   # sim: the failing schedule's file, replayed exactly
    rate: float | None = None     # the cell's failure rate: the odds of a re-run


def disk_used(root: Path) -> int:
    """Bytes on disk under root (blocks, so sparse cores count what they take)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def capture(failure: Failure, dest: Path, rr: RrVerdict, *, disk_root: Path,
            attempts: int = ATTEMPTS, disk_budget: int = DISK_BUDGET) -> dict:
    """Captures into dest; disk_root is the folder whose size the disk budget bounds."""
    if failure.schedule:          # sim: the schedule and its race log say it all
        from . import schedule_capture
        return schedule_capture.capture(failure, dest)
    dest.mkdir(parents=True, exist_ok=True)
    inv, i = failure.inv, failure.iteration
    command = inv.command(i, 1, trap=True)
    env = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in inv.env_for(i).items())
    atomic_write_text(dest / "command.txt", command + "\n")
    atomic_write_text(dest / "replay.sh",
                      f"#!/bin/sh\n# {failure.cell}: iteration {i} alone ({failure.outcome})"
                      f"{'; --trap aborts at the failure and prints the race-point log' if isinstance(inv, ContractInvocation) else ''}.\n"
                      f"cd {shlex.quote(str(ROOT))}\n{env}"
                      f"exec {shlex.join(inv.argv(i, 1, trap=True))} \"$@\"\n")
    os.chmod(dest / "replay.sh", 0o755)
    info: dict = {"cell": failure.cell, "iteration": i, "outcome": failure.outcome,
                  "invocation": inv.to_dict(), "command": command,
                  "replay_sh": str(dest / "replay.sh"), "rr": asdict(rr), "method": None,
                  "attempts": 0, "reproduced": False, "rr_replay": None, "bounds_hit": [],
                  "notes": []}
    if not _debuggable(failure):
        _run_plainly(failure, dest, info)
    else:
        if rr.can_record:
            _record_with_rr(failure, dest, info, attempts, disk_root, disk_budget)
        else:
            info["notes"].append(rr.line())
        if not info["reproduced"]:
            _debug_with_gdb(failure, dest, info, attempts, disk_root, disk_budget)
    info["files"] = sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))
    atomic_write_json(dest / "capture.json", info)
    return info


def _is_elf(argv0: str) -> bool:
    path = Path(argv0) if "/" in argv0 else Path(shutil.which(argv0) or "/nonexistent")
    try:
        with open(path if path.is_absolute() else ROOT / path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _debuggable(failure: Failure) -> bool:
    """A trap stops at the failure; a crash stops by itself; either needs an ELF for gdb."""
    inv = failure.inv
    if isinstance(inv, ContractInvocation):
        return True
    trap = bool(getattr(inv, "trap", ()))
    return (trap or failure.outcome == "crash") and _is_elf(inv.argv(failure.iteration, 1)[0])


def _env(failure: Failure) -> dict[str, str] | None:
    """None for a case program (it runs in the capture folder); an external command runs
    from the repository root with its iteration in the environment."""
    if isinstance(failure.inv, ContractInvocation):
        return None
    return failure.inv.env_for(failure.iteration)


def _run_plainly(failure: Failure, dest: Path, info: dict) -> None:
    """Re-runs the iteration once as it ran; keeps what it printed."""
    info["method"] = "run"
    info["attempts"] = 1
    batch = failure.inv.run_batch(failure.iteration, 1)
    came = next((name for name, n in batch.counts.items() if n and name != "ok"), "ok")
    info["reproduced"] = came == failure.outcome
    info["notes"].append(f"re-run once without a debugger (no trap flag declared, or not an "
                         f"ELF executable): {came}")
    atomic_write_text(dest / "stderr.txt", batch.stderr)


def _attempt_timeout() -> float:
    # --trap turns a hang into an abort at the deadline; this only bounds a wedged run.
    return 2 * stall_timeout() + 30


def _run_bounded(argv: list[str], dest: Path, stdout: Path, stderr: Path,
                 core_bytes: int, env: dict[str, str] | None = None) -> int | None:
    """Runs in its own process group; None when it had to be killed for taking too long.
    core_bytes bounds a core the kernel would write (gdb writes its own)."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        with core_limit(core_bytes):
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=dest if env is None else ROOT, start_new_session=True,
                                    env={**os.environ, **(env or {})})
        try:
            return proc.wait(timeout=_attempt_timeout())
        except subprocess.TimeoutExpired:
            return None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def _over_budget(disk_root: Path, disk_budget: int, info: dict, skipped: str) -> bool:
    used = disk_used(disk_root)
    if used <= disk_budget:
        return False
    note = (f"disk: captures of this run use {used >> 20} MiB, over the "
            f"{disk_budget >> 20} MiB bound: {skipped} skipped")
    if note not in info["bounds_hit"]:
        info["bounds_hit"].append(note)
    return True


def _record_with_rr(failure: Failure, dest: Path, info: dict, attempts: int,
                    disk_root: Path, disk_budget: int) -> None:
    info["method"] = "rr"
    trace = dest / "rr-trace"
    for attempt in range(1, attempts + 1):
        if _over_budget(disk_root, disk_budget, info, "rr record"):
            return
        shutil.rmtree(trace, ignore_errors=True)
        info["attempts"] = attempt
        argv = ["rr", "record", *(["--chaos"] if failure.rare else []), "-o", str(trace),
                *failure.inv.argv(failure.iteration, 1, trap=True)]
        code = _run_bounded(argv, dest, dest / "stdout.txt", dest / "race-log.txt",
                            core_bytes=0, env=_env(failure))
        log = (dest / "race-log.txt").read_text("utf-8", "replace")
        if RR_FAILED.search(log):   # rr's own failure, not the program's: gdb takes over
            info["notes"].append(f"rr record failed: {rr_reason(log, code or 0)}")
            shutil.rmtree(trace, ignore_errors=True)
            return
        # --trap ends the failing iteration in abort(), a crash in its signal: rr passes
        # the signal on (or reports 128+signal).
        if code is not None and (code < 0 or code >= 128):
            break
    else:
        shutil.rmtree(trace, ignore_errors=True)
        info["bounds_hit"].append(f"attempts: the failure did not come back under rr in "
                                  f"{attempts} tries")
        return
    packed = subprocess.run(["rr", "pack", str(trace)], capture_output=True, text=True)
    if packed.returncode != 0:
        info["notes"].append(f"rr pack failed: {packed.stderr.strip()[:200]}")
    info["reproduced"] = True
    info["rr_replay"] = f"rr replay {shlex.quote(str(trace))}"
    atomic_write_text(dest / "rr-replay.txt", info["rr_replay"] + "\n")


def _debug_with_gdb(failure: Failure, dest: Path, info: dict, attempts: int,
                    disk_root: Path, disk_budget: int) -> None:
    gdb = shutil.which("gdb")
    if gdb is None:
        info["notes"].append("gdb is not installed (make deps): no backtraces or core")
        return
    info["method"] = "gdb" if info["method"] is None else info["method"] + "+gdb"
    start = info["attempts"]
    program, *program_args = failure.inv.argv(failure.iteration, 1, trap=True)
    environment = [a for k, v in failure.inv.env_for(failure.iteration).items()
                   for a in ("-ex", f"set environment {k} {v}")]
    for attempt in range(start + 1, start + attempts + 1):
        info["attempts"] = attempt
        want_core = not _over_budget(disk_root, disk_budget, info, "core dump")
        left = max(0, disk_budget - disk_used(disk_root))
        argv = [gdb, "-batch", "-nx",
                "-ex", "set pagination off",
                # Signals a loop library may use in passing are not the failure.
                "-ex", "handle SIGPIPE SIGALRM SIGUSR1 SIGUSR2 nostop noprint pass",
                *environment,
                # `run ARGS` replaces the arguments, and gdb starts the program through
                # the shell: so the arguments and the redirections go on one line.
                "-ex", f"run {shlex.join(program_args)} >{shlex.quote(str(dest / 'stdout.txt'))}"
                       f" 2>{shlex.quote(str(dest / 'race-log.txt'))}",
                "-ex", "thread apply all bt full",
                *(["-ex", f"generate-core-file {dest / 'core'}"] if want_core else []),
                program]
        code = _run_bounded(argv, dest, dest / "backtrace.txt", dest / "gdb-stderr.txt",
                            core_bytes=left if want_core else 0, env=_env(failure))
        if code is None:
            info["notes"].append(f"attempt {attempt}: gdb run killed after {_attempt_timeout():g}s")
        if FAILURE_STOP.search((dest / "backtrace.txt").read_text("utf-8", "replace")):
            info["reproduced"] = True
            return
    info["bounds_hit"].append(f"attempts: the failure did not come back under gdb in "
                              f"{attempts} tries")


def replay(capture_dir: Path, attempts: int = 1) -> tuple[bool, str]:
    """Re-runs a captured iteration (without --trap, to read its outcome from the report).
    True when the same outcome came back."""
    info = json.loads((capture_dir / "capture.json").read_text())
    if info.get("method") == "sim-schedule":
        from . import schedule_capture
        return schedule_capture.replay(capture_dir, info, attempts)
    inv, i, expected = invocation_from_dict(info["invocation"]), info["iteration"], info["outcome"]
    came = "nothing"
    for attempt in range(1, attempts + 1):
        batch = inv.run_batch(i, 1)
        came = next((name for name, n in batch.counts.items() if n), "nothing")
        if came == expected:
            return True, (f"{info['cell']} iteration {i}: {came} again (same outcome, "
                          f"try {attempt}); command: {inv.command(i, 1)}")
    return False, (f"{info['cell']} iteration {i}: expected {expected}, got {came} "
                   f"({attempts} tries); command: {inv.command(i, 1)}")
