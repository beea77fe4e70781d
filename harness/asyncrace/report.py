"""results/<run>/report.html: one self-contained page (inline CSS, the plot as inline SVG,
no network): the matrix coloured by verdict, every cell's rate with its 95 %
interval on a log scale, time to first failure, the power of never cells, the change
against the baseline, and per failure its replay command and a link to its capture.

The plot is drawn with matplotlib (Debian: python3-matplotlib), imported only here and
only when a report is written; without it the page says so in one line.
"""
import html
import io
import math
from pathlib import Path

from .judge import FAIL, NEVER, NOT_REPRODUCED, PASS, SKIPPED, UNDERPOWERED
from .paths import ROOT
from .results import columns, power_text, twin_rate_text
from .stats import percent, rate_text

MAX_COLUMNS = 9
COLOURS = {PASS: "#2e7d32", FAIL: "#c62828", NOT_REPRODUCED: "#ad1457", UNDERPOWERED: "#ef8f00",
           SKIPPED: "#9e9e9e"}
BACKGROUNDS = {PASS: "#e8f5e9", FAIL: "#ffcdd2", NOT_REPRODUCED: "#f8bbd0", UNDERPOWERED: "#ffe0b2",
               SKIPPED: "#eeeeee"}
CSS = """
body { font: 14px/1.4 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
p.meta { color: #555; margin: 2px 0; } p.note { color: #8a5a00; }
table { border-collapse: collapse; margin: 4px 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; }
td.cell { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11px; white-space: nowrap; padding: 2px 4px; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border: 1px solid #ccc; }
div.plot svg { max-width: 100%; height: auto; border: 1px solid #ddd; }
details summary { cursor: pointer; margin: 6px 0; }
"""


def e(text) -> str:
    return html.escape(str(text), quote=True)


def _cell_style(status: str) -> str:
    return f"background:{BACKGROUNDS.get(status, '#fff')}"


def _matrix(summary: dict) -> str:
    """One table per set of runners (the C cases share theirs; an external reproducer has
    its own), rows case x variant, columns runner x mode in the run's order."""
    cols = columns(summary)
    rows: dict[tuple[str, str], dict] = {}
    for r in summary["cells"].values():
        rows.setdefault((r["case"], r["variant"]), {})[(r["runner"], r["mode"])] = r
    groups: dict[tuple[str, ...], list] = {}
    for key, by_col in rows.items():
        runners = tuple(dict.fromkeys(runner for runner, _ in cols
                                      if any(c[0] == runner for c in by_col)))
        groups.setdefault(runners, []).append((key, by_col))
    legend = "".join(f'<span style="{_cell_style(s)}">{e(s.replace("_", " "))}</span>'
                     for s in (PASS, FAIL, NOT_REPRODUCED, UNDERPOWERED, SKIPPED))
    tables = [f'<p class="legend">{legend} each cell: rate (failures/iterations), its 95 % '
              f'interval, and for never cells the power</p>']
    for runners, members in groups.items():
        for chunk in _chunks(runners, cols):
            chunk_cols = [c for c in cols if c[0] in chunk]
            head = "".join(f"<th>{e(runner)}<br>{e(mode)}</th>" for runner, mode in chunk_cols)
            body = []
            for (case, variant), by_col in members:
                tds = [_matrix_cell(by_col.get(col)) for col in chunk_cols]
                body.append(f"<tr><th>{e(case)}</th><th>{e(variant)}</th>{''.join(tds)}</tr>")
            tables.append(f"<table><tr><th>case</th><th>variant</th>{head}</tr>"
                          + "".join(body) + "</table>")
    return "\n".join(tables)


def _chunks(runners: tuple[str, ...], cols: list[tuple[str, str]]) -> list[tuple[str, ...]]:
    """Whole runners, in even parts of at most MAX_COLUMNS columns: no sideways scrolling."""
    width = len([c for c in cols if c[0] in runners])
    parts = max(1, math.ceil(width / MAX_COLUMNS))
    size = math.ceil(len(runners) / parts)
    return [runners[k:k + size] for k in range(0, len(runners), size)]


def _matrix_cell(r: dict | None) -> str:
    if r is None:
        return "<td>-</td>"
    status = r["verdict"]["status"]
    if status == SKIPPED:
        lines = ["skipped"]
    else:
        low, high = r["ci"]
        lines = [f"{percent(r['rate'])}% ({r['failures']}/{r['iterations']})",
                 f"[{percent(low)}, {percent(high)}]",
                 f"{r.get('iterations_per_s', 0):,.0f} it/s"]
        shown = [f"{name} {n}" for name, n in r["outcomes"].items() if name != "ok" and n]
        if shown:
            lines.append(", ".join(shown))
    if r.get("power") and r["power"].get("value") is not None:
        lines.append(f"power {power_text(r['power']).replace('**', '')}")
    tip = r["verdict"]["message"] or f"{r['cell']}: expect {r['expect']['kind']}"
    return (f'<td class="cell" style="{_cell_style(status)}" title="{e(tip)}">'
            + "<br>".join(e(line) for line in lines) + "</td>")


