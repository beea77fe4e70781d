"""The deterministic runner's promises, checked on the real case programs:

- determinism: every sim cell run twice with one seed gives one run hash (the hash of
  every schedule's decisions, in order) and the same counts; shuttle's replay rotted for
  want of a check like this;
- replay: a failing schedule, replayed from its file in a fresh process, follows its
  decisions, shows the same outcome and gives the same race log, line for line, on every
  runner that owns the schedule (sim, and libuv_ctl: the real libuv under the scheduler);
  a schedule recorded on one runner is refused on another;
- a schedule file that is missing, truncated, corrupt or another program's is refused
  with one line and exit 2, and nothing runs; so is a replay asked to run the program
  with other parameters (--workers, --run-us, --deadline-ms) than the schedule recorded;
- a replay that leaves its schedule says where, and is not a reproduction.
"""
import functools
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from asyncrace.matrix import discover
from asyncrace.paths import ROOT

ITERATIONS = 150


def sim_cells():
    return sorted((c for c in discover().cells if c.deterministic and c.program is not None),
                  key=lambda c: c.id)


def run(program: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(program), *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, stdin=subprocess.DEVNULL, env=env)


def report(program: Path, *args: str, env: dict | None = None) -> dict:
    done = run(program, *args, env=env)
    assert done.returncode == 0, f"{program.name} {' '.join(args)}: exit {done.returncode}: {done.stderr}"
    return json.loads(done.stdout.splitlines()[-1])


def cell_args(cell, tmp_path: Path) -> list[str]:
    return ["--runner", cell.runner, "--variant", cell.variant, "--mode", cell.mode,
            "--seed", "5", "--iterations", str(ITERATIONS), "--schedules", str(tmp_path)]


@pytest.mark.parametrize("sim", sim_cells(), ids=lambda c: c.id)
def test_one_seed_gives_one_run_hash(sim, tmp_path):
    cell = sim
    first = report(cell.program, *cell_args(cell, tmp_path / "a"))
    second = report(cell.program, *cell_args(cell, tmp_path / "b"))
    assert first["sim"]["schedules"] == ITERATIONS
    assert (first["sim"]["run_hash"], first["outcomes"]) == (second["sim"]["run_hash"], second["outcomes"]), \
        f"{cell.id}: two runs with seed 5 differ"


def failing_schedule(tmp_path: Path, runner: str = "sim", case: str = "shutdown_order",
                     variant: str = "buggy") -> tuple[Path, Path, dict]:
    program = ROOT / "build" / "bin" / case
    r = report(program, "--runner", runner, "--variant", variant, "--mode", "chaos",
               "--iterations", "200", "--schedules", str(tmp_path))
    ff = r["first_failure"]
    assert ff and ff.get("schedule"), f"pct found no failing schedule in 200: {r['outcomes']}"
    return program, Path(ff["schedule"]), ff


def deterministic_runners() -> list[str]:
    return sorted({c.runner for c in sim_cells()})


@pytest.mark.parametrize("runner", deterministic_runners())
@pytest.mark.parametrize("case", ["shutdown_order", "inline_repoll", "dropped_writer",
                                  "early_writer_drop"])
def test_a_failing_schedule_replays_with_the_same_race_log(tmp_path, runner, case):
    """On sim and on the real libuv under the scheduler alike: each case's first failure
    under pct, replayed from its file in three fresh processes."""
    program, schedule, ff = failing_schedule(tmp_path, runner, case)
    logs = []
    for attempt in range(3):
        log = tmp_path / f"log.{attempt}"
        r = report(program, "--runner", runner, "--variant", "buggy", "--mode", "chaos",
                   "--schedule", str(schedule), "--race-log", str(log))
        assert r["sim"]["replay"]["reproduced"] and not r["sim"]["replay"]["diverged"], r["sim"]
        assert r["first_failure"]["outcome"] == ff["outcome"]
        logs.append(log.read_text())
    recorded = Path(f"{schedule}.race-log.txt").read_text()
    assert logs == [recorded] * 3, "a replay's race log differs from the recorded one"


