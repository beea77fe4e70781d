"""A failing sim schedule cut down to the decisions its failure turns on, and told.

The program does the work (``--schedule FILE --explain PREFIX``): it replays the schedule,
then shrinks its deviations from the default schedule by delta debugging until taking away
any one of them makes the run pass, and writes PREFIX.minimal.json (a schedule that
replays), its race log, and PREFIX.explain.json (each decision that is left: where it was
made, what the default would have run, what ran instead, the stack there as module and
offset). Here the stacks are symbolized with addr2line and the whole is written as text
into PREFIX.explain.txt.

A user's program under the preloaded scheduler is explained the same way by the scheduler
itself (``ASYNCRACE_REPLAY=FILE ASYNCRACE_EXPLAIN=PREFIX``, runners/preload/explain.c): one
process per try, forked before main. It has no race log; the minimal schedule's own
decisions around each critical one are shown instead."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dataclasses import dataclass

from .paths import BIN, ROOT, shown
from .program import parse_report
from .results import atomic_write_text

EXPLAIN_TIMEOUT_S = 300
FRAMES_SHOWN = 6
EVENTS_BEFORE, EVENTS_AFTER = 3, 6     # race-log lines around a critical decision


class ExplainError(Exception):
    """The schedule could not be explained; the message says why, in one line."""


@dataclass(frozen=True)
class Target:
    """A sim program and the variant and mode a schedule of it was recorded in."""
    program: Path
    variant: str
    mode: str

    def argv(self, schedule: Path, *more: str) -> list[str]:
        return [str(self.program), "--runner", "sim", "--variant", self.variant, "--mode",
                self.mode, "--schedule", str(schedule), *more]


PRELOAD_NEEDS_CAPTURE = ("{what}: a schedule of a program under the preloaded scheduler does "
                         "not say how to run that program: explain its capture folder (the "
                         "schedule's capture.json holds the command)")


def target_of(schedule: Path) -> Target:
    """The built-in program a schedule file belongs to (its case, variant and mode)."""
    try:
        header = json.loads(schedule.read_text())
        case, variant, mode = header["case"], header["variant"], header["mode"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ExplainError(f"{schedule}: not a schedule file ({e})") from None
    if header.get("runner") == "preload":
        raise ExplainError(PRELOAD_NEEDS_CAPTURE.format(what=schedule))
    program = BIN / case
    if not program.is_file():
        raise ExplainError(f"{schedule}: no program {shown(program)} for case {case!r} (run make)")
    return Target(program, variant, mode)


def departures_from_default(schedule: dict) -> list[int]:
    """The decisions of a schedule file that are not the default schedule's, by number: the
    default of runners/sim/shrink.c written again here, so the tests can check what a
    program says is critical without believing it. At a plain point the task goes on when
    it can; at a yield, a block or an end the next runnable task after it in id order (the
    first, past the last); a value choice takes the largest value."""
    out = []
    for i, d in enumerate(schedule["decisions"]):
        if "value" in d:
            default = d["range"] - 1
        else:
            enabled, task = d["enabled"], d["task"]
            plain_and_can_go_on = d["kind"] == 0 and task in enabled
            default = task if plain_and_can_go_on else next((t for t in enabled if t > task),
                                                             enabled[0])
        if d["chose"] != default:
            out.append(i)
    return out


def _last_line(stderr: str, prefix: str, code: int) -> str:
    """A program's one-line complaint: its last stderr line without its name."""
    line = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return line.removeprefix(prefix) or f"exit {code}"


def _is_pie(module: Path) -> bool:
    """An ELF shared object or PIE is symbolized by offset, a fixed executable by address."""
    try:
        with module.open("rb") as f:
            head = f.read(18)
    except OSError:
        return True
    return len(head) == 18 and int.from_bytes(head[16:18], "little") == 3   # ET_DYN


def symbolize(frames: list[dict], cwd: Path) -> list[tuple[str, str]]:
    """(function, file:line) per frame; ('??', module+offset) where addr2line knows none."""
    if not shutil.which("addr2line"):
        return [("??", f"{f.get('module', '?')}+{f.get('offset', f['pc'])}") for f in frames]
    by_module: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        if "module" in f:
            by_module.setdefault(f["module"], []).append(i)
    out = [("??", f["pc"]) for f in frames]
    for module, indexes in by_module.items():
        path = (cwd / module).resolve()
        where = [int(frames[i]["offset" if _is_pie(path) else "pc"], 16) for i in indexes]
        # return addresses: the call is the instruction before
        done = subprocess.run(["addr2line", "-f", "-C", "-e", str(path)] +
                              [hex(max(a - 1, 0)) for a in where],
                              capture_output=True, text=True, timeout=60)
        lines = done.stdout.splitlines()
        for k, i in enumerate(indexes):
            if 2 * k + 1 < len(lines):
                function, location = lines[2 * k], lines[2 * k + 1].split(" (discriminator")[0]
                if location.startswith(str(ROOT) + "/"):
                    location = location[len(str(ROOT)) + 1:]
                out[i] = (function, location)
    return out


