"""Reproducers declared in cases/external.toml (docs/external.md): any command as a cell.

    loop = "self"     the program loops itself: the driver appends --iterations N --start I
                      --seed S (and --status FILE with status = true) and reads the
                      contract's JSON report, or one line
                      ``asyncrace-counts iterations=N ok=N <outcome>=N ... [first_failure=I
                      first_outcome=NAME]``, from the end of stdout
    loop = "process"  one process is one iteration: its outcome comes from the declared
                      rules (in the order written, first match wins), else exit 0 is ok, a
                      timeout a hang and any other ending a crash; the iteration number and
                      run seed are in the environment (ASYNCRACE_ITERATION, ASYNCRACE_SEED)

Outcome names are the built-in ones (the C programs': ok, panic, deadlock, ...) and any the
declaration names in its [outcomes] table (assertion, exception, ...). A runner label may
not be a built-in runner's name (runners/backends.list): an external program runs natively,
not on libuv or sim.

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
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .commands import ProcessInvocation, Rule, SelfLoopInvocation
from .contract import BUILTIN_OUTCOMES, DRIVER_OUTCOMES, StatusLayout
from .paths import ROOT, shown

NAME = re.compile(r"^[A-Za-z0-9_]+$")
LOOPS = ("self", "process")
DECLARED_KINDS = ("never", "sometimes", "always")
RULE_KEYS = ("stderr", "stdout", "exit", "signal", "timeout")
REPRODUCER_KEYS = ("name", "runner", "mode", "summary", "upstream", "doc", "build", "needs",
                   "loop", "timeout_s", "status", "trap", "cwd", "scratch", "outcomes", "variants",
                   "control")
CONTROL_KEYS = ("args", "points", "modes", "strategy", "timeout_s", "native")
VARIANT_KEYS = ("command", "expect", "twin", "what")
EXPECT_KEYS = ("kind", "outcome", "any_of")


def builtin_runners() -> tuple[str, ...]:
    """The runner names of runners/backends.list: reserved for the built-in runners."""
    try:
        lines = (ROOT / "runners" / "backends.list").read_text().splitlines()
    except OSError:
        return ()
    return tuple(line.split()[0] for line in lines if line.strip() and not line.startswith("#"))
BUILD_TIMEOUT_S = 1800


class DeclarationError(ValueError):
    """One line: the file, the entry and the key, and what is wrong."""

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
    any_of: tuple[str, ...] = ()   # a failure of any of these shows it (outcome is the first)


@dataclass(frozen=True)
class Control:
    """[reproducer.control] (or control = true): each variant also runs under the preloaded
    scheduler (controlled.py), one process per schedule, in cells of runner <runner>_ctl."""
    args: tuple[str, ...] = ()     # appended to a variant's command: one iteration per process
    points: tuple[str, ...] = ()   # functions whose entries are scheduling points
    modes: tuple[str, ...] = ("natural", "chaos", "exhaustive")
    strategy: str | None = None    # instead of each mode's own
    timeout_s: float = 60.0        # per process
    native: bool = True            # false: no cells of its own runner (its race never shows
                                   # without the scheduler: only the controlled cells)


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
    declared: tuple[str, ...] = ()  # outcome names of its own, beside the built-in ones
    cwd: str | None = None        # where its commands run, from the repository root
    scratch: bool = False         # each cell in a fresh copy of cwd under the run folder
    control: Control | None = None  # also under the preloaded scheduler

    def unmet(self) -> list[Need]:
        return [n for n in self.needs if not n.met()]

    def outcomes(self) -> tuple[str, ...]:
        """The built-in outcome names, then its own."""
        return (*BUILTIN_OUTCOMES, *self.declared)


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


def _rule(where: _Where, outcome: str, spec, key: str) -> Rule:
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


def _rules(where: _Where, table) -> tuple[list[Rule], list[str]]:
    """[outcomes] in the order written: `name = { rule }`, `name = [{ rule }, ...]` (several,
    in list order) or `name = []` (a name of its own with no rule: a program that loops
    itself reports it). The command line passes a list of (name, rule) pairs instead, in
    the order its options came. (rules, the names of its own)."""
    pairs = []
    if isinstance(table, dict):
        for outcome, spec in table.items():
            specs = spec if isinstance(spec, list) else [spec]
            pairs += [(outcome, s, f"outcomes.{outcome}" + (f"[{k}]" if isinstance(spec, list) else ""))
                      for k, s in enumerate(specs)]
            if spec == []:
                pairs.append((outcome, None, f"outcomes.{outcome}"))
    elif isinstance(table, list):
        pairs = [(o, s, f"outcomes.{o}") for o, s in table]
    else:
        raise where.fail("outcomes", "expected a table of outcome = { rule } or [{ rule }, ...]")
    rules, declared = [], []
    for outcome, spec, key in pairs:
        if not NAME.match(outcome):
            raise where.fail(key, f"{outcome!r}: expected letters, digits and _ only")
        if outcome not in BUILTIN_OUTCOMES and outcome not in declared:
            declared.append(outcome)
        if spec is not None:
            rules.append(_rule(where, outcome, spec, key))
    return rules, declared


def _expectation(where: _Where, expect, key: str, outcomes: set[str]) -> tuple[str, str, tuple]:
    """(kind, outcome, any_of) of a variant's expect table."""
    shape = (f"expected {{ kind = \"never\" }}, {{ kind = \"sometimes\"|\"always\", outcome = "
             f"\"...\" }} or {{ kind = ..., any_of = [\"...\", ...] }}, got {expect!r}")
    if (not isinstance(expect, dict) or expect.get("kind") not in DECLARED_KINDS
            or set(expect) - set(EXPECT_KEYS) or ("outcome" in expect and "any_of" in expect)):
        raise where.fail(key, shape)
    kind = expect["kind"]
    if "any_of" in expect:
        any_of = expect["any_of"]
        if kind == "never" or not (isinstance(any_of, list) and any_of
                                   and all(isinstance(o, str) for o in any_of)):
            raise where.fail(f"{key}.any_of", f"a non-empty list of failure outcomes for "
                                              f"sometimes or always, got {any_of!r}")
        names = tuple(dict.fromkeys(any_of))
    else:
        names = (expect.get("outcome", "ok"),)
        if (kind == "never") != (names[0] == "ok"):
            raise where.fail(f"{key}.outcome", f"{kind} takes "
                                               f"{'no outcome' if kind == 'never' else 'a failure outcome'}")
    for name in names:
        if kind != "never" and name not in outcomes:
            raise where.fail(f"{key}.{'any_of' if 'any_of' in expect else 'outcome'}",
                             f"unknown outcome {name!r}; accepted: {', '.join(sorted(outcomes))} "
                             f"(name one of your own in [outcomes])")
        if kind != "never" and name == "ok":
            raise where.fail(key, "ok is no failure")
    return kind, names[0], (names if "any_of" in expect else ())


