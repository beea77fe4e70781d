"""Budgets: the one place the numbers live.

A cell's budget follows from what it must show (its expectation), never from its mode's
name, so a mode or runner a program adds gets a budget without a Python edit:

    profile   sometimes             always               never
    quick     3,000 it or 1.5 s     200 it or 20 s       3,000 it or 1.5 s, at least 1,000 it
    nightly   100,000 it or 60 s    1,000 it or 120 s    sized from the twin's rate (below)

A cell runs until its iteration budget or its time budget is reached, whichever comes
first; ``at least`` keeps it going past the time budget until that many iterations ran
(claiming a fix takes a count, not a duration).

nightly sizes a never cell from its twin's failure rate p (the variant it fixes, same
case, runner and mode; from --baseline, else from this run if the twin already finished):
n = ceil(ln 0.05 / ln(1-p)), the count that shows the twin's failure with 95 % chance,
kept between 10,000 and NIGHTLY_NEVER_CAP (300,000: the count for p = 1e-5). With no
rate known it runs the 10,000.

Time spent in hung iterations is not charged to the time budget (a hang costs one
iteration, not the cell), up to ``hang_allowance_s`` per cell; past that it counts like
any other time, so a cell's wall time is at most its time budget plus that allowance
(plus one batch).

Sanitizer cells (build/asan, build/tsan; every never cell) have their own budget.
``--iterations`` / ``--seconds`` replace the profile's numbers for every cell; giving only
one of them lifts the other, so ``--iterations 100000`` really runs 100,000 iterations.
"""
from dataclasses import dataclass

from .stats import iterations_for_power

NEVER, SOMETIMES, ALWAYS = "never", "sometimes", "always"
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
    sometimes: Budget
    always: Budget
    never: Budget            # quick: as is; nightly: the floor when sized from the twin
    size_never_from_twin: bool
    sanitizer: Budget
    rot_fails: bool          # a sometimes cell with 0 failures: fail (True) or xfail

    def budget(self, kind: str, twin_rate: float | None = None) -> Budget:
        if kind == ALWAYS:
            return self.always
        if kind == SOMETIMES:
            return self.sometimes
        if kind != NEVER:
            raise ValueError(f"unknown expectation kind {kind!r}")
        if not self.size_never_from_twin or twin_rate is None:
            return self.never
        n = iterations_for_power(twin_rate)
        n = int(min(max(n, self.never.min_iterations), NIGHTLY_NEVER_CAP))
        return Budget(n, None, n, self.never.hang_allowance_s)

    def never_text(self) -> str:
        if not self.size_never_from_twin:
            return self.never.text()
        return (f"n = ceil(ln 0.05 / ln(1-p)) from the twin's rate p, between "
                f"{self.never.min_iterations:,} and {NIGHTLY_NEVER_CAP:,} it")

    def text(self) -> str:
        return (f"{self.name} (sometimes {self.sometimes.text()}; always {self.always.text()}; "
                f"never {self.never_text()}; sanitizers {self.sanitizer.text()})")


PROFILES = {
    "quick": Profile("quick",
                     sometimes=Budget(3_000, 1.5, hang_allowance_s=20.0),
                     always=Budget(200, 20.0, hang_allowance_s=20.0),
                     never=Budget(3_000, 1.5, 1_000, hang_allowance_s=20.0),
                     size_never_from_twin=False,
                     sanitizer=Budget(200, 2.0, hang_allowance_s=20.0), rot_fails=False),
    "nightly": Profile("nightly",
                       sometimes=Budget(100_000, 60.0, hang_allowance_s=120.0),
                       always=Budget(1_000, 120.0, hang_allowance_s=120.0),
                       never=Budget(10_000, None, 10_000, hang_allowance_s=120.0),
                       size_never_from_twin=True,
                       sanitizer=Budget(3_000, 30.0, hang_allowance_s=120.0), rot_fails=True),
}


def override(budget: Budget, iterations: int | None, seconds: float | None) -> Budget:
    """The command line's --iterations/--seconds in place of a profile budget."""
    if iterations is None and seconds is None:
        return budget
    return Budget(iterations, seconds, hang_allowance_s=budget.hang_allowance_s)
