"""One cell end to end, the same for pytest and the command line: loop it to its budget,
judge it, capture its failure when asked, and write its JSON into the run folder; and
what a verdict means for the run (the rot rule), in one place."""
import json
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

from . import external
from .baseline import Finding, compare, load_summary
from .capture import Failure, RrVerdict, capture
from .judge import (ALWAYS, FAIL, INTERRUPTED, NEVER, NOT_REPRODUCED, RARELY, SKIPPED,
                    UNDERPOWERED, Evidence, Expectation, Verdict, judge)
from .matrix import Catalog, Cell
from .options import CAPTURE_ALL, CAPTURE_REGRESSIONS, Shard
from .paths import RESULTS, shown
from .profiles import PROFILES, Budget, Profile, override
from .program import Interrupted, ProgramError, run_loop
from . import reference as references
from .results import RunDir, new_run_id, power_of, twin_rate
from .stats import rate_text, wilson

# What a cell's verdict means for the run: counted as a failure, tolerated (a reproducer
# that showed nothing where the profile allows it: pytest's xfail), skipped, or passed.
FAILED, TOLERATED, SKIP, PASSED = "failed", "tolerated", "skipped", "passed"


def consequence(record: dict, profile: Profile) -> str:
    """What a verdict means for the run, in one place: a failure, and a sometimes cell that
    did not reproduce within a budget sized to show it, fail; an underpowered never cell
    is tolerated only where the profile says so (quick: the run still fails when no cell of
    that fix on that runner had the power, results.unpowered_fixes)."""
    status = record["verdict"]["status"]
    if status in (FAIL, NOT_REPRODUCED, INTERRUPTED):
        return FAILED
    if status == UNDERPOWERED:
        return FAILED if profile.underpowered_fails else TOLERATED
    return SKIP if status == SKIPPED else PASSED


@dataclass(frozen=True)
class Settings:
    profile: Profile
    rr: RrVerdict
    seed: int = 1
    iterations: int | None = None
    seconds: float | None = None
    results_dir: Path = RESULTS
    run_id: str = field(default_factory=new_run_id)
    capture: str = CAPTURE_REGRESSIONS
    baseline: str | None = None
    shard: Shard | None = None
    progress: str = "auto"
    reference_file: Path = references.RATES

    @classmethod
    def from_options(cls, get, rr: RrVerdict) -> "Settings":
        """get(name) -> the option's value, from argparse's namespace or pytest's config."""
        baseline = get("asyncrace_baseline")
        return cls(PROFILES[get("asyncrace_profile")], rr, seed=get("asyncrace_seed"),
                   iterations=get("asyncrace_iterations"), seconds=get("asyncrace_seconds"),
                   results_dir=Path(get("asyncrace_results_dir")).resolve(),
                   capture=get("asyncrace_capture"),
                   baseline=str(Path(baseline).resolve()) if baseline else None,
                   shard=get("asyncrace_shard"), progress=get("asyncrace_progress"))

    @cached_property
    def baseline_summary(self) -> dict | None:
        return load_summary(Path(self.baseline)) if self.baseline else None

    @cached_property
    def reference(self) -> dict[str, references.Rate]:
        """cases/rates.txt, and my.rates.txt beside each declarations file of the user's
        own (references.RatesError when one does not read)."""
        rates = {}
        for path in [self.reference_file, *references.user_rates_files()]:
            rates.update(references.read(path))
        return rates

    def reference_rate(self, cell: Cell) -> float | None:
        """A sometimes cell's reference rate (the lower bound of its count), or None."""
        rate = self.reference.get(cell.id) if references.needs_reference(cell) else None
        return rate.low if rate else None

    def twin_found(self, cell: Cell, use_run: bool = True) -> tuple[float, int | None, str] | None:
        """The twin's rate before this cell runs (results.twin_rate's order: an always
        twin, the reference, this run's twin if it finished (use_run), the baseline)."""
        if cell.twin_id is None:
            return None
        run = {}
        path = self.run_dir.cells / f"{cell.twin_id}.json"
        if use_run and path.is_file():
            run[cell.twin_id] = json.loads(path.read_text())
        return twin_rate(cell.twin_id, cell.twin_kind, self.reference, run,
                         self.baseline_summary)

    def budget(self, cell: Cell, use_run: bool = True) -> Budget:
        # A twin that is rarely on this runner and mode has no rate to size against:
        # chasing one would spend the cap for a power the cell cannot reach.
        sized = cell.expect.kind == NEVER and cell.twin_kind != RARELY
        found = self.twin_found(cell, use_run) if sized else None
        twin = found[0] if found and found[0] > 0 else None
        return override(self.profile.budget(cell.expect.kind, twin, cell.search,
                                            self.reference_rate(cell)),
                        self.iterations, self.seconds)

    def sanitizer_budget(self) -> Budget:
        return override(self.profile.sanitizer, self.iterations, self.seconds)

    @property
    def run_dir(self) -> RunDir:
        return RunDir(self.results_dir, self.run_id)

    def to_dict(self) -> dict:
        """JSON-able, to hand the controller's choices to xdist workers."""
        return {"profile": self.profile.name, "rr": asdict(self.rr), "seed": self.seed,
                "iterations": self.iterations, "seconds": self.seconds,
                "results_dir": str(self.results_dir), "run_id": self.run_id,
                "capture": self.capture, "baseline": self.baseline,
                "shard": list(self.shard) if self.shard else None, "progress": self.progress,
                "reference_file": str(self.reference_file)}

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        return replace(cls(PROFILES[d["profile"]], RrVerdict.from_dict(d["rr"])),
                       seed=d["seed"], iterations=d["iterations"], seconds=d["seconds"],
                       results_dir=Path(d["results_dir"]), run_id=d["run_id"],
                       capture=d["capture"], baseline=d["baseline"],
                       shard=Shard(*d["shard"]) if d["shard"] else None, progress=d["progress"],
                       reference_file=Path(d["reference_file"]))

    def meta(self) -> dict:
        """What summary.json says about the run as a whole."""
        return {"profile": self.profile.name, "budgets": self.profile.text(), "seed": self.seed,
                "iterations": self.iterations, "seconds": self.seconds, "rr": asdict(self.rr),
                "shard": self.shard.text() if self.shard else None,
                "reference": {"file": str(self.reference_file),
                              "rates": {c: r.text() for c, r in self.reference.items()}}}


