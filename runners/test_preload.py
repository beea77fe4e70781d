"""The preloaded scheduler (build/lib/libasyncrace_sched.so, docs/preload.md) on programs
that know nothing of it: cases/external/c/ and small programs compiled here. What it
claims is checked against what the programs did: a failure it reports comes back when its
schedule is replayed, a search it calls exhausted ran distinct schedules and the same
ones twice, an explained failure's minimal schedule replays and holds exactly the
decisions it calls critical, a futex wake's waiter is its choice, and every escape it
cannot order ends the run named, never as if it were ordered."""
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from asyncrace.controlled import PRELOAD
from asyncrace.explain import departures_from_default
from asyncrace.paths import ROOT
from asyncrace.pytest_plugin import built_reproducer

EXTERNAL = ROOT / "build" / "external"
PYTHON = sys.executable

pytestmark = pytest.mark.skipif(not PRELOAD.is_file(), reason=f"{PRELOAD} not built: run make")


def run(argv, *, env=None, cwd=None, timeout=60) -> tuple[dict | None, subprocess.CompletedProcess]:
    """One process under the scheduler: (its result, the process)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        full = {**os.environ, "LD_PRELOAD": str(PRELOAD), "ASYNCRACE_RESULT": str(result),
                **(env or {})}
        done = subprocess.run([str(a) for a in argv], env=full, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)
        res = json.loads(result.read_text()) if result.exists() else None
    return res, done


def compile_c(tmp: Path, name: str, source: str, *flags: str) -> Path:
    (tmp / f"{name}.c").write_text(source)
    exe = tmp / name
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-pthread", *flags,
                    str(tmp / f"{name}.c"), "-o", str(exe)], check=True)
    return exe


NAMESAKES = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
/* Named as the scheduler's own functions, and exported (-rdynamic). */
void sim_run(void (*fn)(void *), void *arg) { (void)fn; (void)arg; puts("mine: sim_run"); exit(3); }
void sim_point(const char *p, long a, int k) { (void)p; (void)a; (void)k; puts("mine: sim_point"); exit(3); }
void preload_points(const char *names) { (void)names; puts("mine: preload_points"); exit(3); }
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static int n;
static void *work(void *arg) { pthread_mutex_lock(&m); n++; pthread_mutex_unlock(&m); return arg; }
int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, work, NULL);
    work(NULL);
    pthread_join(t, NULL);
    printf("%d\n", n);
    return 0;
}
"""


def test_a_programs_functions_named_as_the_schedulers_are_its_own(tmp_path):
    """The scheduler exports only the calls it takes: a program that exports functions
    named as the scheduler's (sim_run, sim_point, preload_points) keeps them to itself,
    and the scheduler's own calls still reach the scheduler."""
    exe = compile_c(tmp_path, "namesakes", NAMESAKES, "-rdynamic")
    res, done = run([exe], env={"ASYNCRACE_STRATEGY": "random"})
    assert res and res["outcome"] == "ok" and done.stdout == "2\n", (res, done.stdout, done.stderr)
    assert res["tasks"] == 2 and res["decisions"] > 0, res


# ---- escapes: refused or ended by name ---------------------------------------------------

ESCAPES = {
    "inline_syscall": r"an inline system call \(228, clock_gettime\) at escapes",
    "io_uring": r"syscall\(425, io_uring_setup\) from escapes",
    "signal": r"^signal from escapes .*signals arrive when the kernel delivers them",
    "fork": r"^fork from escapes .*another process",
    "exec": r"^execv from escapes .*another process",
    "spawn": r"^posix_spawn from escapes .*another process",
}


@pytest.mark.parametrize("what", sorted(ESCAPES))
def test_escape_is_named(what):
    res, done = run([EXTERNAL / "escapes", "--what", what])
    assert res is not None, done.stderr
    assert res["outcome"] == "uncontrolled", res
    assert re.search(ESCAPES[what], res["detail"]), res["detail"]
    assert done.returncode == 1 and "asyncrace_sched: uncontrolled:" in done.stderr


def test_escape_runs_plainly_without_the_scheduler():
    for what in ESCAPES:
        done = subprocess.run([str(EXTERNAL / "escapes"), "--what", what], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, (what, done.stderr)


def test_static_binary_is_refused_in_one_line():
    done = subprocess.run([PYTHON, "-m", "asyncrace", "loop", "--control", "--", str(EXTERNAL / "escapes.static"),
                           "--what", "fork"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "harness")})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "statically linked" in lines[0] and "LD_PRELOAD" in lines[0]


