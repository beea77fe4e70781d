"""Reproducers declared in cases/external.toml (docs/external.md): any command as a cell.

    loop = "self"     the program loops itself: the driver appends --iterations N --start I
                      --seed S (and --status FILE with status = true) and reads the
                      contract's JSON report, or one line
                      ``asyncrace-counts iterations=N ok=N <outcome>=N ... [first_failure=I
                      first_outcome=NAME]``, from the end of stdout
    loop = "process"  one process is one iteration: its outcome comes from the declared
                      rules (first match wins), else exit 0 is ok, a timeout a hang and any
                      other ending a crash; the iteration number and run seed are in the
                      environment (ASYNCRACE_ITERATION, ASYNCRACE_SEED)

A declaration with a mistake is one line naming the file, the entry and the key
(DeclarationError), and nothing runs. ``needs`` not met makes the cells skip with the
package to install: the one sanctioned skip.
"""
import fcntl
import json
import os
import re
import shlex
import shutil
import signal as signals
import subprocess
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .contract import DRIVER_OUTCOMES, KINDS, StatusLayout
from .paths import ROOT, shown
from .program import (EXIT_HANG, Batch, Interruption, ProgramError, Watch, exit_text,
                      first_line, from_report, from_status, parse_report, run_process)

NAME = re.compile(r"^[A-Za-z0-9_]+$")
LOOPS = ("self", "process")
RULE_KEYS = ("stderr", "stdout", "exit", "signal", "timeout")
REPRODUCER_KEYS = ("name", "runner", "mode", "summary", "upstream", "doc", "build", "needs",
                   "loop", "timeout_s", "status", "trap", "outcomes", "variants")
VARIANT_KEYS = ("command", "expect", "twin", "what")
COUNTS_LINE = "asyncrace-counts"
BUILD_TIMEOUT_S = 1800


class DeclarationError(ValueError):
    """One line: the file, the entry and the key, and what is wrong."""


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


@dataclass(frozen=True)
class Need:
    package: str
    command: str | None = None
    path: str | None = None

    def met(self) -> bool:
        if self.command is not None:
            return shutil.which(self.command) is not None
        return (ROOT / self.path).exists()

    def text(self) -> str:
        what = f"command {self.command}" if self.command else f"{self.path}"
        return f"needs {what}: apt-get install {self.package}"


@dataclass(frozen=True)
class ExternalVariant:
    name: str
    command: tuple[str, ...]
    kind: str
    outcome: str
    twin: str | None
    what: str


@dataclass(frozen=True)
class Reproducer:
    name: str
    runner: str
    mode: str
    summary: str
    upstream: str
    build: tuple[str, ...] | None
    needs: tuple[Need, ...]
    loop: str
    timeout_s: float
    status: bool
    trap: tuple[str, ...]
    rules: tuple[Rule, ...]
    variants: tuple[ExternalVariant, ...]
    source: str                   # the file it was declared in (or "command line")

    def unmet(self) -> list[Need]:
        return [n for n in self.needs if not n.met()]

    def outcomes(self, vocabulary: tuple[str, ...] | None) -> tuple[str, ...]:
        used = {r.outcome for r in self.rules} | {v.outcome for v in self.variants}
        if vocabulary:
            return vocabulary
        return tuple(dict.fromkeys(["ok", *sorted(used - set(DRIVER_OUTCOMES)), "crash", "hang"]))


# ---- reading a declaration ------------------------------------------------------------

class _Where:
    def __init__(self, source: str, entry: str) -> None:
        self.source, self.entry = source, entry

    def fail(self, key: str, problem: str) -> DeclarationError:
        return DeclarationError(f"{self.source}: reproducer {self.entry}: {key}: {problem}")


def _name(where: _Where, d: dict, key: str, default: str | None = None) -> str:
    value = d.get(key, default)
    if value is None:
        raise where.fail(key, "missing")
    if not isinstance(value, str) or not NAME.match(value):
        raise where.fail(key, f"{value!r}: expected letters, digits and _ only")
    return value


