"""python -m asyncrace search: one exhaustive search of a case's first program, whole or
in parts (--shard K/N of the case program: docs/sim.md, Sharding), and the sum of parts
searched on other machines.

A part runs in batches carried by --search-state (a batch's progress is saved, and a part
can be watched), each stopping with the first program (--programs 1), until that program is
searched to its end or --cap schedules ran.
"""
import hashlib
import json
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .controlled import SEARCHES
from .paths import ROOT
from .results import atomic_write_json

STRATEGIES = SEARCHES
IN_PARTS = ("dfs", "dfs-sleep", "delay")   # dpor's frames above any cut learn from every subtree
FORMAT = "asyncrace-search-part/1"


class SearchError(Exception):
    """Bad input or parts that do not add up: one line."""


def bound(text: str) -> int | str:
    """--bound: 0 to 16, or none (unbounded)."""
    if text == "none":
        return text
    if text.isdigit() and int(text) <= 16:
        return int(text)
    raise ValueError(text)


@dataclass
class Part:
    format: str
    case: str
    variant: str
    strategy: str
    bound: int | str          # or none
    workers: int | None
    shard: int                # 1..shards
    shards: int
    seed: int                 # the program's: parts of one search share it
    build: str                # the case program's sha256: and its build
    schedules: int            # run by this part, foreign ones included
    foreign: int              # another part's (one per subtree of it)
    failures: int
    exhausted: bool
    seconds: float

    @property
    def own(self) -> int:
        return self.schedules - self.foreign

    def key(self) -> tuple:
        return (self.case, self.variant, self.strategy, self.bound, self.workers, self.seed,
                self.build, self.shards)


def _batch(program: Path, args: list[str], start: int, n: int, state: Path) -> dict:
    done = subprocess.run([str(program), *args, "--start", str(start), "--iterations", str(n),
                           "--search-state", str(state), "--programs", "1"],
                          capture_output=True, text=True,
                          cwd=ROOT, stdin=subprocess.DEVNULL)
    if done.returncode not in (0, 3):
        line = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise SearchError(f"{program.name}: {line}")
    return json.loads(done.stdout.splitlines()[-1])["sim"]


def search_part(case: str, variant: str, strategy: str, bound: int, workers: int | None,
                shard: int, shards: int, scratch: Path, batch: int = 500_000,
                cap: int | None = None) -> Part:
    """Part shard of shards (1, 1: the whole) of the first program's search."""
    program = ROOT / "build" / "bin" / case
    if not program.exists():
        raise SearchError(f"{program} is not built: run make")
    args = ["--runner", "sim", "--variant", variant, "--mode", "exhaustive",
            "--strategy", strategy, "--bound", str(bound)]
    args += ["--workers", str(workers)] if workers else []
    args += ["--shard", f"{shard}/{shards}"] if shards > 1 else []
    state = scratch / f"part-{shard}-of-{shards}.state"
    scratch.mkdir(parents=True, exist_ok=True)
    state.unlink(missing_ok=True)
    build = hashlib.sha256(program.read_bytes()).hexdigest()
    began, start = time.monotonic(), 0
    while True:
        n = batch if cap is None else min(batch, cap - start)
        sim = _batch(program, args, start, n, state)
        if sim["rerun"]:              # each batch would run every earlier one again
            raise SearchError(f"{case}: the search state of the batch before was refused "
                              f"(was {program.name} rebuilt meanwhile?)")
        p = sim["programs"][0]
        start += n
        if p["exhausted"] or start == cap:
            state.unlink(missing_ok=True)
            return Part(FORMAT, case, variant, strategy, bound, workers, shard, shards,
                        p["seed"], build, p["schedules"], p.get("foreign", 0), p["failures"],
                        p["exhausted"], round(time.monotonic() - began, 1))


def load_part(path: Path) -> Part:
    try:
        part = Part(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise SearchError(f"{path}: not a search part ({e})") from None
    if part.format != FORMAT:
        raise SearchError(f"{path}: format {part.format!r}, expected {FORMAT!r}")
    return part


def add_up(parts: list[Part]) -> dict:
    """The whole search from its parts: every part of one search, each once."""
    if not parts:
        raise SearchError("no parts")
    keys = {p.key() for p in parts}
    if len(keys) > 1:
        raise SearchError(f"parts of different searches: {sorted(keys, key=str)}")
    shards = parts[0].shards
    seen = sorted(p.shard for p in parts)
    if seen != list(range(1, shards + 1)):
        twice = sorted({k for k in seen if seen.count(k) > 1})
        missing = sorted(set(range(1, shards + 1)) - set(seen))
        raise SearchError(f"parts of {shards}: missing {missing or 'none'}, twice "
                          f"{twice or 'none'}")
    return {"schedules": sum(p.own for p in parts), "failures": sum(p.failures for p in parts),
            "exhausted": all(p.exhausted for p in parts),
            "longest_part_s": max(p.seconds for p in parts)}


def part_line(p: Part) -> str:
    end = "searched to its end" if p.exhausted else "NOT searched to its end"
    return (f"part {p.shard}/{p.shards}: {p.schedules:,} schedules ({p.foreign:,} foreign), "
            f"own {p.own:,}, {end}, {p.failures} failing, {p.seconds} s")


def total_line(p: Part, whole: dict) -> str:
    end = "searched to its end" if whole["exhausted"] else "NOT searched to its end"
    workers = f", {p.workers} workers" if p.workers else ""
    return (f"{p.case}.{p.variant} {p.strategy} bound {p.bound}{workers}, program seed "
            f"{p.seed}: {whole['schedules']:,} schedule{'s' if whole['schedules'] != 1 else ''}, {end}, {whole['failures']} failing"
            f" ({p.shards} part{'s' if p.shards > 1 else ''}, the longest "
            f"{whole['longest_part_s']} s)")


def run(case: str, variant: str, strategy: str, bound: int, workers: int | None,
        shards: int, only: int | None, jobs: int, out: Path, cap: int | None,
        batch: int = 500_000) -> int:
    if shards > 1 and strategy not in IN_PARTS:
        raise SearchError(f"--strategy {strategy}: a search in parts is one of "
                          f"{', '.join(IN_PARTS)}")
    wanted = [only] if only else list(range(1, shards + 1))
    scratch = out / ".scratch"

    def one(k: int) -> Part:
        part = search_part(case, variant, strategy, bound, workers, k, shards,
                           scratch / str(k), batch=batch, cap=cap)
        atomic_write_json(out / f"{case}.{variant}.{strategy}.b{bound}.part-{k}-of-{shards}.json",
                          asdict(part))
        print(part_line(part), flush=True)
        return part

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        parts = list(pool.map(one, wanted))
    shutil.rmtree(scratch, ignore_errors=True)
    if only:
        return 1 if parts[0].failures else 0
    whole = add_up(parts)
    print(total_line(parts[0], whole))
    return 1 if whole["failures"] or not whole["exhausted"] else 0


def add_files(paths: list[Path]) -> int:
    parts = [load_part(p) for p in paths]
    whole = add_up(parts)
    for p in sorted(parts, key=lambda p: p.shard):
        print(part_line(p))
    print(total_line(parts[0], whole))
    return 1 if whole["failures"] or not whole["exhausted"] else 0
