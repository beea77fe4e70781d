"""Budgets: the one place the numbers live.

A cell runs until its iteration budget or its time budget is reached, whichever comes
first; a ``never`` cell with a minimum keeps going past the time budget until it has that
many clean iterations (claiming a fix takes a count, not a duration).

    profile   natural, chaos        forced              never cells   sanitizer cells
    quick     3,000 it or 1.5 s     200 it (or 20 s)    -             300 it or 3 s
    nightly   100,000 it or 60 s    1,000 it (or 120 s) >= 10,000 it  3,000 it or 30 s

quick is what ``make test`` runs: with -n 2 on 2 cores the whole suite stays within a
few minutes. nightly is the long soak (``make nightly``). In quick, a ``sometimes`` cell
that shows nothing is an expected failure ("reproducer rot?"); in nightly it fails.

``--iterations`` / ``--seconds`` replace the profile's numbers for every cell; giving only
one of them lifts the other, so ``--iterations 100000`` really runs 100,000 iterations.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    iterations: int | None       # None: no iteration limit
    seconds: float | None        # None: no time limit
    min_iterations: int = 0      # keep going past `seconds` until this many ran

    def __post_init__(self) -> None:
        if self.iterations is None and self.seconds is None:
            raise ValueError("a budget needs an iteration or a time limit")

    def reached(self, iterations: int, elapsed_s: float) -> bool:
        if self.iterations is not None and iterations >= self.iterations:
            return True
        return (self.seconds is not None and elapsed_s >= self.seconds
                and iterations >= self.min_iterations)

    def text(self) -> str:
        parts = []
        if self.iterations is not None:
            parts.append(f"{self.iterations} it")
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        text = " or ".join(parts)
        return f"{text} (at least {self.min_iterations} it)" if self.min_iterations else text


@dataclass(frozen=True)
class Profile:
    name: str
    natural: Budget          # natural and chaos modes
    forced: Budget
    never_min_iterations: int
    sanitizer: Budget
    rot_fails: bool          # a sometimes cell with 0 failures: fail (True) or xfail

    def budget(self, mode: str, kind: str) -> Budget:
        base = self.forced if mode == "forced" else self.natural
        if kind == "never" and self.never_min_iterations:
            iterations = (None if base.iterations is None
                          else max(base.iterations, self.never_min_iterations))
            return Budget(iterations, base.seconds, self.never_min_iterations)
        return base

    def text(self) -> str:
        return (f"{self.name} (natural/chaos {self.natural.text()}, forced {self.forced.text()}"
                f", sanitizers {self.sanitizer.text()})")


PROFILES = {
    "quick": Profile("quick", natural=Budget(3_000, 1.5), forced=Budget(200, 20.0),
                     never_min_iterations=0, sanitizer=Budget(300, 3.0), rot_fails=False),
    "nightly": Profile("nightly", natural=Budget(100_000, 60.0), forced=Budget(1_000, 120.0),
                       never_min_iterations=10_000, sanitizer=Budget(3_000, 30.0), rot_fails=True),
}


def override(budget: Budget, iterations: int | None, seconds: float | None) -> Budget:
    """The command line's --iterations/--seconds in place of a profile budget."""
    if iterations is None and seconds is None:
        return budget
    return Budget(iterations, seconds)
