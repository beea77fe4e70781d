"""--shard K/N: the cells in N deterministic parts, balanced by expected cost.

A cell's cost is the time its budget allows: its seconds, or its iterations at its speed
in the baseline (iterations_per_s) when one is given, else at DEFAULT_IT_PER_S. The parts
are filled greedily, the costliest cell first (ties by id), each into the part with the
least so far: the same cells, budgets and baseline give the same parts on every machine.
Tests that are not cells (the driver's, conformance) count OTHER_TEST_S each.
"""
import math

from .profiles import Budget

DEFAULT_IT_PER_S = 1000.0
OTHER_TEST_S = 1.0


def expected_s(budget: Budget, it_per_s: float) -> float:
    by_iterations = budget.iterations / it_per_s if budget.iterations else math.inf
    t = min(budget.seconds if budget.seconds else math.inf, by_iterations)
    if budget.min_iterations:
        t = max(t, budget.min_iterations / it_per_s)
    return t if math.isfinite(t) else OTHER_TEST_S


def cell_cost(cell, settings, sanitizer: bool = False) -> float:
    before = (settings.baseline_summary or {}).get("cells", {}).get(cell.id) or {}
    it_per_s = before.get("iterations_per_s") or DEFAULT_IT_PER_S
    if sanitizer:
        budget = settings.sanitizer_budget()
    else:   # not from this run's own progress, which differs between machines
        budget = settings.budget(cell, use_run=False)
    return expected_s(budget, it_per_s)


def assign(costs: list[tuple[str, float]], count: int) -> dict[str, int]:
    """key -> part (0-based)."""
    loads = [0.0] * count
    parts = {}
    for key, cost in sorted(costs, key=lambda kc: (-kc[1], kc[0])):
        part = min(range(count), key=lambda k: (loads[k], k))
        loads[part] += cost
        parts[key] = part
    return parts


def shard_cells(cells: list, settings) -> list:
    """The cells of settings.shard (all of them without one), in their order."""
    if settings.shard is None:
        return cells
    parts = assign([(c.id, cell_cost(c, settings)) for c in cells], settings.shard.count)
    return [c for c in cells if parts[c.id] == settings.shard.index - 1]


def _item_cost(item, settings) -> float:
    params = getattr(getattr(item, "callspec", None), "params", {})
    entry = params.get("cell")
    if entry is not None and hasattr(entry, "expect"):
        return cell_cost(entry, settings)
    pair = params.get("sanitizer_cell")
    if isinstance(pair, tuple):
        return cell_cost(pair[1], settings, sanitizer=True)
    return OTHER_TEST_S


def select_shard(items: list, settings) -> tuple[list, list]:
    """pytest items: (kept, deselected) for settings.shard."""
    parts = assign([(i.nodeid, _item_cost(i, settings)) for i in items], settings.shard.count)
    keep = [i for i in items if parts[i.nodeid] == settings.shard.index - 1]
    return keep, [i for i in items if parts[i.nodeid] != settings.shard.index - 1]