def _wants_capture(settings: Settings, cell: Cell, status: str) -> bool:
    if settings.capture == CAPTURE_ALL:
        return True
    return settings.capture == CAPTURE_REGRESSIONS and cell.expect.kind == NEVER and status == FAIL


def _base_record(cell: Cell, settings: Settings, budget: Budget) -> dict:
    return {"cell": cell.id, "case": cell.case, "runner": cell.runner, "variant": cell.variant,
            "mode": cell.mode, "order": list(cell.order), "source": cell.source,
            "external": cell.reproducer is not None, "twin": cell.twin_id,
            "twin_kind": cell.twin_kind,
            "seed": settings.seed, "expect": asdict(cell.expect), "budget": asdict(budget)}


def skipped_record(cell: Cell, settings: Settings, reason: str) -> dict:
    record = {**_base_record(cell, settings, settings.budget(cell)), "runner_version": None,
              "iterations": 0, "outcomes": {o: 0 for o in cell.outcomes}, "failures": 0,
              "rate": 0.0, "ci": [0.0, 1.0], "elapsed_s": 0.0, "charged_s": 0.0,
              "program_s": 0.0, "iterations_per_s": 0.0, "batches": 0, "uncounted": 0,
              "first_failure": None, "first_by_outcome": {}, "interruptions": [],
              "verdict": {"status": SKIPPED, "message": reason}, "command": "", "capture": None}
    settings.run_dir.write_cell(record)
    return record


