"""A failure on a runner that owns the schedule (sim) is captured exactly: its schedule
file and its race log, which the program wrote beside the schedule as the run failed.
No rr and no core are needed: ``--schedule FILE`` replays the very same decisions on the
virtual clock, so the race log comes back line for line. ``replay`` does that and
compares the logs (and the outcome); a replay that left its schedule says where and is
not a reproduction. The capture also explains the failure (explain.py): its schedule cut
down to the decisions it turns on, each with the stack where it was made."""
import difflib
import json
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from .paths import ROOT
from .program import ContractInvocation, parse_report
from .results import atomic_write_json, atomic_write_text

REPLAY_TIMEOUT_S = 120


def replay_argv(inv: ContractInvocation, schedule: Path, race_log: Path | None = None,
                trap: bool = False) -> list[str]:
    argv = [str(inv.program), "--runner", inv.runner, "--variant", inv.variant,
            "--mode", inv.mode, "--schedule", str(schedule)]
    if race_log is not None:
        argv += ["--race-log", str(race_log)]
    return argv + (["--trap"] if trap else [])


def replay_once(inv: ContractInvocation, schedule: Path, race_log: Path) -> dict:
    """The report's replay section plus its outcome; raises on a refused schedule."""
    done = subprocess.run(replay_argv(inv, schedule, race_log), capture_output=True, text=True,
                          timeout=REPLAY_TIMEOUT_S, stdin=subprocess.DEVNULL, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"replay exited {done.returncode}: {done.stderr.strip()[:300]}")
    report = parse_report(done.stdout, shlex.join(replay_argv(inv, schedule, race_log)))
    replay = dict(report["sim"]["replay"] or {})
    replay["outcome"] = next((o for o, n in report["outcomes"].items() if n), "nothing")
    return replay


def compare_logs(expected: str, got: str) -> str:
    """'' when identical, else the first differing lines."""
    if expected == got:
        return ""
    diff = difflib.unified_diff(expected.splitlines(), got.splitlines(), "captured", "replayed",
                                n=1, lineterm="")
    return "\n".join(list(diff)[:12])


def capture(failure, dest: Path) -> dict:
    """failure: capture.Failure with .schedule set. Writes schedule.json, race-log.txt,
    replay.sh and capture.json into dest, and checks one replay against the log."""
    inv = failure.inv
    dest.mkdir(parents=True, exist_ok=True)
    source = Path(failure.schedule)
    schedule, race_log = dest / "schedule.json", dest / "race-log.txt"
    shutil.copyfile(source, schedule)
    log_source = Path(f"{source}.race-log.txt")
    info = {"cell": failure.cell, "iteration": failure.iteration, "outcome": failure.outcome,
            "invocation": inv.to_dict(), "method": "sim-schedule",
            "schedule": str(schedule), "race_log": str(race_log),
            "command": shlex.join(replay_argv(inv, schedule, trap=True)),
            "replay_sh": str(dest / "replay.sh"), "attempts": 0, "reproduced": False,
            "rr_replay": None, "bounds_hit": [], "notes": []}
    if log_source.is_file():
        shutil.copyfile(log_source, race_log)
    else:
        info["notes"].append(f"{log_source} is missing: the race log comes from the first replay")
    atomic_write_text(dest / "command.txt", info["command"] + "\n")
    atomic_write_text(dest / "replay.sh",
                      f"#!/bin/sh\n# {failure.cell}: iteration {failure.iteration} "
                      f"({failure.outcome}), its schedule exactly; --trap aborts at the failure.\n"
                      f"cd {shlex.quote(str(ROOT))}\n"
                      f"exec {shlex.join(replay_argv(inv, schedule, trap=True))} \"$@\"\n")
    (dest / "replay.sh").chmod(0o755)
    with tempfile.TemporaryDirectory(prefix="asyncrace-replay-") as tmp:
        got = Path(tmp) / "race-log.txt"
        try:
            replay = replay_once(inv, schedule, got)
            info["attempts"] = 1
            if not race_log.is_file():
                shutil.copyfile(got, race_log)
            difference = compare_logs(race_log.read_text(), got.read_text())
            info["reproduced"] = bool(replay.get("reproduced")) and not difference
            if replay.get("diverged"):
                info["notes"].append(f"the replay left its schedule: {replay.get('where')}")
            if difference:
                info["notes"].append("the replay's race log differs:\n" + difference)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
            info["notes"].append(f"replay failed: {e}")
    # The decisions the failure turns on: schedule.minimal.json and schedule.explain.txt.
    from .explain import ExplainError, Target, explain
    try:
        told = explain(Target(inv.program, inv.variant, inv.mode), schedule, dest / "schedule")
        info["explanation"] = {k: v for k, v in told.items() if k != "text"}
    except (ExplainError, OSError, ValueError, KeyError) as e:
        info["notes"].append(f"no explanation: {e}")
    info["files"] = sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))
    atomic_write_json(dest / "capture.json", info)
    return info


def replay(capture_dir: Path, info: dict, attempts: int) -> tuple[bool, str]:
    """Replays a sim capture `attempts` times; True when every replay followed its
    schedule, showed the captured outcome and gave the captured race log, line for line."""
    inv = ContractInvocation.from_dict(info["invocation"])
    schedule, expected = Path(info["schedule"]), Path(info["race_log"]).read_text()
    with tempfile.TemporaryDirectory(prefix="asyncrace-replay-") as tmp:
        for attempt in range(1, attempts + 1):
            got = Path(tmp) / f"race-log.{attempt}.txt"
            result = replay_once(inv, schedule, got)
            if result.get("diverged"):
                return False, (f"{info['cell']}: replay {attempt} left its schedule at "
                               f"{result.get('where')}: not a reproduction")
            if result["outcome"] != info["outcome"]:
                return False, (f"{info['cell']}: replay {attempt} gave {result['outcome']}, "
                               f"the capture {info['outcome']}")
            difference = compare_logs(expected, got.read_text())
            if difference:
                return False, f"{info['cell']}: replay {attempt}'s race log differs:\n{difference}"
    lines = len(expected.splitlines())
    return True, (f"{info['cell']} iteration {info['iteration']}: {info['outcome']} again, and "
                  f"the same race log ({lines} lines) in {attempts} of {attempts} replays; "
                  f"command: {info['command']}")
