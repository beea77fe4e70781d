"""Tests of the driver itself, against the real build/tools/selftest (never a mock)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asyncrace.baseline import DRIFT, REGRESSION, ROT, compare
from asyncrace.capture import Failure, RrVerdict, capture, probe_rr
from asyncrace.judge import (ALWAYS, FAIL, NEVER, NOT_REPRODUCED, PASS, RARELY, SOMETIMES,
                             UNDERPOWERED, Evidence, Expectation, judge)
from asyncrace.matrix import NO_PROGRAMS, cells_of, describe, discover
from asyncrace.paths import BIN, ROOT, SELFTEST
from asyncrace.profiles import PROFILES, Budget, override
from asyncrace.program import ContractInvocation, ProgramError, run_batch, run_loop
from asyncrace.results import RunDir, atomic_write_text
from asyncrace.options import CAPTURE_ALL
from asyncrace.session import FAILED, PASSED, TOLERATED, Settings, consequence
from asyncrace.stats import rate_text, wilson

HARNESS = ROOT / "harness"
OUTCOMES = ("ok", "panic", "deadlock", "fatal", "lost", "wrong_thread", "leak", "crash", "hang")


# ---- statistics ---------------------------------------------------------------------

# Computed apart from stats.py, in 40-digit decimal arithmetic, from the Wilson formula
# with z = 1.959963984540054: centre (p + z²/2n) / (1 + z²/n), half-width
# z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n). 26/10000 is the upstream shutdown panic rate
# (seeds/README: "roughly 0.18-0.38 %"); 0/1150 the clean run it takes to claim a fix at
# that rate; 5/10 the textbook example. The tolerance is relative and tight: an n-1 in
# the variance moves 26/10000's bounds by 3e-5 of their value, and fails. (At 0 or n
# failures p(1-p) is 0, so those rows check the exact ends, not the variance.)
@pytest.mark.parametrize("failures, n, low, high", [
    (26, 10000, 0.001774988370, 0.003807013209),
    (0, 1150, 0.0, 0.003329277858),
    (5, 10, 0.2365930905, 0.7634069095),
    (0, 10, 0.0, 0.2775327999),
    (10, 10, 0.7224672001, 1.0),
    (1, 100, 0.001767432064, 0.05448619618),
    (3, 7, 0.1582198553, 0.7495416355),
])
def test_wilson_matches_hand_computed_values(failures, n, low, high):
    got = wilson(failures, n)
    assert got == pytest.approx((low, high), rel=1e-9, abs=0), f"wilson({failures}, {n})"


def test_wilson_without_iterations_says_nothing_is_known():
    assert wilson(0, 0) == (0.0, 1.0)


def test_rate_text_reads_as_percent_interval_and_counts():
    assert rate_text(26, 10000) == "0.26% [0.177, 0.381] (26/10000)"
    assert rate_text(0, 1150) == "0% [0, 0.333] (0/1150)"


# ---- judging ------------------------------------------------------------------------

def counts(**nonzero: int) -> dict[str, int]:
    return {name: nonzero.get(name, 0) for name in OUTCOMES}


REPLAY = "build/bin/x --runner libuv --variant fixed --mode natural --start 17 --iterations 1 --trap"
RERUN = "build/bin/x --runner libuv --variant fixed --mode natural --start 0 --iterations 100"


@pytest.mark.parametrize("kind, outcome, got, status, words", [
    (NEVER, "ok", counts(ok=100), PASS, []),
    (NEVER, "ok", counts(ok=99, panic=1), FAIL, ["regression", "panic=1", REPLAY]),
    (NEVER, "ok", counts(ok=99, crash=1), FAIL, ["regression", "crash=1", REPLAY]),
    (NEVER, "ok", counts(ok=99, hang=1), FAIL, ["regression", "hang=1"]),
    (ALWAYS, "panic", counts(panic=100), PASS, []),
    (ALWAYS, "panic", counts(ok=1, panic=99), FAIL, ["every iteration to fail panic", "ok=1", RERUN]),
    (ALWAYS, "panic", counts(panic=99, deadlock=1), FAIL, ["deadlock=1", REPLAY]),
    (ALWAYS, "panic", counts(crash=100), FAIL, ["crash=100"]),
    (SOMETIMES, "panic", counts(ok=97, panic=3), PASS, []),
    (SOMETIMES, "panic", counts(panic=100), PASS, []),
    (SOMETIMES, "panic", counts(ok=100), NOT_REPRODUCED,
     ["not reproduced: 0/100 in 1.5s (no reference rate): a rate above 3.7% would have shown", RERUN]),
    (RARELY, "panic", counts(ok=100), PASS, []),
    (RARELY, "panic", counts(ok=99, panic=1), PASS, []),
    (RARELY, "panic", counts(ok=99, crash=1), FAIL, ["only panic", "crash=1"]),
    (SOMETIMES, "panic", counts(ok=98, panic=1, crash=1), FAIL, ["only panic", "crash=1", REPLAY]),
    (SOMETIMES, "panic", counts(ok=99, lost=1), FAIL, ["only panic", "lost=1"]),
])
def test_judge(kind, outcome, got, status, words):
    replays = {name: REPLAY for name, n in got.items() if name != "ok" and n}
    powered = Evidence(power={"twin": "x", "value": 0.99, "twin_rate": 0.05, "source": "run"})
    verdict = judge(Expectation(kind, outcome), got, sum(got.values()), 1.5, replays, RERUN,
                    powered)
    assert verdict.status == status, verdict.message
    for word in words:
        assert word in verdict.message
    assert (verdict.message == "") == (status == PASS)


@pytest.mark.parametrize("kind", [NEVER, SOMETIMES, ALWAYS])
def test_judge_fails_a_cell_where_nothing_ran(kind):
    verdict = judge(Expectation(kind, "panic"), counts(), 0, 0.0, {}, RERUN)
    assert verdict.status == FAIL and "no iteration ran" in verdict.message


@pytest.mark.parametrize("power, status, words", [
    ({"twin": "t", "value": 0.95, "twin_rate": 0.01, "source": "reference"}, PASS, []),
    ({"twin": "t", "value": 0.63, "twin_rate": 0.001, "source": "reference", "needed": 2995},
     UNDERPOWERED, ["63", "0.1%", "needs 2995"]),
    ({"twin": "t", "value": None, "note": "the twin's rate is unknown"}, UNDERPOWERED,
     ["power unknown", "rate is unknown"]),
    (None, UNDERPOWERED, ["power unknown", "no twin"]),
])
def test_a_never_cell_passes_only_with_power(power, status, words):
    verdict = judge(Expectation(NEVER, "ok"), counts(ok=1000), 1000, 1.0, {}, RERUN,
                    Evidence(power=power))
    assert verdict.status == status, verdict
    assert all(w in verdict.message for w in words), verdict.message


@pytest.mark.parametrize("programs_exhausted, status", [(1, PASS), (0, UNDERPOWERED)])
def test_a_never_search_passes_only_when_it_searched_a_program_to_its_bound(programs_exhausted,
                                                                            status):
    search = {"searching": True, "programs_exhausted": programs_exhausted}
    verdict = judge(Expectation(NEVER, "ok"), counts(ok=30000), 30000, 8.0, {}, RERUN,
                    Evidence(search=search))
    assert verdict.status == status and (status == PASS or "nothing is proven" in verdict.message)


@pytest.mark.parametrize("failures, n, status", [
    (60, 1200, PASS),            # the reference rate itself
    (20, 1200, PASS),            # a third of it: load on a real loop does that
    (2, 1200, FAIL),             # a fall of 35 times: collapsed
    (0, 1200, NOT_REPRODUCED),
])
def test_a_sometimes_cell_fails_when_its_rate_collapsed_against_its_reference(failures, n, status):
    verdict = judge(Expectation(SOMETIMES, "panic"), counts(ok=n - failures, panic=failures), n,
                    1.0, {"panic": REPLAY}, RERUN, Evidence(reference=0.05))
    assert verdict.status == status, verdict
    if status == FAIL:
        assert "collapsed" in verdict.message and "reference 5%" in verdict.message


def test_what_a_verdict_means_for_the_run():
    """Not reproduced (within a budget sized to show it) fails everywhere; underpowered is
    tolerated in quick, where the run still fails if no cell of the fix had the power."""
    def of(status):
        return {"verdict": {"status": status, "message": "x"}}
    assert consequence(of(UNDERPOWERED), PROFILES["quick"]) == TOLERATED
    assert consequence(of(UNDERPOWERED), PROFILES["nightly"]) == FAILED
    for profile in PROFILES.values():
        assert consequence(of(NOT_REPRODUCED), profile) == FAILED
        assert consequence(of(FAIL), profile) == FAILED
        assert consequence({"verdict": {"status": PASS, "message": ""}}, profile) == PASSED


# ---- budgets ------------------------------------------------------------------------

def test_budget_stops_at_whichever_limit_comes_first():
    b = Budget(100, 2.0)
    assert not b.reached(99, 1.9)
    assert b.reached(100, 0.1) and b.reached(5, 2.0)


def test_never_cells_keep_going_to_their_minimum_in_nightly():
    nightly = PROFILES["nightly"]
    never = nightly.budget(NEVER)
    assert never.iterations >= 10_000 and never.min_iterations == 10_000
    assert not never.reached(9_999, 1e6) and never.reached(10_000, 1e6)
    assert nightly.budget(ALWAYS) == nightly.always


def test_one_command_line_limit_lifts_the_other():
    assert override(Budget(3000, 1.5), 100_000, None) == Budget(100_000, None)
    assert override(Budget(3000, 1.5), None, 5.0) == Budget(None, 5.0)
    assert override(Budget(3000, 1.5), None, None) == Budget(3000, 1.5)


# ---- the real selftest program ------------------------------------------------------

@pytest.fixture(scope="module")
def selftest_outcomes():
    """The selftest program's --list (make builds it with `all`: missing is a failure)."""
    assert SELFTEST.exists(), f"{SELFTEST.relative_to(ROOT)} is missing: run make"
    return describe(SELFTEST)


