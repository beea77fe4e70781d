"""Run one cell's program in batches, resuming after a crash or a hang.

A batch is one process running many iterations (docs/contract.md), so the driver's
overhead is a process start per batch, not per iteration. The program keeps a status
file (its layout comes from its --list), updated after every iteration: when it dies by a
signal, or stops making progress and is killed, the status says which iteration was
running and what the finished ones showed, so nothing already counted is lost and the
loop resumes at the next iteration with --start.

Three kinds of invocation share the loop: ContractInvocation (a case program of
build/bin), and from external.py a command that loops itself or a command run once per
iteration. Each turns (start, iterations) into a Batch.
"""
import json
import math
import os
import resource
import select
import shlex
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Protocol

from .contract import Status, StatusLayout
from .profiles import Budget

EXIT_BAD_INPUT, EXIT_HANG = 2, 3
DEFAULT_DEADLINE_MS = 2000
STDERR_KEEP = 64 * 1024  # the tail of a program's stderr kept per batch

# Called while a batch runs, whenever its status moves: (iterations done in this batch,
# failures among them).
Watch = Callable[[int, int], None]


class ProgramError(Exception):
    """The program could not be run as the contract says: a harness error, never a result."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a cell: its process group is gone; `loop` has what finished before."""

    def __init__(self, loop: "Loop") -> None:
        super().__init__()
        self.loop = loop


@dataclass(frozen=True)
class Stop:
    """When a batch may end before its iterations: its cell's time budget is spent (the
    charged time: hung time is free up to the allowance left) and it ran `must`. A program
    the driver can watch (one process per iteration, or a status file) is stopped there,
    so a budget holds whatever its iterations cost or its rules call a timeout."""
    time_left_s: float
    allowance_s: float
    must: int

    def reached(self, wall_s: float, hang_s: float, done: int) -> bool:
        return done >= self.must and wall_s - min(hang_s, self.allowance_s) >= self.time_left_s


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
class Interruption:
    """An iteration that ended its process: counted as crash or hang (or what an external
    reproducer's rules say) by the driver."""
    iteration: int
    outcome: str
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
    hang_s: float = 0.0                 # of wall_s, the time hung iterations took
    uncounted: int = 0                  # iterations that ran but could not be counted

    @property
    def counted(self) -> int:
        return sum(self.counts.values())


class Invocation(Protocol):
    """How to run one cell with one seed; iterations and where to start come per batch."""
    seed: int
    outcomes: tuple[str, ...]

    def run_batch(self, start: int, iterations: int, *, stall_s: float | None = None,
                  env: dict[str, str] | None = None, watch: Watch | None = None,
                  stop: Stop | None = None) -> Batch: ...
    def argv(self, start: int, iterations: int, *, trap: bool = False) -> list[str]: ...
    def command(self, start: int, iterations: int, *, trap: bool = False) -> str: ...
    def env_for(self, start: int) -> dict[str, str]: ...
    def to_dict(self) -> dict: ...


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


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_text(returncode: int) -> str:
    return f"killed by {signal_name(-returncode)}" if returncode < 0 else f"exit {returncode}"


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Finished:
    """One process, run to its end (or killed)."""
    returncode: int
    killed: bool        # by the driver: no progress (or past its time limit)
    stdout: str
    stderr: str
    status: Status | None
    wall_s: float
    pgid: int
    hang_s: float = 0.0   # time the status showed hung iterations taking (measured)
    stopped: bool = False  # by the driver at its Stop: the iterations done are counted


def run_once(argv: list[str], *, env: dict[str, str] | None, timeout_s: float,
             cwd: Path | None = None) -> Finished:
    """One short process (an iteration of its own) in its own process group, its output
    through pipes, killed with its group past timeout_s (killed=True) or when the driver
    is interrupted. The cheap path: no files, no polling: one poll over the pipes and the
    process's pidfd wakes at its exit (subprocess's own wait sleeps a millisecond a turn,
    which was most of what a process cost)."""
    began = time.monotonic()
    try:
        with core_limit(0):
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                    cwd=cwd)
    except OSError as e:
        raise ProgramError(f"cannot run {argv[0]}: {e}") from e
    killed, exited = False, False
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    output = {out_fd: bytearray(), err_fd: bytearray()}
    pidfd = os.pidfd_open(proc.pid)
    poller = select.poll()
    for fd in (out_fd, err_fd, pidfd):
        poller.register(fd, select.POLLIN)
    open_fds = {out_fd, err_fd}
    try:
        while open_fds or not exited:     # a program may close its output and go on
            if exited and not poller.poll(0):
                break      # it exited, nothing more to read now: a child it left may hold the pipes
            left = began + timeout_s - time.monotonic()
            if left <= 0:
                kill_group(proc.pid)
                killed = True
                break
            for fd, _ in poller.poll(left * 1000):
                if fd == pidfd:
                    exited = True
                    poller.unregister(pidfd)
                    continue
                chunk = os.read(fd, 65536)
                if chunk:
                    output[fd] += chunk
                    del output[fd][:-STDERR_KEEP]
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
        proc.wait()
    except BaseException:
        kill_group(proc.pid)
        proc.wait()
        raise
    finally:
        os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
    kill_group(proc.pid)   # whatever it left behind in its group goes too
    return Finished(proc.returncode, killed, output[out_fd].decode("utf-8", "replace"),
                    output[err_fd].decode("utf-8", "replace"), None, time.monotonic() - began,
                    proc.pid)


