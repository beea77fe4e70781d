"""The run folder, results/<run-id>/, written so an interrupted run keeps every finished cell.

    cells/<cell>.json   one per cell, written by the process that ran it (an xdist worker)
    summary.json        every cell, composed once at the end from cells/
    matrix.md           the rate table a person reads
    results.csv         one row per cell
    captures/<cell>/    what a debugger needs for a failure (capture.py)

Every file is written atomically (temp file in the same folder, fsync, rename), and
results/latest is a symlink replaced atomically to point at the newest run.
"""
import csv
import io
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

from .judge import FAIL, NOT_REPRODUCED, PASS
from .stats import rate_text

MODES = ("natural", "chaos", "forced")


def new_run_id() -> str:
    """Sortable by time; the suffix keeps two runs started in the same second apart."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Either the old file or the whole new one, never a part: temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are for reading
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def point_latest(results_dir: Path, run_dir: Path) -> None:
    """results/latest -> <run-id>, replaced in one rename (a relative link: the folder can move)."""
    tmp = results_dir / f".latest.{secrets.token_hex(4)}.tmp"
    os.symlink(run_dir.name, tmp)
    try:
        os.replace(tmp, results_dir / "latest")
    except BaseException:
        os.unlink(tmp)
        raise


class RunDir:
    def __init__(self, results_dir: Path, run_id: str) -> None:
        self.results_dir = results_dir
        self.path = results_dir / run_id
        self.cells = self.path / "cells"
        self.captures = self.path / "captures"

    def write_cell(self, record: dict) -> Path:
        path = self.cells / f"{record['cell']}.json"
        atomic_write_json(path, record)
        return path

    def read_cells(self) -> list[dict]:
        """Every finished cell; temp files of an interrupted write are skipped."""
        if not self.cells.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.cells.glob("*.json"))
                if not p.name.startswith(".")]

    def compose(self, records: list[dict], meta: dict, extra: dict | None = None) -> dict:
        """summary.json, matrix.md and results.csv from the cells' records; then latest."""
        records = sorted(records, key=lambda r: (r["case"], *r["order"]))
        summary = {**meta, "run_id": self.path.name, "composed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "totals": totals(records), **(extra or {}),
                   "cells": {r["cell"]: r for r in records}}
        atomic_write_json(self.path / "summary.json", summary)
        atomic_write_text(self.path / "matrix.md", matrix_md(summary))
        atomic_write_text(self.path / "results.csv", results_csv(records))
        point_latest(self.results_dir, self.path)
        return summary


def totals(records: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["verdict"]["status"]] = counts.get(r["verdict"]["status"], 0) + 1
    return {"cells": len(records), **counts}


def _mark(record: dict) -> str:
    status = record["verdict"]["status"]
    return {FAIL: " **FAIL**", NOT_REPRODUCED: " *not reproduced*"}.get(status, "")


def matrix_md(summary: dict) -> str:
    """Rows case x variant, columns runner x mode; each cell 'rate [low, high] (failures/n)'."""
    records = list(summary["cells"].values())
    runners = list(dict.fromkeys(r["runner"] for r in sorted(records, key=lambda r: r["order"][1])))
    modes = [m for m in MODES if any(r["mode"] == m for r in records)]
    columns = [(runner, mode) for runner in runners for mode in modes]
    rows: dict[tuple[str, str], dict] = {}
    for r in records:
        rows.setdefault((r["case"], r["variant"]), {})[(r["runner"], r["mode"])] = r
    lines = [f"# asyncrace run {summary['run_id']}", "",
             f"Profile {summary.get('profile', '?')}, seed {summary.get('seed', '?')}; "
             f"rates in percent: failures / iterations with the 95 % Wilson interval "
             f"(for 0 failures, read the upper bound).", "",
             "| case | variant | " + " | ".join(f"{r} {m}" for r, m in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for (case, variant), by_column in rows.items():
        texts = []
        for column in columns:
            r = by_column.get(column)
            texts.append(rate_text(r["failures"], r["iterations"]) + _mark(r) if r else "-")
        lines.append(f"| {case} | {variant} | " + " | ".join(texts) + " |")
    problems = [r for r in records if r["verdict"]["status"] != PASS]
    if problems:
        lines += ["", "## Not as expected", ""]
        lines += [f"- `{r['cell']}` (expect {r['expect']['kind']}): {r['verdict']['message']}"
                  for r in problems]
    return "\n".join(lines) + "\n"


def results_csv(records: list[dict]) -> str:
    outcome_names = list(dict.fromkeys(n for r in records for n in r["outcomes"]))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["cell", "case", "runner", "variant", "mode", "expect", "expect_outcome",
                     "verdict", "iterations", "failures", "rate", "ci_low", "ci_high",
                     "iterations_per_s", "first_failure_s", "elapsed_s", *outcome_names])
    for r in records:
        ff = r.get("first_failure") or {}
        writer.writerow([r["cell"], r["case"], r["runner"], r["variant"], r["mode"],
                         r["expect"]["kind"], r["expect"]["outcome"], r["verdict"]["status"],
                         r["iterations"], r["failures"], r["rate"], r["ci"][0], r["ci"][1],
                         r["iterations_per_s"], ff.get("after_s", ""), r["elapsed_s"],
                         *(r["outcomes"].get(n, 0) for n in outcome_names)])
    return out.getvalue()