@pytest.mark.parametrize("env, says", [
    ({"ASYNCRACE_STRATEGY": "bogus"}, "bogus"),
    ({"ASYNCRACE_SEED": "-3"}, "ASYNCRACE_SEED=-3: not a number"),
    ({"ASYNCRACE_POINTS": "no_such_function_anywhere"}, "no function of the executable"),
    ({"ASYNCRACE_REPLAY": "/nonexistent/schedule.json"}, "ASYNCRACE_REPLAY=/nonexistent"),
])
def test_bad_configuration_is_one_line_and_exit_2(env, says):
    res, done = run([EXTERNAL / "lost_wakeup", "--variant", "fixed"], env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and says in lines[0], done.stderr
    assert res is None


# ---- the run: main is task 1, exit ends it, a crash is written first ----------------------

EXITS = r"""
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
static void *forever(void *a) { (void)a; for (;;) pause(); return NULL; }
static void *quit(void *a) { (void)a; exit(3); }
int main(int argc, char **argv) {
    pthread_t t, u;
    pthread_create(&t, NULL, forever, NULL);     /* never joined: the exit ends it */
    if (argc > 1) { pthread_create(&u, NULL, quit, NULL); pthread_join(u, NULL); }
    return 0;
}
"""


def test_exit_from_a_thread_ends_the_run(tmp_path):
    exe = compile_c(tmp_path, "exits", EXITS.replace("pause()", "sched_yield()"))
    res, done = run([exe, "quit"])
    assert done.returncode == 3, done.stderr
    assert res["outcome"] == "exit" and res["exit_code"] == 3
    assert re.match(r"exit\(3\) from task \d", res["detail"]), res


# ---- futex: wait sets by address, the waiter a wake picks is a choice ---------------------

FUTEX = r"""
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static _Atomic unsigned word;
static _Atomic int order[3], n;
static void *waiter(void *a) {
    while (atomic_load(&word) == 0)
        syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    order[atomic_fetch_add(&n, 1)] = (int)(long)a;
    return NULL;
}
int main(void) {
    pthread_t t[3];
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, waiter, (void *)i);
    while (syscall(SYS_gettid) && atomic_load(&n) < 0) ;
    sched_yield(); sched_yield(); sched_yield();
    atomic_store(&word, 1);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 2, NULL, NULL, 0);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("%d%d%d\n", order[0], order[1], order[2]);
    return 0;
}
"""


def test_futex_waiters_woken_in_every_order(tmp_path):
    """Three threads wait on one futex word and two wakes release them: over seeded random
    schedules every order shows (the kernel promises none), each run ends (no wake lost),
    one seed gives one order, and which waiter a wake picks is a logged choice of the
    strategy (`futex.wake` over the waiters), each of them chosen in some schedule."""
    exe = compile_c(tmp_path, "futex", FUTEX)
    orders, picks = set(), set()
    for seed in range(1, 61):
        schedule = tmp_path / "s.json"
        res, done = run([exe], env={"ASYNCRACE_STRATEGY": "random", "ASYNCRACE_SEED": str(seed),
                                    "ASYNCRACE_SCHEDULE": str(schedule)})
        assert done.returncode == 0 and res["outcome"] == "ok", (seed, done.stderr, res)
        orders.add(done.stdout.strip())
        picks |= {(d["range"], d["chose"]) for d in json.loads(schedule.read_text())["decisions"]
                  if d.get("value") == "futex.wake"}
    assert len(orders) == 6, orders
    assert {(3, 0), (3, 1), (3, 2)} <= picks, sorted(picks)
    again = {run([exe], env={"ASYNCRACE_STRATEGY": "random", "ASYNCRACE_SEED": "7"})[1].stdout
             for _ in range(3)}
    assert len(again) == 1, again


# ---- found, replayed, and the fixes searched to the end -----------------------------------

REPRODUCERS = {"lost_wakeup": "deadlock", "queue_teardown": "signal", "loop_wake": "deadlock"}


def pct_first_failure(exe: Path, tmp: Path) -> tuple[dict, Path]:
    """The buggy variant's first failure under pct (seeds 1 to 200): its result, its schedule."""
    for seed in range(1, 201):
        schedule = tmp / f"{seed}.json"
        res, _ = run([exe, "--variant", "buggy"],
                     env={"ASYNCRACE_STRATEGY": "pct", "ASYNCRACE_PCT_STEPS": "40",
                          "ASYNCRACE_SEED": str(seed), "ASYNCRACE_SCHEDULE": str(schedule)})
        if res["outcome"] != "ok":
            return res, schedule
    pytest.fail(f"{exe.name}: pct found nothing in 200 schedules")


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_buggy_found_by_pct_and_replayed(name, tmp_path):
    exe = EXTERNAL / name
    res, schedule = pct_first_failure(exe, tmp_path)
    assert res["outcome"] == REPRODUCERS[name], res
    recorded = json.loads(schedule.read_text())
    assert recorded["hash"] == res["hash"]
    for _ in range(3):
        again, _ = run([exe, "--variant", "buggy"], env={"ASYNCRACE_REPLAY": str(schedule)})
        assert again["replayed"] and not again["diverged"], again
        assert (again["outcome"], again["hash"]) == (res["outcome"], res["hash"]), again


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_explain_cuts_a_failure_to_the_decisions_it_turns_on(name, tmp_path):
    """A failing pct schedule, explained by the scheduler (one forked process per try):
    what it reports is checked against the schedules themselves. The minimal schedule
    replays to the same failure; where the default schedule is what it measures against,
    the departures it counts are the failing schedule's own, and the decisions it calls
    critical are exactly the minimal schedule's departures from the default; each stack
    reaches the program's source."""
    exe = EXTERNAL / name
    res, schedule = pct_first_failure(exe, tmp_path)
    told, _ = explained([exe, "--variant", "buggy"], {}, res, schedule, tmp_path / "x")
    if told["base_seed"] != -1:   # the default fails too: a random passing one is the base
        assert name == "queue_teardown", told


def explained(argv: list, env: dict, res: dict, schedule: Path, prefix: Path) -> dict:
    """The scheduler's explanation of a failing schedule (one forked process per try),
    checked against the schedules themselves: the minimal schedule replays to the same
    failure with its own decisions; where the default schedule is what it measures against,
    the departures it counts are the failing schedule's own, and the decisions it calls
    critical are exactly the minimal schedule's departures from the default; each stack
    reaches the program (argv[0]). Returns what it told and the minimal schedule's replay."""
    _, done = run(argv, env={**env, "ASYNCRACE_REPLAY": str(schedule),
                             "ASYNCRACE_EXPLAIN": str(prefix)}, timeout=600)
    assert done.returncode == 0, done.stderr
    told = json.loads(Path(f"{prefix}.explain.json").read_text())
    assert told["outcome"] == res["outcome"] and told["runner"] == "preload", told
    assert 1 <= told["critical_count"] <= told["deviations"], told
    assert len(told["critical"]) == told["critical_count"]
    assert all(c["needed"] for c in told["critical"]), told["critical"]
    minimal = json.loads(Path(told["minimal_schedule"]).read_text())
    again, _ = run(argv, env={**env, "ASYNCRACE_REPLAY": told["minimal_schedule"]})
    assert again["replayed"] and not again["diverged"], again
    assert again["outcome"] == res["outcome"] and again["hash"] == minimal["hash"], again
    if told["base_seed"] == -1:   # measured against the default schedule
        assert told["deviations"] == len(departures_from_default(json.loads(schedule.read_text())))
        assert [c["decision"] for c in told["critical"]] == departures_from_default(minimal)
    sources = {f["module"] for c in told["critical"] for f in c["stack"] if "module" in f}
    assert str(argv[0]) in sources, sources
    return told, again


def test_explain_refuses_a_schedule_that_does_not_fail_or_is_missing(tmp_path):
    exe, schedule = EXTERNAL / "lost_wakeup", tmp_path / "s.json"
    res, _ = run([exe, "--variant", "fixed"], env={"ASYNCRACE_STRATEGY": "random",
                                                   "ASYNCRACE_SCHEDULE": str(schedule)})
    assert res["outcome"] == "ok", res
    _, done = run([exe, "--variant", "fixed"], env={"ASYNCRACE_REPLAY": str(schedule),
                                                    "ASYNCRACE_EXPLAIN": str(tmp_path / "x")})
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "do not fail again" in done.stderr and not list(tmp_path.glob("x*")), done.stderr
    _, done = run([exe, "--variant", "fixed"], env={"ASYNCRACE_EXPLAIN": str(tmp_path / "x")})
    assert done.returncode == 2 and "comes in ASYNCRACE_REPLAY" in done.stderr, done.stderr


def test_the_decisions_around_a_critical_one_name_points_and_values():
    from asyncrace.explain import decisions_around
    schedule = {"decisions": [
        {"step": 1, "task": 1, "point": "mutex_lock", "arg": 1, "kind": 0, "enabled": [1, 2], "chose": 2},
        {"step": 2, "task": 2, "value": "read.bytes", "range": 4, "chose": 1}]}
    assert decisions_around(schedule, 1) == ["      decision 0: task 1 at mutex_lock(1), ran task 2",
                                             "   >> decision 1: task 2 chose 1 of 4 for read.bytes"]


def search(exe: Path, variant: str | None, state: Path, cap: int, strategy: str = "delay",
           bound: str = "2", stop_at_failure: bool = False, args: tuple = (),
           env: dict | None = None) -> list[dict]:
    """A search (delay bound 2 unless said), one process per schedule, to its end (or cap,
    or its first failure): each schedule's result, with what the program printed. args and
    env: more of each for every process."""
    results = []
    while len(results) < cap:
        res, done = run([exe, *(("--variant", variant) if variant else ()), *args],
                        env={"ASYNCRACE_STRATEGY": strategy, "ASYNCRACE_BOUND": bound,
                             "ASYNCRACE_SEARCH_STATE": str(state), **(env or {})})
        res["stdout"] = done.stdout.strip()
        results.append(res)
        if res["exhausted"] or (stop_at_failure and res["outcome"] != "ok"):
            break
    return results


@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_fixed_clean_at_delay_bound_2(name, tmp_path):
    """The fix is shown clean over every schedule with at most 2 delays. The claim that
    the search ended is checked: every schedule it ran was a different one, a second
    search runs the very same ones, and the buggy variant's search finds the bug."""
    exe = EXTERNAL / name
    first = search(exe, "fixed", tmp_path / "a.state", 3000)
    assert first[-1]["exhausted"], f"{name}: not exhausted in {len(first)} schedules"
    assert all(r["outcome"] == "ok" for r in first), [r for r in first if r["outcome"] != "ok"][:1]
    hashes = [r["hash"] for r in first]
    assert len(set(hashes)) == len(hashes), "the search ran a schedule twice"
    second = search(exe, "fixed", tmp_path / "b.state", len(first) + 5)
    assert [r["hash"] for r in second] == hashes
    buggy = search(exe, "buggy", tmp_path / "c.state", 3000)
    assert any(r["outcome"] == REPRODUCERS[name] for r in buggy), f"{name}: delay bound 2 missed the bug"


@pytest.mark.parametrize("strategy", ("dfs-sleep", "dpor"))
@pytest.mark.parametrize("name", sorted(REPRODUCERS))
def test_fixed_clean_over_every_schedule_with_partial_order_reduction(name, strategy, tmp_path):
    """Unbounded, dfs-sleep runs a schedule of every class that differs only in the order of
    independent steps, and dpor of every class a race tells apart: the fix's search ends
    clean (lost_wakeup, queue_teardown and loop_wake: dfs-sleep 88, 836 and 720 schedules
    when measured, dpor 36, 132 and 540; plain dfs: 836, 35,854 and 9,000), every schedule a
    different one and a second search the very same ones, and the buggy variant's search
    finds the bug."""
    exe = EXTERNAL / name
    fixed = search(exe, "fixed", tmp_path / "a.state", 2000, strategy, "none")
    assert fixed[-1]["exhausted"], f"{name}: not exhausted in {len(fixed)} schedules"
    assert all(r["outcome"] == "ok" for r in fixed), [r for r in fixed if r["outcome"] != "ok"][:1]
    hashes = [r["hash"] for r in fixed]
    assert len(set(hashes)) == len(hashes), "the search ran a schedule twice"
    again = search(exe, "fixed", tmp_path / "c.state", len(fixed) + 5, strategy, "none")
    assert [r["hash"] for r in again] == hashes
    buggy = search(exe, "buggy", tmp_path / "b.state", 2000, strategy, "none",
                   stop_at_failure=True)
    assert buggy[-1]["outcome"] == REPRODUCERS[name], f"{name}: {strategy} missed the bug"


APPENDS = r"""
#include <pthread.h>
#include <stdio.h>

/* Two workers and main append their marks to two logs, each log under its own mutex,
 * with work on a mutex of their own in between: the logs' orders are the outcomes. */
static pthread_mutex_t log_lock[2] = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER };
static pthread_mutex_t own[2] = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER };
static char logs[2][8];
static int lens[2];

static void append(int log, char mark)
{
    pthread_mutex_lock(&log_lock[log]);
    logs[log][lens[log]++] = mark;
    pthread_mutex_unlock(&log_lock[log]);
}

static void *worker(void *arg)
{
    int id = (int)(long)arg;
    pthread_mutex_lock(&own[id]);
    pthread_mutex_unlock(&own[id]);
    append(0, (char)('a' + id));
    pthread_mutex_lock(&own[id]);
    pthread_mutex_unlock(&own[id]);
    append(1, (char)('a' + id));
    return NULL;
}

int main(void)
{
    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    append(0, 'm');
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("%s %s\n", logs[0], logs[1]);
    return 0;
}
"""


def test_sleep_sets_and_dpor_reach_what_plain_dfs_reaches_on_a_users_program(tmp_path):
    """Two workers and main append to two locked logs, with work on their own mutexes in
    between; the logs' orders are the outcomes. At bounds 1 and 2 plain dfs, dfs-sleep and
    dpor all end and print the same set of orders, the reduced searches in fewer schedules
    (dfs 53 and 726, dfs-sleep 41 and 190 when measured, dpor 21 and 68); unbounded,
    dfs-sleep (311) and dpor (67) end with all 12 orders, where plain dfs had 4 of
    them after 15,000 schedules."""
    exe = compile_c(tmp_path, "appends", APPENDS)
    for bound in ("1", "2"):
        plain = search(exe, None, tmp_path / f"dfs{bound}", 2000, "dfs", bound)
        orders = {r["stdout"] for r in plain}
        for strategy in ("dfs-sleep", "dpor"):
            reduced = search(exe, None, tmp_path / f"{strategy}{bound}", 2000, strategy, bound)
            assert plain[-1]["exhausted"] and reduced[-1]["exhausted"], \
                (strategy, bound, len(plain), len(reduced))
            reached = {r["stdout"] for r in reduced}
            assert reached == orders, (strategy, bound, sorted(orders - reached))
            assert len(reduced) < len(plain), (strategy, bound, len(reduced), len(plain))
    for strategy in ("dfs-sleep", "dpor"):
        unbounded = search(exe, None, tmp_path / f"{strategy}none", 2000, strategy, "none")
        seen = {r["stdout"] for r in unbounded}
        assert unbounded[-1]["exhausted"] and len(seen) == 12, \
            (strategy, len(unbounded), sorted(seen))


LOST_ADD = r"""
#include <pthread.h>
#include <stdio.h>

/* Two workers add one to a counter, each under the lock, but read it and write it in two
 * critical sections: when both read before either writes, one add is lost. The program
 * ends well either way; only what it prints tells. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int counter;

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    int seen = counter;
    pthread_mutex_unlock(&lock);
    pthread_mutex_lock(&lock);
    counter = seen + 1;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("counter %d\n", counter);
    return 0;
}
"""


def test_explain_tells_a_failure_that_only_the_output_shows(tmp_path):
    """A lost add that exits 0 and prints `counter 1`: the program's rule (`lost_add = {
    stdout = "^counter 1$" }`) tells it. Explained, each try is told by the same rule (the
    judge, asyncrace.try_outcome), so the failure is cut to the decisions it turns on, and
    the minimal schedule replays to `counter 1`; the explanation's detail is the line the
    rule matched. Without the judge the scheduler sees every
    try end well, and refuses: the failing schedule does not fail again."""
    from asyncrace.commands import Rule
    from asyncrace.controlled import ControlledInvocation
    from asyncrace.explain import ExplainError, explain_preload
    exe = compile_c(tmp_path, "lost_add", LOST_ADD)
    inv = ControlledInvocation("lost_add", (str(exe),), 1, ("ok", "lost_add"), 20.0,
                               (Rule("lost_add", "stdout", r"^counter 1$"),), "natural", "pct")
    for seed in range(1, 101):
        schedule = tmp_path / f"{seed}.json"
        res, done = run([exe], env={"ASYNCRACE_STRATEGY": "pct", "ASYNCRACE_SEED": str(seed),
                                    "ASYNCRACE_SCHEDULE": str(schedule)})
        if done.stdout.strip() == "counter 1":
            break
    else:
        pytest.fail("pct lost no add in 100 schedules")
    assert (res["outcome"], done.returncode) == ("ok", 0), (res, done.returncode)
    with pytest.raises(ExplainError, match="do not fail again"):
        explain_preload(inv, schedule, tmp_path / "unjudged")
    told = explain_preload(inv, schedule, tmp_path / "x", "lost_add")
    explanation = json.loads(Path(told["explanation"]).read_text())
    assert (explanation["outcome"], explanation["detail"]) == ("lost_add", "counter 1"), explanation
    assert 1 <= told["critical"] <= told["deviations"], told
    again, done = run([exe], env={"ASYNCRACE_REPLAY": told["minimal_schedule"]})
    assert again["replayed"] and not again["diverged"], again
    assert done.stdout.strip() == "counter 1", done.stdout
    assert not list(tmp_path.glob("x.try*")), "a try's files were left"


def test_a_judge_that_cannot_tell_is_refused_in_one_line(tmp_path):
    """The judge's settings and the judge itself: a judge without the failure's outcome, a
    judge that names no outcome, and the judge module given bad input each end in one
    line and a non-zero exit."""
    exe = compile_c(tmp_path, "lost_add", LOST_ADD)
    schedule = tmp_path / "s.json"
    run([exe], env={"ASYNCRACE_STRATEGY": "pct", "ASYNCRACE_SCHEDULE": str(schedule)})
    base = {"ASYNCRACE_REPLAY": str(schedule), "ASYNCRACE_EXPLAIN": str(tmp_path / "x"),
            "ASYNCRACE_EXPLAIN_JUDGE": "false"}
    _, done = run([exe], env=base)
    assert done.returncode == 2 and "needs ASYNCRACE_EXPLAIN_OUTCOME" in done.stderr, done.stderr
    _, done = run([exe], env={**base, "ASYNCRACE_EXPLAIN_OUTCOME": "lost_add"})
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "the judge (false) did not name an outcome" in done.stderr, done.stderr
    done = subprocess.run([sys.executable, "-m", "asyncrace.try_outcome", str(tmp_path / "none.json"),
                           "ok", "0", "0", "a", "b"], capture_output=True, text=True,
                          cwd=ROOT / "harness")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


# ---- the driver: cells, captures, replay ----------------------------------------------

def asyncrace(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "asyncrace", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "harness")})


