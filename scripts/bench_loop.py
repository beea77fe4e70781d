"""bench_loop.py: what `asyncrace loop` costs per process, beside a bash loop, in one run.

    /usr/bin/python3 scripts/bench_loop.py [--iterations 2000] [--rounds 3] [-- CMD ...]

Runs CMD (default /bin/true) --iterations times through `python3 -m asyncrace loop` (one
process per iteration) and through a bash `for` loop, alternating, --rounds times each,
and keeps the best of each: on a shared machine the worst rounds measure the neighbours.
Prints runs per second for both and the harness's cost per process in milliseconds. The
loop's rate is its cell's iterations over the wall time of the whole command (start-up,
discovery and report included).

A benchmark, not a test: it asserts nothing. Exit 2 on bad input.
"""
import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def through_loop(command: list[str], n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "asyncrace", "loop", "--iterations", str(n),
                               "--progress", "off", "--results-dir", tmp, "--name", "bench",
                               "--", *command], cwd=ROOT, capture_output=True, text=True)
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
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    command = command or ["/bin/true"]
    if a.iterations < 1 or a.rounds < 1:
        print("bench_loop: --iterations and --rounds must be at least 1", file=sys.stderr)
        sys.exit(2)
    best_loop = best_bash = 0.0
    for _ in range(a.rounds):
        best_loop = max(best_loop, through_loop(command, a.iterations))
        best_bash = max(best_bash, through_bash(command, a.iterations))
    overhead_ms = (1 / best_loop - 1 / best_bash) * 1000
    print(f"{shlex.join(command)}: asyncrace loop {best_loop:,.0f} runs/s, bash loop "
          f"{best_bash:,.0f} runs/s ({best_loop / best_bash:.0%} of bash); the harness costs "
          f"{overhead_ms:.2f} ms a process (best of {a.rounds} rounds of {a.iterations:,})")


if __name__ == "__main__":
    main()
