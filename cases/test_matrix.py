"""One test per cell (case x runner x variant x mode, and every external reproducer's
cells), judged against the program's own expectation: never cells must not fail, always
cells must fail every iteration with the declared outcome, sometimes cells must show it
within the budget. What a verdict means (the rot rule) is the driver's: session.consequence."""
import pytest

from asyncrace.matrix import Cell
from asyncrace.program import ProgramError
from asyncrace.pytest_plugin import judge_test
from asyncrace.session import Settings, capture_text, rate_line, run_cell


def test_cell(cell: Cell, asyncrace_settings: Settings, asyncrace_progress, record_property) -> None:
    budget = asyncrace_settings.budget(cell)
    try:
        record = run_cell(cell, asyncrace_settings, asyncrace_progress(cell.id, budget))
    except ProgramError as e:
        pytest.fail(f"{cell.id}: {e}", pytrace=False)
    for key in ("iterations", "failures", "rate", "ci", "iterations_per_s", "outcomes"):
        record_property(key, record[key])
    record_property("rate_line", rate_line(record))
    message = "\n".join(filter(None, (rate_line(record), record["verdict"]["message"],
                                      capture_text(record))))
    judge_test(record, asyncrace_settings, message)
