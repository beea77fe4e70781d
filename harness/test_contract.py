"""Contract 2 (--list) is read and checked in one place; the power of never cells and the
budgets it implies; tables that take their modes and runners from the run."""
import math

import pytest

from asyncrace import contract
from asyncrace.contract import ContractError
from asyncrace.judge import ALWAYS, NEVER, PASS, SOMETIMES, UNDERPOWERED
from asyncrace.matrix import describe, discover

from asyncrace.profiles import NIGHTLY_NEVER_CAP, PROFILES
from asyncrace.reference import Count, Rate
from asyncrace.results import RunDir, add_power, matrix_md, results_csv, unpowered_fixes
from asyncrace.stats import iterations_for_power, power, wilson

OUTCOMES = ["ok", "panic", "deadlock", "fatal", "lost", "wrong_thread", "leak", "crash", "hang"]


def listing(**changes) -> dict:
    """A contract-2 --list as the brief gives it, with a new runner and a new mode."""
    d = {"contract": 2, "case": "c", "upstream": "u", "summary": "s", "outcomes": list(OUTCOMES),
         "modes": [{"name": "natural", "what": ""}, {"name": "exhaustive", "what": ""}],
         "runners": [{"name": "libuv", "version": "libuv 1.44.2", "deterministic": False},
                     {"name": "sim", "version": "sim 1", "deterministic": True}],
         "status": {"magic": "ARSTAT1", "size": 368, "fields": [
             {"name": "magic", "offset": 0, "type": "char", "count": 8},
             {"name": "current", "offset": 8, "type": "u64", "count": 1},
             {"name": "done", "offset": 16, "type": "u64", "count": 1},
             {"name": "counts", "offset": 24, "type": "u64", "count": 9},
             {"name": "first_failure_iteration", "offset": 96, "type": "u64", "count": 1},
             {"name": "first_failure_outcome", "offset": 104, "type": "u64", "count": 1},
             {"name": "first_failure_detail", "offset": 112, "type": "char", "count": 256}]},
         "points": [],
         "variants": [{"name": "buggy", "what": "", "twin": None},
                      {"name": "fixed", "what": "", "twin": "buggy"}],
         "cells": [{"id": "c.sim.buggy.exhaustive", "runner": "sim", "variant": "buggy",
                    "mode": "exhaustive", "expect": {"kind": "always", "outcome": "panic"}},
                   {"id": "c.sim.fixed.exhaustive", "runner": "sim", "variant": "fixed",
                    "mode": "exhaustive", "expect": {"kind": "never"}}]}
    d.update(changes)
    return d


def test_a_contract_2_listing_is_read_with_its_new_mode_and_runner():
    d = contract.parse(listing())
    assert d.modes == ("natural", "exhaustive")
    assert [r.name for r in d.runners] == ["libuv", "sim"] and d.runners[1].deterministic
    assert [(c.id, c.kind, c.outcome) for c in d.cells] == [
        ("c.sim.buggy.exhaustive", "always", "panic"), ("c.sim.fixed.exhaustive", "never", "ok")]
    assert d.variants[1].twin == "buggy" and d.status.size == 368


def _broken(path: str, value):
    d = listing()
    target = d
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return d


@pytest.mark.parametrize("path, value, words", [
    ("contract", 1, "not contract 2"),
    ("outcomes", OUTCOMES[:-1], "include ok, crash, hang"),
    ("status.fields.3.count", 8, "8 counts for 9 outcomes"),
    ("status.fields.6", KeyError, "no field 'first_failure_detail'"),
    ("status.fields.1.type", "char", "status.current"),
    ("status.size", 300, "outside the 300-byte record"),
    ("cells.0.mode", "chaos", "'chaos' is not one of natural, exhaustive"),
    ("cells.0.runner", "epoll", "'epoll' is not one of libuv, sim"),
    ("cells.0.expect", {"kind": "always", "outcome": "boom"}, "'boom'"),
    ("cells.0.id", "c.sim.buggy.natural", "id is not c.sim.buggy.exhaustive"),
    ("variants.1.twin", "nosuch", "twin"),
    ("cells.1.expect", {"kind": "never", "outcome": "panic"}, "never goes with ok"),
])
def test_a_listing_that_does_not_add_up_is_refused_naming_the_key(path, value, words):
    with pytest.raises(ContractError, match=None) as e:
        contract.parse(_broken(path, value))
    assert words in str(e.value)


def test_the_built_programs_list_their_cells_and_the_status_layout():
    catalog = discover(declarations=[])
    assert catalog.programs and not catalog.errors, [e.message for e in catalog.errors]
    for program in catalog.programs:
        d = describe(program)
        assert d.cells and d.status.size > 0 and "ok" in d.outcomes
    assert catalog.modes and catalog.runners


