"""--shard K/N and `python -m asyncrace merge`: three shards merged are one run; what
cannot be merged is refused with the reason."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asyncrace.paths import ROOT
from asyncrace.shard import assign

HARNESS = ROOT / "harness"
ENV = {**os.environ, "PYTHONPATH": str(HARNESS)}
CELLS = ["--case", "shutdown_order", "--runner", "epoll"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asyncrace", *args], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=300)


def run(results: Path, *extra: str) -> Path:
    done = cli("run", *CELLS, "--iterations", "20", "--results-dir", str(results),
               "--no-capture-failures", "--progress", "off", *extra)
    # 20 iterations show no power (never cells) and may miss natural's panic: exit 1 is
    # the verdict on that; what counts here is that the run wrote its results
    assert done.returncode in (0, 1) and "report: " in done.stdout, \
        done.stdout[-2000:] + done.stderr[-2000:]
    return (results / "latest").resolve()


def header(folder: Path) -> str:
    """matrix.md's table header: the runner x mode columns."""
    return next(line for line in (folder / "matrix.md").read_text().splitlines()
                if line.startswith("| case | variant |"))


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("shards")
    found = {"whole": run(root / "whole")}
    for k in (1, 2, 3):
        found[k] = run(root / f"shard{k}", "--shard", f"{k}/3")
    found["seed2"] = run(root / "seed2", "--shard", "1/3", "--seed", "2")
    found["root"] = root
    return found


def test_shards_are_deterministic_disjoint_and_balanced():
    costs = [(f"c{i}", float(c)) for i, c in enumerate([5, 1, 1, 3, 2, 2, 8, 1])]
    parts = assign(costs, 3)
    assert parts == assign(list(reversed(costs)), 3), "the order cells come in must not matter"
    loads = [sum(c for k, c in costs if parts[k] == p) for p in range(3)]
    assert sorted(loads) == [7.0, 8.0, 8.0]


def test_three_shards_merged_are_the_unsharded_run(runs, tmp_path):
    whole = summary(runs["whole"])
    shards = [summary(runs[k]) for k in (1, 2, 3)]
    ids = [set(s["cells"]) for s in shards]
    assert all(ids) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    into = tmp_path / "merged"
    done = cli("merge", *(str(runs[k]) for k in (1, 2, 3)), "--into", str(into))
    assert done.returncode in (0, 1) and "merged 3 runs" in done.stdout, done.stdout[-2000:] + done.stderr
    merged = summary(into)
    assert set(merged["cells"]) == set(whole["cells"])
    assert {c: r["iterations"] for c, r in merged["cells"].items()} == \
           {c: r["iterations"] for c, r in whole["cells"].items()}
    assert merged["build_id"] == whole["build_id"] and merged["shard"] is None
    assert len(merged["merged_from"]) == 3
    assert (into / "matrix.md").is_file() and (into / "report.html").is_file()
    assert header(into) == header(runs["whole"]), "each runner x mode column once, as unsharded"
    assert done.stdout.strip().splitlines()[-1] == f"report: {into / 'report.html'}"
    # power is recomputed across shards: a never cell's twin may have run in another one
    fixed = merged["cells"]["shutdown_order.epoll.fixed.forced"]["power"]
    assert fixed["source"] == "always" and fixed["value"] == pytest.approx(1.0)
    chaos = merged["cells"]["shutdown_order.epoll.fixed.chaos"]["power"]
    twin = merged["cells"]["shutdown_order.epoll.buggy.chaos"]
    if chaos.get("source") == "run":   # from the merged twin's count, across shards
        assert chaos["twin_iterations"] == twin["iterations"]


def test_repeats_with_another_seed_add_up_and_keep_the_earliest_failure(runs, tmp_path):
    into = tmp_path / "merged"
    done = cli("merge", str(runs[1]), str(runs["seed2"]), "--into", str(into))
    assert done.returncode in (0, 1) and "merged 2 runs" in done.stdout, done.stdout[-2000:] + done.stderr
    one, two, merged = summary(runs[1]), summary(runs["seed2"]), summary(into)
    for cell, r in merged["cells"].items():
        a, b = one["cells"][cell], two["cells"][cell]
        assert r["iterations"] == a["iterations"] + b["iterations"] == 40
        assert r["failures"] == a["failures"] + b["failures"] and r["seeds"] == [1, 2]
        firsts = [f for f in (a["first_failure"], b["first_failure"]) if f]
        if firsts:
            earliest = min(firsts, key=lambda f: f["after_s"])
            assert r["first_failure"] == earliest
            assert f"--seed {earliest['run_seed']} " in r["first_failure"]["replay"]


def _copy(folder: Path, dest: Path, change) -> Path:
    shutil.copytree(folder, dest)
    s = summary(dest)
    change(s)
    (dest / "summary.json").write_text(json.dumps(s))
    return dest


@pytest.mark.parametrize("what, words", [
    ("same shard twice", "the same iterations twice"),
    ("another build", "different builds"),
    ("another expectation", "different expectations"),
])
def test_merge_refuses_what_is_not_one_run(runs, tmp_path, what, words):
    if what == "same shard twice":
        other = _copy(runs[2], tmp_path / "again", lambda s: s.update(run_id=s["run_id"] + "-again"))
        pair = [runs[2], other]
    elif what == "another build":
        pair = [runs[1], _copy(runs[2], tmp_path / "b", lambda s: s.update(build_id="0000"))]
    else:
        def expect_always(s):
            cell = next(iter(s["cells"].values()))
            cell["expect"] = {"kind": "always", "outcome": "hang"}
        pair = [runs[1], _copy(runs["seed2"], tmp_path / "e", expect_always)]
    done = cli("merge", *map(str, pair), "--into", str(tmp_path / "merged"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr, done.stderr
    assert not (tmp_path / "merged").exists()


def test_pytest_shards_partition_the_tests(tmp_path):
    def collected(*extra: str) -> set[str]:
        done = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider",
                               f"--results-dir={tmp_path}", *extra], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        return {line for line in done.stdout.splitlines() if "::" in line}
    everything = collected()
    parts = [collected(f"--shard={k}/3") for k in (1, 2, 3)]
    assert set().union(*parts) == everything and sum(map(len, parts)) == len(everything)
    assert all(len(p) > len(everything) / 6 for p in parts), [len(p) for p in parts]


def test_merge_takes_results_folders_as_the_nightly_downloads_them(runs, tmp_path):
    """The nightly merges shards/shard-*: results folders whose `latest` names the run;
    --check-pinned fails when a pinned cell is in none of them (here: all but these)."""
    folders = [runs["root"] / f"shard{k}" for k in (1, 2, 3)]
    done = cli("merge", *map(str, folders), "--into", str(tmp_path / "m"), "--check-pinned")
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr
    assert "pinned cells: - dropped_writer.libuv.buggy.natural" in done.stdout
    assert "pinned cells: - shutdown_order.epoll" not in done.stdout
    assert len(summary(tmp_path / "m")["cells"]) == len(summary(runs["whole"])["cells"])
