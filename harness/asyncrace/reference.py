"""cases/rates.txt: the reference rate of every sometimes cell, measured long and kept in
the repository, refreshed deliberately (like cases/cells.txt).

    dropped_writer.epoll.buggy.chaos 1883/7520

From it the quick profile sizes each sometimes cell (enough iterations to show its failure
with 99.99 % chance, and to see a collapse), fails one whose rate collapsed, and sizes and
measures the power of each never cell against its twin's rate. The rate taken is the
Wilson lower bound of the count: conservative for both.

``python -m asyncrace reference`` runs the sometimes cells at the reference budget (or
reads a finished run with --from) and rewrites the file, printing what changed. A cell
that showed nothing there cannot have a reference: its expectation must say what that
runner and mode can show (rarely), or it needs a larger budget.
"""
from dataclasses import dataclass
from pathlib import Path

from .judge import SOMETIMES
from .paths import ROOT
from .results import atomic_write_text
from .stats import percent, wilson

RATES = ROOT / "cases" / "rates.txt"
HEADER = ("# Reference rates: failures/iterations of each sometimes cell, measured long. The\n"
          "# quick profile sizes sometimes cells from them and fails a collapsed rate; never\n"
          "# cells are sized and judged against their twin's. Refresh deliberately, with the\n"
          "# reason in the commit: python3 -m asyncrace reference\n")


@dataclass(frozen=True)
class Rate:
    failures: int
    iterations: int

    @property
    def low(self) -> float:
        """What the driver uses: the 95 % Wilson lower bound."""
        return wilson(self.failures, self.iterations)[0]

    def text(self) -> str:
        return f"{self.failures}/{self.iterations}"


class ReferenceError(ValueError):
    """A rates file that does not read, or a run that cannot be a reference."""


def read(path: Path = RATES) -> dict[str, Rate]:
    if not path.is_file():
        return {}
    rates = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            cell, count = line.split()
            failures, iterations = (int(x) for x in count.split("/"))
            if not 0 < failures <= iterations:
                raise ValueError("needs 0 < failures <= iterations")
        except ValueError as e:
            raise ReferenceError(f"{path}:{number}: {line!r}: expected 'CELL FAILURES/ITERATIONS' "
                                 f"({e})") from e
        rates[cell] = Rate(failures, iterations)
    return rates


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
        rates[r["cell"]] = Rate(r["failures"], r["iterations"])
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
            lines.append(f"~ {cell} {percent(a.failures / a.iterations)}% -> "
                         f"{percent(b.failures / b.iterations)}% ({a.text()} -> {b.text()})")
    return lines
