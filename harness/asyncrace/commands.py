"""Running an external reproducer's command (declared in cases/external.toml, read by
external.py): a program that loops itself, or one process per iteration, and the rules
that read a process's ending as an outcome (docs/external.md)."""
import os
import re
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .contract import StatusLayout
from .paths import ROOT
from .program import (EXIT_HANG, Batch, Interruption, ProgramError, Stop, Watch, exit_text,
                      first_line, from_report, from_status, from_stopped, parse_report,
                      run_interruptible, run_once)

COUNTS_LINE = "asyncrace-counts"


@dataclass(frozen=True)
class Rule:
    outcome: str
    on: str                       # stderr | stdout | exit | signal | timeout
    pattern: str | None = None    # stderr, stdout: a regex
    values: tuple[int, ...] = ()  # exit codes; signal numbers (empty: any signal)

    def matches(self, returncode: int, timed_out: bool, stdout: str, stderr: str) -> str | None:
        """The detail (the matching line, or the exit) when the rule matches, else None."""
        if self.on in ("stderr", "stdout"):
            found = re.search(self.pattern, stderr if self.on == "stderr" else stdout, re.MULTILINE)
            if not found:
                return None
            text = stderr if self.on == "stderr" else stdout
            line_start = text.rfind("\n", 0, found.start()) + 1
            line_end = text.find("\n", found.end())
            return text[line_start:line_end if line_end >= 0 else None].strip()[:250]
        if self.on == "timeout":
            return "past its time limit: process group killed" if timed_out else None
        if timed_out:
            return None
        if self.on == "exit":
            return exit_text(returncode) if returncode >= 0 and returncode in self.values else None
        if self.on == "signal":
            hit = returncode < 0 and (not self.values or -returncode in self.values)
            return exit_text(returncode) if hit else None
        raise ValueError(self.on)

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "on": self.on, "pattern": self.pattern,
                "values": list(self.values)}


def classify(rules: tuple[Rule, ...], returncode: int, timed_out: bool, stdout: str,
             stderr: str) -> tuple[str, str]:
    """(outcome, detail) of one process: the first matching rule, else the defaults."""
    for rule in rules:
        detail = rule.matches(returncode, timed_out, stdout, stderr)
        if detail is not None:
            return rule.outcome, detail
    if timed_out:
        return "hang", "past its time limit: process group killed"
    if returncode == 0:
        return "ok", ""
    return "crash", exit_text(returncode) + ("" if returncode < 0 else ": no rule maps it")


def _resolve(argv: tuple[str, ...], cwd: str | None) -> list[str]:
    """A relative path with a / names a file in the reproducer's cwd (from the repository
    root), or in the repository root; a bare name is looked up on PATH."""
    first = argv[0]
    base = ROOT / (cwd or ".")
    return [str(base / first) if "/" in first and not first.startswith("/") else first, *argv[1:]]