def selftest(description, variant: str, *extra: str, runner: str = "epoll") -> ContractInvocation:
    return ContractInvocation(SELFTEST, runner, variant, "natural", 1, description.outcomes,
                              description.status, tuple(extra))


def test_the_status_record_is_read_with_the_layout_the_program_lists(selftest_outcomes, tmp_path):
    d = selftest_outcomes
    status = tmp_path / "status"
    done = subprocess.run([str(SELFTEST), "--runner", "epoll", "--variant", "flaky", "--mode",
                           "natural", "--iterations", "40", "--status", str(status)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    read = d.status.read(status)
    assert read is not None and status.stat().st_size == d.status.size
    assert (read.current, read.done) == (40, 40)
    assert dict(zip(d.outcomes, read.counts)) == report["outcomes"]
    ff = report["first_failure"]
    assert read.first_failure_iteration == ff["iteration"]
    assert d.outcomes[read.first_failure_outcome] == ff["outcome"]
    assert read.first_failure_detail == ff["detail"]


def test_cells_come_from_the_programs_list(selftest_outcomes):
    description = describe(SELFTEST)
    cells = {c.id: c for c in cells_of(SELFTEST, description)}
    runners = [r.name for r in description.runners]
    searchers = [r.name for r in description.runners if r.deterministic]
    # every runner: natural, chaos, forced; a runner that owns the schedule: exhaustive too
    assert runners and len(cells) == (len(runners) * 3 + len(searchers)) * 8, \
        "8 variants x (runners x 3 modes + the exhaustive mode on sim)"
    assert {c.runner for c in cells.values() if c.mode == "exhaustive"} == set(searchers)
    for runner in runners:
        assert cells[f"selftest.{runner}.always.forced"].expect == Expectation(ALWAYS, "panic")
        assert cells[f"selftest.{runner}.flaky.natural"].expect == Expectation(SOMETIMES, "panic")
        assert cells[f"selftest.{runner}.segv.chaos"].expect.kind == NEVER


def runner_names() -> list[str]:
    return [r.name for r in describe(SELFTEST).runners] if SELFTEST.exists() else ["epoll"]


@pytest.mark.parametrize("runner", runner_names())
def test_the_leak_check_counts_what_an_iteration_leaves_open(selftest_outcomes, runner):
    """Iteration 7 of the leak variant makes a loop and a mutex and frees neither: the
    check around every iteration (case_main.c) must count it leak, and only it."""
    loop = run_loop(selftest(selftest_outcomes, "leak", runner=runner), Budget(20, None))
    assert (loop.outcomes["leak"], loop.outcomes["ok"]) == (1, 19), loop.outcomes
    ff = loop.first_failure
    assert ff["iteration"] == 7 and "1 loops, 1 mutexes" in ff["detail"], ff


def test_sim_names_a_real_deadlock_with_every_wait(selftest_outcomes):
    """Two threads take two mutexes in opposite orders: sim finds nothing runnable and
    counts deadlock with each task's wait, at once, not a hang at the deadline."""
    loop = run_loop(selftest(selftest_outcomes, "lock_cycle", runner="sim"), Budget(20, None))
    assert (loop.outcomes["deadlock"], loop.outcomes["ok"]) == (1, 19), loop.outcomes
    detail = loop.first_failure["detail"]
    assert detail.startswith("deadlock: no task can run") and "thread_join" in detail, detail
    assert detail.count("mutex_lock(mutex") == 2 and "held by task" in detail, detail


def test_the_controllers_settings_reach_the_workers_unchanged():
    settings = Settings(PROFILES["nightly"], RrVerdict(False, "no perf counters"), seed=7,
                        iterations=50, results_dir=Path("/somewhere"), capture=CAPTURE_ALL)
    handed = json.loads(json.dumps(settings.to_dict()))   # what execnet can carry
    assert Settings.from_dict(handed) == settings


def test_resumes_after_each_crash_and_loses_nothing(selftest_outcomes):
    loop = run_loop(selftest(selftest_outcomes, "segv"), Budget(300, None))
    assert loop.iterations == 300
    assert (loop.outcomes["crash"], loop.outcomes["ok"]) == (3, 297), loop.outcomes
    assert [(i.iteration, i.outcome) for i in loop.interruptions] == [
        (7, "crash"), (107, "crash"), (207, "crash")]
    assert all("SIGSEGV" in i.reason for i in loop.interruptions)
    starts = [start for start, _ in loop.batches]
    assert {8, 108, 208} <= set(starts), f"expected resumes at 8, 108, 208; batches {loop.batches}"


def test_resumes_after_the_programs_own_watchdog_counts_a_hang(selftest_outcomes):
    loop = run_loop(selftest(selftest_outcomes, "hang", "--deadline-ms", "500"), Budget(300, None))
    assert (loop.outcomes["hang"], loop.outcomes["ok"], loop.iterations) == (3, 297, 300)
    assert [i.iteration for i in loop.interruptions] == [7, 107, 207]
    assert all("exit 3" in i.reason for i in loop.interruptions)


def test_a_hang_costs_one_iteration_not_the_cell(selftest_outcomes):
    """Each hang takes longer than the cell's whole 0.6 s time budget (its watchdog ends it
    past the 500 ms deadline): the hung time is not charged, so the cell resumes after each
    and still runs its 300 iterations."""
    inv = selftest(selftest_outcomes, "hang", "--deadline-ms", "500")
    loop = run_loop(inv, Budget(300, 0.6, hang_allowance_s=20.0))
    assert (loop.iterations, loop.outcomes["hang"]) == (300, 3), loop.outcomes
    assert [i.iteration for i in loop.interruptions] == [7, 107, 207]
    assert loop.wall_s - loop.charged_s > 1.5, (loop.wall_s, loop.charged_s)


def test_hung_time_past_the_allowance_counts_against_the_budget(selftest_outcomes):
    inv = selftest(selftest_outcomes, "hang", "--deadline-ms", "500")
    loop = run_loop(inv, Budget(300, 0.6, hang_allowance_s=0.0))
    assert loop.iterations < 300 and loop.outcomes["hang"] == 1, loop.outcomes


def test_kills_the_process_group_of_a_batch_that_stops_progressing(selftest_outcomes):
    inv = selftest(selftest_outcomes, "hang", "--deadline-ms", "600000")
    batch = run_batch(inv, 0, 20, stall_s=1.0)
    assert batch.interruption is not None and batch.interruption.iteration == 7
    assert batch.interruption.outcome == "hang" and "killed" in batch.interruption.reason
    assert (batch.counts["ok"], batch.counts["hang"], batch.next_start) == (7, 1, 8)
    with pytest.raises(ProcessLookupError):
        os.killpg(batch.pgid, 0)  # nothing of that group is left
    loop = run_loop(inv, Budget(20, None), stall_s=1.0)
    assert (loop.outcomes["ok"], loop.outcomes["hang"]) == (19, 1)


def test_a_failure_outcome_without_a_hang_is_counted_in_one_process(selftest_outcomes):
    loop = run_loop(selftest(selftest_outcomes, "deadlock"), Budget(300, None), first_batch=300)
    assert (loop.outcomes["deadlock"], loop.outcomes["ok"], len(loop.batches)) == (3, 297, 1)
    assert loop.first_failure["iteration"] == 7 and "--start 7" in loop.first_failure["replay"]
    verdict = judge(Expectation(NEVER, "ok"), loop.outcomes, loop.iterations, loop.wall_s,
                    loop.replays, "rerun")
    assert verdict.status == FAIL and "--trap" in verdict.message


def test_counts_do_not_depend_on_how_iterations_are_batched(selftest_outcomes):
    inv = selftest(selftest_outcomes, "flaky")
    one = run_loop(inv, Budget(400, None), first_batch=400)
    many = run_loop(inv, Budget(400, None), first_batch=7)
    assert len(one.batches) == 1 and len(many.batches) >= 2
    assert one.outcomes == many.outcomes
    assert 0 < one.outcomes["panic"] < 400, "flaky is about 1 in 8"


def test_the_time_budget_ends_a_cell(selftest_outcomes):
    loop = run_loop(selftest(selftest_outcomes, "ok"), Budget(None, 0.5))
    assert loop.iterations > 0 and loop.outcomes["ok"] == loop.iterations
    assert len(loop.batches) >= 2, "a small first batch, then batches sized to the time left"
    assert loop.wall_s < 0.5 + 3.0, f"a 0.5 s budget took {loop.wall_s:.2f}s"


def test_bad_arguments_are_a_harness_error_not_a_result(selftest_outcomes):
    with pytest.raises(ProgramError, match="refused its arguments"):
        run_batch(selftest(selftest_outcomes, "ok", "--no-such-flag"), 0, 1)


# ---- results ------------------------------------------------------------------------

def record(cell: str, kind: str, outcome: str, failures: int, n: int, status: str = PASS) -> dict:
    """A cell's JSON as session.run_cell writes it, with the fields results and baseline read;
    its failures are panics."""
    case, runner, variant, mode = cell.split(".")
    low, high = wilson(failures, n)
    return {"cell": cell, "case": case, "runner": runner, "variant": variant, "mode": mode,
            "order": [0, 0, ["natural", "chaos", "forced"].index(mode)],
            "expect": {"kind": kind, "outcome": outcome},
            "outcomes": {"ok": n - failures, "panic": failures},
            "failures": failures, "iterations": n, "rate": failures / n, "ci": [low, high],
            "iterations_per_s": 1000.0, "elapsed_s": 1.0, "first_failure": None,
            "verdict": {"status": status, "message": "" if status == PASS else "bad"},
            "command": f"build/bin/{case} --runner {runner}"}


def test_compose_writes_summary_matrix_csv_and_latest(tmp_path):
    first = RunDir(tmp_path, "run-1")
    first.write_cell(record("shutdown_order.libuv.buggy.natural", SOMETIMES, "panic", 26, 10000))
    first.write_cell(record("shutdown_order.libuv.fixed.forced", NEVER, "ok", 1, 200, FAIL))
    summary = first.compose(first.read_cells(), {"profile": "quick", "seed": 1})
    assert set(summary["cells"]) == {"shutdown_order.libuv.buggy.natural",
                                     "shutdown_order.libuv.fixed.forced"}
    assert json.loads((first.path / "summary.json").read_text()) == summary
    matrix = (first.path / "matrix.md").read_text()
    assert "| case | variant | libuv natural | libuv forced | power (lowest) |" in matrix
    assert "| shutdown_order | buggy | 0.26% [0.177, 0.381] (26/10000) | - |" in matrix
    assert "0.5% [0.0883, 2.78] (1/200) **FAIL**" in matrix
    rows = (first.path / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("shutdown_order.libuv.buggy.natural,")
    assert os.readlink(tmp_path / "latest") == "run-1"
    second = RunDir(tmp_path, "run-2")
    second.write_cell(record("shutdown_order.libuv.buggy.natural", SOMETIMES, "panic", 3, 100))
    second.compose(second.read_cells(), {})
    assert os.readlink(tmp_path / "latest") == "run-2"


def test_an_exception_between_write_and_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("simulated crash before rename")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_text(target, "new" * 100_000)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"], "no partial file left"


def test_a_writer_killed_mid_write_leaves_the_old_file_and_no_cell(tmp_path):
    cells = tmp_path / "run" / "cells"
    cells.mkdir(parents=True)
    target = cells / "a.libuv.fixed.natural.json"
    target.write_text(json.dumps(record("a.libuv.fixed.natural", NEVER, "ok", 0, 10)))
    # The writer dies by SIGKILL after writing the data and before the rename.
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(HARNESS)!r})
        from pathlib import Path
        from asyncrace.results import atomic_write_text
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        atomic_write_text(Path({str(target)!r}), "{{partial" * 100000)
    """)
    done = subprocess.run([sys.executable, "-c", script])
    assert done.returncode == -signal.SIGKILL
    assert json.loads(target.read_text())["cell"] == "a.libuv.fixed.natural"
    leftovers = [p.name for p in cells.iterdir() if p != target]
    assert leftovers and all(n.startswith(".") and n.endswith(".tmp") for n in leftovers)
    assert [r["cell"] for r in RunDir(tmp_path, "run").read_cells()] == ["a.libuv.fixed.natural"]


# ---- baseline -----------------------------------------------------------------------

def test_baseline_finds_regression_rot_and_drift():
    old = {"cells": {r["cell"]: r for r in [
        record("c.libuv.fixed.natural", NEVER, "ok", 0, 1000),
        record("c.libuv.buggy.natural", SOMETIMES, "panic", 26, 10000),
        record("c.libuv.buggy.chaos", SOMETIMES, "panic", 50, 1000),
        record("c.libuv.buggy.forced", ALWAYS, "panic", 200, 200),
        record("c.epoll.buggy.natural", SOMETIMES, "panic", 26, 10000),
    ]}}
    new = {"cells": {r["cell"]: r for r in [
        record("c.libuv.fixed.natural", NEVER, "ok", 2, 1000, FAIL),
        record("c.libuv.buggy.natural", SOMETIMES, "panic", 300, 10000),       # drift
        record("c.libuv.buggy.chaos", SOMETIMES, "panic", 0, 1000, NOT_REPRODUCED),
        record("c.libuv.buggy.forced", ALWAYS, "panic", 150, 200, FAIL),      # rot
        record("c.epoll.buggy.natural", SOMETIMES, "panic", 27, 10000),       # inside
    ]}}
    found = {(f.kind, f.cell) for f in compare(new, old)}
    assert found == {(REGRESSION, "c.libuv.fixed.natural"), (DRIFT, "c.libuv.buggy.natural"),
                     (ROT, "c.libuv.buggy.chaos"), (ROT, "c.libuv.buggy.forced")}


def test_a_run_compared_with_itself_has_no_findings():
    same = {"cells": {"c.libuv.buggy.natural": record("c.libuv.buggy.natural", SOMETIMES,
                                                      "panic", 26, 10000)}}
    assert compare(same, same) == []


# ---- rr and capture -----------------------------------------------------------------

def test_rr_probe_agrees_with_rr_itself(tmp_path):
    verdict = probe_rr()
    rr = shutil.which("rr")
    if verdict.can_record:
        assert rr is not None
        done = subprocess.run([rr, "record", "-o", str(tmp_path / "t"), "/bin/true"],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"probe said rr can record, but: {done.stderr}"
        return
    assert verdict.reason and "\n" not in verdict.reason
    assert verdict.line().startswith("rr: cannot record here: ")
    if rr is not None:
        done = subprocess.run([rr, "record", "-o", str(tmp_path / "t"), "/bin/true"],
                              capture_output=True, text=True)
        assert done.returncode != 0, "probe said rr cannot record, but it recorded /bin/true"
        assert verdict.reason in done.stderr, f"reason {verdict.reason!r} is not rr's: {done.stderr}"


def replay_cli(capture_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asyncrace", "replay", str(capture_dir)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(HARNESS)})


def check_round_trip(info: dict, dest: Path, outcome: str) -> None:
    assert info["reproduced"], f"the failure did not come back under {info['method']}: {info}"
    assert os.access(dest / "replay.sh", os.X_OK)
    assert "--trap" in (dest / "command.txt").read_text()
    if info["method"] == "rr":
        assert (dest / "rr-trace").is_dir() and info["rr_replay"].startswith("rr replay ")
    else:
        assert (dest / "core").stat().st_size > 0
        assert "Thread 1" in (dest / "backtrace.txt").read_text()
        assert (dest / "race-log.txt").exists()
    assert json.loads((dest / "capture.json").read_text()) == info
    done = replay_cli(dest)
    assert done.returncode == 0 and f"{outcome} again" in done.stdout, done.stdout + done.stderr


def test_capture_and_replay_round_trip_on_selftest_always(selftest_outcomes, tmp_path):
    inv = selftest(selftest_outcomes, "always")
    dest = tmp_path / "captures" / "selftest.epoll.always.natural"
    info = capture(Failure("selftest.epoll.always.natural", inv, 3, "panic", rare=False),
                   dest, probe_rr(), disk_root=tmp_path / "captures")
    check_round_trip(info, dest, "panic")


def test_capture_and_replay_round_trip_on_a_forced_buggy_case(tmp_path):
    cells = [c for c in discover().cells if c.program is not None]
    forced = [c for c in cells if c.mode == "forced" and c.expect.kind == ALWAYS]
    assert forced, f"no forced always-failing cell in {BIN.relative_to(ROOT)}/: run make"
    cell = forced[0]
    dest = tmp_path / "captures" / cell.id
    info = capture(Failure(cell.id, cell.invocation(1), 0, cell.expect.outcome, rare=False),
                   dest, probe_rr(), disk_root=tmp_path / "captures")
    check_round_trip(info, dest, cell.expect.outcome)


def test_when_rr_fails_to_record_gdb_takes_over_and_says_why(selftest_outcomes, tmp_path):
    probe = probe_rr()
    if probe.can_record or shutil.which("rr") is None:
        pytest.skip(f"needs an rr that is installed but cannot record here ({probe.line()})")
    info = capture(Failure("selftest.epoll.always.natural", selftest(selftest_outcomes, "always"),
                           0, "panic", rare=False),
                   tmp_path / "cap", RrVerdict(True, "told to try"), disk_root=tmp_path)
    assert info["method"] == "rr+gdb" and info["reproduced"], info
    assert any(probe.reason in note for note in info["notes"]), info["notes"]


def test_capture_skips_the_core_past_the_disk_bound_and_says_so(selftest_outcomes, tmp_path):
    assert shutil.which("gdb"), "gdb is not installed: run make deps"
    (tmp_path / "earlier-capture").write_bytes(b"x" * 8192)
    dest = tmp_path / "cap"
    info = capture(Failure("selftest.epoll.always.natural", selftest(selftest_outcomes, "always"),
                           0, "panic", rare=False),
                   dest, RrVerdict(False, "not asked"), disk_root=tmp_path, disk_budget=4096)
    assert info["method"] == "gdb" and info["reproduced"]
    assert not (dest / "core").exists()
    assert any("core dump skipped" in b for b in info["bounds_hit"]), info["bounds_hit"]


def test_capture_bounds_its_attempts_when_the_failure_does_not_come_back(selftest_outcomes, tmp_path):
    assert shutil.which("gdb"), "gdb is not installed: run make deps"
    # Iteration 0 of `segv` is ok: asked to capture it, the driver must give up and say so.
    info = capture(Failure("selftest.epoll.segv.natural", selftest(selftest_outcomes, "segv"),
                           0, "crash", rare=True),
                   tmp_path / "cap", RrVerdict(False, "not asked"), disk_root=tmp_path, attempts=2)
    assert not info["reproduced"] and info["attempts"] == 2
    assert any(b.startswith("attempts:") for b in info["bounds_hit"])


# ---- command line and pytest plumbing -----------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asyncrace", *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(HARNESS)})


def test_discovery_of_an_empty_build_says_run_make(tmp_path):
    catalog = discover(tmp_path / "bin", declarations=[])
    assert (catalog.cells, catalog.errors) == ([], [])
    assert "run `make`" in NO_PROGRAMS


def test_xdist_workers_write_cells_and_the_controller_composes_once(tmp_path):
    cells = [c for c in discover().cells if c.program is not None]
    assert cells, f"no case programs in {BIN.relative_to(ROOT)}/: run make"
    selected = [c for c in cells if c.mode == "forced" and c.runner == cells[0].runner]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider",
         str(ROOT / "cases" / "test_matrix.py"), "-k", f"forced and .{cells[0].runner}.",
         "--iterations", "20", "--results-dir", str(tmp_path), "--no-capture-failures"],
        capture_output=True, text=True, cwd=ROOT)
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    runs = [p for p in tmp_path.iterdir() if p.name != "latest"]
    assert len(runs) == 1, f"expected one run folder, got {runs}"
    written = sorted(p.stem for p in (runs[0] / "cells").glob("*.json"))
    assert written == sorted(c.id for c in selected)
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert sorted(summary["cells"]) == written
    assert (tmp_path / "latest").resolve() == runs[0].resolve()
    assert "asyncrace rates" in done.stdout
