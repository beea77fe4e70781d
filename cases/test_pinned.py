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


def test_every_sometimes_cell_has_its_reference_rate():
    """cases/rates.txt holds a rate for exactly the sometimes cells that sample one: the
    quick budgets and the collapse check come from it, and the never cells' power."""
    from asyncrace import reference
    wanted = {c.id for c in catalog().cells if reference.needs_reference(c)}
    rates = set(reference.read())
    missing, stale = sorted(wanted - rates), sorted(rates - wanted)
    assert not (missing or stale), (
        f"{len(missing)} sometimes cells without a reference rate: {missing[:10]}; "
        f"{len(stale)} rates of cells that are not sometimes cells: {stale[:10]}. Measure "
        f"them: `python3 -m asyncrace reference --case C --runner R` (and commit "
        f"{shown(reference.RATES)} with the reason).")
