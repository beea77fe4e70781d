"""pytest front end of asyncrace: one test per cell, from the programs' own --list and
cases/external.toml (loaded by the root conftest.py).

Under pytest-xdist the controller picks the run id and probes rr once, hands both to the
workers (pytest_configure_node), each worker writes the JSON of the cells it ran (and its
progress line to a file the controller tails), and the controller composes summary.json,
matrix.md, results.csv and report.html at the end.
"""
import os
import sys
from functools import lru_cache

import pytest

from .capture import probe_rr
from .matrix import NO_PROGRAMS, Catalog, Cell, DiscoveryError, discover, select, twins_first
from .options import add_to_pytest
from .paths import SANITIZER_BIN, shown
from .selftests import FLAVOURS, SelfTestError, listed, program, run as run_selftests
from .progress import CellProgress, FileSink, StreamSink, Tail, stream_is_live
from .reference import RatesError
from .session import (FAILED, SKIP, TOLERATED, Settings, consequence, finish_run,
                      header_lines, rate_line)
from .shard import select_shard

SETTINGS = pytest.StashKey[Settings]()
FINISHED = pytest.StashKey[tuple]()
TAIL = pytest.StashKey[Tail]()
LIVE = pytest.StashKey[bool | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_to_pytest(parser.getgroup("asyncrace", "asyncrace matrix"))


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    return discover()


def _selected(config: pytest.Config) -> list[Cell]:
    return select(catalog().cells, config.getoption("asyncrace_runner"),
                  config.getoption("asyncrace_case"))


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if not _is_controller(config):
        config.stash[SETTINGS] = Settings.from_dict(config.workerinput["asyncrace"])
        return
    if catalog().declaration_error:
        raise pytest.UsageError(catalog().declaration_error)
    try:
        _selected(config)
    except ValueError as e:
        raise pytest.UsageError(str(e))
    config.stash[SETTINGS] = settings = Settings.from_options(config.getoption, probe_rr())
    try:
        settings.reference
    except RatesError as e:
        raise pytest.UsageError(str(e))


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Whether progress is a live line (decided now: during a test, capture makes stdout
    no terminal); the xdist controller (once xdist's own configure has registered it)
    tails the workers' progress files onto its terminal."""
    config = session.config
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if not _is_controller(config) or tr is None:
        return
    settings = config.stash[SETTINGS]
    stream = getattr(tr._tw, "_file", sys.stdout)
    live = stream_is_live(settings.progress, stream)
    config.stash[LIVE] = live
    if live is not None and config.pluginmanager.has_plugin("dsession"):
        tail = Tail(settings.run_dir.path / ".progress", stream, live,
                    lambda: getattr(tr._tw, "_current_line", ""))
        config.stash[TAIL] = tail
        global _tail
        _tail = tail
        tail.start()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker uses the controller's run id and rr verdict."""
    node.workerinput["asyncrace"] = node.config.stash[SETTINGS].to_dict()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return header_lines(config.stash[SETTINGS], catalog(), _selected(config))


def _params(entries: list, errors: list[DiscoveryError], id_of) -> list:
    """One param per entry; a program whose --list failed and an empty build/bin each
    become a param whose fixture fails, so nothing is silently collected as nothing."""
    params = [pytest.param(e, id=id_of(e)) for e in entries]
    params += [pytest.param(e, id=f"{e.program.name}.list") for e in errors]
    if not entries and not errors:
        params.append(pytest.param(None, id="no-case-programs"))
    return params


def sanitizer_pairs(cells: list[Cell]) -> list[tuple[str, Cell]]:
    """Every never cell of a case program, under every sanitizer build."""
    return [(flavour, c) for flavour in SANITIZER_BIN for c in cells
            if c.expect.kind == "never" and c.program is not None]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cells = twins_first(_selected(metafunc.config))
    errors = catalog().errors
    if "cell" in metafunc.fixturenames:
        metafunc.parametrize("cell", _params(cells, errors, lambda c: c.id), indirect=True)
    if "sanitizer_cell" in metafunc.fixturenames:
        metafunc.parametrize("sanitizer_cell", _params(sanitizer_pairs(cells), errors,
                                                       lambda p: f"{p[0]}-{p[1].id}"), indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    settings = config.stash[SETTINGS]
    if settings.shard is None:
        return
    keep, drop = select_shard(items, settings)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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


@pytest.fixture
def allow_missing_builds(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("asyncrace_allow_missing"))


class _Suspended(StreamSink):
    """pytest without xdist: the line goes to its terminal with capture suspended."""

    def __init__(self, capman, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.capman = capman

    def show(self, snap) -> None:
        with self.capman.global_and_fixture_disabled():
            super().show(snap)

    def clear(self) -> None:
        with self.capman.global_and_fixture_disabled():
            super().clear()


@pytest.fixture
def asyncrace_progress(request: pytest.FixtureRequest):
    """progress(cell id, budget) -> a CellProgress for this front end, or None."""
    config = request.config
    settings = config.stash[SETTINGS]

    def make(cell_id: str, budget) -> CellProgress | None:
        if settings.progress == "off":
            return None
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker:
            return CellProgress(cell_id, budget,
                                FileSink(settings.run_dir.path / ".progress" / f"{worker}.json"), worker)
        tr = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        if tr is None or capman is None:
            return None
        stream = getattr(tr._tw, "_file", sys.stdout)
        live = config.stash.get(LIVE, None)
        if live is None:
            return None
        sink = _Suspended(capman, stream, live, before=tr.ensure_newline,
                          after=lambda: getattr(tr._tw, "_current_line", ""))
        return CellProgress(cell_id, budget, sink)
    return make


_tail: Tail | None = None   # the controller's (this hook has no config to find it in)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report) -> None:
    """Before the reporter writes its letter, take the live line away."""
    if _tail is not None:
        _tail.yield_line()


def judge_test(record: dict, settings: Settings, message: str) -> None:
    """The one rot rule (session.consequence) as pytest outcomes."""
    outcome = consequence(record, settings.profile)
    if outcome == SKIP:
        pytest.skip(record["verdict"]["message"])
    if outcome == TOLERATED:
        pytest.xfail(record["verdict"]["message"])
    if outcome == FAILED:
        pytest.fail(message, pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller composes the run, once. A fix that no cell showed with the power its
    claim needs on some runner (results.unpowered_fixes) fails the session: its cells
    were each tolerated (xfail) as underpowered, but together they show nothing."""
    config = session.config
    if not _is_controller(config) or SETTINGS not in config.stash:
        return
    tail = config.stash.get(TAIL, None)
    if tail is not None:
        tail.stop()
    config.stash[FINISHED] = finished = finish_run(config.stash[SETTINGS], catalog())
    summary = finished[0]
    if summary and summary.get("unpowered") and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    summary, findings = config.stash.get(FINISHED, (None, []))
    if summary is None:
        return
    terminalreporter.section("asyncrace rates")
    for record in summary["cells"].values():
        terminalreporter.write_line(rate_line(record))
    run_dir = config.stash[SETTINGS].run_dir.path
    for line in summary.get("unpowered", []):
        terminalreporter.write_line(f"FAILED (power): {line}", red=True)
    terminalreporter.write_line(f"results: {run_dir} (matrix.md, summary.json, results.csv)")
    if findings:
        terminalreporter.section("asyncrace baseline")
        for finding in findings:
            terminalreporter.write_line(finding.text())
    terminalreporter.write_line(f"report: {run_dir / 'report.html'}")


# ---- a declared reproducer a test runs ---------------------------------------------------

def built_reproducer(name: str, program, scratch) -> None:
    """For a test: a reproducer of cases/external.toml built by its declaration's build step
    (once per session in a run; here, if program is missing), or the test skipped where
    its packages are not installed, as its cells are."""
    from . import external
    from .paths import ROOT
    rep = next(r for r in external.load(ROOT / "cases" / "external.toml") if r.name == name)
    if rep.unmet():
        pytest.skip("; ".join(n.text() for n in rep.unmet()))
    if not program.is_file():
        ok, text = external.build_once(rep, scratch / ".builds")
        assert ok, text


# ---- the C self-test programs: one id per C test, from the program's own list ----------

def selftest_params(name: str, per_runner: bool = False) -> list:
    """(flavour, runner or None, test) per C test of build/*/tools/NAME; when the release
    build cannot list them, one failing param per flavour that says why."""
    try:
        tests = listed(program(name, "release"))
        runners = listed(program(name, "release"), "--list-runners") if per_runner else [None]
    except SelfTestError as e:
        return [pytest.param(f, None, None, str(e), id=f"{f}-unbuilt") for f in FLAVOURS]
    return [pytest.param(f, r, t, None, id="-".join(filter(None, (f, r, t))))
            for f in FLAVOURS for r in runners for t in tests]


def check_selftest(name: str, flavour: str, runner: str | None, test: str | None,
                   problem: str | None, allow_missing: bool) -> None:
    """Passes, skips or fails as the program's line for this test says."""
    path = program(name, flavour)
    if problem or not path.is_file():
        message = problem or f"{shown(path)} is not built: run make"
        if allow_missing:
            pytest.skip(message + " (skipped: --allow-missing-builds)")
        pytest.fail(message + " (or pass --allow-missing-builds to skip)", pytrace=False)
    args = ("--runner", runner) if runner else ()
    status, text = run_selftests(name, flavour, args).verdict(test)
    if status == "SKIP":
        pytest.skip(text)
    if status != "PASS":
        pytest.fail(f"{' '.join([shown(path), *args, '--test', test])}: {text}", pytrace=False)
