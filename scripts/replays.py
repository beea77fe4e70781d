"""replays.py: does a captured failure come back, exactly, in fresh processes?

    /usr/bin/python3 scripts/replays.py [--times 10] [--runner NAME ...] [--only CASE]

For each case and each runner the scheduler owns in this build (sim, and the *_ctl
ones), captures the buggy variant's first failure under chaos (pct), then replays its
schedule file --times times, each in a fresh process, and compares each replay's race
log byte for byte with the one recorded at the failure. Prints one line per case and
runner: replays that reproduced the outcome without diverging, and identical logs.
A measurement, not a test (cases/test_sim.py tests three replays per case); exit 1 if
any replay differed, 2 on bad input.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from programs import BIN, CASES, unbuilt


def report(*args: str) -> dict:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(map(str, args))}: exit {done.returncode}: {done.stderr[:300]}")
    return json.loads(done.stdout.splitlines()[-1])


def owned_runners(case: str) -> list:
    listed = json.loads(subprocess.run([str(BIN / case), "--list"], capture_output=True,
                                       text=True, check=True).stdout)
    return [r["name"] for r in listed["runners"] if r["deterministic"]]


def check(case: str, runner: str, times: int, work: Path) -> tuple:
    program = BIN / case
    first = report(program, "--runner", runner, "--variant", "buggy", "--mode", "chaos",
                   "--iterations", "2000", "--schedules", work)
    ff = first["first_failure"]
    if not ff or not ff.get("schedule"):
        return None, f"no failure in 2000 chaos schedules"
    schedule = Path(ff["schedule"])
    recorded = Path(f"{schedule}.race-log.txt").read_text()
    reproduced = same_log = 0
    for k in range(times):
        log = work / f"replay.{k}.log"
        r = report(program, "--runner", runner, "--variant", "buggy", "--mode", "chaos",
                   "--schedule", schedule, "--race-log", log)
        replay = r["sim"]["replay"]
        reproduced += bool(replay["reproduced"] and not replay["diverged"] and
                           r["first_failure"]["outcome"] == ff["outcome"])
        same_log += log.read_text() == recorded
    return (reproduced, same_log), f"schedule {ff['iteration'] + 1}, {ff['outcome']}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--times", type=int, default=10)
    ap.add_argument("--runner", action="append")
    ap.add_argument("--only", action="append")
    a = ap.parse_args()
    cases = a.only or CASES
    if a.times < 1 or any(c not in CASES for c in cases):
        print(f"replays: --times must be at least 1 and --only one of {', '.join(CASES)}",
              file=sys.stderr)
        return 2
    if unbuilt(cases):
        print(f"replays: no {unbuilt(cases)} (run make)", file=sys.stderr)
        return 2
    bad = False
    for case in cases:
        runners = owned_runners(case)
        for runner in a.runner or runners:
            if runner not in runners:
                print(f"replays: {runner} is not a runner the scheduler owns in this build "
                      f"({', '.join(runners)})", file=sys.stderr)
                return 2
            with tempfile.TemporaryDirectory() as d:
                counts, what = check(case, runner, a.times, Path(d))
            if counts is None:
                print(f"{case} on {runner}: {what}")
                bad = True
                continue
            print(f"{case} on {runner}: {what}; {counts[0]}/{a.times} replays reproduced it, "
                  f"{counts[1]}/{a.times} race logs identical to the recorded one")
            bad |= counts != (a.times, a.times)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
