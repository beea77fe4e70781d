"""A failing sim schedule, cut down and explained (--explain, `asyncrace explain`):

- for every variant that fails on sim, the minimal schedule the program writes replays in a
  fresh process with the same outcome and its race log, line for line;
- the program's figures are checked, not believed: measured against the default schedule,
  the decisions it calls critical are exactly the minimal schedule's departures from it,
  counted from the schedule file by a default written again in Python
  (asyncrace.explain.departures_from_default), and the
  original's departures are as many as it says (against a passing random schedule, when
  the default fails too, simtest's `shrink` holds it to ground truth);
- the shutdown race is told as the case's timeline tells it: the decision is in
  ar_rt_shutdown, and right after it worker 0 drops the replies sender;
- `asyncrace explain` takes a capture folder or a schedule file, prints the explanation,
  and refuses bad input in one line with exit 2.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asyncrace.capture import Failure
from asyncrace.explain import Target, departures_from_default, explain
from asyncrace.matrix import discover
from asyncrace.paths import BIN, ROOT
from asyncrace.schedule_capture import capture



def failing_cells():
    """Each variant's natural sim cell that must fail (the always and sometimes ones)."""
    return sorted((c for c in discover().cells
                   if c.runner == "sim" and c.mode == "natural" and c.program is not None
                   and c.expect.kind != "never"), key=lambda c: c.id)


def report(argv: list[str]) -> dict:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(argv)}: exit {done.returncode}: {done.stderr}"
    return json.loads(done.stdout.splitlines()[-1])


def failing_schedule(cell, tmp_path: Path) -> Path:
    r = report([str(cell.program), "--runner", "sim", "--variant", cell.variant, "--mode",
                "natural", "--iterations", "3000", "--schedules", str(tmp_path / "s")])
    ff = r["first_failure"]
    assert ff and ff.get("schedule"), f"{cell.id}: no failure in 3000 schedules: {r['outcomes']}"
    return Path(ff["schedule"])


@pytest.mark.parametrize("sim_cell", failing_cells(), ids=lambda c: c.id)
def test_the_minimal_schedule_replays_and_holds_only_the_critical_decisions(sim_cell, tmp_path):
    cell = sim_cell
    schedule = failing_schedule(cell, tmp_path)
    told = explain(Target(cell.program, cell.variant, "natural"), schedule, tmp_path / "x")
    explanation = json.loads(Path(told["explanation"]).read_text())
    minimal = json.loads(Path(told["minimal_schedule"]).read_text())
    original = json.loads(schedule.read_text())

    critical = [c["decision"] for c in explanation["critical"]]
    assert told["critical"] == len(critical) <= told["deviations"]
    if explanation["base_seed"] < 0:     # measured against the default schedule
        assert critical == departures_from_default(minimal), \
            f"{cell.id}: the decisions called critical are not the minimal schedule's departures"
        assert told["deviations"] == len(departures_from_default(original)), \
            f"{cell.id}: the schedule's departures from the default are not {told['deviations']}"
    else:                                # against a passing random schedule: it must pass
        assert not explanation["no_base"] and critical, explanation
    assert all(c["needed"] for c in explanation["critical"]), explanation["critical"]
    assert minimal["outcome"] == original["outcome"]

    log = tmp_path / "replayed.txt"
    r = report([str(cell.program), "--runner", "sim", "--variant", cell.variant, "--mode",
                "natural", "--schedule", told["minimal_schedule"], "--race-log", str(log)])
    assert r["sim"]["replay"]["reproduced"], f"{cell.id}: the minimal schedule: {r['sim']['replay']}"
    assert log.read_text() == (tmp_path / "x.minimal.race-log.txt").read_text()


def test_the_shutdown_race_is_told_at_the_shutdown(tmp_path):
    cell = next(c for c in failing_cells() if c.id == "shutdown_order.sim.buggy.natural")
    told = explain(Target(cell.program, "buggy", "natural"), failing_schedule(cell, tmp_path),
                   tmp_path / "x")
    assert "ar_rt_shutdown" in told["text"] and "cases/shutdown_order.c:" in told["text"], \
        told["text"]
    # the case's timeline: after the decision, worker 0 drops the replies sender
    after = [line for line in told["text"].splitlines() if line.lstrip().startswith(">>")]
    assert any("worker   0" in line and "chan.sender_drop" in line for line in after), told["text"]
    assert Path(told["text_file"]).read_text() == told["text"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asyncrace", "explain", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "harness")})


def test_explain_takes_a_capture_or_a_schedule_and_refuses_bad_input(tmp_path):
    cell = next(c for c in failing_cells() if c.id == "shutdown_order.sim.buggy.natural")
    schedule = failing_schedule(cell, tmp_path)
    info = capture(Failure(cell.id, cell.invocation(1), 0, "panic", rare=True,
                           schedule=str(schedule)), tmp_path / "capture")
    assert info["explanation"]["critical"] >= 1, info
    assert (tmp_path / "capture" / "schedule.explain.txt").is_file()
    for path in (tmp_path / "capture", schedule):
        done = cli(str(path))
        assert done.returncode == 0 and "decision" in done.stdout and \
            "The minimal schedule replays" in done.stdout, done.stdout + done.stderr
    not_a_schedule = tmp_path / "other.json"
    not_a_schedule.write_text("{}")
    for bad in (tmp_path / "missing", not_a_schedule):
        done = cli(str(bad))
        assert done.returncode == 2 and done.stdout == "" and \
            len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_schedule_that_does_not_fail_again_is_not_explained(tmp_path):
    """A schedule recorded for another seed's program: its decisions no longer fail."""
    cell = next(c for c in failing_cells() if c.id == "shutdown_order.sim.buggy.natural")
    schedule = failing_schedule(cell, tmp_path)
    fixed = tmp_path / "fixed.json"
    data = json.loads(schedule.read_text())
    data["variant"] = "fixed"
    fixed.write_text(json.dumps(data))
    done = cli(str(fixed))
    assert done.returncode == 1 and "do not fail again" in done.stderr, done.stderr
    assert not (tmp_path / "fixed.minimal.json").exists()