def _command_exists(argv0: str, cwd: str | None = None) -> bool:
    """A first word with a / is a file (from cwd, else the repository root), else on PATH."""
    return (ROOT / (cwd or ".") / argv0).exists() if "/" in argv0 else shutil.which(argv0) is not None


def parse_reproducer(d: dict, source: str, index: int) -> Reproducer:
    where = _Where(source, f"#{index + 1}")
    if not isinstance(d, dict):
        raise where.fail("reproducer", "expected a table")
    name = _name(where, d, "name")
    where = _Where(source, name)
    unknown = sorted(set(d) - set(REPRODUCER_KEYS))
    if unknown:
        raise where.fail(unknown[0], f"unknown key; accepted: {', '.join(REPRODUCER_KEYS)}")
    runner, mode = _name(where, d, "runner"), _name(where, d, "mode", "natural")
    if runner in builtin_runners():
        raise where.fail("runner", f"{runner!r} is a built-in runner's name (runners/backends.list):"
                                   f" an external program runs natively, not on it; name your "
                                   f"runtime instead (tokio, go, native)")
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
    cwd = d.get("cwd")
    if cwd is not None and not (isinstance(cwd, str) and (ROOT / cwd).is_dir()):
        raise where.fail("cwd", f"{cwd!r}: expected a folder, from the repository root")
    scratch = d.get("scratch", False)
    if not isinstance(scratch, bool):
        raise where.fail("scratch", f"expected true or false, got {scratch!r}")
    needs = []
    for k, n in enumerate(d.get("needs", [])):
        key = f"needs[{k}]"
        if not (isinstance(n, dict) and isinstance(n.get("package"), str)
                and (isinstance(n.get("command"), str)) != (isinstance(n.get("path"), str))
                and set(n) <= {"package", "command", "path"}):
            raise where.fail(key, f"expected {{ command = \"...\", package = \"...\" }} or "
                                  f"{{ path = \"...\", package = \"...\" }}, got {n!r}")
        needs.append(Need(n["package"], n.get("command"), n.get("path")))
    rules, declared = _rules(where, d.get("outcomes", {}))
    if declared and status:
        raise where.fail(f"outcomes.{declared[0]}", f"an outcome of its own: a program that keeps "
                                                    f"the contract's status record counts only "
                                                    f"{', '.join(BUILTIN_OUTCOMES)}")
    outcomes = set(BUILTIN_OUTCOMES) | set(declared)
    control = _control(where, d["control"]) if "control" in d else None
    rule_outcomes = {r.outcome for r in rules} | set(DRIVER_OUTCOMES)
    if control and not control.native:   # the scheduler says these itself
        rule_outcomes |= {"deadlock", "uncontrolled"}
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
        if build is None and not _command_exists(command[0], cwd) and not any(
                n.command == command[0] or n.path == command[0] for n in needs):
            raise where.fail(f"{key}.command", f"{command[0]} does not exist "
                                               f"(and no build step makes it)")
        kind, outcome, any_of = _expectation(where, v.get("expect"), f"{key}.expect", outcomes)
        if loop == "process":
            for shown in any_of or ((outcome,) if kind != "never" else ()):
                if shown not in rule_outcomes:
                    raise where.fail(f"{key}.expect.{'any_of' if any_of else 'outcome'}",
                                     f"{shown!r}: no rule in [outcomes] gives it (rules: "
                                     f"{', '.join(sorted(rule_outcomes))})")
        twin = v.get("twin")
        if twin is not None and (twin not in variants_table or twin == vname or kind != "never"):
            raise where.fail(f"{key}.twin", f"{twin!r}: a never variant's twin names another variant "
                                            f"of this reproducer")
        what = v.get("what", "")
        variants.append(ExternalVariant(vname, command, kind, outcome, twin, str(what), any_of))
    for key in ("summary", "upstream", "doc"):
        if not isinstance(d.get(key, ""), str):
            raise where.fail(key, "expected a string")
    return Reproducer(name, runner, mode, d.get("summary", ""), d.get("upstream", ""), build,
                      tuple(needs), loop, float(timeout_s), status, trap, tuple(rules),
                      tuple(variants), source, tuple(declared), cwd, scratch, control)