# ---- power ------------------------------------------------------------------------------

def test_power_is_one_minus_the_chance_of_seeing_nothing():
    assert power(0.01, 100) == pytest.approx(1 - 0.99 ** 100)
    assert power(0.0, 1000) == 0.0 and power(1.0, 1) == 1.0 and power(0.5, 0) == 0.0
    # 1/3000 is shutdown_order.libuv.buggy.natural's quick rate: 8986 to see it at 95 %
    assert iterations_for_power(1 / 3000) == 8986
    assert iterations_for_power(0.05) == 59 and iterations_for_power(1.0) == 1
    assert iterations_for_power(0.0) == math.inf
    for p in (0.3, 0.01, 1e-4):
        n = iterations_for_power(p)
        assert power(p, n) >= 0.95 > power(p, n - 1)


def test_nightly_sizes_never_cells_from_the_twins_rate_between_floor_and_cap():
    nightly = PROFILES["nightly"]
    assert nightly.budget(NEVER, 1 / 3000).iterations == 10_000          # the floor
    assert nightly.budget(NEVER, 1e-4).iterations == iterations_for_power(1e-4) == 29956
    assert nightly.budget(NEVER, 1e-7).iterations == NIGHTLY_NEVER_CAP     # the cap
    assert nightly.budget(NEVER, 0.0).iterations == NIGHTLY_NEVER_CAP      # twin never failed
    assert nightly.budget(NEVER, None).iterations == 10_000               # nothing known
    sized = nightly.budget(NEVER, 1e-4)
    assert sized.seconds is None and not sized.reached(29955, 1e6) and sized.reached(29956, 0)


def test_quick_never_cells_are_sized_from_the_twin_between_floor_and_cap_and_run_to_the_end():
    quick = PROFILES["quick"]
    forced = quick.budget(NEVER, 1.0)          # a forced twin fails every iteration: n = 1
    assert (forced.iterations, forced.min_iterations) == (300, 300)
    assert not forced.reached(299, 60.0) and forced.reached(300, 0.1)
    assert quick.budget(NEVER, 0.001).iterations == iterations_for_power(0.001) == 2995
    rare = quick.budget(NEVER, 1 / 3000)       # needs 8986: all of them, whatever the time
    assert (rare.iterations, rare.seconds) == (8986, None) and not rare.reached(8985, 1e6)
    assert quick.budget(NEVER, 1e-6).iterations == 20_000     # the cap
    assert quick.budget(NEVER, None) == quick.never


def test_quick_sometimes_cells_are_sized_from_their_reference_rate():
    """60 failures expected at the reference rate (to see a collapse), at least 9.2/p (to
    show the failure with 99.99 % chance) even past the time budget."""
    quick = PROFILES["quick"]
    b = quick.budget(SOMETIMES, reference=0.05)
    assert (b.iterations, b.seconds, b.min_iterations) == (1200, 8.0, 180)
    assert not b.reached(179, 1e6) and b.reached(180, 8.0) and b.reached(1200, 0.1)
    assert quick.budget(SOMETIMES, reference=0.9).iterations == 100       # the floor
    rare = quick.budget(SOMETIMES, reference=0.0005)
    assert (rare.iterations, rare.min_iterations) == (120_000, 18_417)
    assert quick.budget(SOMETIMES) == quick.sometimes == quick.budget("rarely", reference=0.05)


def rec(cell: str, kind: str, failures: int, n: int, twin: str | None = None, order=(0, 0, 0)) -> dict:
    case, runner, variant, mode = cell.split(".")
    low, high = wilson(failures, n)
    return {"cell": cell, "case": case, "runner": runner, "variant": variant, "mode": mode,
            "order": list(order), "twin": twin, "expect": {"kind": kind, "outcome": "panic" if kind != NEVER else "ok"},
            "outcomes": {"ok": n - failures, "panic": failures}, "failures": failures, "iterations": n,
            "rate": failures / n, "ci": [low, high], "iterations_per_s": 1000.0, "elapsed_s": 1.0,
            "first_failure": None, "verdict": {"status": PASS, "message": ""}, "command": "x"}


