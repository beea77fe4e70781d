"""bench_sim.py: schedules per second on sim beside natural iterations per second
on a real runner, for every cell, in one run; and on each real loop under the
scheduler (libuv_ctl, ... as built) beside the same loop's natural iterations.

    /usr/bin/python3 scripts/bench_sim.py [--rounds N] [--real epoll] [--sim-iterations N]
                                          [--real-iterations N] [--build build]

Each cell runs --rounds times on each runner, alternating, and keeps the best
rate of each: on a shared machine the worst rounds measure the neighbours.
Rates are the programs' own iterations_per_s (wall clock, whole process).
A benchmark, not a test: it asserts nothing. Exit 2 on bad input.
"""
import argparse
import json
import pathlib
import subprocess
import sys

CASES = ["shutdown_order", "dropped_writer", "early_writer_drop", "inline_repoll"]


def run(binary, runner, variant, iterations, mode="natural"):
    out = subprocess.run([str(binary), "--runner", runner, "--variant", variant, "--mode", mode,
                          "--iterations", str(iterations)], capture_output=True, text=True, timeout=600)
    if out.returncode not in (0, 3):
        raise RuntimeError(f"{binary.name} --runner {runner} --variant {variant}: exit "
                           f"{out.returncode}: {out.stderr.strip()[:200]}")
    r = json.loads(out.stdout)
    failures = sum(n for k, n in r["outcomes"].items() if k != "ok")
    return r["iterations_per_s"], failures, r["done"] if "done" in r else r["iterations"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--real", default="epoll")
    ap.add_argument("--sim-iterations", type=int, default=2000)
    ap.add_argument("--real-iterations", type=int, default=300)
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    if a.rounds < 1 or a.sim_iterations < 1 or a.real_iterations < 1:
        print("bench_sim: --rounds and iterations must be at least 1", file=sys.stderr)
        sys.exit(2)
    bins = pathlib.Path(a.build) / "bin"
    missing = [c for c in CASES if not (bins / c).exists()]
    if missing:
        print(f"bench_sim: no {bins / missing[0]} (make first)", file=sys.stderr)
        sys.exit(2)
    listed = json.loads(subprocess.run([str(bins / CASES[0]), "--list"], capture_output=True,
                                       text=True).stdout)["runners"]
    # Each loop under the scheduler beside the same loop running naturally.
    pairs = [(r["name"], r["name"][:-len("_ctl")]) for r in listed
             if r["deterministic"] and r["name"].endswith("_ctl")]
    ctl_head = "".join(f" {c + '/s':>15} {b + '/s':>11}" for c, b in pairs)
    print(f"{'cell':34} {'sim/s':>8} {a.real + '/s':>9} {'ratio':>6}{ctl_head}   "
          f"failures (sim, {a.real})")
    for case in CASES:
        listing = json.loads(subprocess.run([str(bins / case), "--list"], capture_output=True,
                                            text=True).stdout)
        for v in (x["name"] for x in listing["variants"]):
            best = {}
            runners = [("sim", a.sim_iterations), (a.real, a.real_iterations)]
            runners += [(r, a.real_iterations) for pair in pairs for r in pair if r != a.real]
            for _ in range(a.rounds):
                for runner, n in runners:
                    rate, fails, done = run(bins / case, runner, v, n)
                    if rate > best.get(runner, (0,))[0]:
                        best[runner] = (rate, fails, done)
            s, r = best["sim"], best[a.real]
            ctl = "".join(f" {best[c][0]:15.0f} {best[b][0]:11.0f}" for c, b in pairs)
            print(f"{case + '.' + v:34} {s[0]:8.0f} {r[0]:9.0f} {s[0] / r[0]:6.1f}{ctl}   "
                  f"{s[1]}/{s[2]}, {r[1]}/{r[2]}", flush=True)

    # Reproductions per second of shutdown_order's bug: sim with pct (its chaos mode)
    # beside natural on every real runner (failures / wall seconds, best of the rounds).
    print(f"\n{'shutdown_order.buggy':34} {'mode':>8} {'rate':>8} {'it/s':>8} {'repro/s':>8}")
    listing = json.loads(subprocess.run([str(bins / "shutdown_order"), "--list"],
                                        capture_output=True, text=True).stdout)
    reals = [r["name"] for r in listing["runners"] if not r["deterministic"]]
    for runner, mode, n in [("sim", "chaos", a.sim_iterations)] + [(r, "natural", 2 * a.real_iterations) for r in reals]:
        best = max((run(bins / "shutdown_order", runner, "buggy", n, mode) for _ in range(a.rounds)),
                   key=lambda x: x[1] / x[2] * x[0])
        rate, fails, done = best
        print(f"{'  on ' + runner:34} {mode:>8} {fails / done * 100:7.2f}% {rate:8.0f} "
              f"{fails / done * rate:8.1f}", flush=True)


if __name__ == "__main__":
    main()