@dataclass(frozen=True)
class SelfLoopInvocation:
    """A program that runs many iterations itself (loop = "self")."""
    name: str
    cmdline: tuple[str, ...]
    seed: int
    outcomes: tuple[str, ...]
    timeout_s: float
    rules: tuple[Rule, ...]
    layout: StatusLayout | None    # the contract's, when the program writes --status
    trap: tuple[str, ...] = ()
    cwd: str | None = None         # the declaration's, for its command's path
    workdir: Path = ROOT           # where it runs (cwd, or the cell's scratch copy of it)

    def argv(self, start: int, iterations: int, *, trap: bool = False,
             status: Path | None = None) -> list[str]:
        argv = [*_resolve(self.cmdline, self.cwd), "--iterations", str(iterations), "--start",
                str(start), "--seed", str(self.seed)]
        if status is not None:
            argv += ["--status", str(status)]
        return argv + list(self.trap) if trap else argv

    def command(self, start: int, iterations: int, *, trap: bool = False) -> str:
        return shlex.join(self.argv(start, iterations, trap=trap))

    def env_for(self, start: int) -> dict[str, str]:
        return {}

    def run_batch(self, start: int, iterations: int, *, stall_s: float | None = None,
                  env: dict[str, str] | None = None, watch: Watch | None = None,
                  stop: Stop | None = None) -> Batch:
        """With a status file the driver stops the batch at `stop`; without one it cannot
        see progress, and the batch runs to its end (or to timeout_s x its iterations)."""
        with tempfile.TemporaryDirectory(prefix="asyncrace-status-") as tmp:
            status_path = Path(tmp) / "status" if self.layout else None
            argv = self.argv(start, iterations, status=status_path)
            done = run_interruptible(self, start, iterations, status_path, argv, env=env,
                                     layout=self.layout, status_path=status_path,
                                     stall_s=self.timeout_s, watch=watch, outcomes=self.outcomes,
                                     limit_s=None if self.layout else self.timeout_s * iterations,
                                     cwd=self.workdir, stop=stop if self.layout else None)
        command = shlex.join(argv)
        if done.stopped and done.status is not None:
            batch = from_stopped(self, start, iterations, done.status)
            batch.wall_s, batch.stderr, batch.pgid = done.wall_s, done.stderr, done.pgid
            batch.hang_s = done.hang_s
            return batch
        if done.returncode == 2 and not done.killed:
            raise ProgramError(f"{self.name} refused its arguments: {first_line(done.stderr)}\n  {command}")
        report = None if done.killed else _report(done.stdout, self.outcomes, start, iterations, command)
        if report is not None:
            if report.get("first_failure") and not report["first_failure"].get("replay"):
                ff = report["first_failure"]
                ff["replay"] = self.command(ff["iteration"], 1, trap=True)
            if done.returncode == EXIT_HANG or report.get("complete", True):
                batch = from_report(self, start, iterations, done.returncode, report, command)
            else:
                batch = _resumed(self, start, iterations, report)
        else:
            outcome, detail = classify(self.rules, done.returncode, done.killed, done.stdout, done.stderr)
            if outcome == "ok":   # ended cleanly, yet said nothing: not the contract
                raise ProgramError(f"{self.name}: {exit_text(done.returncode)} without a report on "
                                   f"stdout (the contract's JSON or '{COUNTS_LINE} ...'): "
                                   f"{done.stdout[-300:]!r}\n  {command}")
            if done.status is not None:
                batch = from_status(self, start, iterations, done.status, outcome, detail)
            else:
                lost = iterations - 1
                batch = Batch(start, iterations, {**{o: 0 for o in self.outcomes}, outcome: 1},
                              start + iterations, uncounted=lost,
                              interruption=Interruption(start, outcome, (
                                  f"{detail}; the program keeps no status file, so the batch's "
                                  f"other {lost} iterations are not counted (which one failed "
                                  f"is unknown: replay runs the batch)") if lost else detail))
        batch.wall_s, batch.stderr, batch.pgid = done.wall_s, done.stderr, done.pgid
        # Without a status file the hung iterations' time is not seen: each is taken to
        # have used its timeout.
        batch.hang_s = done.hang_s if self.layout else min(
            done.wall_s, (batch.counts.get("hang", 0)) * self.timeout_s)
        return batch

    def to_dict(self) -> dict:
        return {"kind": "self", "name": self.name, "command": list(self.cmdline), "seed": self.seed,
                "outcomes": list(self.outcomes), "timeout_s": self.timeout_s,
                "rules": [r.to_dict() for r in self.rules],
                "layout": self.layout.to_dict() if self.layout else None, "trap": list(self.trap),
                "cwd": self.cwd, "workdir": str(self.workdir)}


def _resumed(inv: SelfLoopInvocation, start: int, iterations: int, report: dict) -> Batch:
    """The program stopped early by itself, after reporting (e.g. a panic that ends the
    process): what it counted stands, and the loop resumes at its next_iteration."""
    counts = {name: int(report["outcomes"].get(name, 0)) for name in inv.outcomes}
    return Batch(start, iterations, counts, int(report["next_iteration"]), report=report,
                 first_failure=report.get("first_failure"))