def test_power_comes_from_the_reference_else_this_run_else_the_baseline_and_judges_the_cell():
    """An always twin counts as 1; a reference rate comes first (its Wilson lower bound);
    then this run's twin, then the baseline's. A never cell below 95 % power is
    underpowered, never a pass; and a fix with no powered cell on a runner is named."""
    records = [rec("c.uv.buggy.natural", SOMETIMES, 3, 1000),
               rec("c.uv.fixed.natural", NEVER, 0, 500, twin="c.uv.buggy.natural"),
               rec("c.uv.fixed.chaos", NEVER, 0, 2000, twin="c.uv.buggy.chaos"),
               rec("c.uv.fixed.forced", NEVER, 0, 100, twin="c.uv.buggy.forced"),
               rec("c.uv.fixed.lost", NEVER, 0, 100, twin="c.uv.buggy.lost"),
               rec("c.uv.control.natural", NEVER, 0, 100, twin="c.uv.buggy.gone"),
               rec("c.uv.alone.natural", NEVER, 0, 100),
               rec("c.ev.fixed.natural", NEVER, 0, 3000, twin="c.ev.buggy.natural")]
    records[3]["twin_kind"] = ALWAYS
    baseline = {"cells": {"c.uv.buggy.chaos": rec("c.uv.buggy.chaos", SOMETIMES, 10, 1000),
                          "c.uv.buggy.natural": rec("c.uv.buggy.natural", SOMETIMES, 500, 1000)}}
    reference = {"c.ev.buggy.natural": Rate(Count(26, 10000), Count(300, 10000))}
    add_power(records, baseline, reference)
    by = {r["cell"]: r["power"] for r in records}
    verdict = {r["cell"]: r["verdict"]["status"] for r in records}
    assert by["c.uv.buggy.natural"] is None and verdict["c.uv.buggy.natural"] == PASS
    assert by["c.uv.fixed.natural"]["source"] == "run"       # this run's 3/1000, not 500/1000
    low = wilson(3, 1000)[0]                                  # its lower bound, 0.102 %
    assert by["c.uv.fixed.natural"]["twin_rate"] == pytest.approx(low)
    assert by["c.uv.fixed.natural"]["value"] == pytest.approx(power(low, 500))
    assert by["c.uv.fixed.natural"]["underpowered"] and verdict["c.uv.fixed.natural"] == UNDERPOWERED
    assert by["c.uv.fixed.chaos"]["source"] == "baseline" and verdict["c.uv.fixed.chaos"] == PASS
    assert (by["c.uv.fixed.forced"]["source"], by["c.uv.fixed.forced"]["value"]) == ("always", 1.0)
    assert by["c.uv.fixed.lost"]["value"] is None and verdict["c.uv.fixed.lost"] == UNDERPOWERED
    assert by["c.uv.control.natural"]["note"] == "the twin's rate is unknown"
    assert verdict["c.uv.control.natural"] == UNDERPOWERED
    assert by["c.uv.alone.natural"]["note"] == "no twin declared"   # claims to fix nothing
    assert verdict["c.uv.alone.natural"] == UNDERPOWERED
    ev = by["c.ev.fixed.natural"]     # 26/10000: its lower bound 0.1775 %, 3000 it: 99.5 %
    assert ev["source"] == "reference" and ev["twin_rate"] == pytest.approx(wilson(26, 10000)[0])
    assert verdict["c.ev.fixed.natural"] == PASS
    assert unpowered_fixes(records) == [
        "c.control on uv: no cell reached 95 % power against its twin (natural ran): the fix "
        "is not shown there"]
    summary = {"run_id": "r", "cells": {r["cell"]: r for r in records}}
    text = matrix_md(summary)
    assert "power (lowest)" in text and "**underpowered**" in text and "## Power of never cells" in text
    rows = results_csv(records).splitlines()
    assert "power" in rows[0].split(",") and "underpowered" in rows[0].split(",")


def test_a_new_mode_or_runner_shows_in_the_matrix_without_a_python_edit(tmp_path):
    run = RunDir(tmp_path, "run")
    run.write_cell(rec("c.sim.buggy.exhaustive", SOMETIMES, 5, 10, order=(0, 1, 1)))
    run.write_cell(rec("c.libuv.buggy.natural", SOMETIMES, 1, 10, order=(0, 0, 0)))
    run.write_cell(rec("c.libuv.buggy.unlisted", SOMETIMES, 1, 10, order=(0, 0, 2)))
    summary = run.compose(run.read_cells(), {"runners": ["libuv", "sim"], "modes": ["natural", "exhaustive"]})
    header = next(line for line in (run.path / "matrix.md").read_text().splitlines() if line.startswith("| case"))
    # --list order first; a mode the records hold but the run did not list still shows
    assert header == ("| case | variant | libuv natural | libuv unlisted | sim exhaustive | "
                      "power (lowest) |"), header
    assert summary["cells"]["c.sim.buggy.exhaustive"]["iterations"] == 10
