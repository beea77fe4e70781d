"""One cell end to end, the same for pytest and the command line: loop it to its budget,
judge it, capture its failure when asked, and write its JSON into the run folder."""
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .baseline import Finding, compare, load_summary
from .capture import Failure, RrVerdict, capture
from .judge import ALWAYS, FAIL, NEVER, NOT_REPRODUCED, Expectation, judge
from .matrix import ROOT, Cell, runner_versions
from .profiles import PROFILES, Budget, Profile, override
from .program import run_loop
from .results import RunDir, new_run_id
from .stats import rate_text, wilson

# Which failures get a capture: none, failing never cells (the default), or every
# failing cell (--capture-failures, for buggy cells too).
CAPTURE_NONE, CAPTURE_REGRESSIONS, CAPTURE_ALL = "none", "regressions", "all"


@dataclass(frozen=True)
class Settings:
    profile: Profile
    rr: RrVerdict
    seed: int = 1
    iterations: int | None = None
    seconds: float | None = None
    results_dir: Path = ROOT / "results"
    run_id: str = field(default_factory=new_run_id)
    capture: str = CAPTURE_REGRESSIONS

    def budget(self, cell: Cell) -> Budget:
        return override(self.profile.budget(cell.mode, cell.expect.kind),
                        self.iterations, self.seconds)

    @property
    def run_dir(self) -> RunDir:
        return RunDir(self.results_dir, self.run_id)

    def to_dict(self) -> dict:
        """JSON-able, to hand the controller's choices to xdist workers."""
        return {**asdict(self), "profile": self.profile.name, "results_dir": str(self.results_dir)}

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        return replace(cls(PROFILES[d["profile"]], RrVerdict.from_dict(d["rr"])),
                       seed=d["seed"], iterations=d["iterations"], seconds=d["seconds"],
                       results_dir=Path(d["results_dir"]), run_id=d["run_id"],
                       capture=d["capture"])

    def meta(self) -> dict:
        """What summary.json says about the run as a whole."""
        return {"profile": self.profile.name, "budgets": self.profile.text(), "seed": self.seed,
                "iterations": self.iterations, "seconds": self.seconds, "rr": asdict(self.rr)}


def _wants_capture(settings: Settings, cell: Cell, status: str) -> bool:
    if settings.capture == CAPTURE_ALL:
        return True
    return settings.capture == CAPTURE_REGRESSIONS and cell.expect.kind == NEVER and status == FAIL


def run_cell(cell: Cell, settings: Settings) -> dict:
    """Runs the cell and returns its record (also written to cells/<cell>.json)."""
    inv = cell.invocation(settings.seed)
    budget = settings.budget(cell)
    loop = run_loop(inv, budget)
    ff = loop.first_failure
    rerun = inv.command(0, max(loop.iterations, 1))
    verdict = judge(cell.expect, loop.outcomes, loop.iterations, loop.wall_s, loop.replays, rerun)
    low, high = wilson(loop.failures, loop.iterations)
    record = {
        "cell": cell.id, "case": cell.case, "runner": cell.runner, "variant": cell.variant,
        "mode": cell.mode, "order": list(cell.order), "runner_version": loop.runner_version,
        "seed": settings.seed, "expect": asdict(cell.expect),
        "budget": asdict(budget), "iterations": loop.iterations, "outcomes": loop.outcomes,
        "failures": loop.failures,
        "rate": loop.failures / loop.iterations if loop.iterations else 0.0,
        "ci": [low, high], "elapsed_s": round(loop.wall_s, 4),
        "program_s": round(loop.program_s, 4),
        "iterations_per_s": round(loop.iterations / loop.wall_s, 1) if loop.wall_s else 0.0,
        "batches": len(loop.batches), "first_failure": ff,
        "first_by_outcome": loop.first_by_outcome,
        "interruptions": [asdict(i) for i in loop.interruptions],
        "verdict": asdict(verdict), "command": rerun, "capture": None,
    }
    if loop.stderr:
        record["stderr_tail"] = loop.stderr[-4000:]
    if ff and _wants_capture(settings, cell, verdict.status):
        failure = Failure(cell.id, inv, ff["iteration"], ff["outcome"],
                          rare=cell.expect.kind != ALWAYS)
        record["capture"] = capture(failure, settings.run_dir.captures / cell.id, settings.rr,
                                    disk_root=settings.run_dir.captures)
    settings.run_dir.write_cell(record)
    return record


def rate_line(record: dict) -> str:
    """One line per cell: what a runtime author scans for."""
    ff = record.get("first_failure")
    first = f"first failure after {ff['after_s']:.3g}s" if ff else "no failure"
    expect = Expectation(**record["expect"]).text()
    return (f"{record['cell']}: {record['verdict']['status'].upper()}; expect {expect}; "
            f"{rate_text(record['failures'], record['iterations'])}; "
            f"{record['iterations_per_s']:.0f} it/s; {first}")


def capture_text(record: dict) -> str:
    """Where the capture is and how to use it, or ''."""
    info = record.get("capture")
    if not info:
        return ""
    lines = [f"capture: {Path(info['replay_sh']).parent} ({info['method']}, "
             f"{'reproduced' if info['reproduced'] else 'not reproduced'} in "
             f"{info['attempts']} attempts)"]
    if info.get("rr_replay"):
        lines.append(f"  {info['rr_replay']}")
    lines += [f"  bound hit: {b}" for b in info["bounds_hit"]]
    return "\n".join(lines)


def is_failure(record: dict, profile: Profile) -> bool:
    """Failed its expectation; a reproducer that showed nothing fails only where the
    profile says rot is a failure (nightly)."""
    status = record["verdict"]["status"]
    return status == FAIL or (status == NOT_REPRODUCED and profile.rot_fails)


def header_lines(settings: Settings, cells: list[Cell]) -> list[str]:
    """Runners and their library versions, seed, profile, rr (one line), the run folder."""
    versions = runner_versions(cells, settings.seed)
    runners = ", ".join(f"{r} ({v})" for r, v in versions.items()) or "none built (run make)"
    budget = settings.profile.text()
    if settings.iterations or settings.seconds:
        every = override(settings.profile.natural, settings.iterations, settings.seconds)
        budget += f"; every cell {every.text()}"
    return [f"asyncrace: runners {runners}; seed {settings.seed}; profile {budget}",
            f"asyncrace: {settings.rr.line()}",
            f"asyncrace: cells write to {settings.run_dir.path}"]


def finish_run(settings: Settings, baseline: Path | None) -> tuple[dict | None, list[Finding]]:
    """Composes summary.json, matrix.md and results.csv from the cells that ran, compared
    with the baseline's summary.json if given. (None, []) when no cell ran."""
    records = settings.run_dir.read_cells()
    if not records:
        return None, []
    findings: list[Finding] = []
    extra = {}
    if baseline is not None:
        findings = compare({"cells": {r["cell"]: r for r in records}}, load_summary(baseline))
        extra = {"baseline": {"file": str(baseline), "findings": [asdict(f) for f in findings]}}
    return settings.run_dir.compose(records, settings.meta(), extra), findings
