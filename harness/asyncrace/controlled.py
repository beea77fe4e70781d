"""A program of the user's own under the preloaded scheduler (build/lib/libasyncrace_sched.so,
docs/preload.md): one process per schedule, its failures as schedules that replay.

The program is not changed or rebuilt: LD_PRELOAD puts the interposer and the scheduler's
core under it, its main becomes the first task of one run, and the environment says which
strategy decides and with what seed. Each process writes how its run ended (a JSON
object) and its schedule; the driver keeps the schedule of each failing outcome's first
iteration. A mode picks the strategy, as on the case programs:

    natural     pos (a sampler: each iteration its own seed)
    chaos       pct, its k measured by profile runs (uniform random) first
    exhaustive  delay bound 2: one search carried from process to process in a state
                file, to its end; then the next program (seed), as sim does

A process whose run the scheduler ended counts as its outcome (deadlock; step_bound as
hang; uncontrolled, naming what escaped); any other ending is read by the reproducer's
rules like any process of its own. A process that wrote no result never ran under the
scheduler (a static binary, or the preload refused): that is an error in one line, never a
count.
"""
import functools
import hashlib
import json
import os
import shlex
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .commands import Rule, _resolve, classify
from .paths import ROOT
from .program import Batch, Interruption, ProgramError, Stop, Watch, first_line, run_once
from .results import atomic_write_json, atomic_write_text

PRELOAD = ROOT / "build" / "lib" / "libasyncrace_sched.so"
MODES = ("natural", "chaos", "exhaustive")
MODE_STRATEGY = {"natural": "pos", "chaos": "pct", "exhaustive": "delay"}
STRATEGIES = ("random", "pos", "surw", "pct", "dfs", "dfs-sleep", "dpor", "delay")
SEARCHES = ("dfs", "dfs-sleep", "dpor", "delay")
PROFILE_RUNS = 5
MASK = 2**64 - 1
ENDED_BY_SCHEDULER = {"deadlock": "deadlock", "step_bound": "hang", "uncontrolled": "uncontrolled"}


def iteration_seed(seed: int, i: int) -> int:
    """splitmix64 of (seed, i): each sampled schedule its own seed."""
    z = (seed * 0x9E3779B97F4A7C15 + i + 1) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=64)
