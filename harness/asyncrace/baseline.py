"""A run's summary.json against an earlier one.

    regression  a never cell failed
    rot         an always or sometimes cell that reproduced in the baseline no longer does
    drift       a sometimes cell's rate outside the baseline's 95 % interval (a warning):
                the rates that are measurements, whatever the mode is called
"""
import json
from dataclasses import dataclass
from pathlib import Path

from .judge import ALWAYS, NEVER, PASS, SOMETIMES
from .stats import percent, rate_text

REGRESSION, ROT, DRIFT = "regression", "rot", "drift"


@dataclass(frozen=True)
class Finding:
    kind: str
    cell: str
    message: str

    def text(self) -> str:
        return f"{self.kind}: {self.cell}: {self.message}"


def load_summary(path: Path) -> dict:
    """A summary.json, a run folder holding one, or a results folder (its latest run)."""
    if path.is_dir():
        path = path / "summary.json" if (path / "summary.json").exists() else path / "latest" / "summary.json"
    summary = json.loads(path.read_text())
    if "cells" not in summary:
        raise ValueError(f"{path} is not an asyncrace summary.json (no 'cells')")
    return summary


def _reproduced(record: dict) -> bool:
    expect = record["expect"]
    if expect["kind"] == ALWAYS:
        return record["verdict"]["status"] == PASS
    shown = expect.get("any_of") or [expect["outcome"]]
    return sum(record["outcomes"].get(name, 0) for name in shown) > 0


def compare(new: dict, old: dict) -> list[Finding]:
    findings = []
    for cell, r in new["cells"].items():
        if not r["iterations"]:
            continue   # skipped: nothing measured
        kind, now = r["expect"]["kind"], rate_text(r["failures"], r["iterations"])
        if kind == NEVER and r["failures"]:
            ff = r.get("first_failure") or {}
            findings.append(Finding(REGRESSION, cell, f"expected no failure, got {now}; "
                                                      f"replay: {ff.get('replay', r['command'])}"))
        before = old["cells"].get(cell)
        if before is None:
            continue
        was = rate_text(before["failures"], before["iterations"])
        if kind in (ALWAYS, SOMETIMES) and _reproduced(before) and not _reproduced(r):
            findings.append(Finding(ROT, cell, f"reproduced before ({was}), not now ({now}); "
                                               f"rerun: {r['command']}"))
        elif kind == SOMETIMES and r["iterations"] and before["iterations"]:
            low, high = before["ci"]
            if not low <= r["rate"] <= high:
                findings.append(Finding(DRIFT, cell, f"rate {percent(r['rate'])}% is outside the "
                                                     f"baseline's [{percent(low)}, {percent(high)}]"
                                                     f" (now {now}, was {was})"))
    return findings
