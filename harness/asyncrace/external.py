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
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .commands import ProcessInvocation, Rule, SelfLoopInvocation
from .contract import DRIVER_OUTCOMES, StatusLayout
from .paths import ROOT, shown

NAME = re.compile(r"^[A-Za-z0-9_]+$")
LOOPS = ("self", "process")
DECLARED_KINDS = ("never", "sometimes", "always")
RULE_KEYS = ("stderr", "stdout", "exit", "signal", "timeout")
REPRODUCER_KEYS = ("name", "runner", "mode", "summary", "upstream", "doc", "build", "needs",
                   "loop", "timeout_s", "status", "trap", "outcomes", "variants")
VARIANT_KEYS = ("command", "expect", "twin", "what")
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
        if not isinstance(expect, dict) or expect.get("kind") not in DECLARED_KINDS or set(expect) - {"kind", "outcome"}:
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


def invocation(rep: Reproducer, variant: ExternalVariant, seed: int, outcomes: tuple[str, ...],
               layout: StatusLayout | None):
    name = f"{rep.name}.{variant.name}"
    if rep.loop == "self":
        return SelfLoopInvocation(name, variant.command, seed, outcomes, rep.timeout_s, rep.rules,
                                  layout if rep.status else None, rep.trap)
    return ProcessInvocation(name, variant.command, seed, outcomes, rep.timeout_s, rep.rules)