def not_dynamic(path: str) -> str | None:
    """Why the preload cannot work for this executable (None: it can): a static binary has
    no dynamic loader to read LD_PRELOAD."""
    exe = shutil.which(path) if "/" not in path else path
    if exe is None or not os.path.isfile(exe):
        return None               # the run says what is wrong with it
    try:
        with open(exe, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF":
                return None       # a script: its interpreter is what runs
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return None
    kinds = {struct.unpack_from("<I", table, k * phentsize)[0] for k in range(phnum)}
    if 3 not in kinds:            # PT_INTERP
        return (f"{path} is statically linked: no dynamic loader reads LD_PRELOAD, so the "
                f"scheduler cannot be put under it")
    return None


@dataclass(frozen=True)
class ControlledInvocation:
    """A command run once per schedule under the preloaded scheduler."""
    name: str
    cmdline: tuple[str, ...]
    seed: int
    outcomes: tuple[str, ...]
    timeout_s: float
    rules: tuple[Rule, ...]
    mode: str
    strategy: str
    points: tuple[str, ...] = ()
    bound: int | str = 2          # or none: unbounded
    pct_steps: int = 0            # pct's k; 0: measured by profile runs at the first batch
    cwd: str | None = None
    workdir: Path = ROOT
    schedules: str | None = None  # where the first failing schedule of each outcome goes
    state: str | None = None      # a search's state between processes
    # A search's own record across batches: the seed of the program it is on, the
    # programs searched so far (what the cell claims)
    search: dict = field(default_factory=dict, compare=False, repr=False)
    controlled = True

    @property
    def searching(self) -> bool:
        return self.strategy in SEARCHES

    def with_schedules(self, folder: Path) -> "ControlledInvocation":
        return replace(self, schedules=str(folder))

    def with_search_state(self, path: Path) -> "ControlledInvocation":
        return replace(self, state=str(path))

    def argv(self, start: int, iterations: int, *, trap: bool = False) -> list[str]:
        return _resolve(self.cmdline, self.cwd)

    def program_seed(self, i: int) -> int:
        """A search runs one program (seed) schedule after schedule; a sampler draws one
        per iteration."""
        return self.search.get("seed", self.seed) if self.searching else iteration_seed(self.seed, i)

    def env_for(self, start: int, steps: int | None = None) -> dict[str, str]:
        env = {"LD_PRELOAD": str(PRELOAD), "ASYNCRACE_STRATEGY": self.strategy,
               "ASYNCRACE_SEED": str(self.program_seed(start)), "ASYNCRACE_BOUND": str(self.bound),
               "ASYNCRACE_ITERATION": str(start)}
        if self.points:
            env["ASYNCRACE_POINTS"] = ",".join(self.points)
        k = self.pct_steps if steps is None else steps
        if self.strategy == "pct" and k:
            env["ASYNCRACE_PCT_STEPS"] = str(k)
        return env

    def command(self, start: int, iterations: int, *, trap: bool = False) -> str:
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env_for(start).items())
        where = "" if self.workdir == ROOT else f"cd {shlex.quote(str(self.workdir))} && "
        loop = "" if iterations == 1 else f" (and so on for {iterations} schedules)"
        return f"{where}{prefix} {shlex.join(self.argv(start, 1))}{loop}"

    # ---- one process ----------------------------------------------------------------

    def run_one(self, env: dict[str, str], *, replay: Path | None = None,
                schedule: Path | None = None, state: Path | None = None) -> tuple[dict, object]:
        """(the run's result, the finished process); ProgramError when it never ran under
        the scheduler."""
        why = not_dynamic(self.argv(0, 1)[0])
        if why:
            raise ProgramError(f"{self.name}: {why}")
        with tempfile.TemporaryDirectory(prefix="asyncrace-ctl-") as tmp:
            result = Path(tmp) / "result.json"
            env = {**env, "ASYNCRACE_RESULT": str(result)}
            if replay is not None:
                env["ASYNCRACE_REPLAY"] = str(replay)
            if schedule is not None:
                env["ASYNCRACE_SCHEDULE"] = str(schedule)
            if state is not None:
                env["ASYNCRACE_SEARCH_STATE"] = str(state)
            done = run_once(self.argv(0, 1), env=env, timeout_s=self.timeout_s, cwd=self.workdir)
            if done.returncode == 2 and "asyncrace_sched:" in done.stderr:
                raise ProgramError(f"{self.name}: the scheduler refused its configuration: "
                                   f"{first_line(done.stderr)}")
            try:
                res = json.loads(result.read_text())
            except (OSError, ValueError):
                if done.killed:   # hung before the scheduler could say anything
                    return {"outcome": "timeout", "detail": "", "decisions": 0, "hash": "",
                            "exhausted": False}, done
                raise ProgramError(
                    f"{self.name}: not under the scheduler: the process wrote no result "
                    f"(LD_PRELOAD={PRELOAD} did not load, or the program ended past it): "
                    f"{first_line(done.stderr) or 'exit ' + str(done.returncode)}\n  "
                    f"{self.command(0, 1)}")
        return res, done

    def outcome_of(self, res: dict, done) -> tuple[str, str]:
        if res["outcome"] in ENDED_BY_SCHEDULER:
            return ENDED_BY_SCHEDULER[res["outcome"]], res["detail"]
        outcome, detail = classify(self.rules, done.returncode, done.killed, done.stdout,
                                   done.stderr)
        if outcome != "ok" and res.get("detail"):
            detail = f"{detail}; {res['detail']}" if detail else res["detail"]
        return outcome, detail

    def measure_k(self, base: dict[str, str]) -> int:
        """pct's k: the most decisions of PROFILE_RUNS uniformly random schedules."""
        most = 1
        for j in range(PROFILE_RUNS):
            env = {**base, **self.env_for(j), "ASYNCRACE_STRATEGY": "random",
                   "ASYNCRACE_SEED": str(iteration_seed(self.seed ^ 0x5EED, j))}
            res, _ = self.run_one(env)
            if res.get("status") != "step_bound":
                most = max(most, int(res.get("decisions", 0)))
        return most

    # ---- a batch ----------------------------------------------------------------------

    def run_batch(self, start: int, iterations: int, *, stall_s: float | None = None,
                  env: dict[str, str] | None = None, watch: Watch | None = None,
                  stop: Stop | None = None) -> Batch:
        counts = {o: 0 for o in self.outcomes}
        batch = Batch(start, iterations, counts, start + iterations)
        base = dict(os.environ if env is None else env)
        k = self.pct_steps
        if self.strategy == "pct" and not k:      # measured once per cell
            k = self.search.get("k") or self.search.setdefault("k", self.measure_k(base))
        sim = {"strategy": self.strategy + (f"(k={k})" if k else ""), "schedules": 0,
               "run_hash": "", "failing": [], "schedule_files": {}}
        if self.searching:
            programs = self.search.setdefault("programs", [])
            sim.update(searching=True, programs=programs, programs_searched=len(programs),
                       programs_exhausted=sum(p["exhausted"] for p in programs))
        state = Path(self.state) if self.state else None
        tmp = Path(tempfile.mkdtemp(prefix="asyncrace-ctl-batch-"))
        if self.searching and state is None:
            state = tmp / "search.state"
        began = time.monotonic()
        try:
            for i in range(start, start + iterations):
                if stop is not None and stop.reached(time.monotonic() - began, batch.hang_s, i - start):
                    batch.requested, batch.next_start = i - start, i
                    break
                schedule = tmp / f"{i}.schedule.json"
                res, done = self.run_one({**base, **self.env_for(i, k)}, schedule=schedule,
                                         state=state)
                outcome, detail = self.outcome_of(res, done)
                counts[outcome] += 1
                sim["schedules"] += 1
                sim["run_hash"] = hashlib.sha256(
                    f"{sim['run_hash']}{res.get('hash')}".encode()).hexdigest()[:16]
                batch.wall_s += done.wall_s
                batch.pgid = done.pgid
                if outcome != "ok":
                    batch.stderr = (batch.stderr + done.stderr)[-64 * 1024:]
                    sim["failing"] = (sim["failing"] + [res.get("hash")])[:64]
                    kept = self._keep(schedule, outcome)
                    if kept and outcome not in sim["schedule_files"]:
                        sim["schedule_files"][outcome] = kept
                    if batch.first_failure is None:
                        batch.first_failure = {"iteration": i, "outcome": outcome,
                                               "detail": detail[:300],
                                               "after_s": time.monotonic() - began,
                                               "replay": self.command(i, 1), "schedule": kept}
                if outcome == "hang":
                    batch.hang_s += done.wall_s
                if watch:
                    watch(i - start + 1, i - start + 1 - counts["ok"])
                if self.searching:
                    self._searched(sim, res, state)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        batch.report = {"sim": sim, "outcomes": counts}
        return batch

    def _keep(self, schedule: Path, outcome: str) -> str | None:
        """The first failing schedule of each outcome, kept in the cell's schedules folder
        (none without one)."""
        if not schedule.is_file() or not self.schedules:
            return None
        folder = Path(self.schedules)
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{outcome}.json"
        if not dest.exists():
            tmp = folder / f".{outcome}.json.tmp"
            shutil.copyfile(schedule, tmp)
            os.replace(tmp, dest)
        return str(dest)

    def _searched(self, sim: dict, res: dict, state: Path) -> None:
        """A search's bookkeeping after one of its schedules: an exhausted program ends
        its search; the next schedule starts the next program's (the next seed)."""
        programs = sim["programs"]
        if not programs or programs[-1]["exhausted"]:
            programs.append({"seed": self.program_seed(0), "schedules": 0, "exhausted": False})
            sim["programs_searched"] = len(programs)
        programs[-1]["schedules"] += 1
        if res.get("exhausted"):
            programs[-1]["exhausted"] = True
            sim["programs_exhausted"] += 1
            state.unlink(missing_ok=True)
            self.search["seed"] = self.program_seed(0) + 1

    def to_dict(self) -> dict:
        return {"kind": "controlled", "name": self.name, "command": list(self.cmdline),
                "seed": self.seed, "outcomes": list(self.outcomes), "timeout_s": self.timeout_s,
                "rules": [r.to_dict() for r in self.rules], "mode": self.mode,
                "strategy": self.strategy, "points": list(self.points), "bound": self.bound,
                "pct_steps": self.pct_steps, "cwd": self.cwd, "workdir": str(self.workdir)}

    @classmethod
    def from_dict(cls, d: dict) -> "ControlledInvocation":
        rules = tuple(Rule(r["outcome"], r["on"], r.get("pattern"), tuple(r.get("values", ())))
                      for r in d.get("rules", ()))
        return cls(d["name"], tuple(d["command"]), int(d["seed"]), tuple(d["outcomes"]),
                   float(d["timeout_s"]), rules, d["mode"], d["strategy"], tuple(d["points"]),
                   d["bound"] if d["bound"] == "none" else int(d["bound"]),
                   int(d.get("pct_steps", 0)), d.get("cwd"),
                   Path(d.get("workdir") or ROOT))


