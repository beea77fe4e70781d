"""sim_tables.py: what the deterministic runner says about each of the four bugs.

    /usr/bin/python3 scripts/sim_tables.py [--seeds 20] [--cap 20000]
        [--real epoll] [--real-cap 20000] [--bounds 0,1,2[,none]] [--search-cap 200000]
        [--search-seconds 60] [--only CASE] [--scheduled sim,libuv_ctl,...]
        [--strategies pos,pct,...] [--skip 1|2|3] [--workers W]

1. To the first failure, per buggy or partial variant, over --seeds run seeds (median and
   max, and how many seeds found nothing within the cap): schedules on each runner the
   scheduler owns (--scheduled: sim, and the real loops under it, libuv_ctl, ...) with
   each strategy (random, pos, surw and pct sampling the natural scenario; dfs,
   dfs-sleep, dpor and delay searching the documented one at bound 2, one program after
   another), beside iterations on a real runner, natural and chaos. The schedule counts
   do not depend on the machine's load: one seed is one schedule sequence.
2. Depth: the smallest bound at which each search finds each buggy or partial variant
   (delay bounding, and preemption bounding with and without sleep sets and DPOR), searching one
   program after another
   (the documented scenario, exhaustive mode) within --search-cap schedules.
3. Proof: each fixed and control variant searched at each bound: the programs searched
   to their end with 0 failures, and the schedules that took.

--workers W: parts 2 and 3 search the program with W loops instead of the case's own
(roles share the last loop: dropped_writer's clients run on the pool's loop at 2).

A measurement, not a test: it asserts nothing. Exit 2 on bad input.
"""
import argparse
import json
import statistics
import subprocess
import sys

from programs import BIN, CASES, unbuilt, variants


