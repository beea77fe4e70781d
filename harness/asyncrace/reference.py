"""cases/rates.txt: the reference rate of every sometimes cell, measured long and kept in
the repository, refreshed deliberately (like cases/cells.txt).

    shutdown_order.epoll.buggy.natural 38/8000 709/16000
    shutdown_order.sim.buggy.chaos 18654/200000

A real loop's rate depends on what else the machine runs: shutdown_order's natural panic
shows at 0.48 % on epoll with the machine otherwise idle and at 4.5 % with a second copy
running beside it (libev: 0.24 % and 4 %). So each real cell is measured twice: alone
(idle), and as two copies at once (loaded, the condition of `make test -n 2`), and both
counts are kept. A runner that owns its schedule (sim) is measured once: load does not
change it.

The rate taken is the lower of the two counts' Wilson lower bounds: from it the quick
profile sizes each sometimes cell (enough iterations to show its failure with 99.99 %
chance, and to see a collapse), fails one whose rate collapsed (judge.py), and sizes and
measures the power of each never cell against its twin's rate.

``python -m asyncrace reference`` measures the sometimes cells (or reads a finished run
with --from, one condition) and rewrites the file, printing what changed. A cell that
showed nothing cannot have a reference: its expectation must say what that runner and mode
can show (rarely), or it needs a larger budget.
"""
from dataclasses import dataclass
from pathlib import Path

from .judge import SOMETIMES
from .paths import ROOT
from .results import atomic_write_text
from .stats import percent, wilson

RATES = ROOT / "cases" / "rates.txt"
HEADER = ("# Reference rates: failures/iterations of each sometimes cell, measured long, idle and\n"
          "# (real loops) loaded with a second copy beside it; the lower rate is taken. The quick\n"
          "# profile sizes sometimes cells from it and fails a collapsed rate; never cells are\n"
          "# sized and judged against their twin's. Refresh deliberately, with the reason in the\n"
          "# commit: python3 -m asyncrace reference (harness/asyncrace/reference.py)\n")


@dataclass(frozen=True)
class Count:
    failures: int
    iterations: int

    @property
    def low(self) -> float:
        return wilson(self.failures, self.iterations)[0]

    @property
    def rate(self) -> float:
        return self.failures / self.iterations

    def text(self) -> str:
        return f"{self.failures}/{self.iterations}"


@dataclass(frozen=True)
class Rate:
    """A cell's counts: idle, and loaded for a real loop."""
    idle: Count
    loaded: Count | None = None

    @property
    def counts(self) -> tuple[Count, ...]:
        return (self.idle,) if self.loaded is None else (self.idle, self.loaded)

    @property
    def low(self) -> float:
        """What the driver uses: the lower 95 % Wilson lower bound of the counts."""
        return min(c.low for c in self.counts)

    @property
    def iterations(self) -> int:
        return sum(c.iterations for c in self.counts)

    def text(self) -> str:
        return " ".join(c.text() for c in self.counts)

    @classmethod
    def parse(cls, text: str) -> "Rate":
        counts = []
        for part in text.split():
            failures, iterations = (int(x) for x in part.split("/"))
            if not 0 < failures <= iterations:
                raise ValueError("needs 0 < failures <= iterations")
            counts.append(Count(failures, iterations))
        if len(counts) not in (1, 2):
            raise ValueError("one count (idle) or two (idle, loaded)")
        return cls(*counts)


class RatesError(ValueError):
    """A rates file that does not read, or a run that cannot be a reference."""


def read(path: Path = RATES) -> dict[str, Rate]:
    if not path.is_file():
        return {}
    rates = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            cell, counts = line.split(maxsplit=1)
            rates[cell] = Rate.parse(counts)
        except ValueError as e:
            raise RatesError(f"{path}:{number}: {line!r}: expected 'CELL IDLE [LOADED]', each "
                                 f"FAILURES/ITERATIONS ({e})") from e
    return rates


def rates_file(cell) -> Path:
    """cases/rates.txt, or beside a declarations file of the user's own: my.rates.txt
    next to my.toml (as its cells are pinned in my.cells.txt)."""
    from .pin import pin_file
    from .paths import PINNED
    pinned = pin_file(cell)
    return RATES if pinned == PINNED else pinned.with_name(
        pinned.name.removesuffix(".cells.txt") + ".rates.txt")


def user_rates_files() -> list[Path]:
    """my.rates.txt beside each declarations file ASYNCRACE_EXTERNAL adds."""
    from .matrix import declaration_files
    return [p.with_suffix(".rates.txt") for p in declaration_files()[1:]]


def needs_reference(cell) -> bool:
    """A sometimes cell that samples a rate (a search finds or does not: no rate)."""
    return cell.expect.kind == SOMETIMES and not cell.search


def from_records(records: list[dict]) -> tuple[dict[str, Rate], list[str]]:
    """The rates of a run's sometimes cells, and the problems (a cell that showed nothing)."""
    rates, problems = {}, []
    for r in records:
        if r["expect"]["kind"] != SOMETIMES or r.get("sim", {}).get("searching"):
            continue
        if r["failures"] <= 0:
            problems.append(f"{r['cell']}: 0/{r['iterations']}: nothing to take as its rate; "
                            f"declare what {r['runner']} {r['mode']} can show (rarely) or give "
                            f"it a larger budget")
            continue
        rates[r["cell"]] = Rate(Count(r["failures"], r["iterations"]))
    return rates, problems


def write(rates: dict[str, Rate], path: Path = RATES, note: str = "") -> None:
    lines = [f"# {note}\n"] if note else []
    atomic_write_text(path, HEADER + "".join(lines) +
                      "".join(f"{c} {rates[c].text()}\n" for c in sorted(rates)))


def diff_lines(old: dict[str, Rate], new: dict[str, Rate]) -> list[str]:
    lines = []
    for cell in sorted(set(old) | set(new)):
        a, b = old.get(cell), new.get(cell)
        if a is None:
            lines.append(f"+ {cell} {b.text()}")
        elif b is None:
            lines.append(f"- {cell} {a.text()}")
        elif a != b:
            lines.append(f"~ {cell} {percent(a.low)}% -> {percent(b.low)}% "
                         f"({a.text()} -> {b.text()})")
    return lines


def measure(cell, budget, report=print) -> tuple[Rate | None, str]:
    """A cell's reference counts: idle (alone), then for a real loop loaded (two copies at
    once, seeds 1 and 2). (None, why) when a count shows no failure."""
    from concurrent.futures import ThreadPoolExecutor
    from . import external
    from .paths import RESULTS
    from .program import run_loop
    if cell.reproducer is not None:
        ok, text = external.build_once(cell.reproducer, RESULTS / ".builds")
        if not ok:
            return None, f"the build step failed: {text}"
    idle_loop = run_loop(cell.invocation(1), budget)
    idle = Count(idle_loop.failures, idle_loop.iterations)
    loaded = None
    if not cell.deterministic:
        with ThreadPoolExecutor(2) as pool:
            loops = list(pool.map(lambda seed: run_loop(cell.invocation(seed), budget), (1, 2)))
        loaded = Count(sum(lp.failures for lp in loops), sum(lp.iterations for lp in loops))
    for name, c in (("idle", idle), ("loaded", loaded)):
        if c is not None and c.failures <= 0:
            return None, f"{name}: 0/{c.iterations}"
    rate = Rate(idle, loaded)
    shown = ", ".join(f"{n} {c.text()} ({percent(c.rate)}%)"
                      for n, c in (("idle", idle), ("loaded", loaded)) if c)
    report(f"{cell.id}: {shown}; taken {percent(rate.low)}%")
    return rate, ""
