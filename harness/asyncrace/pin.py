"""cases/cells.txt: the cells the suite must have, one id per line, sorted.

A program whose --list names no cells, a binary missing from build/bin, a runner dropped,
an external reproducer removed: each shows as cells missing from the discovered set, and
the pinned-cells test fails naming them. Changing the set is a deliberate edit of that
file next to the change: ``python -m asyncrace pin`` rewrites it and prints the diff.

The cells of a declarations file a user adds (ASYNCRACE_EXTERNAL=my.toml) are pinned
beside that file, in my.cells.txt: the project's list stays the project's.
"""
from pathlib import Path

from .paths import EXTERNAL, PINNED, ROOT, shown
from .results import atomic_write_text

HEADER = ("# The cells the suite must have (cases/test_pinned.py). Regenerate after a deliberate\n"
          "# change with: python3 -m asyncrace pin\n")


def read(path: Path = PINNED) -> list[str]:
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def difference(found: set[str], pinned: set[str]) -> tuple[list[str], list[str]]:
    """(missing: pinned but not found, extra: found but not pinned), sorted."""
    return sorted(pinned - found), sorted(found - pinned)


def write(ids: set[str], path: Path = PINNED) -> None:
    atomic_write_text(path, HEADER + "".join(f"{i}\n" for i in sorted(ids)))


def diff_lines(missing: list[str], extra: list[str]) -> list[str]:
    return [f"- {i}" for i in missing] + [f"+ {i}" for i in extra]


def pin_file(cell) -> Path:
    """Where a cell is pinned: cases/cells.txt, or beside the user's declarations file."""
    rep = cell.reproducer
    if rep is None or rep.source == shown(EXTERNAL) or rep.source == "command line":
        return PINNED
    declared = Path(rep.source)
    declared = declared if declared.is_absolute() else ROOT / declared
    return declared.with_suffix(".cells.txt")


def groups(cells) -> dict[Path, set[str]]:
    """The discovered cell ids by the file they are pinned in (cases/cells.txt first)."""
    found: dict[Path, set[str]] = {PINNED: set()}
    for c in cells:
        found.setdefault(pin_file(c), set()).add(c.id)
    return found
