"""report.html: written with every run, well-formed, self-contained, with the plot; and the
plot drawn as the tables say: each cell in its verdict's colour, a cell with failures as a
dot at its rate inside its interval, one without as a marker at its upper bound."""
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from asyncrace.judge import FAIL, NEVER, NOT_REPRODUCED, PASS, SOMETIMES
from asyncrace.report import COLOURS, report_html
from asyncrace.results import RunDir
from asyncrace.stats import wilson

VOID = {"meta", "img", "br", "hr", "link", "input"}


class Checker(HTMLParser):
    """Tags balanced; what the page loads is inline (data: URIs) or relative links."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "a":
            self.links.append(a.get("href", ""))
        if tag in ("script", "link") or any(v and "://" in v for k, v in attrs if k in ("src", "href")):
            self.problems.append(f"loads something from outside: <{tag} {attrs}>")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def check(text: str) -> Checker:
    checker = Checker()
    checker.feed(text)
    checker.close()
    assert text.startswith("<!DOCTYPE html>")
    assert not checker.problems and not checker.stack, (checker.problems, checker.stack)
    return checker


def record(cell, kind, failures, n, status=PASS, twin=None, first=None, capture=None):
    case, runner, variant, mode = cell.split(".")
    low, high = wilson(failures, n)
    return {"cell": cell, "case": case, "runner": runner, "variant": variant, "mode": mode,
            "order": [0, 0, 0], "twin": twin, "expect": {"kind": kind, "outcome": "panic" if kind != NEVER else "ok"},
            "outcomes": {"ok": n - failures, "panic": failures}, "failures": failures, "iterations": n,
            "rate": failures / n, "ci": [low, high], "iterations_per_s": 900.0, "elapsed_s": 1.0,
            "first_failure": first, "verdict": {"status": status, "message": "" if status == PASS else "why <b>"},
            "command": "build/bin/c --runner uv", "capture": capture}


def test_the_report_is_well_formed_self_contained_and_has_the_plot(tmp_path):
    run = RunDir(tmp_path, "run")
    first = {"iteration": 17, "outcome": "panic", "detail": "d", "after_s": 0.25, "run_seed": 1,
             "replay": "build/bin/c --runner uv --start 17 --iterations 1 --trap"}
    (run.captures / "c.uv.fixed.natural").mkdir(parents=True)
    run.write_cell(record("c.uv.buggy.natural", SOMETIMES, 26, 10000, first=first))
    run.write_cell(record("c.uv.buggy.chaos", SOMETIMES, 0, 500, NOT_REPRODUCED))
    run.write_cell(record("c.uv.fixed.natural", NEVER, 1, 3000, FAIL, twin="c.uv.buggy.natural",
                          first=first, capture={"replay_sh": "x"}))
    run.write_cell(record("c.uv.fixed.chaos", NEVER, 0, 3000, twin="c.uv.buggy.chaos"))
    baseline = {"cells": {"c.uv.buggy.natural": record("c.uv.buggy.natural", SOMETIMES, 30, 10000)}}
    from asyncrace.session import compose_with_baseline
    summary, findings = compose_with_baseline(run, run.read_cells(), {"runners": ["uv"]}, baseline, "old.json")
    text = (run.path / "report.html").read_text()
    page = check(text)
    assert "rate-plot" in page.ids and "<svg" in text and not page.images
    assert page.links == ["captures/c.uv.fixed.natural/"], "the capture, linked relative to the page"
    assert "build/bin/c --runner uv --start 17 --iterations 1 --trap" in text
    assert "0.25s" in text, "time to first failure"
    assert "900 it/s" in text and "panic 26" in text, "speed and outcomes in the matrix"
    assert "<td>d</td>" in text, "the first failure's detail"
    assert "why &lt;b&gt;" in text, "messages are escaped"
    assert "Power of never cells" in text and "underpowered" in text
    assert "-0.04 points" in text, "the change against the baseline: 0.26 % now, 0.30 % before"
    assert "background:#ffcdd2" in text and "background:#ffe0b2" in text, "coloured by verdict"


def test_the_report_shows_each_captured_explanation(tmp_path):
    run = RunDir(tmp_path, "run")
    cell = "c.sim.buggy.natural"
    (run.captures / cell).mkdir(parents=True)
    (run.captures / cell / "schedule.explain.txt").write_text("1. decision 62 <loop_stop>\n")
    told = {"critical": 1, "deviations": 41, "text_file": "x"}
    run.write_cell(record(cell, SOMETIMES, 3, 100, capture={"replay_sh": "x", "explanation": told}))
    run.write_cell(record("c.sim.fixed.natural", NEVER, 0, 3000, twin=cell))
    from asyncrace.session import compose_with_baseline
    compose_with_baseline(run, run.read_cells(), {"runners": ["sim"]}, None, None)
    text = (run.path / "report.html").read_text()
    check(text)
    assert "c.sim.buggy.natural: 1 of the schedule's 41 departures from a passing one" in text
    assert "1. decision 62 &lt;loop_stop&gt;" in text, "the explanation, escaped"


def drawn(text: str) -> dict[str, dict]:
    """What the page's plot shows per cell: its glyph (rate or bound), colour, and for a
    dot, whether it sits on its interval's line."""
    svg = text[text.index("<svg"):text.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)
    found = {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        m = re.fullmatch(r"cell:(.+):(rate|bound)", g.get("id", ""))
        if not m:
            continue
        line = g.find("{http://www.w3.org/2000/svg}path")
        colour = re.search(r"stroke: (#[0-9a-f]{6})", line.get("style")).group(1)
        xs = [float(v) for v in re.findall(r"[ML] ([\d.]+) ", line.get("d"))]
        marks = [float(u.get("x")) for u in g.iter("{http://www.w3.org/2000/svg}use")]
        found[m.group(1)] = {"glyph": m.group(2), "colour": colour, "marks": marks,
                             "on_line": all(min(xs) <= x <= max(xs) for x in marks)}
    return found


def test_the_plot_draws_each_cell_as_the_tables_say(tmp_path):
    """A failing fixed cell is drawn failing: a red dot at its rate, not a green marker."""
    run = RunDir(tmp_path, "run")
    records = [record("c.uv.buggy.natural", SOMETIMES, 26, 10000),
               record("c.uv.buggy.chaos", SOMETIMES, 0, 500, NOT_REPRODUCED),
               record("c.uv.fixed.natural", NEVER, 2, 3000, FAIL, twin="c.uv.buggy.natural"),
               record("c.uv.fixed.chaos", NEVER, 0, 3000, twin="c.uv.buggy.chaos")]
    for r in records:
        run.write_cell(r)
    from asyncrace.session import compose_with_baseline
    summary, _ = compose_with_baseline(run, run.read_cells(), {"runners": ["uv"]}, None, None)
    plot = drawn((run.path / "report.html").read_text())
    assert set(plot) == set(summary["cells"]), "every cell is drawn, once"
    for cell, r in summary["cells"].items():
        got = plot[cell]
        assert got["colour"] == COLOURS[r["verdict"]["status"]], (cell, got)
        assert got["glyph"] == ("rate" if r["failures"] else "bound"), (cell, got)
        assert len(got["marks"]) == 1 and got["on_line"], (cell, got)
    assert plot["c.uv.fixed.natural"] == {**plot["c.uv.fixed.natural"], "glyph": "rate",
                                          "colour": COLOURS[FAIL]}


def test_without_matplotlib_the_report_says_so_in_one_line(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    summary = {"run_id": "r", "cells": {"c.uv.buggy.natural": record("c.uv.buggy.natural", SOMETIMES, 3, 100)}}
    text = report_html(summary, tmp_path)
    check(text)
    notes = [line for line in text.splitlines() if "matplotlib is not installed" in line]
    assert len(notes) == 1 and "<svg" not in text