def test_loop_control_captures_a_schedule_that_replays(tmp_path):
    """loop --control finds the lost wake-up, keeps its schedule, and `replay DIR` follows
    it to the same deadlock with the same decisions; a capture whose recorded decisions
    are not what the schedule gives, or whose program is the fix, is no reproduction."""
    done = asyncrace("loop", "--control", "--modes", "chaos", "--expect", "sometimes:deadlock",
                     "--seconds", "1", "--capture-failures", "--results-dir", tmp_path, "--",
                     EXTERNAL / "lost_wakeup", "--variant", "buggy")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    capture = next(tmp_path.glob("*/captures/lost_wakeup.command_ctl.as_given.chaos"))
    info = json.loads((capture / "capture.json").read_text())
    assert info["method"] == "preload-schedule" and info["reproduced"], info
    replayed = asyncrace("replay", capture, "--attempts", "3")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "deadlock again, with the same decisions" in replayed.stdout
    assert "in 3 of 3 replays" in replayed.stdout
    # Explained at capture, and again on demand: the consumer's window in take() is named.
    assert info["explanation"]["critical"] >= 1, info
    explained = asyncrace("explain", capture)
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout == (capture / "schedule.explain.txt").read_text()
    assert re.search(r"^     take +cases/external/c/lost_wakeup\.c:\d+$", explained.stdout, re.M), \
        explained.stdout
    bare = asyncrace("explain", capture / "schedule.json")   # no command with it: said
    assert bare.returncode == 2 and len(bare.stderr.strip().splitlines()) == 1, bare.stderr
    assert "explain its capture folder" in bare.stderr

    info["hash"] = "0" * 16                      # the decisions it claims are not these
    (capture / "capture.json").write_text(json.dumps(info))
    lied = asyncrace("replay", capture)
    assert lied.returncode != 0 and "made other decisions" in lied.stdout + lied.stderr

    info = json.loads((capture / "capture.json").read_text())
    info["hash"] = json.loads((capture / "schedule.json").read_text())["hash"]
    info["invocation"]["command"][-1] = "fixed"  # the fix, under the buggy schedule
    (capture / "capture.json").write_text(json.dumps(info))
    fixed = asyncrace("replay", capture)
    assert fixed.returncode != 0, fixed.stdout
    assert re.search(r"left its schedule|gave ok", fixed.stdout + fixed.stderr), fixed.stdout


