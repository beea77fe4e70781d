"""The run folder, results/<run-id>/, written so an interrupted run keeps every finished cell.

    cells/<cell>.json   one per cell, written by the process that ran it (an xdist worker)
    summary.json        every cell, composed once at the end from cells/, with the power
                        of never cells and the build id
    matrix.md           the rate table a person reads
    results.csv         one row per cell
    report.html         one self-contained page: matrix, rate plot, power, baseline (report.py)
    captures/<cell>/    what a debugger needs for a failure (capture.py)

Every file is written atomically (temp file in the same folder, fsync, rename), and
results/latest is a symlink replaced atomically to point at the newest run.
"""
import csv
import hashlib
import math
import io
import json
import os
import secrets
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from .judge import (ALWAYS, FAIL, NEVER, NOT_REPRODUCED, PASS, RARELY, SKIPPED, UNDERPOWERED,
                    Evidence, never_verdict)
from .stats import POWER_TARGET, iterations_for_power, percent, power, rate_text, wilson


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

    def compose(self, records: list[dict], meta: dict, extra: dict | None = None,
                baseline: dict | None = None, reference: dict | None = None) -> dict:
        """summary.json, matrix.md, results.csv and report.html from the cells' records
        (the power of never cells computed here, against the reference rates, this run's
        twins or the baseline's; and the fixes no cell showed on a runner); then latest."""
        from .report import report_html
        records = sorted(records, key=lambda r: (r["case"], *r["order"]))
        add_power(records, baseline, reference or {})
        summary = {**meta, "run_id": self.path.name, "composed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "totals": totals(records), **(extra or {}),
                   "unpowered": unpowered_fixes(records),
                   "cells": {r["cell"]: r for r in records}}
        atomic_write_json(self.path / "summary.json", summary)
        atomic_write_text(self.path / "matrix.md", matrix_md(summary))
        atomic_write_text(self.path / "results.csv", results_csv(records))
        atomic_write_text(self.path / "report.html", report_html(summary, self.path))
        point_latest(self.results_dir, self.path)
        return summary


def build_id(catalog) -> str:
    """sha256 over the programs the cells run (build/bin and the external reproducers'
    executables that exist): runs of different builds are not merged."""
    from .paths import ROOT
    files = list(catalog.programs)
    for rep in catalog.reproducers:
        for v in rep.variants:
            first = v.command[0]
            path = ROOT / first if "/" in first else None
            if path is not None and path.is_file():
                files.append(path)
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def twin_rate(twin: str, twin_kind: str | None, reference: dict, run: dict,
              baseline: dict | None) -> tuple[float, int | None, str] | None:
    """The twin's failure rate a never cell is measured against, and where it came from:
    1 for an always twin (its expectation, checked by its own cell), else the reference
    rate (cases/rates.txt), else this run's twin, else the baseline's; each a count's
    Wilson lower bound, so 95 % power holds against any rate the count makes plausible
    (1 failure in 2,185 is not a rate of 0.046 %). None when none is known."""
    if twin_kind == ALWAYS:
        return 1.0, None, "always"
    ref = reference.get(twin)
    if ref is not None:
        return ref.low, ref.iterations, "reference"
    for source, cells in (("run", run), ("baseline", (baseline or {}).get("cells", {}))):
        t = cells.get(twin)
        if t and t.get("iterations") and t.get("verdict", {}).get("status") != SKIPPED:
            return wilson(t["failures"], t["iterations"])[0], t["iterations"], source
    return None


