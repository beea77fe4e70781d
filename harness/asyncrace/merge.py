"""Fold runs into one: the shards of a run, and repeats of a cell with other seeds.

Per cell: iterations, outcomes, times and batches are summed; the first failure kept is
the earliest (smallest time to first failure), with its run seed so its replay line stays
right (the same for the first failure of each outcome); the verdict, interval and power
are recomputed; summary.json, matrix.md, results.csv and report.html are rewritten, and
the kept failures' capture folders are copied along.

Refused, with the reason: runs of different builds (summary.json's build_id), different
expectations of one cell, or the same iterations twice (one cell with the same seed in two
runs: the same shard given twice, or a folder given twice).
"""
import json
import os
import shutil
from pathlib import Path

from .baseline import load_summary
from .judge import SKIPPED, Evidence, Expectation, judge
from .reference import Rate
from .results import RunDir, atomic_write_json, new_run_id, ordered
from .stats import wilson

SUMMED = ("elapsed_s", "charged_s", "program_s", "batches", "uncounted")


class MergeError(ValueError):
    """Why these runs cannot be folded into one."""


def _earliest(candidates: list[dict]) -> dict | None:
    found = [c for c in candidates if c]
    return min(found, key=lambda ff: (ff.get("after_s") is None, ff.get("after_s") or 0.0),
               default=None)


def fold(records: list[tuple[str, dict]]) -> dict:
    """One cell's records [(run_id, record)] as one record."""
    ran = [(run, r) for run, r in records if r["verdict"]["status"] != SKIPPED]
    if not ran:
        return dict(records[0][1])
    first = ran[0][1]
    merged = {k: v for k, v in first.items() if k not in ("capture", "stderr_tail", "power")}
    outcomes: dict[str, int] = {}
    for _, r in ran:
        for name, n in r["outcomes"].items():
            outcomes[name] = outcomes.get(name, 0) + n
    iterations = sum(r["iterations"] for _, r in ran)
    failures = iterations - outcomes.get("ok", 0)
    merged.update({k: round(sum(r.get(k, 0) for _, r in ran), 4) for k in SUMMED})
    for _, r in ran:   # a record from before run_seed was kept: its record's seed
        for ff in [r.get("first_failure"), *(r.get("first_by_outcome") or {}).values()]:
            if ff is not None:
                ff.setdefault("run_seed", r["seed"])
    by_outcome = {}
    for name in dict.fromkeys(n for _, r in ran for n in (r.get("first_by_outcome") or {})):
        by_outcome[name] = _earliest([(r.get("first_by_outcome") or {}).get(name) for _, r in ran])
    ff = _earliest([r.get("first_failure") for _, r in ran])
    low, high = wilson(failures, iterations)
    charged = merged.get("charged_s") or merged.get("elapsed_s") or 0.0
    merged.update({
        "iterations": iterations, "outcomes": outcomes, "failures": failures,
        "rate": failures / iterations if iterations else 0.0, "ci": [low, high],
        "iterations_per_s": round(iterations / charged, 1) if charged else 0.0,
        "seeds": sorted({r["seed"] for _, r in ran}), "runs": [run for run, _ in ran],
        "first_failure": ff, "first_by_outcome": dict(sorted(
            by_outcome.items(), key=lambda kv: kv[1].get("after_s") or 0.0)),
        "interruptions": [{**i, "run_seed": r["seed"]} for _, r in ran for i in r.get("interruptions", [])],
        "runner_version": next((r["runner_version"] for _, r in ran if r.get("runner_version")), None),
        "capture": None,
    })
    replays = {name: f["replay"] for name, f in merged["first_by_outcome"].items() if f.get("replay")}
    searches = [r["sim"] for _, r in ran if (r.get("sim") or {}).get("searching")]
    search = max(searches, key=lambda s: s.get("programs_exhausted", 0), default=None)
    evidence = Evidence(reference=first.get("reference_rate"), search=search)
    merged["verdict"] = judge(Expectation(**first["expect"]), outcomes, iterations,
                              merged["elapsed_s"], replays, first["command"], evidence).__dict__
    if ff is not None:   # the capture of the run whose failure was kept
        keep = next((r for _, r in ran if r.get("first_failure") == ff), None)
        merged["capture"] = keep.get("capture") if keep else None
    return merged