def report(case: str, *args: str, timeout: float = 900) -> dict:
    done = subprocess.run([str(BIN / case), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{case} {' '.join(args)}: exit {done.returncode}: {done.stderr[:200]}")
    return json.loads(done.stdout.splitlines()[-1])


SAMPLERS = ("random", "pos", "surw", "pct")
SEARCHES = ("dfs", "dfs-sleep", "dpor", "delay")


def first_failure(case: str, runner: str, variant: str, mode: str, seed: int, cap: int,
                  strategy: str | None = None) -> int | None:
    """Iterations (schedules) up to and including the first failure, or None within cap.
    Runs in chunks that double (iteration i is seeded from (seed, i) whatever the chunk),
    so a failure found early costs little; a search runs once, to its cap."""
    extra = ("--strategy", strategy) if strategy else ()
    if strategy in SEARCHES:
        r = report(case, "--runner", runner, "--variant", variant, "--mode", "exhaustive",
                   "--seed", str(seed), "--bound", "2", "--iterations", str(cap), *extra)
        ff = r["first_failure"]
        return None if ff is None else ff["iteration"] + 1
    start, chunk = 0, 50
    while start < cap:
        n = min(chunk, cap - start)
        r = report(case, "--runner", runner, "--variant", variant, "--mode", mode,
                   "--seed", str(seed), "--start", str(start), "--iterations", str(n), *extra)
        ff = r["first_failure"]
        if ff is not None:
            return ff["iteration"] + 1
        start, chunk = start + n, chunk * 2
    return None


def summary(found: list[int | None], cap: int) -> str:
    hits = [n for n in found if n is not None]
    if not hits:
        return f"none in {cap:,}"
    text = f"{statistics.median(hits):,.0f} / {max(hits):,}"
    missed = len(found) - len(hits)
    return text + (f" ({missed} of {len(found)}: none in {cap:,})" if missed else "")


def search(case: str, variant: str, strategy: str, bound: str, cap: int, seconds: float,
           workers: int | None = None) -> dict:
    """Exhaustive mode with a strategy and bound, up to cap schedules (or a time limit)."""
    workers_flag = ["--workers", str(workers)] if workers else []
    try:
        r = report(case, "--runner", "sim", "--variant", variant, "--mode", "exhaustive",
                   "--strategy", strategy, "--bound", bound, "--iterations", str(cap), *workers_flag,
                   timeout=seconds)
    except subprocess.TimeoutExpired:
        return {"found": None, "timeout": True}
    sim = r["sim"]
    programs = sim["programs"]
    ff = r["first_failure"]
    return {"found": None if ff is None else ff["iteration"] + 1, "timeout": False,
            "schedules": sim["schedules"], "programs": sim["programs_searched"],
            "exhausted": sim["programs_exhausted"],
            "first_program": programs[0] if programs else None,
            "failures": r["iterations"] - r["outcomes"]["ok"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--cap", type=int, default=20_000)
    ap.add_argument("--real", default="epoll")
    ap.add_argument("--real-cap", type=int, default=20_000)
    ap.add_argument("--bounds", default="0,1,2")
    ap.add_argument("--search-cap", type=int, default=200_000)
    ap.add_argument("--search-seconds", type=float, default=60.0)
    ap.add_argument("--workers", type=int, help="parts 2-3: loops per program (default: the case's)")
    ap.add_argument("--only", action="append")
    ap.add_argument("--skip", action="append", default=[], help="part 1, 2 or 3")
    ap.add_argument("--scheduled", default="sim",
                    help="part 1: the runners the scheduler owns, comma-separated")
    ap.add_argument("--strategies", default=",".join((*SAMPLERS, *SEARCHES)),
                    help="part 1: the strategies, comma-separated")
    a = ap.parse_args()
    scheduled, strategies = a.scheduled.split(","), a.strategies.split(",")
    bad = [st for st in strategies if st not in (*SAMPLERS, *SEARCHES)]
    if bad:
        print(f"sim_tables: --strategies: unknown {bad[0]!r} (known: "
              f"{', '.join((*SAMPLERS, *SEARCHES))})", file=sys.stderr)
        return 2
    bounds = a.bounds.split(",")
    if not all(b == "none" or (b.isdigit() and int(b) <= 16) for b in bounds):
        print(f"sim_tables: --bounds: expected 0 to 16 or none, like 0,1,2, got {a.bounds!r}",
              file=sys.stderr)
        return 2
    if a.seeds < 1 or a.cap < 1 or a.real_cap < 1 or (a.workers is not None and a.workers < 1):
        print("sim_tables: --seeds, --workers and the caps must be positive", file=sys.stderr)
        return 2
    cases = a.only or CASES
    if unbuilt(cases):
        print(f"sim_tables: no {unbuilt(cases)} (run make, or --only names no case)",
              file=sys.stderr)
        return 2

    listed = json.loads(subprocess.run([str(BIN / cases[0]), "--list"], capture_output=True,
                                       text=True).stdout)["runners"]
    owned = [r["name"] for r in listed if r["deterministic"]]
    if any(r not in owned for r in scheduled):
        print(f"sim_tables: --scheduled: {next(r for r in scheduled if r not in owned)!r} is "
              f"not a runner the scheduler owns in this build (built: {', '.join(owned)})",
              file=sys.stderr)
        return 2
    if "1" not in a.skip:
        print(f"## 1. To the first failure: median / max over {a.seeds} seeds "
              f"({', '.join(scheduled)}: schedules; {a.real}: iterations)\n")
        columns = [*(f"{r} {st}" for r in scheduled for st in strategies),
                   f"{a.real} natural", f"{a.real} chaos"]
        print("| variant | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
        for case in cases:
            for v in variants(case):
                if v["twin"] is not None:
                    continue      # a never-failing variant
                row = []
                runs = [(r, "natural", a.cap, st) for r in scheduled for st in strategies]
                runs += [(a.real, "natural", a.real_cap, None), (a.real, "chaos", a.real_cap, None)]
                for runner, mode, cap, strategy in runs:
                    found = [first_failure(case, runner, v["name"], mode, s, cap, strategy)
                             for s in range(1, a.seeds + 1)]
                    row.append(summary(found, cap))
                print(f"| {case}.{v['name']} | " + " | ".join(row) + " |", flush=True)
        print()

    if "2" not in a.skip or "3" not in a.skip:
        on_loops = f", {a.workers} loops" if a.workers else ""
        print(f"## 2-3. Bounded search, exhaustive mode (the documented scenario{on_loops}, one "
              f"program after another), up to {a.search_cap:,} schedules or "
              f"{a.search_seconds:g} s\n")
        print("| variant | strategy | bound | first failure at schedule | programs searched to the "
              "bound / begun | schedules | first program: schedules (exhausted) |\n"
              "|---|---|---|---|---|---|---|")
        for case in cases:
            for v in variants(case):
                failing = v["twin"] is None
                if (failing and "2" in a.skip) or (not failing and "3" in a.skip):
                    continue
                for strategy in ("delay", "dfs", "dfs-sleep", "dpor"):
                    for bound in bounds:
                        if strategy == "delay" and bound == "none":
                            continue    # unbounded, delay is dfs
                        r = search(case, v["name"], strategy, bound, a.search_cap, a.search_seconds,
                                   a.workers)
                        if r["timeout"]:
                            print(f"| {case}.{v['name']} | {strategy} | {bound} | over "
                                  f"{a.search_seconds:g} s | | | |", flush=True)
                            continue
                        fp = r["first_program"] or {}
                        found = f"{r['found']:,}" if r["found"] else "none"
                        print(f"| {case}.{v['name']} | {strategy} | {bound} | {found} | "
                              f"{r['exhausted']} / {r['programs']} | {r['schedules']:,} | "
                              f"{fp.get('schedules', 0):,} ({'yes' if fp.get('exhausted') else 'no'}) |",
                              flush=True)
                        if failing and r["found"]:
                            break     # the smallest bound that finds it is the depth
    return 0


if __name__ == "__main__":
    sys.exit(main())