SOURCES = r"""
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
static void *thread(void *a) { return a; }
int main(void) {
    uint64_t lib = 0, raw = 0;
    getrandom(&lib, sizeof lib, 0);                        /* libc's entry */
    syscall(SYS_getrandom, &raw, sizeof raw, 0);           /* Rust's std's way */
    struct timespec mono; struct timeval wall;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    gettimeofday(&wall, NULL);
    pthread_t t;
    pthread_create(&t, NULL, thread, NULL);
    pthread_join(t, NULL);
    int stack;
    printf("random %016llx %016llx\n", (unsigned long long)lib, (unsigned long long)raw);
    printf("clock %lld.%09ld %lld.%06ld\n", (long long)mono.tv_sec, mono.tv_nsec,
           (long long)wall.tv_sec, (long)wall.tv_usec);
    printf("addresses %lx %p %p\n", (unsigned long)t, (void *)&stack, (void *)&lib);
    return 0;
}
"""


def test_randomness_time_and_addresses_come_from_the_run(tmp_path):
    """What a Rust program draws its own nondeterminism from: random bytes (hash-map seeds,
    by libc's getrandom or by syscall()), the clocks (Instant, SystemTime), and where its
    threads and stacks are. Under the scheduler, one seed gives the same of each in every
    process; another seed gives other random bytes."""
    exe = compile_c(tmp_path, "sources", SOURCES)
    def lines(seed):
        res, done = run([exe], env={"ASYNCRACE_STRATEGY": "random", "ASYNCRACE_SEED": str(seed)})
        assert done.returncode == 0, done.stderr
        return dict(line.split(" ", 1) for line in done.stdout.splitlines())
    a, b, other = lines(5), lines(5), lines(6)
    assert a == b, (a, b)
    lib, raw = a["random"].split()
    assert lib != raw and other["random"] != a["random"]
    plain = [subprocess.run([str(exe)], capture_output=True, text=True).stdout for _ in range(2)]
    assert plain[0] != plain[1], "without the scheduler these differ from run to run"


