"""Budgets: the one place the numbers live.

A cell's budget follows from what it must show (its expectation) and from the rates that
make a claim about it checkable, never from its mode's name, so a mode or runner a program
adds gets a budget without a Python edit:

    profile   sometimes (reference rate p)                  never (twin rate p)              always            search
    quick     60/p it (100..200,000) or 8 s, at least 9.2/p    n95(p), 300..20,000 it, all run   200 it or 20 s    30,000 it or 3 s
    nightly   100,000 it or 60 s, at least 9.2/p              n95(p), 10,000..300,000 it        1,000 it or 120 s 1,000,000 it or 180 s
    reference 200,000 it or 10 s a count (what `asyncrace reference` measures with: a real
              loop's cell idle, then two copies at once)

A sometimes cell's reference rate p is the lower of its counts' Wilson lower bounds in
cases/rates.txt (reference.py: a real loop measured idle and loaded). 9.2/p iterations
show its failure with 99.99 % chance, so "not reproduced" is a failure, never tolerated;
60/p expect 60 failures, enough to see a collapse of its rate (stats.collapsed) at a fall
of 35 times below p while a fall of 3 passes. A cell keeps going past its time budget until its min_iterations. Without
a reference rate: 3,000 it or 1.5 s (quick), 100,000 it or 60 s (nightly).

A never cell is sized from its twin's failure rate p (the variant it fixes, same case,
runner and mode): n95 = ceil(ln 0.05 / ln(1-p)), the count that would show the twin's
failure with 95 % chance, kept between the floor and the cap, and run to the end whatever
it takes. p is 1 for an always twin, else the twin's reference rate, else this run's twin
(twins run first), else the baseline's. With no rate known: 3,000 it or 1.5 s, at least
300 (quick); the floor (nightly). A never cell short of 95 % power is underpowered, never a
pass (judge.py).

A cell whose mode is a search (the program's --list says so: exhaustive, on sim) gets the
search budget whatever it expects: its iterations are the schedules of a bounded search,
and what it claims is how far the search got, not a rate from a sample.

Time spent in hung iterations is not charged to the time budget (a hang costs one
iteration, not the cell), up to ``hang_allowance_s`` per cell; past that it counts like
any other time, so a cell's wall time is at most its time budget plus that allowance
(plus one batch).

Sanitizer cells (build/asan, build/tsan; every never cell) have their own budget.
``--iterations`` / ``--seconds`` replace the profile's numbers for every cell; giving only
one of them lifts the other, so ``--iterations 100000`` really runs 100,000 iterations.
"""
import math
from dataclasses import dataclass

from .stats import COLLAPSE_EXPECTED, iterations_for_power, iterations_to_show

NEVER, SOMETIMES, ALWAYS, RARELY = "never", "sometimes", "always", "rarely"
NIGHTLY_NEVER_CAP = 300_000


@dataclass(frozen=True)
class Budget:
    iterations: int | None       # None: no iteration limit
    seconds: float | None        # None: no time limit
    min_iterations: int = 0      # keep going past `seconds` until this many ran
    hang_allowance_s: float = 0.0  # hung time not charged to `seconds`, per cell

    def __post_init__(self) -> None:
        if self.iterations is None and self.seconds is None:
            raise ValueError("a budget needs an iteration or a time limit")

    def reached(self, iterations: int, charged_s: float) -> bool:
        if self.iterations is not None and iterations >= self.iterations:
            return True
        return (self.seconds is not None and charged_s >= self.seconds
                and iterations >= self.min_iterations)

    def text(self) -> str:
        parts = []
        if self.iterations is not None:
            parts.append(f"{self.iterations:,} it")
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        text = " or ".join(parts)
        return f"{text}, at least {self.min_iterations:,} it" if self.min_iterations else text