def _report(stdout: str, outcomes: tuple[str, ...], start: int, iterations: int,
            command: str) -> dict | None:
    """The contract's JSON report or the counts line, as a report; None when neither."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    if last.startswith("{"):
        report = parse_report(last, command)
        unknown = sorted(set(report["outcomes"]) - set(outcomes))
        if unknown:
            raise ProgramError(f"the report counts unknown outcomes {', '.join(unknown)}\n  {command}")
        return report
    if not last.startswith(COUNTS_LINE + " "):
        return None
    fields = {}
    for part in last.split()[1:]:
        key, sep, value = part.partition("=")
        if not sep:
            raise ProgramError(f"{COUNTS_LINE}: {part!r} is not key=value\n  {command}")
        fields[key] = value
    try:
        done = int(fields.pop("iterations"))
        first = fields.pop("first_failure", None)
        first_outcome = fields.pop("first_outcome", None)
        counts = {k: int(v) for k, v in fields.items()}
    except (KeyError, ValueError) as e:
        raise ProgramError(f"{COUNTS_LINE}: {e}: {last!r}\n  {command}") from e
    unknown = sorted(set(counts) - set(outcomes))
    if unknown:
        raise ProgramError(f"{COUNTS_LINE}: unknown outcomes {', '.join(unknown)} (accepted: "
                           f"{', '.join(outcomes)})\n  {command}")
    if sum(counts.values()) != done:
        raise ProgramError(f"{COUNTS_LINE}: the counts add up to {sum(counts.values())}, not "
                           f"iterations={done}\n  {command}")
    ff = None
    if first is not None:
        ff = {"iteration": int(first), "outcome": first_outcome or next(
                  (o for o in outcomes if o != "ok" and counts.get(o)), "crash"),
              "detail": "", "after_s": None, "replay": None}
    return {"outcomes": counts, "next_iteration": start + done, "complete": done == iterations,
            "first_failure": ff}


@dataclass(frozen=True)
class ProcessInvocation:
    """A command run once per iteration (loop = "process")."""
    name: str
    cmdline: tuple[str, ...]
    seed: int
    outcomes: tuple[str, ...]
    timeout_s: float
    rules: tuple[Rule, ...]
    cwd: str | None = None         # the declaration's, for its command's path
    workdir: Path = ROOT           # where it runs (cwd, or the cell's scratch copy of it)

    def argv(self, start: int, iterations: int, *, trap: bool = False) -> list[str]:
        return _resolve(self.cmdline, self.cwd)

    def env_for(self, start: int) -> dict[str, str]:
        return {"ASYNCRACE_ITERATION": str(start), "ASYNCRACE_SEED": str(self.seed)}

    def command(self, start: int, iterations: int, *, trap: bool = False) -> str:
        prefix = " ".join(f"{k}={v}" for k, v in self.env_for(start).items())
        where = "" if self.workdir == ROOT else f"cd {shlex.quote(str(self.workdir))} && "
        loop = "" if iterations == 1 else f" (and so on for {iterations} iterations)"
        return f"{where}{prefix} {shlex.join(self.argv(start, 1))}{loop}"

    def run_batch(self, start: int, iterations: int, *, stall_s: float | None = None,
                  env: dict[str, str] | None = None, watch: Watch | None = None,
                  stop: Stop | None = None) -> Batch:
        """One process per iteration; the batch ends early at a crash or a hang, or when
        `stop` says the cell's time is spent (checked before each process, so a budget
        overshoots by one process at most). Ctrl-C: the process's group is killed and what
        the batch counted goes with the exception."""
        counts = {o: 0 for o in self.outcomes}
        batch = Batch(start, iterations, counts, start + iterations)
        base = dict(os.environ if env is None else env)
        argv = self.argv(start, iterations)
        began = time.monotonic()
        for i in range(start, start + iterations):
            if stop is not None and stop.reached(time.monotonic() - began, batch.hang_s, i - start):
                batch.requested, batch.next_start = i - start, i
                break
            try:
                done = run_once(argv, env={**base, **self.env_for(i)}, timeout_s=self.timeout_s,
                                cwd=self.workdir)
            except KeyboardInterrupt as e:
                batch.next_start = i
                e.batch = batch
                raise
            outcome, detail = classify(self.rules, done.returncode, done.killed, done.stdout, done.stderr)
            counts[outcome] += 1
            batch.wall_s += done.wall_s
            if outcome != "ok" or done.returncode != 0:
                batch.stderr = (batch.stderr + done.stderr)[-64 * 1024:]
            batch.pgid = done.pgid
            if outcome != "ok" and batch.first_failure is None:
                batch.first_failure = {"iteration": i, "outcome": outcome, "detail": detail,
                                       "after_s": time.monotonic() - began,
                                       "replay": self.command(i, 1)}
            if watch:
                watch(i - start + 1, i - start + 1 - counts["ok"])
            if outcome == "hang":            # free up to the allowance; a timeout a rule
                batch.hang_s += done.wall_s  # calls something else is charged
            if outcome in ("crash", "hang"):
                batch.interruption = Interruption(i, outcome, detail)
                batch.first_failure = None if batch.first_failure["iteration"] == i else batch.first_failure
                batch.next_start = i + 1
                break
        return batch

    def to_dict(self) -> dict:
        return {"kind": "process", "name": self.name, "command": list(self.cmdline),
                "seed": self.seed, "outcomes": list(self.outcomes), "timeout_s": self.timeout_s,
                "rules": [r.to_dict() for r in self.rules], "cwd": self.cwd,
                "workdir": str(self.workdir)}


def _rules(d: dict) -> tuple[Rule, ...]:
    return tuple(Rule(r["outcome"], r["on"], r.get("pattern"), tuple(r.get("values", ())))
                 for r in d.get("rules", ()))


def invocation_from_dict(d: dict):
    workdir = Path(d.get("workdir") or ROOT)
    if d["kind"] == "self":
        outcomes = tuple(d["outcomes"])
        layout = StatusLayout.from_dict(d["layout"], len(outcomes)) if d.get("layout") else None
        return SelfLoopInvocation(d["name"], tuple(d["command"]), int(d["seed"]), outcomes,
                                  float(d["timeout_s"]), _rules(d), layout, tuple(d.get("trap", ())),
                                  d.get("cwd"), workdir)
    if d["kind"] == "process":
        return ProcessInvocation(d["name"], tuple(d["command"]), int(d["seed"]), tuple(d["outcomes"]),
                                 float(d["timeout_s"]), _rules(d), d.get("cwd"), workdir)
    raise ValueError(f"unknown invocation kind {d.get('kind')!r}")