def test_a_schedule_is_refused_on_another_runner(tmp_path):
    if "libuv_ctl" not in deterministic_runners():
        pytest.skip("this build has no libuv_ctl runner")
    program, schedule, _ = failing_schedule(tmp_path, "libuv_ctl")
    done = run(program, "--runner", "sim", "--variant", "buggy", "--mode", "chaos",
               "--schedule", str(schedule))
    assert done.returncode == 2 and done.stdout == "", done.stdout[-500:]
    assert done.stderr.count("\n") == 1 and "recorded for runner 'libuv_ctl'" in done.stderr, \
        done.stderr


@pytest.mark.parametrize("damage, words", [
    ("missing", "missing"), ("truncated", "truncated"), ("corrupt", "corrupt"),
    ("other_variant", "wrong program"),
])
def test_a_bad_schedule_is_refused_in_one_line(tmp_path, damage, words):
    program, schedule, _ = failing_schedule(tmp_path)
    variant = "buggy"
    text = schedule.read_text()
    bad = tmp_path / "bad.json"
    if damage == "missing":
        bad = tmp_path / "nothing-here.json"
    elif damage == "truncated":
        bad.write_text(text[: len(text) // 2])
    elif damage == "corrupt":
        bad.write_text(text.replace('"chose": ', '"chose": 9', 1))
    else:
        bad.write_text(text)
        variant = "fixed"
    done = run(program, "--runner", "sim", "--variant", variant, "--mode", "chaos",
               "--schedule", str(bad))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr
    assert done.stdout == "", "nothing may run"


@pytest.mark.parametrize("flags, recorded", [
    (("--workers", "1"), "--workers 2"), (("--run-us", "999"), "--run-us 200"),
    (("--deadline-ms", "100"), "--deadline-ms 2000"), (("--step-bound", "5000"), "--step-bound 1000000"),
])
def test_a_replay_with_other_parameters_is_refused_in_one_line(tmp_path, flags, recorded):
    """The schedule records what changes the program; a replay runs that program or none."""
    program, schedule, _ = failing_schedule(tmp_path)
    assert json.loads(schedule.read_text())["program"] == {
        "workers": 2, "run_us": 200, "deadline_ms": 2000, "deadline_ns": 2_000_000_000,
        "step_bound": 1_000_000}
    done = run(program, "--runner", "sim", "--variant", "buggy", "--mode", "chaos",
               "--schedule", str(schedule), *flags)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and f"recorded with {recorded}, not" in lines[0], \
        done.stderr
    assert done.stdout == "", "nothing may run"


def test_a_replay_takes_the_recorded_parameters_whatever_the_environment(tmp_path):
    """The same values given again are accepted, and a timeout multiplier (which stretches
    the deadline of new runs) does not change the recorded program."""
    program, schedule, ff = failing_schedule(tmp_path)
    env = {**os.environ, "ASYNCRACE_TIMEOUT_MULTIPLIER": "3"}
    r = report(program, "--runner", "sim", "--variant", "buggy", "--mode", "chaos",
               "--schedule", str(schedule), "--workers", "2", "--run-us", "200", env=env)
    assert r["sim"]["replay"]["reproduced"] and not r["sim"]["replay"]["diverged"], r["sim"]
    assert (r["workers"], r["run_us"]) == (2, 200)


def test_a_replay_that_leaves_its_schedule_is_not_a_reproduction(tmp_path):
    """A schedule replayed on another program (its seed edited: early_writer_drop draws
    each iteration's shape from it) must say where it left its schedule and must not count
    as a reproduction, in the program's report and in `replay` of a capture."""
    from asyncrace.capture import Failure
    from asyncrace.matrix import discover
    from asyncrace.schedule_capture import capture, replay
    program = ROOT / "build" / "bin" / "early_writer_drop"
    args = ("--runner", "sim", "--variant", "buggy", "--mode", "chaos")
    r = report(program, *args, "--iterations", "50", "--schedules", str(tmp_path / "s"))
    recorded = Path(r["first_failure"]["schedule"])
    left = []
    for seed in range(1, 6):
        edited = tmp_path / f"seed{seed}.json"
        edited.write_text(re.sub(r'"seed": \d+', f'"seed": {seed}', recorded.read_text(), count=1))
        got = report(program, *args, "--schedule", str(edited))["sim"]["replay"]
        assert got["diverged"] == ("left its schedule" in got["where"]), got
        if got["diverged"]:
            assert not got["reproduced"], f"seed {seed}: a replay that left its schedule " \
                                          f"counted as a reproduction: {got}"
            left.append(edited)
    assert left, "no edited seed changed the program: this test would show nothing"
    cell = next(c for c in discover().cells if c.id == "early_writer_drop.sim.buggy.chaos")
    failure = Failure(cell.id, cell.invocation(1), 0, "lost", rare=True, schedule=str(left[0]))
    info = capture(failure, tmp_path / "capture")
    assert not info["reproduced"] and any("left its schedule" in n for n in info["notes"]), info
    ok, message = replay(tmp_path / "capture", info, 1)
    assert not ok and "left its schedule" in message and "not a reproduction" in message, message


@pytest.mark.parametrize("flags, words", [
    (["--strategy", "nosuch"], "random, pos, surw, pct, dfs, dfs-sleep, dpor, delay"),
    (["--strategy", "dfs", "--bound", "17"], "from 0 to 16, or none"),
    (["--strategy", "dfs", "--bound", "-1"], "from 0 to 16, or none"),
    (["--strategy", "dfs", "--bound", "two"], "from 0 to 16, or none"),
    (["--pct-depth", "0"], "--pct-depth"),
    (["--step-bound", "5"], "--step-bound"),
    (["--runner", "epoll", "--strategy", "dfs"], "owns the schedule"),
    (["--runner", "epoll", "--shard", "1/2"], "owns the schedule"),
    (["--strategy", "dfs", "--shard", "0/2"], "1 <= K <= N"),
    (["--strategy", "dfs", "--shard", "3/2"], "1 <= K <= N"),
    (["--strategy", "dfs", "--shard", "1/2/3"], "1 <= K <= N"),
    (["--shard", "1/2"], "a shard is part of a search: pct"),
    (["--strategy", "dpor", "--shard", "1/2"], "dpor cannot be sharded"),
    (["--programs", "1"], "this run is no search"),
    (["--strategy", "dfs", "--programs", "0"], "--programs needs a number"),
])
def test_a_bad_sim_flag_is_refused_in_one_line(flags, words):
    """The scheduler's flags: a name or number out of range is one line naming what is
    accepted, exit 2, and nothing runs."""
    args = ["--runner", "sim", "--variant", "fixed", "--mode", "chaos", "--iterations", "1"]
    done = run(ROOT / "build" / "bin" / "shutdown_order", *args, *flags)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr
    assert not done.stdout, "it ran"


# ---- searches: pinned, deep enough, counted once, resumed without running again ------

def search(case: str, variant: str, *extra: str) -> dict:
    return report(ROOT / "build" / "bin" / case, "--runner", "sim", "--variant", variant,
                  "--mode", "exhaustive", *extra)


def test_a_fixs_bounded_search_is_pinned():
    """shutdown_order.fixed at delay bound 2: its first program has exactly 3,971 schedules,
    all clean. A search that runs at a lower bound than it reports, skips a decision's
    alternatives or stops early changes the count. (A deliberate change to the case, the
    runtime or the strategy changes it too: then re-pin this number, with the reason.)"""
    r = search("shutdown_order", "fixed", "--iterations", "3972")
    first, second = r["sim"]["programs"][:2]
    assert (first["schedules"], first["failures"], first["exhausted"]) == (3971, 0, True), first
    assert (second["schedules"], second["exhausted"]) == (1, False), "the next program begins"
    assert r["sim"]["strategy"].startswith("delay(bound=2,"), r["sim"]["strategy"]


def test_sleep_sets_and_dpor_prune_a_fixs_bounded_search():
    """early_writer_drop.fixed at preemption bound 2: its first program is 37,567 schedules
    under dfs, 30,801 under dfs-sleep and 28,064 under dpor, each searched to the end and
    clean. Fewer means a reduction pruned something it must not (or the case changed:
    re-pin with the reason); as many as the search before it means it no longer prunes."""
    counts = {}
    for strategy, n in (("dfs", 37567), ("dfs-sleep", 30801), ("dpor", 28064)):
        r = search("early_writer_drop", "fixed", "--strategy", strategy, "--bound", "2",
                   "--iterations", str(n + 1))
        first = r["sim"]["programs"][0]
        counts[strategy] = (first["schedules"], first["failures"], first["exhausted"])
    assert counts == {"dfs": (37567, 0, True), "dfs-sleep": (30801, 0, True),
                      "dpor": (28064, 0, True)}, counts


def test_dropped_writers_two_loop_program_keeps_the_bug_and_its_fix_is_searched_to_the_end():
    """dropped_writer's three-loop program is too big for dfs at bound 2, so docs/sim.md
    proves the fix on the two-loop one (--workers 2: the clients on the pool's loop). That
    program must still hold the bug: buggy and partial fail at its first schedule. And the
    fix's first program at preemption bound 1 is exactly 129,675 schedules, all clean (fewer:
    the search skips schedules; re-pin with the reason if the case or the runtime changed)."""
    for variant in ("buggy", "partial"):
        r = search("dropped_writer", variant, "--workers", "2", "--strategy", "dfs",
                   "--bound", "0", "--iterations", "1")
        assert r["workers"] == 2 and r["outcomes"]["fatal"] == 1, (variant, r["outcomes"])
    r = search("dropped_writer", "fixed", "--workers", "2", "--strategy", "dfs", "--bound", "1",
               "--iterations", "129676")
    first = r["sim"]["programs"][0]
    assert (first["schedules"], first["failures"], first["exhausted"]) == (129675, 0, True), first
    assert r["iterations"] == r["outcomes"]["ok"] == 129676, r["outcomes"]


def test_dpor_prunes_the_two_loop_program_at_bound_one():
    """dropped_writer.fixed on two loops at preemption bound 1: dpor searches its first
    program to the end in 121,596 schedules, clean, where dfs takes 129,675 (pinned above).
    Fewer: dpor pruned what it must not (or the case changed: re-pin with the reason)."""
    r = search("dropped_writer", "fixed", "--workers", "2", "--strategy", "dpor", "--bound", "1",
               "--programs", "1", "--iterations", "1000000")
    first = r["sim"]["programs"][0]
    assert (first["schedules"], first["failures"], first["exhausted"]) == (121596, 0, True), first


def test_a_depth_two_bug_is_found_at_bound_two_and_not_at_bound_one():
    """dropped_writer.partial needs two delays: its first program searched to the end at
    bound 1 shows nothing; at bound 2 the same program fails."""
    one = search("dropped_writer", "partial", "--bound", "1", "--iterations", "1368")
    program = one["sim"]["programs"][0]
    assert (program["exhausted"], program["failures"]) == (True, 0), program
    assert sum(n for o, n in one["outcomes"].items() if o != "ok") == 0, one["outcomes"]
    two = search("dropped_writer", "partial", "--bound", "2", "--iterations", "12000")
    assert two["outcomes"]["fatal"] > 0 and two["sim"]["programs"][0]["failures"] > 0, two["sim"]
    assert two["first_failure"]["iteration"] < two["sim"]["programs"][0]["schedules"], \
        "found in the first program, the one bound 1 exhausted"


def test_a_search_in_batches_is_the_search_in_one_and_runs_nothing_twice(tmp_path):
    """Three batches with --search-state cover the same schedules and programs as one batch
    of their size, count each schedule once, and run none of the earlier ones again; without
    the state a batch must run them again (uncounted, and says how many)."""
    whole = search("shutdown_order", "fixed", "--iterations", "6000")
    state = tmp_path / "search.state"
    parts = [search("shutdown_order", "fixed", "--start", str(start), "--iterations", "2000",
                    "--search-state", str(state)) for start in (0, 2000, 4000)]
    assert [p["sim"]["rerun"] for p in parts] == [0, 0, 0]
    assert sum(p["sim"]["schedules"] for p in parts) == whole["sim"]["schedules"] == 6000
    assert parts[-1]["sim"]["programs"] == whole["sim"]["programs"]
    alone = search("shutdown_order", "fixed", "--start", "4000", "--iterations", "2000")
    assert (alone["sim"]["rerun"], alone["sim"]["schedules"]) == (4000, 2000)
    assert alone["sim"]["programs"] == whole["sim"]["programs"]


def shard_search(tmp_path: Path, shard: str, strategy: str) -> dict:
    """early_writer_drop.fixed's first program at preemption bound 2, searched to its end by
    one shard, in batches small enough that its record stays among the programs kept."""
    state, start = tmp_path / f"{shard.replace('/', '-')}.{strategy}.state", 0
    while True:
        r = search("early_writer_drop", "fixed", "--strategy", strategy, "--bound", "2",
                   "--shard", shard, "--start", str(start), "--iterations", "1000",
                   "--search-state", str(state))
        assert r["sim"]["rerun"] == 0, "a batch ran its shard's earlier schedules again"
        first = [p for p in r["sim"]["programs"] if p["first_iteration"] == 0]
        if first and first[0]["exhausted"]:
            return first[0]
        assert first, "the first program's record was lost"
        start += 1000


@pytest.mark.parametrize("strategy, whole", [("dfs", 37567), ("dfs-sleep", 30801)])
def test_a_search_in_shards_is_the_search_in_one(tmp_path, strategy, whole):
    """--shard K/N splits one search over N processes (machines): the shards' own schedules
    (all but the foreign ones, one schedule of each other shard's subtree) add up to the
    unsharded search's count, sleep sets included, each shard searched to its end and
    clean, and each runs well under the whole. A schedule two shards own, or none, changes
    the sum; a shard that runs the others' subtrees is no faster than the whole."""
    shards = [shard_search(tmp_path, f"{k}/3", strategy) for k in (1, 2, 3)]
    own = [p["schedules"] - p["foreign"] for p in shards]
    assert sum(own) == whole, (own, shards)
    assert all(p["exhausted"] and p["failures"] == 0 and p["foreign"] > 0 for p in shards), shards
    assert all(0 < n for n in own) and max(p["schedules"] for p in shards) < 0.6 * whole, shards


def test_a_search_stops_with_the_programs_asked_for():
    """--programs 2: the run ends as the second program is searched to its end, however
    many iterations were asked for (shutdown_order.fixed's first at delay bound 2: 3,971)."""
    r = search("shutdown_order", "fixed", "--programs", "2", "--iterations", "1000000")
    programs = r["sim"]["programs"]
    assert [p["exhausted"] for p in programs] == [True, True], programs
    assert programs[0]["schedules"] == 3971
    assert r["iterations"] == sum(p["schedules"] for p in programs), r["iterations"]


def test_a_shards_search_state_is_not_another_shards(tmp_path):
    """The saved state of shard 1/3 is refused by shard 2/3 (it runs its own schedules from
    the start again, uncounted), and taken by shard 1/3."""
    state = tmp_path / "search.state"
    args = ("--strategy", "dfs-sleep", "--bound", "2", "--search-state", str(state))
    search("early_writer_drop", "fixed", *args, "--shard", "1/3", "--iterations", "500")
    other = search("early_writer_drop", "fixed", *args, "--shard", "2/3", "--start", "500",
                   "--iterations", "10")
    assert other["sim"]["rerun"] == 500, other["sim"]
    search("early_writer_drop", "fixed", *args, "--shard", "1/3", "--iterations", "500")
    same = search("early_writer_drop", "fixed", *args, "--shard", "1/3", "--start", "500",
                  "--iterations", "10")
    assert same["sim"]["rerun"] == 0, same["sim"]


def test_the_driver_counts_a_searchs_schedules_once_over_its_batches(tmp_path):
    """The driver's cell over several batches: its schedules are its iterations, and no
    batch ran an earlier schedule again."""
    from asyncrace.capture import RrVerdict
    from asyncrace.matrix import discover
    from asyncrace.profiles import PROFILES
    from asyncrace.session import Settings, run_cell
    cell = next(c for c in discover().cells if c.id == "shutdown_order.sim.fixed.exhaustive")
    settings = Settings(PROFILES["quick"], RrVerdict(False, "not needed"), iterations=5000,
                        results_dir=tmp_path)
    record = run_cell(cell, settings)
    assert record["batches"] >= 2, record["batches"]
    assert record["sim"]["schedules"] == record["iterations"] == 5000, record["sim"]
    assert record["sim"]["rerun"] == 0, record["sim"]


def failing_variants() -> list[tuple[str, str]]:
    """(case, variant) for every buggy and partial variant that has a sim exhaustive cell."""
    return sorted({(c.case, c.variant) for c in discover().cells
                   if c.runner == "sim" and c.mode == "exhaustive" and c.expect.kind != "never"})


@pytest.mark.parametrize("case, variant", failing_variants(), ids=lambda x: x)
def test_sleep_sets_and_dpor_still_find_every_bug_no_later_than_dfs(case, variant):
    """Partial-order reduction skips reorderings of independent steps, never a failure: at
    preemption bound 2, for the first run seed at which dfs finds the variant within 3,000
    schedules, dfs-sleep and dpor find it too, with the same outcome, at a schedule no
    later. Only shutdown_order.buggy needs a search here (schedule 1,164; the others fail
    on the first schedule), so this guards gross breakage; the small programs of simtest's
    sleep_sets tests guard the reductions themselves."""
    for seed in range(1, 6):
        plain = search(case, variant, "--strategy", "dfs", "--seed", str(seed),
                       "--iterations", "3000")["first_failure"]
        if plain:
            break
    assert plain, f"dfs found {case}.{variant} at none of run seeds 1-5: the test shows nothing"
    for strategy in ("dfs-sleep", "dpor"):
        reduced = search(case, variant, "--strategy", strategy, "--seed", str(seed),
                         "--iterations", str(plain["iteration"] + 1))["first_failure"]
        assert reduced and reduced["outcome"] == plain["outcome"], (strategy, seed, plain, reduced)
        assert reduced["iteration"] <= plain["iteration"], (strategy, seed, plain, reduced)


# ---- strategies: PCT and POS must beat uniform random -----------------------------------

@functools.lru_cache(maxsize=None)
def schedules_to_first_failure_with(strategy: str, case: str, variant: str, seeds: int,
                                    cap: int) -> tuple:
    """Per seed: (schedules up to the first failure, or None; its outcome)."""
    found = []
    for seed in range(1, seeds + 1):
        r = report(ROOT / "build" / "bin" / case, "--runner", "sim", "--variant", variant,
                   "--mode", "natural", "--strategy", strategy, "--seed", str(seed),
                   "--iterations", str(cap), "--step-bound", "50000")   # their runs: < 20,000
        ff = r["first_failure"]
        found.append((ff["iteration"] + 1, ff["outcome"]) if ff else (None, None))
    return tuple(found)


@pytest.mark.parametrize("strategy, case, variant, outcome", [
    ("pct", "shutdown_order", "buggy", "panic"), ("pct", "dropped_writer", "partial", "fatal"),
    ("pos", "shutdown_order", "buggy", "panic"), ("pos", "dropped_writer", "partial", "fatal"),
])
def test_pct_and_pos_find_what_uniform_random_rarely_does_at_every_seed(strategy, case, variant,
                                                                        outcome):
    """Within 600 schedules, PCT (chaos's) and POS (natural's) find each of these at every one
    of 20 run seeds, and with the case's own failure, where uniform random finds
    shutdown_order at 7 of them and dropped_writer.partial at none. PCT without its
    priority change points found shutdown_order at 3 of 20; POS without its racing resets
    starves a task until the step bound (a hang, not the bug); POS choosing uniformly is
    random: each of these fails."""
    found = schedules_to_first_failure_with(strategy, case, variant, 20, 600)
    random = schedules_to_first_failure_with("random", case, variant, 20, 600)
    hits = sum(n is not None for n, _ in found), sum(n is not None for n, _ in random)
    assert hits[0] == 20, f"{strategy} found {case}.{variant} at {hits[0]} of 20 seeds: {found}"
    assert {o for _, o in found} == {outcome}, f"{strategy}: {found}"
    assert hits[0] >= 2 * hits[1], f"{strategy} {hits[0]} seeds, random {hits[1]}: {found} {random}"
@pytest.mark.parametrize("mode, strategy", [("chaos", None), ("natural", "surw")])
def test_a_profiling_strategy_gives_the_same_schedules_however_the_iterations_are_batched(
        tmp_path, mode, strategy):
    """pct and surw learn from profile runs: every process makes them on the run's first
    iterations' seeds, so iteration i fails or not, with the same schedule, whether it ran
    in one batch of 400 or in four of 100 (it used to depend on the batch it was in)."""
    program = ROOT / "build" / "bin" / "shutdown_order"
    args = ["--runner", "sim", "--variant", "buggy", "--mode", mode,
            *(["--strategy", strategy] if strategy else [])]
    whole = report(program, *args, "--iterations", "400")
    parts = [report(program, *args, "--start", str(start), "--iterations", "100")
             for start in (0, 100, 200, 300)]
    failing = [(f["iteration"], f["hash"]) for p in parts for f in p["sim"]["failing"]]
    assert [(f["iteration"], f["hash"]) for f in whole["sim"]["failing"]][:32] == failing[:32]
    assert whole["outcomes"] == {k: sum(p["outcomes"][k] for p in parts) for k in whole["outcomes"]}