@dataclass(frozen=True)
class Profile:
    name: str
    sometimes: Budget        # without a reference rate (and for rarely cells)
    always: Budget
    never: Budget            # when the twin's rate is unknown; its min_iterations: the floor
    never_cap: int           # the most iterations a never cell is sized to
    sanitizer: Budget
    underpowered_fails: bool  # an underpowered never cell: fail (True) or tolerate (xfail)
    search: Budget = Budget(30_000, 8.0)
    # A sometimes cell with a reference rate p: ceil(shown_expected / p) iterations (None:
    # the sometimes budget's), between 100 and sometimes_cap, or shown_seconds; at least
    # the iterations that show it with 99.99 % chance.
    shown_expected: int | None = COLLAPSE_EXPECTED
    shown_seconds: float = 8.0
    sometimes_cap: int = 200_000

    def budget(self, kind: str, twin_rate: float | None = None, search: bool = False,
               reference: float | None = None) -> Budget:
        if search:
            return self.search
        if kind == ALWAYS:
            return self.always
        if kind in (SOMETIMES, RARELY):
            if kind == RARELY or not reference:
                return self.sometimes
            must = min(math.ceil(iterations_to_show(reference)), self.sometimes_cap)
            if self.shown_expected is None:
                return Budget(max(self.sometimes.iterations, must), self.sometimes.seconds, must,
                              self.sometimes.hang_allowance_s)
            n = max(100, must, math.ceil(self.shown_expected / reference))
            return Budget(min(n, self.sometimes_cap), self.shown_seconds, must,
                          self.sometimes.hang_allowance_s)
        if kind != NEVER:
            raise ValueError(f"unknown expectation kind {kind!r}")
        never = self.never
        if twin_rate is None:
            return never
        n = int(min(max(iterations_for_power(twin_rate), never.min_iterations), self.never_cap))
        return Budget(n, None, n, never.hang_allowance_s)

    def never_text(self) -> str:
        return (f"n95 = ceil(ln 0.05 / ln(1-p)) from the twin's rate p, {self.never.min_iterations:,}"
                f" to {self.never_cap:,} it, run to the end")

    def sometimes_text(self) -> str:
        if self.shown_expected is None:
            return f"{self.sometimes.text()}, at least 9.2/p it"
        return (f"{self.shown_expected}/p it (100 to {self.sometimes_cap:,}) or "
                f"{self.shown_seconds:g} s, at least 9.2/p it, from the reference rate p")

    def text(self) -> str:
        return (f"{self.name} (sometimes {self.sometimes_text()}; always {self.always.text()}; "
                f"never {self.never_text()}; search {self.search.text()}; "
                f"sanitizers {self.sanitizer.text()})")


PROFILES = {
    "quick": Profile("quick",
                     sometimes=Budget(3_000, 1.5, hang_allowance_s=20.0),
                     always=Budget(200, 20.0, hang_allowance_s=20.0),
                     never=Budget(3_000, 1.5, 300, hang_allowance_s=20.0), never_cap=20_000,
                     sanitizer=Budget(200, 2.0, hang_allowance_s=20.0), underpowered_fails=False,
                     search=Budget(30_000, 3.0, hang_allowance_s=20.0)),
    "nightly": Profile("nightly",
                       sometimes=Budget(100_000, 60.0, hang_allowance_s=120.0),
                       always=Budget(1_000, 120.0, hang_allowance_s=120.0),
                       never=Budget(10_000, None, 10_000, hang_allowance_s=120.0),
                       never_cap=NIGHTLY_NEVER_CAP,
                       sanitizer=Budget(3_000, 30.0, hang_allowance_s=120.0),
                       underpowered_fails=True,
                       search=Budget(1_000_000, 180.0, hang_allowance_s=120.0),
                       shown_expected=None),
    # What `python -m asyncrace reference` measures cases/rates.txt with.
    "reference": Profile("reference",
                         sometimes=Budget(200_000, 10.0, hang_allowance_s=60.0),
                         always=Budget(200, 20.0, hang_allowance_s=20.0),
                         never=Budget(3_000, 1.5, 300, hang_allowance_s=20.0), never_cap=20_000,
                         sanitizer=Budget(200, 2.0, hang_allowance_s=20.0),
                         underpowered_fails=False, shown_expected=None),
}


def override(budget: Budget, iterations: int | None, seconds: float | None) -> Budget:
    """The command line's --iterations/--seconds in place of a profile budget."""
    if iterations is None and seconds is None:
        return budget
    return Budget(iterations, seconds, hang_allowance_s=budget.hang_allowance_s)