def power_of(iterations: int, twin: str | None, found, twin_kind: str | None = None) -> dict:
    """The chance that `iterations` clean iterations would have seen the twin's rate,
    1-(1-p)^n, with where p came from and how many iterations 95 % needs."""
    if not twin:
        return {"twin": None, "value": None, "note": "no twin declared"}
    rarely = ("; the twin is rarely here: its case says this runner and mode show the bug "
              "too rarely to require it" if twin_kind == RARELY else "")
    if found is None:
        return {"twin": twin, "value": None, "note": f"the twin's rate is unknown{rarely}"}
    p, twin_iterations, source = found
    if p <= 0:
        return {"twin": twin, "value": None, "twin_rate": 0.0, "source": source,
                "note": f"the twin showed no failure ({source}){rarely}"}
    value = power(p, iterations)
    needed = iterations_for_power(p)
    return {"twin": twin, "twin_rate": p, "twin_iterations": twin_iterations, "source": source,
            "value": value, "needed": needed if math.isfinite(needed) else None,
            "underpowered": value < POWER_TARGET}


def add_power(records: list[dict], baseline: dict | None, reference: dict) -> None:
    """record["power"] for every never cell that sampled (a search proves instead), and its
    verdict: a never cell that did not fail passes only with 95 % power (judge.py)."""
    by_id = {r["cell"]: r for r in records}
    for r in records:
        r["power"] = None
        if r["expect"]["kind"] != NEVER or r["verdict"]["status"] == SKIPPED:
            continue
        if (r.get("sim") or {}).get("searching"):
            continue
        twin = r.get("twin")
        found = twin_rate(twin, r.get("twin_kind"), reference, by_id, baseline) if twin else None
        r["power"] = power_of(r["iterations"], twin, found, r.get("twin_kind"))
        if r["verdict"]["status"] in (PASS, UNDERPOWERED):
            r["verdict"] = asdict(never_verdict(r["iterations"], Evidence(power=r["power"]),
                                                r.get("command", "")))