def run_process(argv: list[str], *, env: dict[str, str] | None, layout: StatusLayout | None,
                status_path: Path | None, stall_s: float, watch: Watch | None = None,
                outcomes: tuple[str, ...] = (), limit_s: float | None = None,
                cwd: Path | None = None, stop: Stop | None = None) -> Finished:
    """Runs argv in its own process group with stdout/stderr in files. With a status
    layout, the process is killed when its status stops moving for stall_s, or stopped at
    `stop`; without one, when it runs past limit_s (or stall_s). Interrupted (Ctrl-C), its
    group is killed before the exception goes on."""
    with tempfile.TemporaryDirectory(prefix="asyncrace-") as tmp:
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        began = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                with core_limit(0):  # a batch's crash is counted, not dumped: cores are for captures
                    proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env=env, cwd=cwd)
            except OSError as e:
                raise ProgramError(f"cannot run {argv[0]}: {e}") from e
            try:
                killed, hang_s, stopped = _wait(proc, layout, status_path, stall_s, limit_s, watch,
                                                outcomes, stop)
            except BaseException:
                kill_group(proc.pid)
                proc.wait()
                raise
        wall = time.monotonic() - began
        stdout = out_path.read_text("utf-8", "replace")
        stderr = err_path.read_bytes()[-STDERR_KEEP:].decode("utf-8", "replace")
    status = layout.read(status_path) if layout and status_path else None
    return Finished(proc.returncode, killed, stdout, stderr, status, wall, proc.pid, hang_s,
                    stopped)


def _wait(proc: subprocess.Popen, layout: StatusLayout | None, status_path: Path | None,
          stall_s: float, limit_s: float | None, watch: Watch | None,
          outcomes: tuple[str, ...], stop: Stop | None) -> tuple[bool, float, bool]:
    """Waits for the process; kills its whole group when the status stops moving (or the
    time limit passes), or when the status shows its Stop reached. (killed for a stall or
    the limit, seconds the hung iterations took, stopped at its Stop): an iteration that
    finished as a hang took the time since the status last moved, and so did the one
    running when the process ended by its watchdog (exit 3) or was killed."""
    began = last_change = time.monotonic()
    last, poll, killed, hang_s, hangs, stopped = None, 0.005, False, 0.0, 0, False
    ok = outcomes.index("ok") if "ok" in outcomes else 0
    hang = outcomes.index("hang") if "hang" in outcomes else None
    while True:
        try:
            proc.wait(timeout=poll)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        status = layout.read(status_path) if layout and status_path else None
        progress = (status.current, status.done) if status else None
        if progress != last:
            if status and hang is not None and status.counts[hang] > hangs:
                hang_s += now - last_change
                hangs = status.counts[hang]
            last, last_change = progress, now
            if watch and status:
                watch(status.done, status.done - status.counts[ok])
        stalled = layout is not None and now - last_change > stall_s
        if stalled or (limit_s is not None and now - began > limit_s):
            kill_group(proc.pid)
            proc.wait()
            killed = True
            break
        if stop is not None and status and stop.reached(now - began, hang_s, status.done):
            kill_group(proc.pid)
            proc.wait()
            stopped = True
            break
        poll = min(poll * 2, 0.1)
    kill_group(proc.pid)  # whatever the program left behind in its group goes too
    if layout is not None and (killed or proc.returncode == EXIT_HANG):
        hang_s += time.monotonic() - last_change
    return killed, hang_s, stopped