# ---- a captured failure: its schedule, replayed ---------------------------------------------

def capture(failure, dest: Path) -> dict:
    """The failing schedule, a replay.sh that follows it, and one replay checked: the same
    outcome and the same decisions (the schedule's hash), without leaving the schedule."""
    inv: ControlledInvocation = failure.inv
    dest.mkdir(parents=True, exist_ok=True)
    schedule = dest / "schedule.json"
    shutil.copyfile(failure.schedule, schedule)
    env = {k: v for k, v in inv.env_for(failure.iteration).items()
           if k in ("LD_PRELOAD", "ASYNCRACE_POINTS")}
    env["ASYNCRACE_REPLAY"] = str(schedule)
    # A Rust panic with a backtrace runs other code (and makes other decisions) than one
    # without: a replay gets the recording's setting, whatever the replaying shell has.
    backtrace = os.environ.get("RUST_BACKTRACE")
    pinned = {"RUST_BACKTRACE": backtrace} if backtrace is not None else {}
    command = ("" if pinned else "env -u RUST_BACKTRACE ") + " ".join(
        f"{k}={shlex.quote(v)}" for k, v in {**pinned, **env}.items()) + " " + shlex.join(inv.argv(0, 1))
    info = {"cell": failure.cell, "iteration": failure.iteration, "outcome": failure.outcome,
            "invocation": inv.to_dict(), "method": "preload-schedule", "schedule": str(schedule),
            "hash": json.loads(schedule.read_text()).get("hash"), "command": command,
            "replay_sh": str(dest / "replay.sh"), "rust_backtrace": backtrace,
            "attempts": 0, "reproduced": False,
            "rr_replay": None, "bounds_hit": [], "notes": []}
    atomic_write_text(dest / "command.txt", command + "\n")
    atomic_write_text(dest / "replay.sh",
                      f"#!/bin/sh\n# {failure.cell}: iteration {failure.iteration} "
                      f"({failure.outcome}), its schedule exactly, under the preloaded scheduler.\n"
                      f"cd {shlex.quote(str(inv.workdir))}\n"
                      + (f"export RUST_BACKTRACE={shlex.quote(backtrace)}\n" if backtrace is not None
                         else "unset RUST_BACKTRACE\n")
                      + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
                      + f"exec {shlex.join(inv.argv(0, 1))} \"$@\"\n")
    (dest / "replay.sh").chmod(0o755)
    try:
        same, told = replay_capture(dest, info, 1)
        info["attempts"], info["reproduced"] = 1, same
        if not same:
            info["notes"].append(told)
    except ProgramError as e:
        info["notes"].append(f"replay failed: {e}")
    # The decisions the failure turns on: schedule.minimal.json and schedule.explain.txt.
    from .explain import ExplainError, explain_preload
    try:
        told = explain_preload(inv, schedule, dest / "schedule", failure.outcome)
        info["explanation"] = {k: v for k, v in told.items() if k != "text"}
    except (ExplainError, ProgramError, OSError, ValueError, KeyError) as e:
        info["notes"].append(f"no explanation: {e}")
    info["files"] = sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))
    atomic_write_json(dest / "capture.json", info)
    return info


