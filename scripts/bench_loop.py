"""bench_loop.py: what `asyncrace loop` costs per process, beside a bash loop, in one run.

    /usr/bin/python3 scripts/bench_loop.py [--iterations 2000] [--rounds 3] [--tree DIR]...
                                           [-- CMD ...]

Runs CMD (default /bin/true) --iterations times through `python3 -m asyncrace loop` (one
process per iteration) and through a bash `for` loop, alternating, --rounds times each,
and keeps the best of each: on a shared machine the worst rounds measure the neighbours.
--tree names another checkout whose `loop` is measured in the same rounds (an older
commit, for before and after in one run).
Prints runs per second for both and the harness's cost per process in milliseconds. The
loop's rate is its cell's iterations over the wall time of the whole command (start-up,
discovery and report included).

A benchmark, not a test: it asserts nothing. Exit 2 on bad input.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def through_loop(command: list[str], n: int, tree: Path = ROOT) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "asyncrace", "loop", "--iterations", str(n),
                               "--progress", "off", "--results-dir", tmp, "--name", "bench",
                               "--", *command], cwd=tree, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(tree / "harness")})
        wall = time.monotonic() - began
        if done.returncode not in (0, 1):
            sys.exit(f"bench_loop: loop exited {done.returncode}: {done.stderr.strip()[:300]}")
        summary = json.loads((Path(tmp) / "latest" / "summary.json").read_text())
        (cell,) = summary["cells"].values()
        if cell["iterations"] != n:
            sys.exit(f"bench_loop: loop ran {cell['iterations']} of {n} iterations")
    return n / wall


def through_bash(command: list[str], n: int) -> float:
    script = f"for ((i = 0; i < {n}; i++)); do {shlex.join(command)}; done"
    began = time.monotonic()
    subprocess.run(["bash", "-c", script], check=True, capture_output=True)
    return n / (time.monotonic() - began)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", type=Path, action="append", default=[])
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    command = command or ["/bin/true"]
    if a.iterations < 1 or a.rounds < 1:
        print("bench_loop: --iterations and --rounds must be at least 1", file=sys.stderr)
        sys.exit(2)
    trees = [ROOT, *(t.resolve() for t in a.tree)]
    best = {t: 0.0 for t in trees}
    best_bash = 0.0
    for _ in range(a.rounds):
        for t in trees:
            best[t] = max(best[t], through_loop(command, a.iterations, t))
        best_bash = max(best_bash, through_bash(command, a.iterations))
    print(f"{shlex.join(command)}: bash loop {best_bash:,.0f} runs/s "
          f"(best of {a.rounds} rounds of {a.iterations:,})")
    for t in trees:
        overhead_ms = (1 / best[t] - 1 / best_bash) * 1000
        print(f"  asyncrace loop in {t}: {best[t]:,.0f} runs/s ({best[t] / best_bash:.0%} of "
              f"bash); the harness costs {overhead_ms:.2f} ms a process")


if __name__ == "__main__":
    main()