FIRSTS = r"""
#include <pthread.h>
#include <stdio.h>
/* Points whose first instruction is each kind the trap carries out itself (a jmp rel32,
 * a mov between registers with REX.R and with REX.B, a push, a push of r8..r15), and one
 * it single-steps (lea). Each returns what only a faithful first instruction gives. */
#define FN(name, body) ".globl " #name "\n.type " #name ",@function\n" #name ":\n" body
__asm__(".text\n"
    FN(first_jmp, ".byte 0xe9\n.long first_jmp_body - . - 4\nfirst_jmp_body:\n"
                  "lea 1(%rdi),%rax\nret\n")
    FN(first_mov_b, "mov %rdi,%r9\nlea 2(%r9),%rax\nret\n")
    FN(first_mov_r, "mov %r8,%rax\nadd %rdi,%rax\nret\n")
    FN(first_push, "push %rdi\npop %rax\nadd $3,%rax\nret\n")
    FN(first_push_r, "push %r9\npop %rax\nadd %rdi,%rax\nret\n")
    FN(first_lea, "lea 5(%rdi),%rax\nret\n"));
long first_jmp(long), first_mov_b(long), first_mov_r(long, long, long, long, long),
     first_push(long), first_push_r(long, long, long, long, long, long), first_lea(long);
static void *work(void *arg)
{
    long bad = 0;
    for (long i = 0; i < 50; i++)
        bad += (first_jmp(i) != i + 1) + (first_mov_b(i) != i + 2) +
               (first_mov_r(i, 0, 0, 0, 40) != i + 40) + (first_push(i) != i + 3) +
               (first_push_r(i, 0, 0, 0, 0, 60) != i + 60) + (first_lea(i) != i + 5);
    return (void *)bad;
}
int main(void)
{
    pthread_t t[2];
    void *bad[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, work, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], &bad[i]);
    printf("bad %ld\n", (long)bad[0] + (long)bad[1]);
    return bad[0] || bad[1];
}
"""


