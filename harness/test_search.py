"""`python -m asyncrace search` and `search-sum`: a fix's search in parts adds up to the
search in one, a failing or unfinished part fails it, and parts that are not one whole
search are refused in one line."""
import json
import os
import subprocess
import sys
from pathlib import Path

from asyncrace.paths import ROOT
from asyncrace.pytest_plugin import built_reproducer

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
    dpor = cli("search", "early_writer_drop", "--variant", "fixed", "--strategy", "dpor",
               "--shards", "2")
    assert dpor.returncode == 2 and "a search in parts is one of dfs, dfs-sleep, delay" in \
        dpor.stderr, dpor.stderr


def test_dpor_searches_a_case_whole(tmp_path):
    """dpor's frames learn from every subtree, so it runs whole: early_writer_drop.fixed's
    28,064 schedules at bound 2 (pinned in cases/test_sim.py)."""
    done = cli("search", "early_writer_drop", "--variant", "fixed", "--strategy", "dpor",
               "--out", str(tmp_path))
    assert done.returncode == 0 and "28,064 schedules, searched to its end, 0 failing" in \
        done.stdout, done.stdout + done.stderr


# ---- a declared reproducer, under the preloaded scheduler (one process per schedule) ----

def part_of(folder: Path) -> dict:
    (found,) = folder.glob("*.part-1-of-1.json")
    return json.loads(found.read_text())


def test_a_reproducers_fix_is_searched_to_its_end_and_its_bug_captured(tmp_path):
    """cases/external/c's lost_wakeup, unbounded: dpor ends on the fix (36 schedules when
    measured, docs/preload.md) and stops at the bug's first schedule (10), captured with a
    replay.sh that ends the same way (deadlock: the scheduler exits 3 and says so)."""
    fixed = cli("search", "lost_wakeup", "--variant", "fixed", "--strategy", "dpor", "--bound",
                "none", "--out", str(tmp_path / "f"))
    assert fixed.returncode == 0 and "lost_wakeup.fixed dpor bound none, program seed 1: 36 " \
        "schedules, searched to its end, 0 failing" in fixed.stdout, fixed.stdout + fixed.stderr
    part = part_of(tmp_path / "f")
    assert (part["schedules"], part["exhausted"], part["failures"]) == (36, True, 0)
    buggy = cli("search", "lost_wakeup", "--variant", "buggy", "--strategy", "dpor", "--bound",
                "none", "--out", str(tmp_path / "b"))
    assert buggy.returncode == 1 and "10 schedules, NOT searched to its end, 1 failing" in \
        buggy.stdout and "schedule 10 failed (deadlock" in buggy.stdout, buggy.stdout
    assert "not replayed the same" not in buggy.stdout, buggy.stdout
    replay = tmp_path / "b" / "lost_wakeup.buggy.dpor.bnone.failure" / "replay.sh"
    again = subprocess.run([str(replay)], capture_output=True, text=True, timeout=60)
    assert "deadlock" in again.stderr, again.stderr
    short = cli("search", "lost_wakeup", "--variant", "fixed", "--strategy", "dpor", "--bound",
                "none", "--cap", "5", "--out", str(tmp_path / "s"))
    assert short.returncode == 1 and "5 schedules, NOT searched to its end" in short.stdout


def test_the_tokio_fix_is_searched_without_a_preemption_and_its_bug_found(tmp_path):
    """The unmodified tokio program: every schedule at preemption bound 0 (72), all clean;
    the buggy variant panics at its second, and the capture replays it to the same panic
    (with the environment it was searched in: RUST_BACKTRACE changes what a panic runs)."""
    built_reproducer("tokio_shutdown_order",
                     ROOT / "build" / "cargo" / "release" / "tokio_shutdown_order", tmp_path)
    fixed = cli("search", "tokio_shutdown_order", "--variant", "fixed", "--strategy", "dpor",
                "--bound", "0", "--out", str(tmp_path / "f"))
    assert fixed.returncode == 0 and "72 schedules, searched to its end, 0 failing" in \
        fixed.stdout, fixed.stdout + fixed.stderr
    buggy = subprocess.run([sys.executable, "-m", "asyncrace", "search", "tokio_shutdown_order",
                            "--variant", "buggy", "--strategy", "dpor", "--bound", "0", "--out",
                            str(tmp_path / "b")], capture_output=True, text=True, cwd=ROOT,
                           env={**ENV, "RUST_BACKTRACE": "1"}, timeout=300)
    assert buggy.returncode == 1 and "schedule 2 failed (panic" in buggy.stdout, buggy.stdout
    assert "not replayed the same" not in buggy.stdout, buggy.stdout
    capture = tmp_path / "b" / "tokio_shutdown_order.buggy.dpor.b0.failure"
    result = tmp_path / "replayed.json"     # replay.sh from a shell without RUST_BACKTRACE
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    subprocess.run([str(capture / "replay.sh")], capture_output=True, text=True, timeout=120,
                   env={**env, "ASYNCRACE_RESULT": str(result)})
    replayed = json.loads(result.read_text())
    assert not replayed.get("diverged") and replayed["outcome"] == "exit", replayed
    again = subprocess.run([sys.executable, "-m", "asyncrace", "replay", str(capture)],
                           capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env={**env, "PYTHONPATH": ENV["PYTHONPATH"]})
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_reproducer_search_refuses_bad_input_in_one_line(tmp_path):
    bare = tmp_path / "bare.toml"      # a reproducer without [reproducer.control]
    bare.write_text('[[reproducer]]\nname = "bare"\nrunner = "native"\n'
                    '[reproducer.variants.fixed]\ncommand = ["true"]\n'
                    'expect = { kind = "never" }\n')
    env = {**ENV, "ASYNCRACE_EXTERNAL": str(bare)}
    for args, words in ((["nosuch"], "no case program build/bin/nosuch"),
                        (["lost_wakeup", "--variant", "nope"], "no variant 'nope'"),
                        (["lost_wakeup", "--shards", "2"], "a reproducer's search runs whole"),
                        (["lost_wakeup", "--bound", "17"], "invalid bound value"),
                        (["lost_wakeup", "--strategy", "pct"], "invalid choice: 'pct'"),
                        (["bare"], "no [reproducer.control]")):
        args = args if "--variant" in args else [*args, "--variant", "fixed"]
        done = subprocess.run([sys.executable, "-m", "asyncrace", "search", *args,
                               "--out", str(tmp_path)], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=60)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0] and \
            not done.stdout, (args, done.stderr)
