"""The deterministic runner's promises, checked on the real case programs:

- determinism: every sim cell run twice with one seed gives one run hash (the hash of
  every schedule's decisions, in order) and the same counts; shuttle's replay rotted for
  want of a check like this;
- replay: a failing schedule, replayed from its file in a fresh process, follows its
  decisions, shows the same outcome and gives the same race log, line for line;
- a schedule file that is missing, truncated, corrupt or another program's is refused
  with one line and exit 2, and nothing runs.
"""
import json
import subprocess
from pathlib import Path

import pytest

from asyncrace.matrix import discover
from asyncrace.paths import ROOT

ITERATIONS = 150


def sim_cells():
    return sorted((c for c in discover().cells if c.deterministic and c.program is not None),
                  key=lambda c: c.id)


def run(program: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(program), *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, stdin=subprocess.DEVNULL)


def report(program: Path, *args: str) -> dict:
    done = run(program, *args)
    assert done.returncode == 0, f"{program.name} {' '.join(args)}: exit {done.returncode}: {done.stderr}"
    return json.loads(done.stdout.splitlines()[-1])


def cell_args(cell, tmp_path: Path) -> list[str]:
    return ["--runner", cell.runner, "--variant", cell.variant, "--mode", cell.mode,
            "--seed", "5", "--iterations", str(ITERATIONS), "--schedules", str(tmp_path)]


@pytest.mark.parametrize("sim", sim_cells(), ids=lambda c: c.id)
def test_one_seed_gives_one_run_hash(sim, tmp_path):
    cell = sim
    first = report(cell.program, *cell_args(cell, tmp_path / "a"))
    second = report(cell.program, *cell_args(cell, tmp_path / "b"))
    assert first["sim"]["schedules"] == ITERATIONS
    assert (first["sim"]["run_hash"], first["outcomes"]) == (second["sim"]["run_hash"], second["outcomes"]), \
        f"{cell.id}: two runs with seed 5 differ"


def failing_schedule(tmp_path: Path) -> tuple[Path, Path, dict]:
    program = ROOT / "build" / "bin" / "shutdown_order"
    r = report(program, "--runner", "sim", "--variant", "buggy", "--mode", "chaos",
               "--iterations", "200", "--schedules", str(tmp_path))
    ff = r["first_failure"]
    assert ff and ff.get("schedule"), f"pct found no failing schedule in 200: {r['outcomes']}"
    return program, Path(ff["schedule"]), ff


def test_a_failing_schedule_replays_with_the_same_race_log(tmp_path):
    program, schedule, ff = failing_schedule(tmp_path)
    logs = []
    for attempt in range(3):
        log = tmp_path / f"log.{attempt}"
        r = report(program, "--runner", "sim", "--variant", "buggy", "--mode", "chaos",
                   "--schedule", str(schedule), "--race-log", str(log))
        assert r["sim"]["replay"]["reproduced"] and not r["sim"]["replay"]["diverged"], r["sim"]
        assert r["first_failure"]["outcome"] == ff["outcome"]
        logs.append(log.read_text())
    recorded = Path(f"{schedule}.race-log.txt").read_text()
    assert logs == [recorded] * 3, "a replay's race log differs from the recorded one"


@pytest.mark.parametrize("damage, words", [
    ("missing", "missing"), ("truncated", "truncated"), ("corrupt", "corrupt"),
    ("other_variant", "wrong program"),
])
def test_a_bad_schedule_is_refused_in_one_line(tmp_path, damage, words):
    program, schedule, _ = failing_schedule(tmp_path)
    variant = "buggy"
    text = schedule.read_text()
    bad = tmp_path / "bad.json"
    if damage == "missing":
        bad = tmp_path / "nothing-here.json"
    elif damage == "truncated":
        bad.write_text(text[: len(text) // 2])
    elif damage == "corrupt":
        bad.write_text(text.replace('"chose": ', '"chose": 9', 1))
    else:
        bad.write_text(text)
        variant = "fixed"
    done = run(program, "--runner", "sim", "--variant", variant, "--mode", "chaos",
               "--schedule", str(bad))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr
    assert done.stdout == "", "nothing may run"