SCHEDULER_SOURCES = ("runners/sim/", "runners/controlled/", "runners/preload/")
OUTSIDE_MODULES = ("libasyncrace_sched.so", "libc.so")   # the scheduler's, a signal's return


def _outside(frame: dict, location: str) -> bool:
    """A frame of the scheduler (or of libc under it), not of the program."""
    return (any(d in location for d in SCHEDULER_SOURCES) or
            any(m in frame.get("module", "") for m in OUTSIDE_MODULES))


def _interesting(frames: list[dict], symbolized: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The program's frames: the scheduler's own (runners/sim/, and under the preloaded
    scheduler its interposer and the signal a named point traps with) above them left
    out, and nothing below the iteration's entry or the thread's start."""
    k = 0
    while k < len(symbolized) and _outside(frames[k], symbolized[k][1]):
        k += 1
    shown_frames = []
    for frame, (function, location) in zip(frames[k:], symbolized[k:]):
        if (function in ("run_iteration", "task_main") or "case_main.c" in location or
                _outside(frame, location)):
            break
        shown_frames.append((function, location))
    return shown_frames[:FRAMES_SHOWN]


def _decision_line(n: int, c: dict, base: str) -> str:
    where = f"{c['point']}({c['arg']})"
    head = f"{n}. decision {c['decision']} (step {c['step']}): task {c['task']} at {where}"
    if c["value"]:
        return f"{head} chose {c['chose_value']}; {base} takes {c['default_value']}"
    default = (f"{base} lets task {c['task']} go on" if c["default_task"] == c["task"]
               else f"{base} runs task {c['default_task']}")
    return (f"{head}: {default}; task {c['chose']} ran instead, "
            f"next {c['chose_next']}({c['chose_next_arg']})")


def race_events(log_text: str) -> tuple[int, list[str]]:
    """The race log's first event number and its event lines ("last N of M events")."""
    lines = log_text.splitlines()
    if not lines:
        return 0, []
    words = lines[0].split()
    try:
        shown_n, total = int(words[words.index("last") + 1]), int(words[words.index("of") + 1])
    except (ValueError, IndexError):
        return 0, lines[1:]
    return total - shown_n, lines[1:]


def _around(mark: int, first: int, events: list[str]) -> list[str]:
    """The race-point events just before a decision and those after it (marked >>)."""
    out = []
    for j in range(mark - EVENTS_BEFORE, mark + EVENTS_AFTER):
        if 0 <= j - first < len(events):
            out.append(f"   {'>>' if j >= mark else '  '} {events[j - first].strip()}")
    return out


def decisions_around(schedule: dict, index: int) -> list[str]:
    """A schedule's decisions just before decision `index` and from it on (marked >>)."""
    decisions = schedule.get("decisions", [])
    out = []
    for j in range(index - EVENTS_BEFORE, index + EVENTS_AFTER):
        if 0 <= j < len(decisions):
            d = decisions[j]
            what = (f"chose {d['chose']} of {d['range']} for {d['value']}" if "value" in d else
                    f"at {d['point']}({d['arg']}), ran task {d['chose']}")
            out.append(f"   {'>>' if j >= index else '  '} decision {j}: task {d['task']} {what}")
    return out


def render(explanation: dict, cwd: Path, replay_command: str, race_log: str,
           minimal: dict | None = None) -> str:
    """The explanation as text: each critical decision with its stack, and the race log's
    events around it (a preload explanation: the minimal schedule's decisions)."""
    e = explanation
    preload = e.get("runner") == "preload"
    where = "the preloaded scheduler" if preload else f"sim, {e['mode']}"
    name = e["case"] if preload else f"{e['case']}.{e['variant']}"
    lines = [f"{name} ({where}): {e['outcome']}: {e['detail']}"]
    base = "the default schedule"
    if e["no_base"]:
        lines.append(f"No schedule tried passes: not the default, nor {e['base_tries']} random ones. "
                     f"This iteration's program fails without any particular interleaving.")
    elif e["base_seed"] >= 0:
        base = "the passing schedule"
        lines.append(f"The default schedule fails too; random schedule {e['base_seed']} of this "
                     f"iteration's program passes, and the failure is measured against it.")
    if e["critical_count"]:
        times = "once" if e["deviations"] == 1 else f"{e['deviations']} times"
        lines += [f"The schedule departs from {base} {times}; "
                  f"{e['critical_count']} of those decisions {'makes' if e['critical_count'] == 1 else 'make'} "
                  f"it fail (delta debugging, {e['runs']} runs; without any one of them the run "
                  f"passes):", ""]
    first, events = race_events(race_log)
    for n, c in enumerate(e["critical"], 1):
        lines.append(_decision_line(n, c, base))
        if not c["needed"]:
            lines.append("   (the run still failed without this one alone: not 1-minimal)")
        for function, location in _interesting(c["stack"], symbolize(c["stack"], cwd)):
            lines.append(f"     {function:<24} {location}")
        if preload and minimal:
            lines.append("   the minimal schedule's decisions around it (>> from it on):")
            lines += decisions_around(minimal, c["decision"])
        around = _around(c["race_events_before"], first, events)
        if around:
            lines.append("   the race points around it (>> after it; t in us, worker, point, arg):")
            lines += around
    lines += ["", f"The minimal schedule replays: {replay_command}"]
    if e.get("minimal_race_log"):
        lines.append(f"its race log: {shown(Path(e['minimal_race_log']))}")
    return "\n".join(lines) + "\n"


def explain(target: Target, schedule: Path, prefix: Path) -> dict:
    """Runs the program's --explain on schedule; writes PREFIX.explain.txt beside the
    program's files and returns {deviations, critical, runs, minimal_schedule,
    explanation, text}. Raises ExplainError with the program's one line."""
    argv = target.argv(schedule, "--explain", str(prefix))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=EXPLAIN_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise ExplainError(f"{shlex.join(argv)}: no answer in {EXPLAIN_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise ExplainError(_last_line(done.stderr, "asyncrace: ", done.returncode))
    explained = parse_report(done.stdout, shlex.join(argv))["sim"].get("explained") or {}
    if not explained.get("ok"):
        raise ExplainError(explained.get("error") or "the program wrote no explanation")
    explanation = json.loads(Path(explained["explanation"]).read_text())
    replay = shlex.join([shown(target.program)] +
                        target.argv(Path(shown(Path(explained["minimal_schedule"]))), "--trap")[1:])
    text = render(explanation, ROOT, replay, Path(explained["minimal_race_log"]).read_text())
    text_path = Path(f"{prefix}.explain.txt")
    atomic_write_text(text_path, text)
    return {"deviations": explained["deviations"], "critical": explained["critical"],
            "runs": explained["runs"], "minimal_schedule": explained["minimal_schedule"],
            "explanation": explained["explanation"], "text_file": str(text_path), "text": text}


def explain_preload(inv, schedule: Path, prefix: Path, outcome: str | None = None) -> dict:
    """A failure of a user's program (a ControlledInvocation's schedule), explained by the
    preloaded scheduler; returns what explain() returns. outcome: the failure's, as the
    driver told it; where the program's rules read its output, each try is told the same
    way (asyncrace.try_outcome), else by how the scheduler saw it end."""
    from .program import run_once
    env = {**os.environ, **inv.env_for(0), "ASYNCRACE_REPLAY": str(schedule.resolve()),
           "ASYNCRACE_EXPLAIN": str(prefix.resolve())}
    argv = inv.argv(0, 1)
    with tempfile.TemporaryDirectory(prefix="asyncrace-explain-") as tmp:
        if outcome and any(r.on in ("stdout", "stderr") for r in inv.rules):
            told_by = Path(tmp) / "invocation.json"
            told_by.write_text(json.dumps(inv.to_dict()))
            env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT / "harness"),
                                                              os.environ.get("PYTHONPATH"))))
            env["ASYNCRACE_EXPLAIN_JUDGE"] = shlex.join([sys.executable, "-m",
                                                         "asyncrace.try_outcome", str(told_by)])
            env["ASYNCRACE_EXPLAIN_OUTCOME"] = outcome
        done = run_once(argv, env=env, timeout_s=EXPLAIN_TIMEOUT_S, cwd=inv.workdir)
    if done.killed:
        raise ExplainError(f"{shlex.join(argv)}: no answer in {EXPLAIN_TIMEOUT_S} s")
    if done.returncode != 0:
        raise ExplainError(_last_line(done.stderr, "asyncrace_sched: ", done.returncode))
    told_path = Path(f"{prefix.resolve()}.explain.json")
    explanation = json.loads(told_path.read_text())
    minimal_path = Path(explanation["minimal_schedule"])
    minimal = json.loads(minimal_path.read_text())
    replay_env = {k: v for k, v in inv.env_for(0).items() if k in ("LD_PRELOAD", "ASYNCRACE_POINTS")}
    replay = (" ".join(f"{k}={shlex.quote(v)}" for k, v in
                       {**replay_env, "ASYNCRACE_REPLAY": shown(minimal_path)}.items())
              + " " + shlex.join(argv))
    text = render(explanation, inv.workdir, replay, "", minimal)
    text_path = Path(f"{prefix}.explain.txt")
    atomic_write_text(text_path, text)
    return {"deviations": explanation["deviations"], "critical": explanation["critical_count"],
            "runs": explanation["runs"], "minimal_schedule": str(minimal_path),
            "explanation": str(told_path), "text_file": str(text_path), "text": text}
