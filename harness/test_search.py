"""`python -m asyncrace search` and `search-sum`: a fix's search in parts adds up to the
search in one, a failing or unfinished part fails it, and parts that are not one whole
search are refused in one line."""
import json
import os
import subprocess
import sys
from pathlib import Path

from asyncrace.paths import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "harness")}
WHOLE = "early_writer_drop.fixed dfs-sleep bound 2, program seed 7817128715372809688: " \
        "30,801 schedules, searched to its end, 0 failing (3 parts"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asyncrace", *args], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=300)


def parts(tmp_path: Path, *extra: str) -> list[Path]:
    done = cli("search", "early_writer_drop", "--variant", "fixed", "--shards", "3", "--jobs",
               "2", "--out", str(tmp_path), *extra)
    assert done.returncode == 0 and WHOLE in done.stdout, done.stdout + done.stderr
    return sorted(tmp_path.glob("*.json"))


def test_parts_searched_here_or_elsewhere_add_up_to_the_whole(tmp_path):
    """dfs-sleep's 30,801 schedules at bound 2 (cases/test_sim.py pins the unsharded
    count), from three parts run here, and again from their files."""
    files = parts(tmp_path)
    assert [f.name.rsplit(".", 2)[-2] for f in files] == [f"part-{k}-of-3" for k in (1, 2, 3)]
    own = [json.loads(f.read_text()) for f in files]
    assert sum(p["schedules"] - p["foreign"] for p in own) == 30801
    done = cli("search-sum", *map(str, files))
    assert done.returncode == 0 and WHOLE in done.stdout, done.stdout + done.stderr


def test_parts_run_in_many_batches_add_up_the_same(tmp_path):
    """Each part's search carried over batches of 1,000 schedules (a dozen processes per
    part) by --search-state, each stopped with the first program by --programs 1."""
    parts(tmp_path, "--batch", "1000")


def test_what_is_not_one_whole_search_is_refused(tmp_path):
    files = parts(tmp_path / "a")
    other = cli("search", "early_writer_drop", "--variant", "fixed", "--strategy", "dfs",
                "--shard", "1/3", "--out", str(tmp_path / "b"))
    assert other.returncode == 0, other.stderr
    dfs_part = next((tmp_path / "b").glob("*.json"))
    rebuilt = tmp_path / "rebuilt.json"     # the same part, of another build of the program
    rebuilt.write_text(json.dumps({**json.loads(files[0].read_text()), "build": "0" * 64}))
    for given, words in (([files[0], files[1]], "missing [3]"),
                         ([*files, files[0]], "twice [1]"),
                         ([dfs_part, files[1], files[2]], "parts of different searches"),
                         ([rebuilt, files[1], files[2]], "parts of different searches"),
                         ([tmp_path / "nosuch.json"], "not a search part")):
        done = cli("search-sum", *map(str, given))
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr


def test_a_failing_or_unfinished_search_fails(tmp_path):
    buggy = cli("search", "early_writer_drop", "--variant", "buggy", "--cap", "500", "--out",
                str(tmp_path))
    assert buggy.returncode == 1 and ", 0 failing" not in buggy.stdout, buggy.stdout
    short = cli("search", "early_writer_drop", "--variant", "fixed", "--cap", "100", "--out",
                str(tmp_path))
    assert short.returncode == 1 and "100 schedules, NOT searched to its end" in short.stdout, \
        short.stdout
    dpor = cli("search", "early_writer_drop", "--variant", "fixed", "--strategy", "dpor")
    assert dpor.returncode == 2 and "invalid choice: 'dpor'" in dpor.stderr, dpor.stderr