def run_interruptible(inv: Invocation, start: int, iterations: int, status: Path | None,
                      argv: list[str], **kwargs) -> Finished:
    """run_process; on Ctrl-C, what the status file counted goes with the exception (as
    `batch`) so that an interrupted cell keeps it."""
    try:
        return run_process(argv, **kwargs)
    except KeyboardInterrupt as e:
        layout = kwargs.get("layout")
        read = layout.read(status) if layout is not None and status is not None else None
        if read is not None:
            e.batch = from_stopped(inv, start, iterations, read)
        raise


def parse_report(stdout: str, command: str) -> dict:
    """The contract's JSON report: the last non-empty line of stdout."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines[-1])
        report["outcomes"], report["next_iteration"]
    except (IndexError, ValueError, KeyError, TypeError) as e:
        raise ProgramError(f"no JSON report on stdout ({e}): {stdout[-300:]!r}\n  {command}") from e
    return report


def first_line(stderr: str) -> str:
    return stderr.strip().splitlines()[0] if stderr.strip() else "(nothing on stderr)"


def from_report(inv: Invocation, start: int, iterations: int, returncode: int, report: dict,
                command: str) -> Batch:
    """A batch that ended with the contract's report (exit 0, or 3 after a hang)."""
    counts = {name: int(report["outcomes"].get(name, 0)) for name in inv.outcomes}
    batch = Batch(start, iterations, counts, int(report["next_iteration"]),
                  report=report, first_failure=report.get("first_failure"))
    if returncode == EXIT_HANG or not report.get("complete", True):
        batch.interruption = Interruption(batch.next_start - 1, "hang",
                                          "the program's watchdog: past its deadline (exit 3)")
    elif batch.counted != iterations:
        raise ProgramError(f"asked for {iterations} iterations, the report counts "
                           f"{batch.counted}\n  {command}")
    return batch


def _status_failure(inv: Invocation, status: Status) -> dict | None:
    """The first failure a status file recorded, in the report's shape."""
    if status.first_failure_iteration is None:
        return None
    return {"iteration": status.first_failure_iteration,
            "outcome": inv.outcomes[status.first_failure_outcome],
            "detail": status.first_failure_detail, "after_s": None,
            "replay": inv.command(status.first_failure_iteration, 1, trap=True)}


def from_stopped(inv: Invocation, start: int, iterations: int, status: Status) -> Batch:
    """A batch the driver stopped at its Stop: the iterations its status counted stand; the
    one that was running is not counted and runs again in the next batch."""
    return Batch(start, iterations, dict(zip(inv.outcomes, status.counts)), start + status.done,
                 first_failure=_status_failure(inv, status))


def from_status(inv: Invocation, start: int, iterations: int, status: Status, outcome: str,
                reason: str) -> Batch:
    """A batch whose process ended without a report: its status file says how far it got;
    the iteration that was running is counted as `outcome`."""
    counts = dict(zip(inv.outcomes, status.counts))
    if status.done >= iterations:
        # Past the last iteration (a leak check at exit, a stuck join): still counted,
        # as one more iteration, so it cannot pass unseen.
        reason += " at exit, after the last iteration"
    counts[outcome] = counts.get(outcome, 0) + 1
    return Batch(start, iterations, counts, status.current + 1,
                 first_failure=_status_failure(inv, status),
                 interruption=Interruption(status.current, outcome, reason))


