"""Run one cell's program (docs/contract.md) in batches, resuming after a crash or hang.

A batch is one process running many iterations, so the driver's overhead is a process
start per batch, not per iteration. The program keeps a status file (a fixed binary
record, updated after every iteration): when it dies by a signal, or stops making
progress and is killed, the status says which iteration was running and what the
finished ones showed, so nothing already counted is lost and the loop resumes at the
next iteration with --start.
"""
import json
import math
import os
import resource
import shlex
import signal
import struct
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from .profiles import Budget

# magic, current, done, counts[9], first failure iteration, its outcome, its detail
STATUS = struct.Struct("<8sQQ9QQQ256s")
STATUS_MAGIC = b"ARSTAT1\0"
NO_FAILURE = 2**64 - 1
EXIT_BAD_INPUT, EXIT_HANG = 2, 3
DEFAULT_DEADLINE_MS = 2000
STDERR_KEEP = 64 * 1024  # the tail of a program's stderr kept per batch


class ProgramError(Exception):
    """The program could not be run as the contract says: a harness error, never a result."""


@dataclass(frozen=True)
class Status:
    current: int
    done: int
    counts: tuple[int, ...]
    first_failure_iteration: int | None
    first_failure_outcome: int
    first_failure_detail: str

    @classmethod
    def read(cls, path: Path) -> "Status | None":
        """None when the program never got as far as writing it."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) < STATUS.size or not data.startswith(STATUS_MAGIC):
            return None
        _, current, done, *rest = STATUS.unpack_from(data)
        counts, (ff_iteration, ff_outcome, detail) = tuple(rest[:9]), rest[9:]
        return cls(current, done, counts,
                   None if ff_iteration == NO_FAILURE else ff_iteration, ff_outcome,
                   detail.split(b"\0", 1)[0].decode("utf-8", "replace"))


def timeout_multiplier(env: Mapping[str, str] | None = None) -> float:
    """The contract's ASYNCRACE_TIMEOUT_MULTIPLIER, which scales the program's deadline."""
    try:
        return max(1.0, float((os.environ if env is None else env)
                              .get("ASYNCRACE_TIMEOUT_MULTIPLIER", "1")))
    except ValueError:
        return 1.0


def stall_timeout(env: Mapping[str, str] | None = None,
                  deadline_ms: int = DEFAULT_DEADLINE_MS) -> float:
    """How long a batch may go without progress before the driver kills it: well past
    the program's own watchdog, which should have ended the iteration first."""
    return 2 * deadline_ms / 1000 * timeout_multiplier(env) + 5.0


@dataclass(frozen=True)
class Invocation:
    """How to run one cell's program; iterations and where to start come per batch."""
    program: Path
    runner: str
    variant: str
    mode: str
    seed: int
    outcomes: tuple[str, ...]       # the program's outcome names, in enum order
    extra: tuple[str, ...] = ()     # e.g. ("--deadline-ms", "100")

    def argv(self, start: int, iterations: int, *, trap: bool = False,
             status: Path | None = None) -> list[str]:
        argv = [str(self.program), "--runner", self.runner, "--variant", self.variant,
                "--mode", self.mode, "--seed", str(self.seed), "--start", str(start),
                "--iterations", str(iterations), *self.extra]
        if status is not None:
            argv += ["--status", str(status)]
        return argv + ["--trap"] if trap else argv

    def command(self, start: int, iterations: int, *, trap: bool = False) -> str:
        return shlex.join(self.argv(start, iterations, trap=trap))

    def to_dict(self) -> dict:
        return {"program": str(self.program), "runner": self.runner, "variant": self.variant,
                "mode": self.mode, "seed": self.seed, "outcomes": list(self.outcomes),
                "extra": list(self.extra)}

    @classmethod
    def from_dict(cls, d: dict) -> "Invocation":
        return cls(Path(d["program"]), d["runner"], d["variant"], d["mode"], int(d["seed"]),
                   tuple(d["outcomes"]), tuple(d.get("extra", ())))


@dataclass(frozen=True)
class Interruption:
    """An iteration that ended its process: counted as crash or hang by the driver."""
    iteration: int
    outcome: str    # crash | hang
    reason: str


@dataclass
class Batch:
    start: int
    requested: int
    counts: dict[str, int]
    next_start: int
    wall_s: float = 0.0
    report: dict | None = None          # the program's JSON report, when it printed one
    first_failure: dict | None = None   # contract shape, after_s relative to the batch
    interruption: Interruption | None = None
    stderr: str = ""
    pgid: int = 0

    @property
    def counted(self) -> int:
        return sum(self.counts.values())