def run_cell(cell: Cell, settings: Settings, progress=None) -> dict:
    """Runs the cell and returns its record (also written to cells/<cell>.json).
    ProgramError: the program (or its build step) could not be run as declared. Ctrl-C
    (program.Interrupted): the record of what ran is written, verdict interrupted, and the
    interruption goes on."""
    reason = cell.skip_reason()
    if reason:
        return skipped_record(cell, settings, reason)
    workdir = None
    if cell.reproducer is not None:
        ok, text = external.build_once(cell.reproducer, settings.run_dir.path / ".builds")
        if not ok:
            raise ProgramError(f"{cell.reproducer.name}: the build step failed: {text}")
        if cell.reproducer.scratch:
            workdir = external.scratch_copy(cell.reproducer,
                                            settings.run_dir.path / "scratch" / cell.id)
    inv = cell.invocation(settings.seed, workdir=workdir)
    schedules = settings.run_dir.path / "schedules" / cell.id
    state = settings.run_dir.path / "search" / f"{cell.id}.state"
    if cell.controlled:           # its schedules and its search, kept the same way
        inv = inv.with_schedules(schedules)
        if cell.search:
            state.parent.mkdir(parents=True, exist_ok=True)
            inv = inv.with_search_state(state)
    elif cell.deterministic:      # failing schedules (and their race logs) go into the run
        inv = replace(inv, extra=(*inv.extra, "--schedules", str(schedules)))
    if cell.search and not cell.controlled:   # each batch goes on where the last one left it
        inv = replace(inv, extra=(*inv.extra, "--search-state", str(state)))
    budget = settings.budget(cell)
    try:
        loop = run_loop(inv, budget, progress=progress)
    except Interrupted as e:
        record = _record(cell, settings, budget, inv, e.loop, interrupted=True)
        settings.run_dir.write_cell(record)
        raise
    finally:
        if progress is not None:
            progress.close()
    record = _record(cell, settings, budget, inv, loop)
    ff = loop.first_failure
    if ff and _wants_capture(settings, cell, record["verdict"]["status"]):
        failure = Failure(cell.id, inv, ff["iteration"], ff["outcome"],
                          rare=cell.expect.kind != ALWAYS, schedule=ff.get("schedule"),
                          rate=record["rate"])
        record["capture"] = capture(failure, settings.run_dir.captures / cell.id, settings.rr,
                                    disk_root=settings.run_dir.captures)
    settings.run_dir.write_cell(record)
    return record


def _record(cell: Cell, settings: Settings, budget: Budget, inv, loop, interrupted: bool = False
            ) -> dict:
    """A cell's record from its loop: counts, interval, speed, first failures, verdict."""
    ff = loop.first_failure
    rerun = inv.command(0, max(loop.iterations, 1))
    power = (power_of(loop.iterations, cell.twin_id, settings.twin_found(cell), cell.twin_kind)
             if cell.expect.kind == NEVER else None)
    evidence = Evidence(power=power, reference=settings.reference_rate(cell),
                        search=loop.sim if cell.search else None)
    verdict = judge(cell.expect, loop.outcomes, loop.iterations, loop.wall_s, loop.replays, rerun,
                    evidence)
    if interrupted:
        verdict = Verdict(INTERRUPTED, f"interrupted (Ctrl-C) after {loop.iterations} iterations"
                                       f" of its budget; rerun: {rerun}")
    low, high = wilson(loop.failures, loop.iterations)
    record = {
        **_base_record(cell, settings, budget), "runner_version": loop.runner_version,
        "iterations": loop.iterations, "outcomes": loop.outcomes, "failures": loop.failures,
        "rate": loop.failures / loop.iterations if loop.iterations else 0.0,
        "ci": [low, high], "elapsed_s": round(loop.wall_s, 4),
        "charged_s": round(loop.charged_s, 4), "program_s": round(loop.program_s, 4),
        "iterations_per_s": round(loop.iterations / loop.charged_s, 1) if loop.charged_s else 0.0,
        "batches": len(loop.batches), "uncounted": loop.uncounted, "first_failure": ff,
        "first_by_outcome": loop.first_by_outcome,
        "interruptions": [asdict(i) for i in loop.interruptions],
        "verdict": asdict(verdict), "command": rerun, "capture": None,
        "reference_rate": evidence.reference, "power": power,
    }
    if loop.sim is not None:
        record["sim"] = loop.sim
    if loop.stderr:
        record["stderr_tail"] = loop.stderr[-4000:]
    return record


def rate_line(record: dict) -> str:
    """One line per cell: what a runtime author scans for."""
    if record["verdict"]["status"] == SKIPPED:
        return f"{record['cell']}: SKIPPED; {record['verdict']['message']}"
    ff = record.get("first_failure")
    first = f"first failure after {ff['after_s']:.3g}s" if ff else "no failure"
    expect = Expectation(**record["expect"]).text()
    power = record.get("power")
    power_text = f"; power {power['value'] * 100:.0f}%" if power and power.get("value") is not None else ""
    charged = record.get("charged_s") or record.get("elapsed_s") or 0
    reproductions = (f"; {record['failures'] / charged:.1f} reproductions/s"
                     if record["failures"] and charged and record["expect"]["kind"] != "never"
                     else "")
    return (f"{record['cell']}: {record['verdict']['status'].upper()}; expect {expect}; "
            f"{rate_text(record['failures'], record['iterations'])}; "
            f"{record['iterations_per_s']:.0f} it/s{reproductions}; {first}{power_text}"
            f"{sim_text(record)}")