def replay_once(inv: ControlledInvocation, schedule: Path,
                backtrace: str | None = None) -> tuple[str, dict]:
    """backtrace: RUST_BACKTRACE as it was recorded (None: unset)."""
    env = {**{k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}, **inv.env_for(0)}
    if backtrace is not None:
        env["RUST_BACKTRACE"] = backtrace
    res, done = inv.run_one(env, replay=schedule)
    outcome, _ = inv.outcome_of(res, done)
    return outcome, res


def replay_capture(capture_dir: Path, info: dict, attempts: int) -> tuple[bool, str]:
    """True when every replay followed the schedule to the captured outcome with the
    captured decisions."""
    inv = ControlledInvocation.from_dict(info["invocation"])
    schedule = Path(info["schedule"])
    for attempt in range(1, attempts + 1):
        outcome, res = replay_once(inv, schedule,
                                   info.get("rust_backtrace", os.environ.get("RUST_BACKTRACE")))
        if res.get("diverged"):
            return False, (f"{info['cell']}: replay {attempt} left its schedule: "
                           f"{res.get('divergence')}: not a reproduction")
        if outcome != info["outcome"]:
            return False, f"{info['cell']}: replay {attempt} gave {outcome}, the capture {info['outcome']}"
        if res.get("hash") != info["hash"]:
            return False, (f"{info['cell']}: replay {attempt} made other decisions (hash "
                           f"{res.get('hash')}, the capture's {info['hash']})")
    return True, (f"{info['cell']} iteration {info['iteration']}: {info['outcome']} again, with "
                  f"the same decisions ({info['hash']}), in {attempts} of {attempts} replays; "
                  f"command: {info['command']}")