@contextmanager
def core_limit(limit: int) -> Iterator[None]:
    """RLIMIT_CORE (soft) for the children started inside. Set in this process around the
    spawn rather than in a preexec_fn, which is unsafe with threads (xdist's)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    wanted = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_CORE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_batch(inv: Invocation, start: int, iterations: int, *, stall_s: float | None = None,
              env: dict[str, str] | None = None) -> Batch:
    """Runs iterations [start, start+iterations) in one process and counts them."""
    stall_s = stall_timeout(env) if stall_s is None else stall_s
    with tempfile.TemporaryDirectory(prefix="asyncrace-") as tmp:
        status_path, out_path, err_path = (Path(tmp) / n for n in ("status", "stdout", "stderr"))
        argv = inv.argv(start, iterations, status=status_path)
        began = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                with core_limit(0):  # a batch's crash is counted, not dumped: cores are for captures
                    proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env=env)
            except OSError as e:
                raise ProgramError(f"cannot run {argv[0]}: {e}") from e
            killed = _wait_with_progress(proc, status_path, stall_s)
        wall = time.monotonic() - began
        stdout = out_path.read_text("utf-8", "replace")
        stderr = err_path.read_bytes()[-STDERR_KEEP:].decode("utf-8", "replace")
        status = Status.read(status_path)
    batch = _interpret(inv, start, iterations, proc.returncode, killed, stall_s,
                       stdout, stderr, status, shlex.join(argv))
    batch.wall_s, batch.stderr, batch.pgid = wall, stderr, proc.pid
    return batch


def _wait_with_progress(proc: subprocess.Popen, status_path: Path, stall_s: float) -> bool:
    """Waits for the process; kills its whole group when the status stops moving.
    True when it was killed for that."""
    last, last_change, poll = None, time.monotonic(), 0.005
    killed = False
    while True:
        try:
            proc.wait(timeout=poll)
            break
        except subprocess.TimeoutExpired:
            pass
        status = Status.read(status_path)
        progress = (status.current, status.done) if status else None
        now = time.monotonic()
        if progress != last:
            last, last_change = progress, now
        elif now - last_change > stall_s:
            _kill_group(proc.pid)
            proc.wait()
            killed = True
            break
        poll = min(poll * 2, 0.1)
    _kill_group(proc.pid)  # whatever the program left behind in its group goes too
    return killed


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _interpret(inv: Invocation, start: int, iterations: int, returncode: int, killed: bool,
               stall_s: float, stdout: str, stderr: str, status: Status | None,
               command: str) -> Batch:
    first_line = stderr.strip().splitlines()[0] if stderr.strip() else "(nothing on stderr)"
    if returncode == EXIT_BAD_INPUT and not killed:
        raise ProgramError(f"{inv.program.name} refused its arguments: {first_line}\n  {command}")
    if not killed and returncode in (0, EXIT_HANG):
        report = _parse_report(stdout, command)
        counts = {name: int(report["outcomes"].get(name, 0)) for name in inv.outcomes}
        ff = report.get("first_failure")
        batch = Batch(start, iterations, counts, int(report["next_iteration"]),
                      report=report, first_failure=ff)
        if returncode == EXIT_HANG or not report.get("complete", True):
            batch.interruption = Interruption(batch.next_start - 1, "hang",
                                              "the program's watchdog: past --deadline-ms (exit 3)")
        elif batch.counted != iterations:
            raise ProgramError(f"asked for {iterations} iterations, the report counts "
                               f"{batch.counted}\n  {command}")
        return batch
    # Killed by us, by a signal, or an unexpected exit (e.g. a sanitizer's): the status
    # file says which iteration was running.
    if status is None:
        if not killed:
            raise ProgramError(f"{inv.program.name} died ({_exit_text(returncode)}) before "
                               f"writing its status file: {first_line}\n  {command}")
        status = Status(start, 0, (0,) * len(inv.outcomes), None, 0, "")
    counts = dict(zip(inv.outcomes, status.counts))
    if killed:
        outcome, reason = "hang", f"no progress for {stall_s:g}s: process group killed"
    else:
        outcome, reason = "crash", _exit_text(returncode)
    if status.done >= iterations:
        # Past the last iteration (a leak check at exit, a stuck join): still counted,
        # as one more iteration, so it cannot pass unseen.
        reason += " at exit, after the last iteration"
    counts[outcome] = counts.get(outcome, 0) + 1
    ff = None
    if status.first_failure_iteration is not None:
        ff = {"iteration": status.first_failure_iteration,
              "outcome": inv.outcomes[status.first_failure_outcome],
              "detail": status.first_failure_detail, "after_s": None,
              "replay": inv.command(status.first_failure_iteration, 1, trap=True)}
    return Batch(start, iterations, counts, status.current + 1, first_failure=ff,
                 interruption=Interruption(status.current, outcome, reason))


def _exit_text(returncode: int) -> str:
    return f"killed by {_signal_name(-returncode)}" if returncode < 0 else f"exit {returncode}"


def _parse_report(stdout: str, command: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines[-1])
        report["outcomes"], report["next_iteration"]
    except (IndexError, ValueError, KeyError, TypeError) as e:
        raise ProgramError(f"no JSON report on stdout ({e}): {stdout[-300:]!r}\n  {command}") from e
    return report


@dataclass
class Loop:
    """What a cell's batches added up to."""
    outcomes: dict[str, int]
    iterations: int = 0
    wall_s: float = 0.0
    program_s: float = 0.0        # time inside the programs, from their reports
    batches: list[tuple[int, int]] = field(default_factory=list)   # (start, requested)
    # The first failure of each outcome, in the order they came (so the first is the
    # cell's first failure): what a failing judgement points the replay at.
    first_by_outcome: dict[str, dict] = field(default_factory=dict)
    interruptions: list[Interruption] = field(default_factory=list)
    runner_version: str | None = None
    stderr: str = ""              # the programs' stderr (its tail), for sanitizer reports

    @property
    def failures(self) -> int:
        return self.iterations - self.outcomes.get("ok", 0)

    @property
    def first_failure(self) -> dict | None:
        return next(iter(self.first_by_outcome.values()), None)

    @property
    def replays(self) -> dict[str, str]:
        return {outcome: ff["replay"] for outcome, ff in self.first_by_outcome.items()}


