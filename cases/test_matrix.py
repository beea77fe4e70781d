"""One test per cell (case x runner x variant x mode), judged against the program's own
expectation: never cells must not fail, always cells must fail every iteration with the
declared outcome, sometimes cells must show it within the budget."""
import pytest

from asyncrace.judge import FAIL, NOT_REPRODUCED
from asyncrace.matrix import Cell
from asyncrace.session import Settings, capture_text, rate_line, run_cell


def test_cell(cell: Cell, asyncrace_settings: Settings, record_property) -> None:
    record = run_cell(cell, asyncrace_settings)
    for key in ("iterations", "failures", "rate", "ci", "iterations_per_s", "outcomes"):
        record_property(key, record[key])
    record_property("rate_line", rate_line(record))
    verdict = record["verdict"]
    message = "\n".join(filter(None, (rate_line(record), verdict["message"], capture_text(record))))
    if verdict["status"] == NOT_REPRODUCED and not asyncrace_settings.profile.rot_fails:
        pytest.xfail(verdict["message"])
    if verdict["status"] in (FAIL, NOT_REPRODUCED):
        pytest.fail(message, pytrace=False)