def test_a_points_first_instruction_is_carried_out_in_its_trap(tmp_path):
    """A point costs one signal where its function starts with a jmp, a move between
    registers or a push (tokio's do: 4 times faster than stepping each, 6 against 24 ms a
    run when measured), and the rest are single-stepped: each function still returns what
    it must, under switches between the two threads at every call."""
    exe = compile_c(tmp_path, "firsts", FIRSTS)
    for seed in (1, 2, 3):
        res, done = run([exe], env={"ASYNCRACE_STRATEGY": "random", "ASYNCRACE_SEED": str(seed),
                                    "ASYNCRACE_POINTS": "first_"})
        assert done.returncode == 0 and done.stdout == "bad 0\n", done.stdout + done.stderr
        assert (res["point_traps"], res["point_steps"]) == (600, 100), res
        assert res["decisions"] > 100, res      # the threads were switched between calls


TOKIO = ROOT / "build" / "cargo" / "release" / "tokio_shutdown_order"
TOKIO_POINTS = ("tokio::runtime::task::raw::poll,tokio::runtime::task::raw::schedule,"
                "tokio::runtime::task::raw::shutdown")


def built_tokio(tmp_path: Path) -> None:
    built_reproducer("tokio_shutdown_order", TOKIO, tmp_path)


TOKIO_ARGV = [TOKIO, "--variant", "buggy", "--iterations", "1", "--exit-on-panic"]