def plot_svg(records: list[dict]) -> str:
    """Every cell's rate with its 95 % interval, log scale, as inline SVG. A cell with
    failures is a dot at its rate on its interval (group id "cell:<id>:rate"); a cell
    without is a left-pointing marker at its interval's upper bound (the rate is below;
    "cell:<id>:bound"); each in its verdict's colour. The groups are what the suite reads
    back to check the drawing against the tables (harness/test_report.py)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = [r for r in records if r["iterations"]]
    floor = min([r["ci"][0] for r in shown if r["failures"]] + [r["ci"][1] for r in shown] + [1e-3]) / 3
    height = max(2.5, 0.17 * len(shown) + 1.6)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "asyncrace"}):
        fig, ax = plt.subplots(figsize=(14, height), dpi=72)
        for y, r in enumerate(shown):
            colour = COLOURS.get(r["verdict"]["status"], "#000")
            low, high = r["ci"]
            if r["failures"]:
                ax.plot([max(low, floor), high, r["rate"]], [y, y, y], color=colour, lw=1.6,
                        marker="o", ms=4, markevery=[2], gid=f"cell:{r['cell']}:rate")
            else:
                ax.plot([floor, high], [y, y], color=colour, lw=0.8, ls=":", marker="<", ms=6,
                        markevery=[1], gid=f"cell:{r['cell']}:bound")
        ax.set_xscale("log")
        ax.set_xlim(floor, 1.5)
        ax.set_ylim(len(shown) - 0.5, -0.5)
        ax.set_yticks(range(len(shown)))
        ax.set_yticklabels([r["cell"] for r in shown], fontsize=6.5, family="monospace")
        ax.set_xlabel("failure rate per iteration, with its 95 % Wilson interval\n"
                      "◀ no failure: the rate is below the marked upper bound")
        ax.tick_params(axis="x", labeltop=True, top=True)
        ax.grid(axis="x", which="both", color="#ddd", lw=0.5)
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
        plt.close(fig)
    text = out.getvalue()
    return text[text.index("<svg"):]          # no XML prolog or DOCTYPE inside the page


def _plot(records: list[dict]) -> str:
    if not any(r["iterations"] for r in records):
        return '<p class="note">No rate plot: no cell ran an iteration.</p>'
    try:
        svg = plot_svg(records)
    except ImportError:
        return ('<p class="note">No rate plot: matplotlib is not installed '
                '(apt-get install python3-matplotlib).</p>')
    return f'<div class="plot" id="rate-plot">{svg}</div>'


def _first_failures(records: list[dict], run_dir: Path) -> str:
    """Failures that were not expected first (a never cell that failed), open; the failures
    the reproducers exist to show, folded away."""
    unexpected, expected = [], []
    for r in records:
        ff = r.get("first_failure")
        if not ff:
            continue
        link = ""
        if r.get("capture") and (run_dir / "captures" / r["cell"]).exists():
            link = f'<a href="captures/{e(r["cell"])}/">captures/{e(r["cell"])}/</a>'
        after = "" if ff.get("after_s") is None else f"{ff['after_s']:.3g}s"
        replay = (ff.get("replay") or "").replace(str(ROOT) + "/", "")
        row = (f'<tr><td class="cell" style="{_cell_style(r["verdict"]["status"])}">'
               f"{e(r['cell'])}</td><td>{e(after)}</td><td>{e(ff['iteration'])}</td>"
               f"<td>{e(ff['outcome'])}</td><td>{e(ff.get('detail') or '')}</td>"
               f"<td><code>{e(replay)}</code></td><td>{link}</td></tr>")
        (expected if r["expect"]["kind"] != NEVER and r["verdict"]["status"] == PASS else unexpected).append(row)
    head = ("<table><tr><th>cell</th><th>time to first failure</th><th>iteration</th>"
            "<th>outcome</th><th>detail</th><th>replay (from the repository root)</th>"
            "<th>capture</th></tr>")
    parts = [head + "".join(unexpected) + "</table>" if unexpected else
             "<p>No failure that was not expected.</p>"]
    if expected:
        parts.append(f"<details><summary>{len(expected)} cells showed the failure they exist to "
                     f"show</summary>{head}{''.join(expected)}</table></details>")
    return "\n".join(parts)


def _explanations(records: list[dict], run_dir: Path) -> str:
    """Each captured failure's explanation, sim's or the preloaded scheduler's
    (captures/<cell>/schedule.explain.txt), folded."""
    parts = []
    for r in records:
        told = (r.get("capture") or {}).get("explanation")
        text = run_dir / "captures" / r["cell"] / "schedule.explain.txt"
        if not told or not text.is_file():
            continue
        parts.append(f"<details><summary>{e(r['cell'])}: {told['critical']} of the schedule's "
                     f"{told['deviations']} departures from a passing one make it fail</summary>"
                     f"<pre>{e(text.read_text())}</pre></details>")
    if not parts:
        return "<p>No failure with a schedule was captured in this run (--capture-failures captures them).</p>"
    return "\n".join(parts)


def _power(records: list[dict]) -> str:
    rows = []
    for r in records:
        p = r.get("power")
        if not p or r["expect"]["kind"] != NEVER:
            continue
        status = PASS if p.get("value") is not None and not p.get("underpowered") else UNDERPOWERED
        rows.append(f'<tr><td class="cell">{e(r["cell"])}</td><td>{e(p.get("twin") or "-")}</td>'
                    f"<td>{e(twin_rate_text(p))}</td><td>{r['iterations']}</td>"
                    f'<td style="{_cell_style(status)}">{e(power_text(p).replace("**", ""))}</td></tr>')
    if not rows:
        return "<p>No never cell in this run.</p>"
    return ("<table><tr><th>cell</th><th>twin</th><th>twin rate (lower bound)</th><th>iterations</th>"
            "<th>power</th></tr>" + "".join(rows) + "</table>")


def _baseline(summary: dict, records: list[dict]) -> str:
    base = summary.get("baseline")
    if not base:
        return "<p>No baseline given (--baseline results/&lt;run&gt;/summary.json).</p>"
    kinds = {}
    for f in base.get("findings", []):
        kinds.setdefault(f["cell"], []).append(f["kind"])
    before = base.get("cells", {})
    rows = []
    for r in records:
        was = before.get(r["cell"])
        now = rate_text(r["failures"], r["iterations"])
        was_text = rate_text(was["failures"], was["iterations"]) if was else "not in the baseline"
        change = ""
        if was and was["iterations"] and r["iterations"]:
            change = f"{(r['rate'] - was['failures'] / was['iterations']) * 100:+.3g} points"
        found = ", ".join(kinds.get(r["cell"], []))
        style = _cell_style(FAIL if any(k != "drift" for k in kinds.get(r["cell"], []))
                            else NOT_REPRODUCED if found else PASS)
        rows.append(f'<tr><td class="cell">{e(r["cell"])}</td><td>{e(was_text)}</td>'
                    f"<td>{e(now)}</td><td>{e(change)}</td><td style=\"{style}\">{e(found)}</td></tr>")
    return (f"<p class=\"meta\">baseline: <code>{e(base.get('file'))}</code></p>"
            "<table><tr><th>cell</th><th>baseline</th><th>now</th><th>change</th><th>finding</th></tr>"
            + "".join(rows) + "</table>")


def report_html(summary: dict, run_dir: Path) -> str:
    records = list(summary["cells"].values())
    t = summary.get("totals", {})
    versions = summary.get("runner_versions", {})
    runners = ", ".join(f"{r} ({versions.get(r, '?')})" for r in summary.get("runners", []))
    meta = [f"profile {summary.get('profile', '?')}, seed {summary.get('seed', '?')}"
            + (f", shard {summary['shard']}" if summary.get("shard") else "")
            + (f", merged from {len(summary['merged_from'])} runs" if summary.get("merged_from") else ""),
            f"build {summary.get('build_id', '?')}; runners {runners or '?'}",
            f"{t.get('cells', 0)} cells: " + ", ".join(f"{k} {v}" for k, v in t.items() if k != "cells"),
            f"composed {summary.get('composed', '?')}"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>asyncrace run {e(summary['run_id'])}</title><style>{CSS}</style></head><body>",
        f"<h1>asyncrace run {e(summary['run_id'])}</h1>",
        *(f'<p class="meta">{e(m)}</p>' for m in meta),
        *([f'<p class="note" style="{_cell_style(FAIL)}">{e(line)}</p>'
           for line in summary.get("unpowered", [])]),
        "<h2>Matrix</h2>", _matrix(summary),
        "<h2>Rates with 95 % intervals</h2>", _plot(records),
        "<h2>Failures: time to first failure, replay, capture</h2>", _first_failures(records, run_dir),
        "<h2>Why: the decisions each captured schedule turns on</h2>", _explanations(records, run_dir),
        "<h2>Power of never cells</h2>", _power(records),
        "<h2>Against the baseline</h2>", _baseline(summary, records),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