def _argv(where: _Where, value, key: str) -> tuple[str, ...]:
    if not (isinstance(value, list) and value and all(isinstance(a, str) for a in value)):
        raise where.fail(key, f"expected a non-empty list of strings, got {value!r}")
    return tuple(value)


def _rule(where: _Where, outcome: str, spec) -> Rule:
    key = f"outcomes.{outcome}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in RULE_KEYS:
        raise where.fail(key, f"expected one of {{ {' | '.join(f'{k} = ...' for k in RULE_KEYS)} }},"
                              f" got {spec!r}")
    (on, value), = spec.items()
    if on in ("stderr", "stdout"):
        if not isinstance(value, str):
            raise where.fail(f"{key}.{on}", f"expected a regex string, got {value!r}")
        try:
            re.compile(value)
        except re.error as e:
            raise where.fail(f"{key}.{on}", f"regex {value!r} does not compile: {e}")
        return Rule(outcome, on, pattern=value)
    if on == "timeout":
        if value is not True:
            raise where.fail(f"{key}.timeout", f"expected true, got {value!r}")
        return Rule(outcome, on)
    values = value if isinstance(value, list) else [value]
    if on == "exit":
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values):
            raise where.fail(f"{key}.exit", f"expected exit codes 0..255, got {value!r}")
        return Rule(outcome, on, values=tuple(values))
    if value == "any":
        return Rule(outcome, on)
    numbers = []
    for v in values:
        if isinstance(v, str) and isinstance(getattr(signals, v, None), signals.Signals):
            numbers.append(int(getattr(signals, v)))
        elif isinstance(v, int) and not isinstance(v, bool) and 0 < v < 128:
            numbers.append(v)
        else:
            raise where.fail(f"{key}.signal", f"expected \"any\", a signal name or number, got {v!r}")
    return Rule(outcome, on, values=tuple(numbers))


def _command_exists(argv0: str) -> bool:
    return (ROOT / argv0).exists() if "/" in argv0 else shutil.which(argv0) is not None


