"""The discovered cells are exactly the pinned ones (cases/cells.txt): nothing that
should run can vanish quietly, and nothing new runs unpinned."""
from asyncrace import pin
from asyncrace.paths import PINNED, shown
from asyncrace.pytest_plugin import catalog


def test_the_discovered_cells_are_the_pinned_cells():
    found = {c.id for c in catalog().cells}
    missing, extra = pin.difference(found, set(pin.read()))
    problems = [f"{len(missing)} pinned cells missing (a program gone from build/bin, a runner "
                f"dropped, a --list without cells?):" if missing else "",
                *(f"  - {i}" for i in missing),
                f"{len(extra)} cells not pinned:" if extra else "", *(f"  + {i}" for i in extra),
                *(f"  {e.message}" for e in catalog().errors)]
    assert not (missing or extra), "\n".join(filter(None, problems)) + (
        f"\nA deliberate change? Run `python3 -m asyncrace pin` and commit "
        f"{shown(PINNED)}.")
