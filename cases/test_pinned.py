"""The discovered cells are exactly the pinned ones (cases/cells.txt, and beside a
declarations file of the user's own): nothing that should run can vanish quietly, and
nothing new runs unpinned."""
import pytest

from asyncrace import pin
from asyncrace.paths import shown
from asyncrace.pytest_plugin import catalog


@pytest.mark.parametrize("pinned", list(pin.groups(catalog().cells)), ids=shown)
def test_the_discovered_cells_are_the_pinned_cells(pinned):
    """cases/cells.txt for the case programs and cases/external.toml; a file of the user's
    own (ASYNCRACE_EXTERNAL=my.toml) is pinned beside it, in my.cells.txt."""
    found = pin.groups(catalog().cells)[pinned]
    missing, extra = pin.difference(found, set(pin.read(pinned)))
    problems = [f"{len(missing)} pinned cells missing (a program gone from build/bin, a runner "
                f"dropped, a --list without cells?):" if missing else "",
                *(f"  - {i}" for i in missing),
                f"{len(extra)} cells not pinned:" if extra else "", *(f"  + {i}" for i in extra),
                *(f"  {e.message}" for e in catalog().errors)]
    assert not (missing or extra), "\n".join(filter(None, problems)) + (
        f"\nA deliberate change? Run `python3 -m asyncrace pin` and commit "
        f"{shown(pinned)}.")


def rates_files() -> list:
    from asyncrace import reference
    return list(dict.fromkeys([reference.RATES, *(reference.rates_file(c) for c in catalog().cells)]))


@pytest.mark.parametrize("rates_file", rates_files(), ids=shown)
def test_every_sometimes_cell_has_its_reference_rate(rates_file):
    """cases/rates.txt (or my.rates.txt beside a declarations file of the user's own) holds
    a rate for exactly the sometimes cells that sample one: the quick budgets and the
    collapse check come from it, and the never cells' power."""
    from asyncrace import reference
    cells = catalog().cells
    wanted = {c.id for c in cells
              if reference.needs_reference(c) and reference.rates_file(c) == rates_file}
    # A runner this build leaves out (a commented line of runners/backends.list) keeps
    # its rates for the day it is built again: they are dormant, not stale.
    built = {c.runner for c in cells}
    rates = {r for r in reference.read(rates_file) if r.split(".")[1] in built}
    missing, stale = sorted(wanted - rates), sorted(rates - wanted)
    assert not (missing or stale), (
        f"{len(missing)} sometimes cells without a reference rate: {missing[:10]}; "
        f"{len(stale)} rates of cells that are not sometimes cells: {stale[:10]}. Measure "
        f"them: `python3 -m asyncrace reference --case C --runner R` (and commit "
        f"{shown(rates_file)} with the reason).")
