"""Budgets: the one place the numbers live.

A cell's budget follows from what it must show (its expectation), never from its mode's
name, so a mode or runner a program adds gets a budget without a Python edit:

    profile   sometimes             always               never
    quick     3,000 it or 1.5 s     200 it or 20 s       n from the twin, 1,000 to 3,000 it, or 1.5 s
    nightly   100,000 it or 60 s    1,000 it or 120 s    n from the twin, 10,000 to 300,000 it

A cell runs until its iteration budget or its time budget is reached, whichever comes
first; a never cell keeps going past its time budget until its floor (1,000 or 10,000
iterations: claiming a fix takes a count, not a duration).

A never cell is sized from its twin's failure rate p (the variant it fixes, same case,
runner and mode; from --baseline, else from this run when the twin already finished: the
twins run first): n = ceil(ln 0.05 / ln(1-p)), the count that would show the twin's
failure with 95 % chance, kept between the floor and the cap (quick: its 3,000; nightly:
NIGHTLY_NEVER_CAP, 300,000, the count for p = 1e-5). With no rate known it gets the cap's
budget (quick: 3,000 it or 1.5 s, at least 1,000; nightly: the floor, 10,000).

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
    never: Budget            # when the twin's rate is unknown; its min_iterations: the floor
    never_cap: int           # the most iterations a never cell is sized to
    sanitizer: Budget
    rot_fails: bool          # a sometimes cell with 0 failures: fail (True) or xfail

    def budget(self, kind: str, twin_rate: float | None = None) -> Budget:
        if kind == ALWAYS:
            return self.always
        if kind == SOMETIMES:
            return self.sometimes
        if kind != NEVER:
            raise ValueError(f"unknown expectation kind {kind!r}")
        never = self.never
        if twin_rate is None:
            return never
        n = int(min(max(iterations_for_power(twin_rate), never.min_iterations), self.never_cap))
        return Budget(n, never.seconds, never.min_iterations, never.hang_allowance_s)

    def never_text(self) -> str:
        seconds = f" or {self.never.seconds:g} s" if self.never.seconds else ""
        return (f"n = ceil(ln 0.05 / ln(1-p)) from the twin's rate p, {self.never.min_iterations:,}"
                f" to {self.never_cap:,} it{seconds}")

    def text(self) -> str:
        return (f"{self.name} (sometimes {self.sometimes.text()}; always {self.always.text()}; "
                f"never {self.never_text()}; sanitizers {self.sanitizer.text()})")


PROFILES = {
    "quick": Profile("quick",
                     sometimes=Budget(3_000, 1.5, hang_allowance_s=20.0),
                     always=Budget(200, 20.0, hang_allowance_s=20.0),
                     never=Budget(3_000, 1.5, 1_000, hang_allowance_s=20.0), never_cap=3_000,
                     sanitizer=Budget(200, 2.0, hang_allowance_s=20.0), rot_fails=False),
    "nightly": Profile("nightly",
                       sometimes=Budget(100_000, 60.0, hang_allowance_s=120.0),
                       always=Budget(1_000, 120.0, hang_allowance_s=120.0),
                       never=Budget(10_000, None, 10_000, hang_allowance_s=120.0),
                       never_cap=NIGHTLY_NEVER_CAP,
                       sanitizer=Budget(3_000, 30.0, hang_allowance_s=120.0), rot_fails=True),
}


def override(budget: Budget, iterations: int | None, seconds: float | None) -> Budget:
    """The command line's --iterations/--seconds in place of a profile budget."""
    if iterations is None and seconds is None:
        return budget
    return Budget(iterations, seconds, hang_allowance_s=budget.hang_allowance_s)