def parse_reproducer(d: dict, source: str, index: int,
                     vocabulary: tuple[str, ...] | None) -> Reproducer:
    where = _Where(source, f"#{index + 1}")
    if not isinstance(d, dict):
        raise where.fail("reproducer", "expected a table")
    name = _name(where, d, "name")
    where = _Where(source, name)
    unknown = sorted(set(d) - set(REPRODUCER_KEYS))
    if unknown:
        raise where.fail(unknown[0], f"unknown key; accepted: {', '.join(REPRODUCER_KEYS)}")
    runner, mode = _name(where, d, "runner"), _name(where, d, "mode", "natural")
    loop = d.get("loop", "process")
    if loop not in LOOPS:
        raise where.fail("loop", f"{loop!r}: expected \"self\" or \"process\"")
    timeout_s = d.get("timeout_s", 10)
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not 0 < timeout_s <= 86400:
        raise where.fail("timeout_s", f"expected seconds above 0, got {timeout_s!r}")
    status = d.get("status", False)
    if not isinstance(status, bool) or (status and loop != "self"):
        raise where.fail("status", "true or false, and true only with loop = \"self\"")
    build = _argv(where, d["build"], "build") if "build" in d else None
    trap = _argv(where, d["trap"], "trap") if "trap" in d else ()
    needs = []
    for k, n in enumerate(d.get("needs", [])):
        key = f"needs[{k}]"
        if not (isinstance(n, dict) and isinstance(n.get("package"), str)
                and (isinstance(n.get("command"), str)) != (isinstance(n.get("path"), str))
                and set(n) <= {"package", "command", "path"}):
            raise where.fail(key, f"expected {{ command = \"...\", package = \"...\" }} or "
                                  f"{{ path = \"...\", package = \"...\" }}, got {n!r}")
        needs.append(Need(n["package"], n.get("command"), n.get("path")))
    outcomes_table = d.get("outcomes", {})
    if not isinstance(outcomes_table, dict):
        raise where.fail("outcomes", "expected a table of outcome = { rule }")
    known = set(vocabulary) if vocabulary else None

    def check_outcome(outcome: str, key: str) -> None:
        if outcome == "ok" and key.startswith("outcomes"):
            raise where.fail(key, "ok is what no rule matching means: it takes no rule")
        if known is not None and outcome not in known:
            raise where.fail(key, f"unknown outcome {outcome!r}; accepted: {', '.join(vocabulary)}")
        if not NAME.match(outcome):
            raise where.fail(key, f"{outcome!r}: expected letters, digits and _ only")
    rules = []
    for outcome, spec in outcomes_table.items():
        check_outcome(outcome, f"outcomes.{outcome}")
        rules.append(_rule(where, outcome, spec))
    rule_outcomes = {r.outcome for r in rules} | set(DRIVER_OUTCOMES)
    variants_table = d.get("variants")
    if not isinstance(variants_table, dict) or not variants_table:
        raise where.fail("variants", "expected at least one [reproducer.variants.NAME] table")
    variants = []
    for vname, v in variants_table.items():
        key = f"variants.{vname}"
        if not NAME.match(vname):
            raise where.fail(key, "expected letters, digits and _ only in the name")
        if not isinstance(v, dict):
            raise where.fail(key, "expected a table")
        unknown = sorted(set(v) - set(VARIANT_KEYS))
        if unknown:
            raise where.fail(f"{key}.{unknown[0]}", f"unknown key; accepted: {', '.join(VARIANT_KEYS)}")
        if "command" not in v:
            raise where.fail(f"{key}.command", "missing")
        command = _argv(where, v["command"], f"{key}.command")
        if build is None and not _command_exists(command[0]) and not any(
                n.command == command[0] or n.path == command[0] for n in needs):
            raise where.fail(f"{key}.command", f"{command[0]} does not exist "
                                               f"(and no build step makes it)")
        expect = v.get("expect")
        if not isinstance(expect, dict) or expect.get("kind") not in KINDS or set(expect) - {"kind", "outcome"}:
            raise where.fail(f"{key}.expect", f"expected {{ kind = \"never\" }} or {{ kind = "
                                              f"\"sometimes\"|\"always\", outcome = \"...\" }}, got {expect!r}")
        kind, outcome = expect["kind"], expect.get("outcome", "ok")
        if (kind == "never") != (outcome == "ok"):
            raise where.fail(f"{key}.expect.outcome", f"{kind} takes {'no outcome' if kind == 'never' else 'a failure outcome'}")
        if kind != "never":
            check_outcome(outcome, f"{key}.expect.outcome")
            if loop == "process" and outcome not in rule_outcomes:
                raise where.fail(f"{key}.expect.outcome", f"{outcome!r}: no rule in [outcomes] "
                                                          f"gives it (rules: {', '.join(sorted(rule_outcomes))})")
        twin = v.get("twin")
        if twin is not None and (twin not in variants_table or twin == vname or kind != "never"):
            raise where.fail(f"{key}.twin", f"{twin!r}: a never variant's twin names another variant "
                                            f"of this reproducer")
        what = v.get("what", "")
        variants.append(ExternalVariant(vname, command, kind, outcome, twin, str(what)))
    for key in ("summary", "upstream", "doc"):
        if not isinstance(d.get(key, ""), str):
            raise where.fail(key, "expected a string")
    return Reproducer(name, runner, mode, d.get("summary", ""), d.get("upstream", ""), build,
                      tuple(needs), loop, float(timeout_s), status, trap, tuple(rules),
                      tuple(variants), source)


