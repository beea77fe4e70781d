"""The driver's options: one table for pytest's addoption and ``python -m asyncrace``.

Each option is declared once (flags, type, default, help) with the front ends it belongs
to: ``run`` (python -m asyncrace run), ``list``, ``loop``, ``pytest``. The types check
ranges so that bad input is one line and exit 2 (argparse) or a usage error (pytest).
"""
import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .baseline import load_summary
from .paths import RESULTS

MAX_ITERATIONS = 10**12   # per cell: far past any budget, far below the programs' u64
MAX_SECONDS = 10**6
MAX_SEED = 2**64 - 1      # the programs' --seed is a u64
MAX_SHARDS = 1000
PROGRESS_MODES = ("auto", "live", "lines", "off")
ALLOW_MISSING_ENV = "ASYNCRACE_ALLOW_MISSING_BUILDS"


def _integer(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text, 0)   # decimal or 0x hex, like the programs
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {what} from {low} to {high}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, MAX_ITERATIONS, "a whole number")


def seed(text: str) -> int:
    return _integer(text, 0, MAX_SEED, "a whole number")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value <= MAX_SECONDS):   # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds above 0 "
                                         f"and at most {MAX_SECONDS}")
    return value


class Shard(NamedTuple):
    index: int   # 1-based
    count: int

    def text(self) -> str:
        return f"{self.index}/{self.count}"


def shard(text: str) -> Shard:
    k, sep, n = text.partition("/")
    try:
        index, count = int(k), int(n)
    except ValueError:
        index = count = 0
    if not sep or not 1 <= index <= count <= MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected K/N with 1 <= K <= N <= {MAX_SHARDS}")
    return Shard(index, count)


def existing_summary(text: str) -> Path:
    path = Path(text)
    try:
        load_summary(path)
    except (OSError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"{text}: not a readable summary.json ({e})")
    return path


def _profiles() -> list[str]:
    from .profiles import PROFILES  # late: profiles needs nothing from here, but keeps this light
    return sorted(PROFILES)


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    where: frozenset[str]
    kwargs: dict = field(default_factory=dict)


CAPTURE_NONE, CAPTURE_REGRESSIONS, CAPTURE_ALL = "none", "regressions", "all"
RUN, LIST, LOOP, PYTEST = "run", "list", "loop", "pytest"
_CELLS = frozenset({RUN, LIST, PYTEST})
_BUDGET = frozenset({RUN, LOOP, PYTEST})

OPTIONS = (
    Option(("--case",), _CELLS, dict(action="append", dest="asyncrace_case", metavar="NAME",
                                     help="only this case or reproducer (repeatable)")),
    Option(("--runner",), _CELLS, dict(action="append", dest="asyncrace_runner", metavar="NAME",
                                       help="only this runner (repeatable)")),
    Option(("--shard",), _CELLS, dict(type=shard, dest="asyncrace_shard", metavar="K/N",
                                      help="only part K of N, balanced by expected cost")),
    Option(("--profile",), _BUDGET, dict(choices=_profiles(), default="quick", dest="asyncrace_profile",
                                         help="quick (make test) or nightly (the long soak)")),
    Option(("--iterations",), _BUDGET, dict(type=positive_int, dest="asyncrace_iterations", metavar="N",
                                            help="iterations per cell (replaces the profile's)")),
    Option(("--seconds",), _BUDGET, dict(type=positive_float, dest="asyncrace_seconds", metavar="S",
                                         help="seconds per cell (replaces the profile's)")),
    Option(("--seed",), _BUDGET, dict(type=seed, default=1, dest="asyncrace_seed", metavar="S",
                                      help="run seed (default 1)")),
    Option(("--results-dir",), _BUDGET, dict(default=str(RESULTS), dest="asyncrace_results_dir",
                                             metavar="DIR", help="where results/<run-id>/ goes")),
    Option(("--capture-failures",), _BUDGET, dict(
        dest="asyncrace_capture", action="store_const", const=CAPTURE_ALL,
        default=CAPTURE_REGRESSIONS, help="capture failures of buggy cells too (never cells always are)")),
    Option(("--no-capture-failures",), _BUDGET, dict(
        dest="asyncrace_capture", action="store_const", const=CAPTURE_NONE, help="capture nothing")),
    Option(("--baseline",), _BUDGET, dict(type=existing_summary, dest="asyncrace_baseline", metavar="FILE",
                                          help="an earlier summary.json (or run folder) to compare with")),
    Option(("--progress",), _BUDGET, dict(choices=PROGRESS_MODES, default="auto", dest="asyncrace_progress",
                                          help="progress of long cells: live (one \\r line), lines "
                                               "(every 10 s), off; auto: live on a terminal")),
    Option(("--allow-missing-builds",), frozenset({PYTEST}), dict(
        action="store_true", dest="asyncrace_allow_missing",
        default=os.environ.get(ALLOW_MISSING_ENV, "") not in ("", "0"),
        help=f"skip (instead of fail) tests whose build/asan, build/tsan or conformance build is "
             f"missing; also {ALLOW_MISSING_ENV}=1")),
)


def add_to_argparse(parser: argparse.ArgumentParser, where: str) -> None:
    for option in OPTIONS:
        if where in option.where:
            parser.add_argument(*option.flags, **option.kwargs)


def add_to_pytest(group, where: str = PYTEST) -> None:
    """group: pytest's OptionGroup; the same names, types, defaults and help."""
    for option in OPTIONS:
        if where in option.where:
            group.addoption(*option.flags, **option.kwargs)


class OneLineParser(argparse.ArgumentParser):
    """Bad input: one line on stderr naming the problem, exit 2 (no usage block)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: {message}", file=sys.stderr)
        sys.exit(2)