def run_loop(inv: Invocation, budget: Budget, *, start: int = 0, first_batch: int = 10,
             stall_s: float | None = None, env: dict[str, str] | None = None) -> Loop:
    """Runs batches until the budget is reached, resuming past every interruption."""
    loop = Loop({name: 0 for name in inv.outcomes})
    began, next_start = time.monotonic(), start
    while not budget.reached(loop.iterations, time.monotonic() - began):
        elapsed = time.monotonic() - began
        size = _batch_size(budget, loop.iterations, elapsed,
                           loop.wall_s / loop.iterations if loop.iterations else None, first_batch)
        batch = run_batch(inv, next_start, size, stall_s=stall_s, env=env)
        _add(loop, batch, offset_s=elapsed, inv=inv)
        next_start = batch.next_start
    return loop


def _batch_size(budget: Budget, done: int, elapsed_s: float, per_iteration_s: float | None,
                first_batch: int) -> int:
    """The first batch is small, to measure speed; later ones fill the time left."""
    left = math.inf if budget.iterations is None else budget.iterations - done
    if per_iteration_s is None:
        size = first_batch
    elif budget.seconds is None:
        size = left
    else:
        size = math.ceil(max(0.0, budget.seconds - elapsed_s) / max(per_iteration_s, 1e-6))
        size = max(size, budget.min_iterations - done)
    return int(max(1, min(size, left)))


def _add(loop: Loop, batch: Batch, offset_s: float, inv: Invocation) -> None:
    for name, n in batch.counts.items():
        loop.outcomes[name] = loop.outcomes.get(name, 0) + n
    loop.iterations += batch.counted
    loop.wall_s += batch.wall_s
    loop.batches.append((batch.start, batch.requested))
    if batch.report:
        loop.program_s += float(batch.report.get("elapsed_s", 0.0))
        loop.runner_version = batch.report.get("runner_version", loop.runner_version)
    if batch.interruption:
        loop.interruptions.append(batch.interruption)
    if batch.stderr:
        loop.stderr = (loop.stderr + batch.stderr)[-STDERR_KEEP:]
    for ff in _failures(batch, offset_s, inv):
        loop.first_by_outcome.setdefault(ff["outcome"], ff)


def _failures(batch: Batch, offset_s: float, inv: Invocation) -> list[dict]:
    """The batch's first failure, then its interruption, with after_s measured from the
    cell's start."""
    found = []
    if batch.first_failure:
        ff = dict(batch.first_failure)
        # A status file has no times: then the failure came at most at the batch's end.
        ff["after_s"] = offset_s + (ff["after_s"] if ff.get("after_s") is not None
                                    else batch.wall_s)
        found.append(ff)
    if batch.interruption:
        i = batch.interruption
        found.append({"iteration": i.iteration, "outcome": i.outcome, "detail": i.reason,
                      "after_s": offset_s + batch.wall_s,
                      "replay": inv.command(i.iteration, 1, trap=True)})
    return found