def merge(paths: list[Path], into: RunDir, baseline: dict | None = None,
          baseline_file: str | None = None):
    """Folds the runs at paths into `into`; returns (summary, findings). MergeError: why not."""
    from .session import compose_with_baseline
    if len(paths) < 1:
        raise MergeError("nothing to merge: give run folders (or their summary.json)")
    runs = []
    for path in paths:
        try:
            summary = load_summary(path)
        except (OSError, ValueError) as e:
            raise MergeError(f"{path}: not a run with a summary.json ({e})")
        folder = path if path.is_dir() else path.parent
        if folder.is_dir() and not (folder / "summary.json").exists():
            folder = (folder / "latest").resolve()   # a results folder: its latest run
        runs.append((folder, summary))
    ids = [s["run_id"] for _, s in runs]
    for run_id in ids:
        if ids.count(run_id) > 1:
            raise MergeError(f"run {run_id} is given twice")
    builds = {s.get("build_id") for _, s in runs}
    if len(builds) > 1:
        raise MergeError("different builds: " + ", ".join(
            f"{s['run_id']} has build {s.get('build_id')}" for _, s in runs))
    references = {json.dumps((s.get("reference") or {}).get("rates"), sort_keys=True) for _, s in runs}
    if len(references) > 1:
        raise MergeError("different reference rates (cases/rates.txt): " + ", ".join(
            f"{s['run_id']} used {len((s.get('reference') or {}).get('rates') or {})} rates"
            for _, s in runs))
    profiles = {s.get("profile") for _, s in runs}
    if len(profiles) > 1:
        raise MergeError("different profiles: " + ", ".join(
            f"{s['run_id']} ran {s.get('profile')}" for _, s in runs))
    by_cell: dict[str, list[tuple[str, dict, Path]]] = {}
    for folder, s in runs:
        for cell, r in s["cells"].items():
            by_cell.setdefault(cell, []).append((s["run_id"], r, folder))
    for cell, entries in by_cell.items():
        expects = {json.dumps(r["expect"], sort_keys=True) for _, r, _ in entries}
        if len(expects) > 1:
            raise MergeError(f"{cell}: different expectations: " + ", ".join(
                f"{run} expects {r['expect']['kind']} {r['expect']['outcome']}" for run, r, _ in entries))
        seen: dict[int, str] = {}
        for run, r, _ in entries:
            if r["verdict"]["status"] == SKIPPED:
                continue
            if r["seed"] in seen:
                raise MergeError(f"{cell} ran with seed {r['seed']} in both {seen[r['seed']]} and "
                                 f"{run}: the same iterations twice (the same shard given twice?)")
            seen[r["seed"]] = run
    records = []
    for cell, entries in by_cell.items():
        merged = fold([(run, r) for run, r, _ in entries])
        if merged.get("capture"):
            source = next(folder for run, r, folder in entries
                          if r.get("capture") == merged["capture"])
            merged["capture"] = _copy_capture(source, into, cell, merged["capture"])
        into.write_cell(merged)
        records.append(merged)
    first = runs[0][1]
    meta = {
        "profile": first.get("profile"), "budgets": first.get("budgets"),
        "seed": sorted({s.get("seed") for _, s in runs}, key=str)[0] if len(runs) == 1 else
        sorted({s.get("seed") for _, s in runs}, key=str),
        "iterations": first.get("iterations"), "seconds": first.get("seconds"), "rr": first.get("rr"),
        "shard": None, "build_id": first.get("build_id"),
        "runners": ordered([r for _, s in runs for r in s.get("runners", [])],
                           [r for _, s in runs for r in s.get("runners", [])]),
        "modes": ordered([m for _, s in runs for m in s.get("modes", [])],
                         [m for _, s in runs for m in s.get("modes", [])]),
        "runner_versions": {k: v for _, s in runs for k, v in s.get("runner_versions", {}).items()},
        "merged_from": [{"run_id": s["run_id"], "shard": s.get("shard"), "seed": s.get("seed"),
                         "path": str(folder)} for folder, s in runs],
        "reference": first.get("reference"),
    }
    rates = {c: Rate.parse(text)
             for c, text in ((first.get("reference") or {}).get("rates") or {}).items()}
    return compose_with_baseline(into, records, meta, baseline, baseline_file, rates)


def _copy_capture(source_run: Path, into: RunDir, cell: str, info: dict) -> dict:
    """The capture folder beside the merged run (hard links where the disk allows)."""
    src = source_run / "captures" / cell
    if not src.is_dir():
        return info
    dest = into.captures / cell
    if dest.exists():
        shutil.rmtree(dest)

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
    shutil.copytree(src, dest, copy_function=link_or_copy, symlinks=True)
    info = {**info, "replay_sh": str(dest / "replay.sh")}
    atomic_write_json(dest / "capture.json", info)
    return info


def default_into(results_dir: Path) -> RunDir:
    return RunDir(results_dir, new_run_id() + "-merged")