def _control(where: _Where, value) -> Control | None:
    from .controlled import MODES, STRATEGIES
    if value is False:
        return None
    if value is True:
        return Control()
    if not isinstance(value, dict):
        raise where.fail("control", f"expected true, false or a table, got {value!r}")
    unknown = sorted(set(value) - set(CONTROL_KEYS))
    if unknown:
        raise where.fail(f"control.{unknown[0]}", f"unknown key; accepted: {', '.join(CONTROL_KEYS)}")
    args = _argv(where, value["args"], "control.args") if value.get("args") else ()
    points = tuple(value.get("points", ()))
    if not all(isinstance(p, str) and p and "," not in p for p in points):
        raise where.fail("control.points", f"expected function names (no commas), got {points!r}")
    modes = tuple(value.get("modes", MODES))
    if not modes or any(m not in MODES for m in modes):
        raise where.fail("control.modes", f"{list(modes)!r}: expected some of {', '.join(MODES)}")
    strategy = value.get("strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise where.fail("control.strategy", f"{strategy!r}: expected one of {', '.join(STRATEGIES)}")
    timeout_s = value.get("timeout_s", 60)
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not 0 < timeout_s <= 86400:
        raise where.fail("control.timeout_s", f"expected seconds above 0, got {timeout_s!r}")
    native = value.get("native", True)
    if not isinstance(native, bool):
        raise where.fail("control.native", f"expected true or false, got {native!r}")
    return Control(args, points, modes, strategy, float(timeout_s), native)


def runner_text(rep: Reproducer) -> str:
    """What the run header says about an external runner in place of a library version."""
    if rep.loop == "self":
        return "from its report"
    return "native, a process per iteration"


def load(path: Path) -> list[Reproducer]:
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
    found = [parse_reproducer(d, source, i) for i, d in enumerate(entries)]
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
        if not _command_exists(v.command[0], rep.cwd):
            return False, (f"{rep.source}: reproducer {rep.name}: variants.{v.name}.command: "
                           f"{v.command[0]} does not exist after the build step")
    return True, f"built in {time.monotonic() - began:.1f}s: {shlex.join(rep.build)}"


def invocation(rep: Reproducer, variant: ExternalVariant, seed: int, outcomes: tuple[str, ...],
               layout: StatusLayout | None, workdir: Path | None = None):
    """workdir: where it runs (default: its cwd, or the repository root)."""
    name = f"{rep.name}.{variant.name}"
    where = workdir or ROOT / (rep.cwd or ".")
    if rep.loop == "self":
        return SelfLoopInvocation(name, variant.command, seed, outcomes, rep.timeout_s, rep.rules,
                                  layout if rep.status else None, rep.trap, rep.cwd, where)
    return ProcessInvocation(name, variant.command, seed, outcomes, rep.timeout_s, rep.rules,
                             rep.cwd, where)


def controlled_invocation(rep: Reproducer, variant: ExternalVariant, mode: str, seed: int,
                          outcomes: tuple[str, ...], workdir: Path | None = None):
    """A variant's command under the preloaded scheduler, in one of its control modes."""
    from .controlled import MODE_STRATEGY, ControlledInvocation
    c = rep.control
    return ControlledInvocation(f"{rep.name}.{variant.name}", (*variant.command, *c.args), seed,
                                outcomes, c.timeout_s, rep.rules, mode,
                                c.strategy or MODE_STRATEGY[mode], c.points, cwd=rep.cwd,
                                workdir=workdir or ROOT / (rep.cwd or "."))


def scratch_copy(rep: Reproducer, dest: Path) -> Path:
    """A fresh copy of the reproducer's cwd (an empty folder without one) at dest: where a
    cell with scratch = true runs, so that two variants never share the files they write."""
    if dest.exists():
        shutil.rmtree(dest)
    if rep.cwd:
        shutil.copytree(ROOT / rep.cwd, dest, symlinks=True)
    else:
        dest.mkdir(parents=True)
    return dest
