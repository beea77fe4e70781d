"""pytest front end of asyncrace: one test per cell, from the programs' own --list.

The work lives in harness/asyncrace (shared with ``python -m asyncrace``). Under
pytest-xdist the controller picks the run id and probes rr once, hands both to the
workers (pytest_configure_node), each worker writes the JSON of the cells it ran, and the
controller composes summary.json, matrix.md and results.csv at the end.
"""
import sys
from functools import lru_cache
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))

from asyncrace.capture import probe_rr  # noqa: E402
from asyncrace.matrix import NO_PROGRAMS, Cell, DiscoveryError, discover, select  # noqa: E402
from asyncrace.options import existing_summary, positive_float, positive_int, seed  # noqa: E402
from asyncrace.profiles import PROFILES  # noqa: E402
from asyncrace.session import (CAPTURE_ALL, CAPTURE_NONE, CAPTURE_REGRESSIONS,  # noqa: E402
                               Settings, finish_run, header_lines, rate_line)

SETTINGS = pytest.StashKey[Settings]()
FINISHED = pytest.StashKey[tuple]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("asyncrace", "asyncrace matrix")
    group.addoption("--iterations", type=positive_int, help="iterations per cell (replaces the profile's)")
    group.addoption("--seconds", type=positive_float, help="seconds per cell (replaces the profile's)")
    group.addoption("--seed", type=seed, default=1, help="run seed (default 1)")
    group.addoption("--runner", action="append", help="only this runner (repeatable)")
    group.addoption("--profile", choices=sorted(PROFILES), default="quick",
                    help="quick (make test) or nightly (the long soak)")
    group.addoption("--results-dir", default=str(Path(__file__).resolve().parent / "results"),
                    help="where results/<run-id>/ goes")
    group.addoption("--capture-failures", dest="asyncrace_capture", action="store_const",
                    const=CAPTURE_ALL, default=CAPTURE_REGRESSIONS,
                    help="capture failures of buggy cells too (never cells always are)")
    group.addoption("--no-capture-failures", dest="asyncrace_capture", action="store_const",
                    const=CAPTURE_NONE, help="capture nothing")
    group.addoption("--baseline", type=existing_summary, help="an earlier summary.json to compare with")


@lru_cache(maxsize=1)
def _discovered() -> tuple[list[Cell], list[DiscoveryError]]:
    return discover()


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[SETTINGS] = Settings.from_dict(workerinput["asyncrace"])
        return
    try:
        select(_discovered()[0], config.getoption("runner"))
    except ValueError as e:
        raise pytest.UsageError(f"--runner: {e}")
    config.stash[SETTINGS] = Settings(
        PROFILES[config.getoption("profile")], probe_rr(), seed=config.getoption("seed"),
        iterations=config.getoption("iterations"), seconds=config.getoption("seconds"),
        results_dir=Path(config.getoption("results_dir")).resolve(),
        capture=config.getoption("asyncrace_capture"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker uses the controller's run id and rr verdict."""
    node.workerinput["asyncrace"] = node.config.stash[SETTINGS].to_dict()


def pytest_report_header(config: pytest.Config) -> list[str]:
    cells, _ = _discovered()
    return header_lines(config.stash[SETTINGS], select(cells, config.getoption("runner")))


def _params(entries: list, errors: list[DiscoveryError], id_of) -> list:
    """One param per entry; a program whose --list failed and an empty build/bin each
    become a param whose fixture fails, so nothing is silently collected as nothing."""
    params = [pytest.param(e, id=id_of(e)) for e in entries]
    params += [pytest.param(e, id=f"{e.program.name}.list") for e in errors]
    if not entries and not errors:
        params.append(pytest.param(None, id="no-case-programs"))
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cells, errors = _discovered()
    cells = select(cells, metafunc.config.getoption("runner"))
    if "cell" in metafunc.fixturenames:
        metafunc.parametrize("cell", _params(cells, errors, lambda c: c.id), indirect=True)
    if "sanitizer_cell" in metafunc.fixturenames:
        pairs = [(flavour, c) for flavour in ("asan", "tsan") for c in cells
                 if c.expect.kind == "never" and c.mode in ("natural", "forced")]
        metafunc.parametrize("sanitizer_cell", _params(pairs, errors, lambda p: f"{p[0]}-{p[1].id}"),
                             indirect=True)


def _entry(request: pytest.FixtureRequest):
    if request.param is None:
        pytest.fail(NO_PROGRAMS, pytrace=False)
    if isinstance(request.param, DiscoveryError):
        pytest.fail(request.param.message, pytrace=False)
    return request.param


@pytest.fixture
def cell(request: pytest.FixtureRequest) -> Cell:
    return _entry(request)


@pytest.fixture
def sanitizer_cell(request: pytest.FixtureRequest) -> tuple[str, Cell]:
    return _entry(request)


@pytest.fixture
def asyncrace_settings(request: pytest.FixtureRequest) -> Settings:
    return request.config.stash[SETTINGS]


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or SETTINGS not in config.stash:
        return  # the controller composes, once
    config.stash[FINISHED] = finish_run(config.stash[SETTINGS], config.getoption("baseline"))


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    summary, findings = config.stash.get(FINISHED, (None, []))
    if summary is None:
        return
    terminalreporter.section("asyncrace rates")
    for record in summary["cells"].values():
        terminalreporter.write_line(rate_line(record))
    run_dir = config.stash[SETTINGS].run_dir.path
    terminalreporter.write_line(f"results: {run_dir} (matrix.md, summary.json, results.csv)")
    if findings:
        terminalreporter.section("asyncrace baseline")
        for finding in findings:
            terminalreporter.write_line(finding.text())
