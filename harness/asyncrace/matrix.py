"""The cells, asked from the programs themselves (``build/bin/<case> --list``).

Every executable in build/bin/ is a case program; tools (conformance, selftest) live in
build/tools/. Nothing here lists cases, variants or expectations a second time.
"""
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .judge import Expectation
from .program import Invocation, ProgramError, run_batch

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
BIN = BUILD / "bin"
SELFTEST = BUILD / "tools" / "selftest"
SANITIZER_BIN = {"asan": BUILD / "asan" / "bin", "tsan": BUILD / "tsan" / "bin"}
LIST_TIMEOUT_S = 30


@dataclass(frozen=True)
class Cell:
    case: str
    runner: str
    variant: str
    mode: str
    expect: Expectation
    program: Path
    outcomes: tuple[str, ...]
    order: tuple[int, int, int]   # variant, runner, mode positions in --list, for tables

    @property
    def id(self) -> str:
        """The one identity: pytest id, result file, capture folder."""
        return f"{self.case}.{self.runner}.{self.variant}.{self.mode}"

    def invocation(self, seed: int, program: Path | None = None) -> Invocation:
        """program: another build of the same case (build/asan/bin/<case>)."""
        return Invocation(program or self.program, self.runner, self.variant, self.mode,
                          seed, self.outcomes)


@dataclass(frozen=True)
class DiscoveryError:
    """A program whose --list could not be read: reported as a failure, never skipped."""
    program: Path
    message: str


def case_programs(bin_dir: Path = BIN) -> list[Path]:
    if not bin_dir.is_dir():
        return []
    return sorted(p for p in bin_dir.iterdir()
                  if p.is_file() and os.access(p, os.X_OK) and not p.name.startswith("."))


def describe(program: Path) -> dict:
    """The program's --list JSON."""
    try:
        done = subprocess.run([str(program), "--list"], capture_output=True, text=True,
                              timeout=LIST_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ProgramError(f"{program} --list: {e}") from e
    if done.returncode != 0:
        raise ProgramError(f"{program} --list exited {done.returncode}: {done.stderr.strip()[:300]}")
    try:
        description = json.loads(done.stdout)
        description["case"], description["variants"], description["cells"]
    except (ValueError, KeyError, TypeError) as e:
        raise ProgramError(f"{program} --list printed no description ({e}): {done.stdout[:300]!r}") from e
    return description


def cells_of(program: Path, description: dict) -> list[Cell]:
    """The cells the program enumerates itself (--list, contract 2)."""
    outcomes = tuple(description["outcomes"])
    variants = [v["name"] for v in description["variants"]]
    runners = [r["name"] for r in description["runners"]]
    modes = [m["name"] for m in description["modes"]]
    cells = []
    for c in description["cells"]:
        e = c["expect"]
        cells.append(Cell(description["case"], c["runner"], c["variant"], c["mode"],
                          Expectation(e["kind"], e.get("outcome", "ok")), program, outcomes,
                          (variants.index(c["variant"]), runners.index(c["runner"]),
                           modes.index(c["mode"]))))
    return cells


def discover(bin_dir: Path = BIN) -> tuple[list[Cell], list[DiscoveryError]]:
    cells: list[Cell] = []
    errors: list[DiscoveryError] = []
    for program in case_programs(bin_dir):
        try:
            cells += cells_of(program, describe(program))
        except (ProgramError, KeyError, TypeError) as e:
            errors.append(DiscoveryError(program, f"cannot read {program.name}'s cells: {e}"))
    return cells, errors


def select(cells: list[Cell], runners: list[str] | None = None,
           cases: list[str] | None = None) -> list[Cell]:
    """The cells of those runners and cases; a name that matches nothing is a ValueError."""
    for wanted, have, what in ((runners, {c.runner for c in cells}, "runner"),
                               (cases, {c.case for c in cells}, "case")):
        unknown = sorted(set(wanted or ()) - have)
        if unknown:
            raise ValueError(f"unknown {what} {', '.join(unknown)}; built: "
                             f"{', '.join(sorted(have)) or 'none (run make)'}")
    return [c for c in cells
            if (not runners or c.runner in runners) and (not cases or c.case in cases)]


def runner_versions(cells: list[Cell], seed: int) -> dict[str, str]:
    """Each runner's library version, from one iteration's report (--list has only names).
    Prefers a never cell so the iteration is quick and quiet."""
    versions: dict[str, str] = {}
    for cell in sorted(cells, key=lambda c: c.expect.kind != "never"):
        if cell.runner in versions:
            continue
        try:
            batch = run_batch(cell.invocation(seed), 0, 1)
        except ProgramError as e:
            versions[cell.runner] = f"unknown ({e})".splitlines()[0]
            continue
        versions[cell.runner] = (batch.report or {}).get("runner_version", "unknown")
    return versions


NO_PROGRAMS = f"no case programs in {BIN.relative_to(ROOT)}/: run `make` first"