def sim_text(record: dict) -> str:
    """'; sim random, 3000 schedules' or, for a search, what it covered."""
    sim = record.get("sim")
    if not sim:
        return ""
    text = f"; sim {sim['strategy'].split('(')[0]}, {sim['schedules']} schedules"
    if sim.get("searching"):
        text += (f", {sim.get('programs_exhausted', 0)} of {sim.get('programs_searched', 0)}"
                 f" programs searched to the bound")
    return text


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
    told = info.get("explanation")
    if told:
        lines.append(f"  explained: {told['critical']} of the schedule's {told['deviations']} "
                     f"departures from a passing one {'makes' if told['critical'] == 1 else 'make'} "
                     f"it fail: {shown(Path(told['text_file']))}")
    return "\n".join(lines)


def header_lines(settings: Settings, catalog: Catalog, cells: list[Cell]) -> list[str]:
    """Runners and their library versions, seed, profile, rr (one line), the run folder."""
    used = {c.runner for c in cells}
    runners = ", ".join(f"{r} ({catalog.versions.get(r, 'unknown')})"
                        for r in catalog.runners if r in used) or "none built (run make)"
    budget = settings.profile.text()
    if settings.iterations or settings.seconds:
        every = override(settings.profile.sometimes, settings.iterations, settings.seconds)
        budget += f"; every cell {every.text()}"
    shard = f"; shard {settings.shard.text()} ({len(cells)} cells)" if settings.shard else ""
    return [f"asyncrace: runners {runners}; {seed_text(settings.seed, cells)}; profile "
            f"{budget}{shard}",
            f"asyncrace: {settings.rr.line()}",
            f"asyncrace: cells write to {settings.run_dir.path}"]


def seed_text(seed: int, cells: list[Cell]) -> str:
    """The run seed where it decides something: the case programs draw every iteration's
    seed from it, a program that loops itself gets --seed; a command run once per
    iteration only finds it in ASYNCRACE_SEED, and may well ignore it."""
    if cells and all(c.reproducer is not None and c.reproducer.loop == "process" for c in cells):
        return f"seed {seed} (in ASYNCRACE_SEED only: the command decides whether it uses it)"
    return f"seed {seed}"


def finish_run(settings: Settings, catalog: Catalog) -> tuple[dict | None, list[Finding]]:
    """Composes summary.json, matrix.md, results.csv and report.html from the cells that
    ran, compared with the baseline if given. (None, []) when no cell ran."""
    from .results import build_id
    records = settings.run_dir.read_cells()
    if not records:
        return None, []
    versions = dict(catalog.versions)
    for r in records:   # what a program's report said, where its --list did not
        if r.get("runner_version") and versions.get(r["runner"], "unknown") in ("unknown", "from its report"):
            versions[r["runner"]] = r["runner_version"]
    meta = {**settings.meta(), "runners": catalog.runners, "modes": catalog.modes,
            "runner_versions": versions, "build_id": build_id(catalog)}
    return compose_with_baseline(settings.run_dir, records, meta, settings.baseline_summary,
                                 settings.baseline, settings.reference)


def compose_with_baseline(run_dir: RunDir, records: list[dict], meta: dict,
                          baseline: dict | None, baseline_file: str | None,
                          reference: dict | None = None) -> tuple[dict, list[Finding]]:
    findings: list[Finding] = []
    extra = {}
    if baseline is not None:
        findings = compare({"cells": {r["cell"]: r for r in records}}, baseline)
        extra = {"baseline": {"file": baseline_file, "findings": [asdict(f) for f in findings],
                              "cells": {c: {k: r[k] for k in ("failures", "iterations", "ci")}
                                        for c, r in baseline["cells"].items()}}}
    return run_dir.compose(records, meta, extra, baseline, reference), findings


def run_failed(summary: dict | None, findings: list[Finding], profile: Profile) -> bool:
    """Exit status 1 for the run: a cell failed (the rot rule decides rot), or the baseline
    found a regression or rot."""
    from .baseline import DRIFT
    cells = (summary or {}).get("cells", {}).values()
    return (any(consequence(r, profile) == FAILED for r in cells)
            or bool((summary or {}).get("unpowered"))
            or any(f.kind != DRIFT for f in findings))

