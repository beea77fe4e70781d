"""Keep what a debugger needs for one failing iteration, re-run alone with --trap.

Where rr can record (probed once per run by recording /bin/true): ``rr record`` (with
--chaos for timing-dependent failures), retried until the failure comes back, then
``rr pack``, and the ``rr replay`` command saved. Where it cannot, or when rr never saw the
failure: the iteration runs under ``gdb -batch``, which prints every thread's backtrace
and writes the core itself (so kernel.core_pattern does not matter), and the program's
stderr is kept: with --trap it prints its log of the last race-point events there.

An external reproducer's failing iteration is re-run with its trap flag (when declared),
RUST_BACKTRACE=1 and core dumps on, whatever its outcome is named: every core it (or a
program a wrapper script started) leaves gets every thread's backtrace from gdb, and is
kept gzip-compressed with its sizes said; stdout and stderr are kept too. A program that
ended without a signal leaves no core: its stderr is what there is.

Always: command.txt and replay.sh re-run that iteration alone. Attempts and disk are
bounded; capture.json says which bound was hit.
"""
import gzip
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
from .stats import iterations_for_power, percent

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
    if getattr(failure.inv, "controlled", False):  # the preloaded scheduler's schedule
        from . import controlled
        if failure.schedule:
            return controlled.capture(failure, dest)
    if failure.schedule:          # sim: the schedule and its race log say it all
        from . import schedule_capture
        return schedule_capture.capture(failure, dest)
    dest.mkdir(parents=True, exist_ok=True)
    inv, i = failure.inv, failure.iteration
    command = inv.command(i, 1, trap=True)
    env = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in inv.env_for(i).items())
    atomic_write_text(dest / "command.txt", command + "\n")
    trap = ("; --trap aborts at the failure and prints the race-point log"
            if isinstance(inv, ContractInvocation) else "")
    atomic_write_text(dest / "replay.sh",
                      f"#!/bin/sh\n# {failure.cell}: iteration {i} alone ({failure.outcome}){trap}.\n"
                      f"# A re-run, not a replay: {rerun_odds(failure.rate)}.\n"
                      f"cd {shlex.quote(str(getattr(inv, 'workdir', ROOT)))}\n{env}"
                      f"exec {shlex.join(inv.argv(i, 1, trap=True))} \"$@\"\n")
    os.chmod(dest / "replay.sh", 0o755)
    info: dict = {"cell": failure.cell, "iteration": i, "outcome": failure.outcome,
                  "invocation": inv.to_dict(), "command": command,
                  "replay_sh": str(dest / "replay.sh"), "rr": asdict(rr), "method": None,
                  "attempts": 0, "reproduced": False, "rr_replay": None, "bounds_hit": [],
                  "notes": [], "rate": failure.rate}
    if not isinstance(inv, ContractInvocation):
        _rerun_with_cores(failure, dest, info, disk_root, disk_budget)
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


def _env(failure: Failure) -> dict[str, str] | None:
    """None for a case program (it runs in the capture folder); an external command runs
    where it ran, with its iteration in the environment."""
    if isinstance(failure.inv, ContractInvocation):
        return None
    return failure.inv.env_for(failure.iteration)


CORE_CAP = 512 * 1024 * 1024       # RLIMIT_CORE for a capture's re-run: a core past it is cut


def _cores(folder: Path) -> set[Path]:
    return {p for p in folder.glob("core*") if p.is_file() and not p.name.endswith(".gz")}


def _rerun_with_cores(failure: Failure, dest: Path, info: dict, disk_root: Path,
                      disk_budget: int) -> None:
    """An external's failing iteration once more, as it ran (its trap flag appended when
    declared), with cores on: whatever it is called, a failure that ends in a signal (or a
    child's, behind a wrapper) leaves a core, and gdb reads every thread's backtrace from
    it. The core is kept gzip-compressed; its sizes go into capture.json."""
    inv = failure.inv
    info["method"] = "core"
    info["attempts"] = 1
    workdir = getattr(inv, "workdir", ROOT)
    before = _cores(workdir)
    room = 0 if _over_budget(disk_root, disk_budget, info, "core dump") else \
        min(CORE_CAP, max(0, disk_budget - disk_used(disk_root)))
    argv = inv.argv(failure.iteration, 1, trap=True)
    env = {**os.environ, **inv.env_for(failure.iteration), "RUST_BACKTRACE": "1"}
    # an external's own time limit: a process per iteration has timeout_s; a program that
    # loops itself has it per iteration, and runs one here
    code = _run_bounded(argv, workdir, dest / "stdout.txt", dest / "stderr.txt", core_bytes=room,
                        env=env, timeout_s=getattr(inv, "timeout_s", None))
    ended = "killed by the capture's time limit" if code is None else (
        f"killed by signal {-code}" if code < 0 else f"exit {code}")
    info["notes"].append(f"re-run once, as it ran{' with its trap' if getattr(inv, 'trap', ()) else ''}: {ended}")
    new = sorted(_cores(workdir) - before)
    for k, core in enumerate(new):
        name = "core" if k == 0 else f"core.{k}"
        text = _backtrace_of(core)
        if text:
            atomic_write_text(dest / ("backtrace.txt" if k == 0 else f"backtrace.{k}.txt"), text)
        raw = core.stat().st_size
        with open(core, "rb") as src, gzip.open(dest / f"{name}.gz", "wb", compresslevel=1) as out:
            shutil.copyfileobj(src, out, 1 << 20)
        core.unlink()
        packed = (dest / f"{name}.gz").stat().st_size
        info["notes"].append(f"{name}: {raw >> 20} MiB{' (cut at the cap)' if raw >= room > 0 else ''}, "
                             f"kept as {name}.gz, {packed >> 10} KiB; its backtrace: "
                             f"{'backtrace.txt' if k == 0 else f'backtrace.{k}.txt'}")
    info["reproduced"] = bool(new) or (code is not None and code != 0)
    if not new:
        info["notes"].append("no core: the program ended without a signal (or dumps are off); "
                             "stderr.txt has what it printed (RUST_BACKTRACE=1)")


