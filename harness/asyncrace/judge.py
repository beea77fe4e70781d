"""A cell's counts against what its program says it must show (--list's expect), and the
evidence a claim needs.

    never      no failure; and it must show its power: 95 % chance to have seen its
               twin's failure rate (a search: a program searched to the end of its bound).
               Without that it is underpowered, never a pass
    sometimes  its failure shows; only that failure; and its rate has not collapsed against
               its reference (cases/rates.txt)
    always     every iteration fails with that outcome
    rarely     real, but too rare for the budget to require: no other failure, nothing more
"""
from dataclasses import dataclass
from typing import Mapping

from .stats import POWER_TARGET, collapsed, percent, rate_text, wilson

NEVER, SOMETIMES, ALWAYS, RARELY = "never", "sometimes", "always", "rarely"
PASS, FAIL, NOT_REPRODUCED, UNDERPOWERED, SKIPPED, INTERRUPTED = (
    "pass", "fail", "not_reproduced", "underpowered", "skipped", "interrupted")


@dataclass(frozen=True)
class Expectation:
    kind: str      # never | sometimes | always | rarely
    outcome: str   # the failure a sometimes/always/rarely cell shows; "ok" for never
    why: str = ""  # rarely: why the budget cannot require it
    any_of: tuple[str, ...] = ()   # a failure of any of these shows it (outcome: the first)

    @property
    def outcomes(self) -> tuple[str, ...]:
        """The failures that show what the cell must show."""
        return tuple(self.any_of) or (self.outcome,)

    def text(self) -> str:
        if self.kind == NEVER:
            return "never"
        return f"{self.kind} {'|'.join(self.outcomes)}" + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True)
class Verdict:
    status: str    # pass | fail | not_reproduced | underpowered | skipped
    message: str   # empty on pass


@dataclass(frozen=True)
class Evidence:
    """What a claim rests on besides the counts."""
    power: dict | None = None          # never: results.power_of's answer
    reference: float | None = None     # sometimes: the reference rate (its lower bound)
    search: dict | None = None         # a search cell's sim summary


def counts_text(counts: Mapping[str, int]) -> str:
    """{'panic': 3, 'ok': 0} -> 'panic=3'."""
    return ", ".join(f"{name}={n}" for name, n in counts.items() if n) or "nothing"


def never_verdict(iterations: int, evidence: Evidence, rerun: str) -> Verdict:
    """A never cell without failures: a pass needs its power (or a search's proof)."""
    search = evidence.search
    if search and search.get("searching"):
        if search.get("programs_exhausted", 0) >= 1:
            return Verdict(PASS, "")
        return Verdict(UNDERPOWERED, f"underpowered: the search ended its budget before it "
                                     f"searched one program to the end of its bound "
                                     f"({iterations} schedules): nothing is proven; rerun: {rerun}")
    p = evidence.power
    if p and p.get("value") is not None and p["value"] >= POWER_TARGET:
        return Verdict(PASS, "")
    if not p or p.get("value") is None:
        why = (p or {}).get("note", "no twin to measure it against")
        return Verdict(UNDERPOWERED, f"underpowered: power unknown ({why}): {iterations} clean "
                                     f"iterations show nothing")
    return Verdict(UNDERPOWERED, f"underpowered: {iterations} clean iterations had a "
                                 f"{percent(p['value'])}% chance to see the twin's "
                                 f"{percent(p['twin_rate'])}% ({p['source']}); "
                                 f"{POWER_TARGET * 100:.0f}% needs {p.get('needed', '?')}")


def judge(expect: Expectation, outcomes: Mapping[str, int], iterations: int,
          elapsed_s: float, replays: Mapping[str, str], rerun: str,
          evidence: Evidence = Evidence()) -> Verdict:
    """replays: per failure outcome, the command that re-runs its first iteration alone;
    rerun: the command that re-runs the whole cell."""
    def how(names: Mapping[str, int]) -> str:
        replay = next((replays[name] for name in names if name in replays), None)
        return f"replay: {replay}" if replay else f"rerun: {rerun}"

    if iterations <= 0:
        return Verdict(FAIL, f"expected {expect.text()}, but no iteration ran; rerun: {rerun}")
    failures = {name: n for name, n in outcomes.items() if name != "ok" and n}
    if expect.kind == NEVER:
        if failures:
            return Verdict(FAIL, f"regression: expected no failure, got {counts_text(failures)}"
                                 f" in {iterations} iterations; {how(failures)}")
        return never_verdict(iterations, evidence, rerun)
    accepted = "|".join(expect.outcomes)
    if expect.kind == ALWAYS:
        wrong = {name: n for name, n in outcomes.items() if name not in expect.outcomes and n}
        if wrong:
            return Verdict(FAIL, f"expected every iteration to fail {accepted}, got "
                                 f"{counts_text(wrong)} of {iterations}; {how(wrong)}")
        return Verdict(PASS, "")
    if expect.kind in (SOMETIMES, RARELY):
        others = {name: n for name, n in failures.items() if name not in expect.outcomes}
        if others:
            return Verdict(FAIL, f"expected only {accepted} failures, got "
                                 f"{counts_text(failures)} in {iterations} iterations; {how(others)}")
        if expect.kind == RARELY:
            return Verdict(PASS, "")
        shown = sum(failures.get(name, 0) for name in expect.outcomes)
        ref = evidence.reference
        against = f" against its reference {percent(ref)}%" if ref else " (no reference rate)"
        if not shown:
            below = wilson(0, iterations)[1]
            return Verdict(NOT_REPRODUCED, f"not reproduced: 0/{iterations} in {elapsed_s:.1f}s"
                                           f"{against}: a rate above {percent(below)}% would "
                                           f"have shown (95 %); rerun: {rerun}")
        if ref and collapsed(shown, iterations, ref):
            return Verdict(FAIL, f"collapsed: {rate_text(shown, iterations)}{against} "
                                 f"(below a third of it, p < 1e-4): rerun: {rerun}")
        return Verdict(PASS, "")
    raise ValueError(f"unknown expectation kind {expect.kind!r}: expected never, sometimes, "
                     f"always or rarely")
