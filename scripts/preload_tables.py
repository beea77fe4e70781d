"""preload_tables.py: the user's programs under the preloaded scheduler, measured.

    /usr/bin/python3 scripts/preload_tables.py [--seeds 20] [--cap 300] [--only NAME]
        [--strategies pct,pos,random] [--replays 10] [--clean 1000] [--speed 200]

For each reproducer of cases/external.toml with [control] (the tokio original, the C
programs of cases/external/c/), prints markdown:

  - schedules to the first failure of each failing variant, per strategy: median / max
    over --seeds seeds (a sampler's seed is the run seed its iterations' seeds come from;
    a search has one program and is run once), "none in CAP" when a seed found nothing;
  - the first failure replayed --replays times in fresh processes: how many gave the same
    outcome with the same decisions (the schedule's hash) without leaving the schedule;
  - each never variant: delay bound 2 searched to its end (schedules, failures), or
    --clean schedules of pct when the search does not end within them;
  - schedules/s under the scheduler beside processes/s of the same command without it,
    on each never variant (a buggy one may hang without the scheduler);
  - explain: each failing variant's first failure under pct, for --seeds seeds, cut down
    by the scheduler's explain (runners/preload/explain.c): its departures from the
    passing schedule before and after, the runs (processes) it took, its time, and the
    points of the decisions left, as often as each set came.

--parts first,clean,speed,explain picks the tables (explain is not in the default).

A measurement, not a test; it takes minutes. Exit 2 on bad input.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "harness"))

from asyncrace import external  # noqa: E402
from asyncrace.contract import BUILTIN_OUTCOMES  # noqa: E402
from asyncrace.controlled import PRELOAD, replay_once  # noqa: E402
from asyncrace.program import run_once  # noqa: E402
from sim_tables import summary  # noqa: E402  (median / max, as sim's tables print them)


def invocation(rep, variant, strategy, seed=1, state=None):
    inv = external.controlled_invocation(rep, variant, "natural", seed, rep.outcomes())
    from dataclasses import replace
    return replace(inv, strategy=strategy, state=state)


def first_failure(rep, variant, strategy, seed, cap, keep: Path):
    """(schedules to the first failure or None, its schedule file, its outcome)."""
    with tempfile.TemporaryDirectory() as tmp:
        inv = invocation(rep, variant, strategy, seed, state=str(Path(tmp) / "state"))
        inv = inv.with_schedules(keep)
        done = 0
        while done < cap:
            batch = inv.run_batch(done, min(25, cap - done))
            done += batch.counted
            if batch.first_failure:
                ff = batch.first_failure
                return ff["iteration"] + 1, ff["schedule"], ff["outcome"]
            if inv.searching and inv.search.get("programs") and inv.search["programs"][0]["exhausted"]:
                return None, None, None
        return None, None, None


def replays(rep, variant, schedule, outcome, times):
    inv = invocation(rep, variant, "random")
    want = json.loads(Path(schedule).read_text())["hash"]
    same = 0
    for _ in range(times):
        got, res = replay_once(inv, Path(schedule))
        same += got == outcome and res.get("hash") == want and not res.get("diverged")
    return same


def clean(rep, variant, limit):
    """delay bound 2 to its end, else pct for `limit` schedules: (what ran, failures)."""
    with tempfile.TemporaryDirectory() as tmp:
        inv = invocation(rep, variant, "delay", state=str(Path(tmp) / "state"))
        ran = failures = 0
        while ran < limit:
            batch = inv.run_batch(ran, min(50, limit - ran))
            ran += batch.counted
            failures += batch.counted - batch.counts["ok"]
            if inv.search["programs"][0]["exhausted"]:
                return f"delay bound 2 exhausted in {inv.search['programs'][0]['schedules']:,} schedules, {failures} failures"
        inv = invocation(rep, variant, "pct")
        batch = inv.run_batch(0, limit)
        fails = batch.counted - batch.counts["ok"]
        return (f"delay bound 2 not exhausted in {limit:,} schedules ({failures} failures); "
                f"pct: {batch.counted:,} schedules, {fails} failures")


def speed(rep, variant, n):
    inv = invocation(rep, variant, "pct")
    began = time.monotonic()
    inv.run_batch(0, n)
    controlled = n / (time.monotonic() - began)
    argv = inv.argv(0, 1)
    began = time.monotonic()
    for _ in range(n):
        run_once(argv, env=None, timeout_s=60, cwd=inv.workdir)
    plain = n / (time.monotonic() - began)
    return controlled, plain


def short(point: str) -> str:
    """A named point by its last two path parts (at.tokio::runtime::task::raw::poll: raw::poll)."""
    return "::".join(point.split("::")[-2:])


def seconds(took: list[float]) -> str:
    return f"{statistics.median(took):.2f} / {max(took):.2f}" if took else "-"


def explained(rep, variant, seeds, cap):
    """The explain table's row: pct's first failures of `seeds` seeds, each explained."""
    from asyncrace.explain import ExplainError, explain_preload
    before, after, runs, took, stories, errors = [], [], [], [], Counter(), []
    with tempfile.TemporaryDirectory() as keep:
        for seed in range(1, seeds + 1):
            _, schedule, _ = first_failure(rep, variant, "pct", seed, cap, Path(keep) / str(seed))
            if not schedule:
                continue
            inv = invocation(rep, variant, "pct", seed)
            began = time.monotonic()
            try:
                told = explain_preload(inv, Path(schedule), Path(keep) / f"x{seed}")
            except ExplainError as e:
                errors.append(str(e))
                continue
            took.append(time.monotonic() - began)
            before.append(told["deviations"])
            after.append(told["critical"])
            runs.append(told["runs"])
            critical = json.loads(Path(told["explanation"]).read_text())["critical"]
            stories[", ".join(f"{short(c['point'])} (task {c['task']})" for c in critical)] += 1
    common = stories.most_common(3 if len(stories) <= 3 else 1)
    story = "; ".join(f"{k} x{n}" for k, n in common)
    if len(stories) > len(common):
        story += f"; {len(stories) - len(common)} other sets"
    return (f"| {rep.name} | {variant.name} | {len(after)} | {summary(before, 0)} | "
            f"{summary(after, 0)} | {summary(runs, 0)} | "
            f"{seconds(took)} | {story} |"
            + (f" errors: {errors[0]}" if errors else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--cap", type=int, default=300)
    ap.add_argument("--only", action="append")
    ap.add_argument("--strategies", default="pct,pos,random,delay")
    ap.add_argument("--replays", type=int, default=10)
    ap.add_argument("--clean", type=int, default=1000)
    ap.add_argument("--speed", type=int, default=200)
    ap.add_argument("--parts", default="first,clean,speed")
    args = ap.parse_args()
    if not PRELOAD.is_file():
        print(f"preload_tables: {PRELOAD} is missing: run make", file=sys.stderr)
        return 2
    reps = [r for r in external.load(ROOT / "cases" / "external.toml") if r.control]
    reps = [r for r in reps if not args.only or r.name in args.only]
    if not reps:
        print("preload_tables: no reproducer with [control] matches", file=sys.stderr)
        return 2
    strategies = [s for s in args.strategies.split(",") if s]
    parts = set(args.parts.split(","))
    if "first" in parts:
        print("| program | variant | " + " | ".join(strategies) + " | replays of the first |")
        print("|---|---|" + "---|" * (len(strategies) + 1))
    cleans, speeds, explains = [], [], []
    for rep in reps:
        if rep.unmet():
            print(f"| {rep.name} | skipped: {'; '.join(n.text() for n in rep.unmet())} |")
            continue
        ok, text = external.build_once(rep, Path(tempfile.mkdtemp()) / ".builds")
        if not ok:
            print(f"preload_tables: {rep.name}: {text}", file=sys.stderr)
            return 1
        for v in rep.variants:
            if v.kind == "never":
                if "clean" in parts:
                    cleans.append((rep.name, v.name, clean(rep, v, args.clean)))
                if "speed" in parts and args.speed and v.twin and not any(x[0] == rep.name for x in speeds):
                    speeds.append((rep.name, v.name, *speed(rep, v, args.speed)))
                continue
            if "explain" in parts:
                explains.append(explained(rep, v, args.seeds, args.cap))
            if "first" not in parts:
                continue
            row, replayed = [], "-"
            with tempfile.TemporaryDirectory() as keep:
                for s in strategies:
                    seeds = [1] if s in ("dfs", "dfs-sleep", "delay") else range(1, args.seeds + 1)
                    got = []
                    for seed in seeds:
                        n, schedule, outcome = first_failure(rep, v, s, seed, args.cap,
                                                             Path(keep) / f"{s}{seed}")
                        got.append(n)
                        if schedule and replayed == "-":
                            replayed = f"{replays(rep, v, schedule, outcome, args.replays)}/{args.replays} ({outcome})"
                    row.append(summary(got, args.cap) if len(seeds) > 1 else
                               (f"{got[0]:,}" if got[0] else f"none in {args.cap:,}"))
                    print(f"  {rep.name}.{v.name} {s}: {row[-1]}", file=sys.stderr, flush=True)
            print(f"| {rep.name} | {v.name} | " + " | ".join(row) + f" | {replayed} |", flush=True)
    if cleans:
        print("\n| program | fixed variant | clean |\n|---|---|---|")
    for name, variant, text in cleans:
        print(f"| {name} | {variant} | {text} |")
    if explains:
        print("\n| program | variant | explained | departures before | after | runs | seconds "
              "| the decisions left (most common) |\n|---|---|---|---|---|---|---|---|")
        print("\n".join(explains))
    if speeds:
        print("\n| program | variant | schedules/s under the scheduler | processes/s without it |\n|---|---|---|---|")
        for name, variant, c, p in speeds:
            print(f"| {name} | {variant} | {c:.0f} | {p:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