def tokio_panic(tmp_path: Path) -> tuple[dict, Path]:
    """The first uniformly random schedule of the tokio original that panics: (its
    result, its schedule file)."""
    built_tokio(tmp_path)
    schedule = tmp_path / "s.json"
    for seed in range(1, 151):
        res, done = run(TOKIO_ARGV, env={"ASYNCRACE_STRATEGY": "random",
                                         "ASYNCRACE_SEED": str(seed),
                                         "ASYNCRACE_POINTS": TOKIO_POINTS,
                                         "ASYNCRACE_SCHEDULE": str(schedule)})
        if done.returncode == 101:
            assert res["outcome"] == "exit" and "producer" in done.stdout + done.stderr, res
            return res, schedule
    pytest.fail("no panic in 150 random schedules")


def test_the_tokio_original_panics_and_replays(tmp_path):
    """The unmodified tokio program: uniformly random schedules find the producer's panic
    (16 schedules median, 68 at most over 20 seeds: docs/preload.md), its schedule replays
    to the same panic with the same decisions, and without the named points every run
    ends named as a spin (the worker polls two tasks without a system call)."""
    res, schedule = tokio_panic(tmp_path)
    for _ in range(3):
        again, replayed = run(TOKIO_ARGV, env={"ASYNCRACE_REPLAY": str(schedule),
                                         "ASYNCRACE_POINTS": TOKIO_POINTS})
        assert replayed.returncode == 101 and not again["diverged"], again
        assert again["hash"] == res["hash"]
    spun, _ = run(TOKIO_ARGV, env={"ASYNCRACE_STRATEGY": "random", "ASYNCRACE_STUCK_MS": "300"})
    assert spun["outcome"] == "uncontrolled" and "a task spins" in spun["detail"], spun