def _backtrace_of(core: Path) -> str:
    """Every thread's backtrace from a core, the executable found from the core itself."""
    gdb = shutil.which("gdb")
    if gdb is None:
        return ""
    found = subprocess.run([gdb, "-batch", "-nx", "-c", str(core)], capture_output=True,
                           text=True, timeout=120)
    match = re.search(r"Core was generated by `([^\s']+)", found.stdout + found.stderr)
    if not match:
        return found.stdout + found.stderr
    exe = match.group(1)
    exe = shutil.which(exe) or exe
    done = subprocess.run([gdb, "-batch", "-nx", "-ex", "thread apply all bt full", exe,
                           str(core)], capture_output=True, text=True, timeout=300)
    return done.stdout + done.stderr


def _attempt_timeout() -> float:
    # --trap turns a hang into an abort at the deadline; this only bounds a wedged run.
    return 2 * stall_timeout() + 30


def _run_bounded(argv: list[str], cwd: Path, stdout: Path, stderr: Path,
                 core_bytes: int, env: dict[str, str] | None = None,
                 timeout_s: float | None = None) -> int | None:
    """Runs in its own process group; None when it had to be killed for taking too long
    (timeout_s, else _attempt_timeout()). core_bytes bounds a core the kernel would write
    (gdb writes its own)."""
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        with core_limit(core_bytes):
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=cwd, start_new_session=True,
                                    env={**os.environ, **(env or {})})
        try:
            return proc.wait(timeout=timeout_s or _attempt_timeout())
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


def rerun_odds(rate: float | None) -> str:
    """What a re-run of a failure on real threads is worth, in words."""
    what = ("the program runs on real threads, not under asyncrace's scheduler, so each "
            "re-run is a new sample of its timing")
    if not rate:
        return what
    if rate >= 1:
        return f"{what}; the cell failed every iteration"
    return (f"{what}: at the cell's rate, {percent(rate)}%, a re-run shows the failure about "
            f"once in {max(1, round(1 / rate)):,}, and {iterations_for_power(rate):,} re-runs "
            f"show it with 95 % chance")


def replay(capture_dir: Path, attempts: int = 1) -> tuple[bool, str]:
    """Replays a sim capture (its schedule, exactly); re-runs any other (without --trap, to
    read its outcome), and says it is a re-run, with the odds. True when the same outcome
    came back."""
    info = json.loads((capture_dir / "capture.json").read_text())
    if info.get("method") == "sim-schedule":
        from . import schedule_capture
        return schedule_capture.replay(capture_dir, info, attempts)
    if info.get("method") == "preload-schedule":
        from . import controlled
        return controlled.replay_capture(capture_dir, info, attempts)
    inv, i, expected = invocation_from_dict(info["invocation"]), info["iteration"], info["outcome"]
    odds = rerun_odds(info.get("rate"))
    came = "nothing"
    for attempt in range(1, attempts + 1):
        batch = inv.run_batch(i, 1)
        came = next((name for name, n in batch.counts.items() if n), "nothing")
        if came == expected:
            return True, (f"{info['cell']} iteration {i}: {came} again on re-run {attempt} of "
                          f"{attempts}: a re-run, not a replay ({odds}); command: "
                          f"{inv.command(i, 1)}")
    return False, (f"{info['cell']} iteration {i}: expected {expected}, got {came} in "
                   f"{attempts} re-run{'s' if attempts != 1 else ''}: a re-run, not a replay "
                   f"({odds}); command: {inv.command(i, 1)}")
