"""A cell's counts against what its program says it must show (--list's expect)."""
from dataclasses import dataclass
from typing import Mapping

NEVER, SOMETIMES, ALWAYS = "never", "sometimes", "always"
PASS, FAIL, NOT_REPRODUCED, SKIPPED = "pass", "fail", "not_reproduced", "skipped"


@dataclass(frozen=True)
class Expectation:
    kind: str      # never | sometimes | always
    outcome: str   # the failure a sometimes/always cell must show; "ok" for never

    def text(self) -> str:
        return "never" if self.kind == NEVER else f"{self.kind} {self.outcome}"


@dataclass(frozen=True)
class Verdict:
    status: str    # pass | fail | not_reproduced | skipped (an external's needs not met)
    message: str   # empty on pass


def counts_text(counts: Mapping[str, int]) -> str:
    """{'panic': 3, 'ok': 0} -> 'panic=3'."""
    return ", ".join(f"{name}={n}" for name, n in counts.items() if n) or "nothing"


def judge(expect: Expectation, outcomes: Mapping[str, int], iterations: int,
          elapsed_s: float, replays: Mapping[str, str], rerun: str) -> Verdict:
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
        return Verdict(PASS, "")
    if expect.kind == ALWAYS:
        wrong = {name: n for name, n in outcomes.items() if name != expect.outcome and n}
        if wrong:
            return Verdict(FAIL, f"expected every iteration to fail {expect.outcome}, got "
                                 f"{counts_text(wrong)} of {iterations}; {how(wrong)}")
        return Verdict(PASS, "")
    if expect.kind == SOMETIMES:
        others = {name: n for name, n in failures.items() if name != expect.outcome}
        if others:
            return Verdict(FAIL, f"expected only {expect.outcome} failures, got "
                                 f"{counts_text(failures)} in {iterations} iterations; {how(others)}")
        if not failures:
            return Verdict(NOT_REPRODUCED, f"not reproduced: 0/{iterations} in {elapsed_s:.1f}s"
                                           f" (reproducer rot?); rerun: {rerun}")
        return Verdict(PASS, "")
    raise ValueError(f"unknown expectation kind {expect.kind!r}: expected never, sometimes or always")