def unpowered_fixes(records: list[dict]) -> list[str]:
    """A fix passes on a runner only if at least one of its cells there reached 95 % power
    (or proved it by search): one line per case, variant and runner where none did."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:   # a never cell without a twin claims to fix nothing
        if r["expect"]["kind"] == NEVER and r["verdict"]["status"] != SKIPPED and r.get("twin"):
            groups.setdefault((r["case"], r["variant"], r["runner"]), []).append(r)
    lines = []
    for (case, variant, runner), cells in groups.items():
        if any(r["verdict"]["status"] == FAIL for r in cells):
            continue              # already a failure of its own
        if not any(r["verdict"]["status"] == PASS for r in cells):
            lines.append(f"{case}.{variant} on {runner}: no cell reached "
                         f"{percent(POWER_TARGET)} % power against its twin "
                         f"({', '.join(r['mode'] for r in cells)} ran): the fix is not shown there")
    return lines


def twin_rate_text(p: dict) -> str:
    """'5.7% (reference, 20000 it)', or '-' when the power is unknown."""
    if p.get("value") is None:
        return "-"
    counted = f", {p['twin_iterations']} it" if p.get("twin_iterations") else ""
    return f"{percent(p['twin_rate'])}% ({p['source']}{counted})"


def power_text(p: dict | None) -> str:
    if not p:
        return ""
    if p.get("value") is None:
        return f"? ({p['note']})"
    mark = " **underpowered**" if p["underpowered"] else ""
    return f"{percent(p['value'])}%{mark}"


def totals(records: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["verdict"]["status"]] = counts.get(r["verdict"]["status"], 0) + 1
    return {"cells": len(records), **counts}


def _mark(record: dict) -> str:
    status = record["verdict"]["status"]
    return {FAIL: " **FAIL**", NOT_REPRODUCED: " **not reproduced**",
            UNDERPOWERED: " *underpowered*", SKIPPED: " *skipped*"}.get(status, "")


def ordered(names: list[str], seen: list[str]) -> list[str]:
    """The run's order (from the programs' --list), then anything else the records hold,
    each name once: nothing that ran can vanish from a table, and nothing shows twice
    (merged runs each bring the same runners and modes)."""
    return list(dict.fromkeys([n for n in names if n in seen] + [n for n in seen if n not in names]))


def columns(summary: dict) -> list[tuple[str, str]]:
    records = list(summary["cells"].values())
    runners = ordered(summary.get("runners", []), [r["runner"] for r in records])
    modes = ordered(summary.get("modes", []), [r["mode"] for r in records])
    have = {(r["runner"], r["mode"]) for r in records}
    return [(runner, mode) for runner in runners for mode in modes if (runner, mode) in have]


def matrix_md(summary: dict) -> str:
    """Rows case x variant, columns runner x mode; each cell 'rate [low, high] (failures/n)';
    the last column, for rows of never cells, their lowest power."""
    records = list(summary["cells"].values())
    cols = columns(summary)
    rows: dict[tuple[str, str], dict] = {}
    for r in records:
        rows.setdefault((r["case"], r["variant"]), {})[(r["runner"], r["mode"])] = r
    lines = [f"# asyncrace run {summary['run_id']}", "",
             f"Profile {summary.get('profile', '?')}, seed {summary.get('seed', '?')}"
             f"{', shard ' + summary['shard'] if summary.get('shard') else ''}; rates in percent: "
             f"failures / iterations with the 95 % Wilson interval (for 0 failures, read the "
             f"upper bound). Power: for never cells, the chance their iterations would have "
             f"seen the twin's rate, taken as its count's lower bound (below "
             f"{percent(POWER_TARGET)} %: underpowered, never a pass).", "",
             "| case | variant | " + " | ".join(f"{r} {m}" for r, m in cols) + " | power (lowest) |",
             "|---|---|" + "---|" * (len(cols) + 1)]
    for (case, variant), by_column in rows.items():
        texts = []
        for column in cols:
            r = by_column.get(column)
            texts.append(rate_text(r["failures"], r["iterations"]) + _mark(r) if r else "-")
        powers = [r["power"] for r in by_column.values() if r.get("power")]
        known = [p for p in powers if p.get("value") is not None]
        lowest = power_text(min(known, key=lambda p: p["value"])) if known else (
            power_text(powers[0]) if powers else "")
        lines.append(f"| {case} | {variant} | " + " | ".join(texts) + f" | {lowest} |")
    never = [r for r in records if r.get("power")]
    if never:
        lines += ["", "## Power of never cells", "",
                  "| cell | twin | twin rate (lower bound) | iterations | power |", "|---|---|---|---|---|"]
        for r in never:
            p = r["power"]
            lines.append(f"| {r['cell']} | {p.get('twin') or '-'} | {twin_rate_text(p)} | "
                         f"{r['iterations']} | {power_text(p)} |")
    problems = [r for r in records if r["verdict"]["status"] != PASS]
    if problems or summary.get("unpowered"):
        lines += ["", "## Not as expected", ""]
        lines += [f"- `{r['cell']}` (expect {r['expect']['kind']}): {r['verdict']['message']}"
                  for r in problems]
        lines += [f"- {line}" for line in summary.get("unpowered", [])]
    return "\n".join(lines) + "\n"


def results_csv(records: list[dict]) -> str:
    outcome_names = list(dict.fromkeys(n for r in records for n in r["outcomes"]))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["cell", "case", "runner", "variant", "mode", "expect", "expect_outcome",
                     "verdict", "iterations", "failures", "rate", "ci_low", "ci_high",
                     "iterations_per_s", "first_failure_s", "elapsed_s", "twin", "twin_rate",
                     "power", "underpowered", *outcome_names])
    for r in records:
        ff = r.get("first_failure") or {}
        p = r.get("power") or {}
        writer.writerow([r["cell"], r["case"], r["runner"], r["variant"], r["mode"],
                         r["expect"]["kind"], r["expect"]["outcome"], r["verdict"]["status"],
                         r["iterations"], r["failures"], r["rate"], r["ci"][0], r["ci"][1],
                         r["iterations_per_s"], ff.get("after_s", ""), r["elapsed_s"],
                         p.get("twin") or "", p.get("twin_rate", ""),
                         "" if p.get("value") is None else p["value"],
                         "" if p.get("value") is None else int(p["underpowered"]),
                         *(r["outcomes"].get(n, 0) for n in outcome_names)])
    return out.getvalue()