def load(path: Path, vocabulary: tuple[str, ...] | None = None) -> list[Reproducer]:
    """Every [[reproducer]] of the file; [] when the file does not exist."""
    source = shown(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DeclarationError(f"{source}: not valid TOML: {e}")
    unknown = sorted(set(data) - {"reproducer"})
    if unknown:
        raise DeclarationError(f"{source}: {unknown[0]}: unknown key; accepted: [[reproducer]]")
    entries = data.get("reproducer", [])
    if not isinstance(entries, list):
        raise DeclarationError(f"{source}: reproducer: expected [[reproducer]] tables")
    found = [parse_reproducer(d, source, i, vocabulary) for i, d in enumerate(entries)]
    names = [r.name for r in found]
    for name in names:
        if names.count(name) > 1:
            raise DeclarationError(f"{source}: reproducer {name}: name: declared twice")
    return found


# ---- build steps: once per session -------------------------------------------------------

def build_once(rep: Reproducer, lock_dir: Path) -> tuple[bool, str]:
    """Runs the reproducer's build step once per lock_dir (one run: every xdist worker and
    the controller share it). (ok, what happened in one line or its output's tail)."""
    if rep.build is None:
        return True, "no build step"
    lock_dir.mkdir(parents=True, exist_ok=True)
    record = lock_dir / f"{rep.name}.json"
    with open(lock_dir / f"{rep.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.exists():
            done = json.loads(record.read_text())
            return done["ok"], done["text"]
        ok, text = run_build(rep)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ok": ok, "text": text}))
        os.replace(tmp, record)
    return ok, text


def run_build(rep: Reproducer) -> tuple[bool, str]:
    began = time.monotonic()
    try:
        done = subprocess.run(list(rep.build), cwd=ROOT, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{shlex.join(rep.build)}: {e}"
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip())[-2000:]
        return False, f"{shlex.join(rep.build)} exited {done.returncode}:\n{tail}"
    for v in rep.variants:
        if not _command_exists(v.command[0]):
            return False, (f"{rep.source}: reproducer {rep.name}: variants.{v.name}.command: "
                           f"{v.command[0]} does not exist after the build step")
    return True, f"built in {time.monotonic() - began:.1f}s: {shlex.join(rep.build)}"


# ---- running ---------------------------------------------------------------------------

def _resolve(argv: tuple[str, ...]) -> list[str]:
    """Commands run from the repository root; a relative path names a file in it."""
    first = argv[0]
    return [str(ROOT / first) if "/" in first and not first.startswith("/") else first, *argv[1:]]


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

    def argv(self, start: int, iterations: int, *, trap: bool = False,
             status: Path | None = None) -> list[str]:
        argv = [*_resolve(self.cmdline), "--iterations", str(iterations), "--start", str(start),
                "--seed", str(self.seed)]
        if status is not None:
            argv += ["--status", str(status)]
        return argv + list(self.trap) if trap else argv

    def command(self, start: int, iterations: int, *, trap: bool = False) -> str:
        return shlex.join(self.argv(start, iterations, trap=trap))

    def env_for(self, start: int) -> dict[str, str]:
        return {}

    def run_batch(self, start: int, iterations: int, *, stall_s: float | None = None,
                  env: dict[str, str] | None = None, watch: Watch | None = None) -> Batch:
        with tempfile.TemporaryDirectory(prefix="asyncrace-status-") as tmp:
            status_path = Path(tmp) / "status" if self.layout else None
            argv = self.argv(start, iterations, status=status_path)
            done = run_process(argv, env=env, layout=self.layout,
                               status_path=status_path, stall_s=self.timeout_s, watch=watch,
                               outcomes=self.outcomes,
                               limit_s=None if self.layout else self.timeout_s * iterations,
                               cwd=ROOT)
        command = shlex.join(argv)
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
                "layout": self.layout.to_dict() if self.layout else None, "trap": list(self.trap)}


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

    def argv(self, start: int, iterations: int, *, trap: bool = False) -> list[str]:
        return _resolve(self.cmdline)

    def env_for(self, start: int) -> dict[str, str]:
        return {"ASYNCRACE_ITERATION": str(start), "ASYNCRACE_SEED": str(self.seed)}

    def command(self, start: int, iterations: int, *, trap: bool = False) -> str:
        prefix = " ".join(f"{k}={v}" for k, v in self.env_for(start).items())
        loop = "" if iterations == 1 else f" (and so on for {iterations} iterations)"
        return f"{prefix} {shlex.join(self.argv(start, 1))}{loop}"

    def run_batch(self, start: int, iterations: int, *, stall_s: float | None = None,
                  env: dict[str, str] | None = None, watch: Watch | None = None) -> Batch:
        """One process per iteration; the batch ends early at a crash or a hang."""
        counts = {o: 0 for o in self.outcomes}
        batch = Batch(start, iterations, counts, start + iterations)
        base = dict(os.environ if env is None else env)
        argv = self.argv(start, iterations)
        for i in range(start, start + iterations):
            done = run_process(argv, env={**base, **self.env_for(i)}, layout=None, status_path=None,
                               stall_s=self.timeout_s, limit_s=self.timeout_s, cwd=ROOT)
            outcome, detail = classify(self.rules, done.returncode, done.killed, done.stdout, done.stderr)
            counts[outcome] += 1
            batch.wall_s += done.wall_s
            batch.stderr = (batch.stderr + done.stderr)[-64 * 1024:]
            batch.pgid = done.pgid
            if outcome != "ok" and batch.first_failure is None:
                batch.first_failure = {"iteration": i, "outcome": outcome, "detail": detail,
                                       "after_s": batch.wall_s, "replay": self.command(i, 1)}
            if watch:
                watch(i - start + 1, i - start + 1 - counts["ok"])
            if outcome == "hang" or done.killed:
                batch.hang_s += done.wall_s
            if outcome in ("crash", "hang"):
                batch.interruption = Interruption(i, outcome, detail)
                batch.first_failure = None if batch.first_failure["iteration"] == i else batch.first_failure
                batch.next_start = i + 1
                break
        return batch

    def to_dict(self) -> dict:
        return {"kind": "process", "name": self.name, "command": list(self.cmdline),
                "seed": self.seed, "outcomes": list(self.outcomes), "timeout_s": self.timeout_s,
                "rules": [r.to_dict() for r in self.rules]}


def _rules(d: dict) -> tuple[Rule, ...]:
    return tuple(Rule(r["outcome"], r["on"], r.get("pattern"), tuple(r.get("values", ())))
                 for r in d.get("rules", ()))


def invocation_from_dict(d: dict):
    if d["kind"] == "self":
        outcomes = tuple(d["outcomes"])
        layout = StatusLayout.from_dict(d["layout"], len(outcomes)) if d.get("layout") else None
        return SelfLoopInvocation(d["name"], tuple(d["command"]), int(d["seed"]), outcomes,
                                  float(d["timeout_s"]), _rules(d), layout, tuple(d.get("trap", ())))
    if d["kind"] == "process":
        return ProcessInvocation(d["name"], tuple(d["command"]), int(d["seed"]), tuple(d["outcomes"]),
                                 float(d["timeout_s"]), _rules(d))
    raise ValueError(f"unknown invocation kind {d.get('kind')!r}")


def invocation(rep: Reproducer, variant: ExternalVariant, seed: int, outcomes: tuple[str, ...],
               layout: StatusLayout | None):
    name = f"{rep.name}.{variant.name}"
    if rep.loop == "self":
        return SelfLoopInvocation(name, variant.command, seed, outcomes, rep.timeout_s, rep.rules,
                                  layout if rep.status else None, rep.trap)
    return ProcessInvocation(name, variant.command, seed, outcomes, rep.timeout_s, rep.rules)