def test_the_tokio_originals_panic_is_explained(tmp_path):
    """The explainer on the tokio original's panic (a forked process per try, 18 s when
    measured: 27 departures cut to 6), checked as the C programs' are (explained() above),
    and it must leave fewer decisions than the failing schedule departed by."""
    res, schedule = tokio_panic(tmp_path)
    told, again = explained(TOKIO_ARGV, {"ASYNCRACE_POINTS": TOKIO_POINTS}, res, schedule,
                            tmp_path / "x")
    assert told["critical_count"] < told["deviations"], told
    assert again["detail"] == res["detail"] == "exit(101) from task 1", again   # the panic


def tokio_search(variant: str, state: Path, cap: int, strategy: str, bound: str) -> list[dict]:
    """search() on the tokio original: one iteration per process, its named points."""
    return search(TOKIO, variant, state, cap, strategy, bound, args=TOKIO_ARGV[3:],
                  env={"ASYNCRACE_POINTS": TOKIO_POINTS})


def test_the_tokio_fix_is_clean_over_every_schedule_without_a_preemption(tmp_path):
    """At preemption bound 0 (switches only where a thread blocks or ends) dpor searches the
    tokio fix to its end clean (72 schedules when measured, as plain dfs), every schedule a
    different one and a second search the very same ones; the bound is not too small to
    matter: the buggy variant's search panics (12 of its 24 schedules, the first at 2)."""
    built_tokio(tmp_path)
    fixed = tokio_search("fixed", tmp_path / "a.state", 400, "dpor", "0")
    assert fixed[-1]["exhausted"], f"not exhausted in {len(fixed)} schedules"
    assert all(r["outcome"] == "ok" for r in fixed), [r for r in fixed if r["outcome"] != "ok"][:1]
    hashes = [r["hash"] for r in fixed]
    assert len(set(hashes)) == len(hashes), "the search ran a schedule twice"
    again = tokio_search("fixed", tmp_path / "b.state", len(fixed) + 5, "dpor", "0")
    assert [r["hash"] for r in again] == hashes
    buggy = tokio_search("buggy", tmp_path / "c.state", 400, "dpor", "0")
    assert buggy[-1]["exhausted"] and any(r["outcome"] == "exit" for r in buggy), \
        f"no panic in {len(buggy)} schedules at bound 0"
