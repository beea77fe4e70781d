"""python -m asyncrace search REPRODUCER: a declared reproducer's search under the preloaded
scheduler (docs/preload.md), one process per schedule, its state carried from process to
process, until its first program is searched to its end, a schedule fails, or --cap.

What a fix's proof on real code looks like: the unmodified program and its runtime (tokio,
pthreads, libc), every schedule within the bound run once. The first failing schedule is
captured as a `_ctl` cell's is (schedule.json and replay.sh, checked by one replay) and the
search stops there: the fix is not proven.
"""
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

from . import external
from .controlled import capture
from .external import DeclarationError
from .matrix import declaration_files
from .program import ProgramError
from .results import atomic_write_json
from .search import FORMAT, Part, SearchError, total_line

SEED = 1                      # the program's seed: what it draws (getrandom, ...) is fixed by it
PROGRESS_S = 60.0


def find(name: str) -> external.Reproducer | None:
    for path in declaration_files():
        try:
            found = external.load(path)
        except DeclarationError as e:
            raise SearchError(str(e)) from None
        for rep in found:
            if rep.name == name:
                return rep
    return None


def invocation(rep: external.Reproducer, variant: str, strategy: str, bound: int | str):
    if rep.control is None:
        raise SearchError(f"{rep.name}: no [reproducer.control] in {rep.source}: its search "
                          f"runs under the preloaded scheduler (docs/preload.md)")
    v = next((v for v in rep.variants if v.name == variant), None)
    if v is None:
        raise SearchError(f"{rep.name}: no variant {variant!r} (it has "
                          f"{', '.join(v.name for v in rep.variants)})")
    inv = external.controlled_invocation(rep, v, "exhaustive", SEED, rep.outcomes())
    inv = replace(inv, strategy=strategy, bound=bound)
    program = Path(inv.argv(0, 1)[0])
    if not program.is_file():           # what its build needs matters only when it is not built
        unmet = "; ".join(n.text() for n in rep.unmet())
        raise SearchError(f"{program} is not built: " + (unmet or "run python3 -m asyncrace build"))
    return inv, program


def search(name: str, variant: str, strategy: str, bound: int | str, out: Path,
           cap: int | None) -> int:
    rep = find(name)
    if rep is None:
        raise SearchError(f"{name}: no case program build/bin/{name} (make builds them) and no "
                          f"reproducer of that name in "
                          f"{', '.join(str(p) for p in declaration_files())}")
    inv, program = invocation(rep, variant, strategy, bound)
    build = hashlib.sha256(program.read_bytes()).hexdigest()
    stem = f"{name}.{variant}.{strategy}.b{bound}"
    began = last = time.monotonic()
    schedules, failing, exhausted = 0, None, False
    with tempfile.TemporaryDirectory(prefix="asyncrace-search-") as tmp:
        state, schedule = Path(tmp) / "search.state", Path(tmp) / "schedule.json"
        while not exhausted and failing is None and (cap is None or schedules < cap):
            try:
                res, done = inv.run_one({**os.environ, **inv.env_for(schedules)},
                                        schedule=schedule, state=state)
            except ProgramError as e:
                raise SearchError(str(e)) from None
            outcome, detail = inv.outcome_of(res, done)
            schedules += 1
            exhausted = bool(res.get("exhausted"))
            if outcome != "ok":         # a process killed before it wrote one has no schedule
                failing = (schedules, outcome, detail, schedule.is_file() and capture(
                    SimpleNamespace(inv=inv, cell=stem, iteration=schedules - 1,
                                    outcome=outcome, schedule=schedule), out / f"{stem}.failure"))
            if time.monotonic() - last >= PROGRESS_S:
                last = time.monotonic()
                print(f"{stem}: {schedules:,} schedules, {last - began:.0f} s", file=sys.stderr,
                      flush=True)
    part = Part(FORMAT, name, variant, strategy, bound, None, 1, 1, SEED, build, schedules, 0,
                int(failing is not None), exhausted and failing is None,
                round(time.monotonic() - began, 1))
    atomic_write_json(out / f"{stem}.part-1-of-1.json", asdict(part))
    print(total_line(part, {"schedules": schedules, "failures": part.failures,
                            "exhausted": part.exhausted, "longest_part_s": part.seconds}))
    if failing:
        at, outcome, detail, info = failing
        kept = ("no schedule kept: the process was killed before it wrote one" if not info
                else f"Replay: {info['replay_sh']}" + ("" if info["reproduced"] else
                                                         f" (not replayed the same: {info['notes']})"))
        print(f"schedule {at:,} failed ({outcome}{': ' + detail if detail else ''}); the "
              f"search stopped there. {kept}")
    return 0 if part.exhausted else 1