@dataclass(frozen=True)
class ContractInvocation:
    """A case program of build/bin (or a sanitizer build of it)."""
    program: Path
    runner: str
    variant: str
    mode: str
    seed: int
    outcomes: tuple[str, ...]       # the program's outcome names, in enum order
    layout: StatusLayout
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

    def env_for(self, start: int) -> dict[str, str]:
        return {}

    def run_batch(self, start: int, iterations: int, *, stall_s: float | None = None,
                  env: dict[str, str] | None = None, watch: Watch | None = None,
                  stop: Stop | None = None) -> Batch:
        """Runs iterations [start, start+iterations) in one process and counts them. A case
        program is not stopped early (its report holds what a kill would lose, a search's
        state among it): its batches are sized from its speed, and its iterations are even."""
        stall_s = stall_timeout(env) if stall_s is None else stall_s
        with tempfile.TemporaryDirectory(prefix="asyncrace-status-") as tmp:
            status_path = Path(tmp) / "status"
            argv = self.argv(start, iterations, status=status_path)
            done = run_interruptible(self, start, iterations, status_path, argv, env=env,
                                     layout=self.layout, status_path=status_path,
                                     stall_s=stall_s, watch=watch, outcomes=self.outcomes)
        command = shlex.join(argv)
        if done.returncode == EXIT_BAD_INPUT and not done.killed:
            raise ProgramError(f"{self.program.name} refused its arguments: "
                               f"{first_line(done.stderr)}\n  {command}")
        if not done.killed and done.returncode in (0, EXIT_HANG):
            batch = from_report(self, start, iterations, done.returncode,
                                parse_report(done.stdout, command), command)
        else:
            # Killed by us, by a signal, or an unexpected exit (e.g. a sanitizer's): the
            # status file says which iteration was running.
            status = done.status
            if status is None:
                if not done.killed:
                    raise ProgramError(f"{self.program.name} died ({exit_text(done.returncode)})"
                                       f" before writing its status file: "
                                       f"{first_line(done.stderr)}\n  {command}")
                status = Status(start, 0, (0,) * len(self.outcomes), None, 0, "")
            if done.killed:
                outcome, reason = "hang", f"no progress for {stall_s:g}s: process group killed"
            else:
                outcome, reason = "crash", exit_text(done.returncode)
            batch = from_status(self, start, iterations, status, outcome, reason)
        batch.wall_s, batch.stderr, batch.pgid = done.wall_s, done.stderr, done.pgid
        batch.hang_s = done.hang_s
        return batch

    def to_dict(self) -> dict:
        return {"kind": "contract", "program": str(self.program), "runner": self.runner,
                "variant": self.variant, "mode": self.mode, "seed": self.seed,
                "outcomes": list(self.outcomes), "layout": self.layout.to_dict(),
                "extra": list(self.extra)}

    @classmethod
    def from_dict(cls, d: dict) -> "ContractInvocation":
        outcomes = tuple(d["outcomes"])
        return cls(Path(d["program"]), d["runner"], d["variant"], d["mode"], int(d["seed"]),
                   outcomes, StatusLayout.from_dict(d["layout"], len(outcomes)),
                   tuple(d.get("extra", ())))


def invocation_from_dict(d: dict) -> Invocation:
    """What capture.json keeps, back into an invocation (for replay)."""
    if d.get("kind") == "contract":
        return ContractInvocation.from_dict(d)
    if d.get("kind") == "controlled":
        from .controlled import ControlledInvocation
        return ControlledInvocation.from_dict(d)
    from .commands import invocation_from_dict as external
    return external(d)


def run_batch(inv: Invocation, start: int, iterations: int, **kwargs) -> Batch:
    return inv.run_batch(start, iterations, **kwargs)


@dataclass
class Loop:
    """What a cell's batches added up to."""
    outcomes: dict[str, int]
    iterations: int = 0
    wall_s: float = 0.0
    charged_s: float = 0.0        # the wall time charged to the time budget (hangs excluded)
    program_s: float = 0.0        # time inside the programs, from their reports
    batches: list[tuple[int, int]] = field(default_factory=list)   # (start, requested)
    # The first failure of each outcome, in the order they came (so the first is the
    # cell's first failure): what a failing judgement points the replay at.
    first_by_outcome: dict[str, dict] = field(default_factory=dict)
    interruptions: list[Interruption] = field(default_factory=list)
    runner_version: str | None = None
    stderr: str = ""              # the programs' stderr (its tail), for sanitizer reports
    uncounted: int = 0            # ran, but lost with a process that kept no status
    sim: dict | None = None       # a runner that owns the schedule: what its batches said

    @property
    def failures(self) -> int:
        return self.iterations - self.outcomes.get("ok", 0)

    @property
    def first_failure(self) -> dict | None:
        return next(iter(self.first_by_outcome.values()), None)

    @property
    def replays(self) -> dict[str, str]:
        return {outcome: ff["replay"] for outcome, ff in self.first_by_outcome.items()}


class Progress(Protocol):
    def update(self, iterations: int, failures: int, charged_s: float) -> None: ...


def run_loop(inv: Invocation, budget: Budget, *, start: int = 0, first_batch: int = 10,
             stall_s: float | None = None, env: dict[str, str] | None = None,
             progress: Progress | None = None) -> Loop:
    """Runs batches until the budget is reached, resuming past every interruption.

    A hang costs one iteration, not the cell: the time hung iterations took (batch.hang_s)
    is not charged to the time budget, up to budget.hang_allowance_s per cell (past that it
    counts like any other time)."""
    loop = Loop({name: 0 for name in inv.outcomes})
    next_start, allowance = start, budget.hang_allowance_s
    while not budget.reached(loop.iterations, loop.charged_s):
        size = _batch_size(budget, loop.iterations, loop.charged_s,
                           loop.charged_s / loop.iterations if loop.iterations else None,
                           first_batch)
        stop = None if budget.seconds is None else Stop(
            budget.seconds - loop.charged_s, allowance,
            max(0, budget.min_iterations - loop.iterations))
        batch_began = time.monotonic()
        watch = None
        if progress is not None:
            def watch(done: int, failures: int) -> None:
                progress.update(loop.iterations + done, loop.failures + failures,
                                loop.charged_s + time.monotonic() - batch_began)
        try:
            batch = inv.run_batch(next_start, size, stall_s=stall_s, env=env, watch=watch,
                                  stop=stop)
        except KeyboardInterrupt as e:
            partial = getattr(e, "batch", None)   # what the batch counted before it
            if partial is not None:
                partial.wall_s = time.monotonic() - batch_began
                _add(loop, partial, offset_s=loop.wall_s, inv=inv)
            else:
                loop.wall_s += time.monotonic() - batch_began
            raise Interrupted(loop) from e
        free = min(batch.hang_s, allowance, batch.wall_s)
        allowance -= free
        loop.charged_s += batch.wall_s - free
        offset = loop.wall_s
        _add(loop, batch, offset_s=offset, inv=inv)
        next_start = batch.next_start
        if progress is not None:
            progress.update(loop.iterations, loop.failures, loop.charged_s)
    return loop


def _batch_size(budget: Budget, done: int, charged_s: float, per_iteration_s: float | None,
                first_batch: int) -> int:
    """The first batch is small, to measure speed; later ones fill the time left."""
    left = math.inf if budget.iterations is None else budget.iterations - done
    if per_iteration_s is None:
        size = first_batch
    elif budget.seconds is None:
        size = left
    else:
        size = math.ceil(max(0.0, budget.seconds - charged_s) / max(per_iteration_s, 1e-6))
        size = max(size, budget.min_iterations - done)
    return int(max(1, min(size, left, 10**9)))


def _add(loop: Loop, batch: Batch, offset_s: float, inv: Invocation) -> None:
    for name, n in batch.counts.items():
        loop.outcomes[name] = loop.outcomes.get(name, 0) + n
    loop.iterations += batch.counted
    loop.wall_s += batch.wall_s
    loop.uncounted += batch.uncounted
    loop.batches.append((batch.start, batch.requested))
    if batch.report:
        loop.program_s += float(batch.report.get("elapsed_s", 0.0))
        loop.runner_version = batch.report.get("runner_version", loop.runner_version)
        if batch.report.get("sim"):
            loop.sim = fold_sim(loop.sim, batch.report["sim"])
    if batch.interruption:
        loop.interruptions.append(batch.interruption)
    if batch.stderr:
        loop.stderr = (loop.stderr + batch.stderr)[-STDERR_KEEP:]
    for ff in _failures(batch, offset_s, inv):
        loop.first_by_outcome.setdefault(ff["outcome"], ff)


def fold_sim(sofar: dict | None, batch: dict) -> dict:
    """A cell's sim summary over its batches: schedules (each counted by the one batch that
    ran it) and failing hashes add up, and so do the schedules a search ran again to resume;
    each batch's run hash is kept in order, the first schedule file of each outcome stays; a
    search's programs are the last batch's (a batch goes on with the search it restores)."""
    if sofar is None:
        sofar = {"strategy": batch["strategy"], "schedules": 0, "rerun": 0, "run_hashes": [],
                 "failing": [], "schedule_files": {}}
    sofar["strategy"] = batch["strategy"]
    sofar["schedules"] += int(batch.get("schedules", 0))
    sofar["rerun"] += int(batch.get("rerun", 0))
    sofar["run_hashes"].append(batch.get("run_hash"))
    sofar["failing"] = (sofar["failing"] + list(batch.get("failing", [])))[:64]
    for outcome, path in batch.get("schedule_files", {}).items():
        sofar["schedule_files"].setdefault(outcome, path)
    if batch.get("searching"):
        sofar["searching"] = True
        sofar["programs"] = batch.get("programs", [])
        sofar["programs_searched"] = batch.get("programs_searched", 0)
        sofar["programs_exhausted"] = batch.get("programs_exhausted", 0)
    return sofar


def _failures(batch: Batch, offset_s: float, inv: Invocation) -> list[dict]:
    """The batch's first failure, then its interruption, with after_s measured from the
    cell's start and the run seed its replay needs."""
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
    for ff in found:
        ff["run_seed"] = inv.seed
    return found
