"""The cells: asked from the programs themselves (``build/bin/<case> --list``) and read
from cases/external.toml. Nothing here lists cases, variants, modes, runners or
expectations a second time: each program enumerates its own cells.

Every executable in build/bin/ is a case program; tools (conformance, selftest) live in
build/tools/.
"""
import json
import os
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import contract, external
from .contract import ContractError, Description, StatusLayout
from .external import DeclarationError, ExternalVariant, Reproducer
from .judge import NEVER, Expectation
from .paths import BIN, EXTERNAL, ROOT, shown
from .program import ContractInvocation, Invocation, ProgramError

LIST_TIMEOUT_S = 30


@dataclass(frozen=True)
class Cell:
    case: str
    runner: str
    variant: str
    mode: str
    expect: Expectation
    twin: str | None                 # the variant a never cell's variant fixes
    order: tuple[int, int, int]      # variant, runner, mode positions in its declaration
    outcomes: tuple[str, ...]
    program: Path | None = None      # a case program of build/bin
    layout: StatusLayout | None = None
    reproducer: Reproducer | None = None   # or an external reproducer's variant
    ext_variant: ExternalVariant | None = None
    deterministic: bool = False      # its runner owns the schedule (sim): schedules, replay
    search: bool = False             # its mode searches every schedule in a bound
    twin_kind: str | None = None     # what the twin cell must show (its expect.kind)
    controlled: bool = False         # an external reproducer under the preloaded scheduler

    @property
    def id(self) -> str:
        """The one identity: pytest id, result file, capture folder."""
        return f"{self.case}.{self.runner}.{self.variant}.{self.mode}"

    @property
    def twin_id(self) -> str | None:
        return None if self.twin is None else f"{self.case}.{self.runner}.{self.twin}.{self.mode}"

    @property
    def source(self) -> str:
        return self.reproducer.source if self.reproducer else shown(self.program)

    def invocation(self, seed: int, program: Path | None = None,
                   workdir: Path | None = None) -> Invocation:
        """program: another build of the same case (build/asan/bin/<case>); workdir: where
        an external reproducer runs (its scratch copy)."""
        if self.reproducer is not None and self.controlled:
            return external.controlled_invocation(self.reproducer, self.ext_variant, self.mode,
                                                  seed, self.outcomes, workdir)
        if self.reproducer is not None:
            return external.invocation(self.reproducer, self.ext_variant, seed, self.outcomes,
                                       self.layout, workdir)
        return ContractInvocation(program or self.program, self.runner, self.variant, self.mode,
                                  seed, self.outcomes, self.layout)

    def skip_reason(self) -> str | None:
        """An external reproducer whose needs are not met: the one sanctioned skip."""
        if self.reproducer is None:
            return None
        unmet = self.reproducer.unmet()
        return "; ".join(f"{self.reproducer.name}: {n.text()}" for n in unmet) or None


@dataclass(frozen=True)
class DiscoveryError:
    """A program whose --list could not be read: reported as a failure, never skipped."""
    program: Path
    message: str


@dataclass
class Catalog:
    cells: list[Cell] = field(default_factory=list)
    errors: list[DiscoveryError] = field(default_factory=list)
    runners: list[str] = field(default_factory=list)       # in declaration order
    modes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    programs: list[Path] = field(default_factory=list)
    reproducers: list[Reproducer] = field(default_factory=list)
    declaration_error: str | None = None                   # one line; then nothing runs

    def add_order(self, runners, modes) -> None:
        self.runners += [r for r in runners if r not in self.runners]
        self.modes += [m for m in modes if m not in self.modes]


def case_programs(bin_dir: Path = BIN) -> list[Path]:
    if not bin_dir.is_dir():
        return []
    return sorted(p for p in bin_dir.iterdir()
                  if p.is_file() and os.access(p, os.X_OK) and not p.name.startswith("."))


def describe(program: Path) -> Description:
    """The program's --list, checked against the contract."""
    try:
        done = subprocess.run([str(program), "--list"], capture_output=True, text=True,
                              timeout=LIST_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ProgramError(f"{program} --list: {e}") from e
    if done.returncode != 0:
        raise ProgramError(f"{program} --list exited {done.returncode}: {done.stderr.strip()[:300]}")
    try:
        listed = json.loads(done.stdout)
    except ValueError as e:
        raise ProgramError(f"{program} --list printed no JSON ({e}): {done.stdout[:300]!r}") from e
    try:
        return contract.parse(listed)
    except ContractError as e:
        raise ProgramError(f"{program} --list: {e}") from e


def with_twin_kinds(cells: list[Cell]) -> list[Cell]:
    kinds = {c.id: c.expect.kind for c in cells}
    return [replace(c, twin_kind=kinds.get(c.twin_id)) if c.twin else c for c in cells]


def cells_of(program: Path, d: Description) -> list[Cell]:
    variants = {v.name: (i, v) for i, v in enumerate(d.variants)}
    runners = [r.name for r in d.runners]
    deterministic = {r.name for r in d.runners if r.deterministic}
    cells = []
    for spec in d.cells:
        v_pos, variant = variants[spec.variant]
        cells.append(Cell(d.case, spec.runner, spec.variant, spec.mode,
                          Expectation(spec.kind, spec.outcome, spec.why), variant.twin,
                          (v_pos, runners.index(spec.runner), d.modes.index(spec.mode)),
                          d.outcomes, program=program, layout=d.status,
                          deterministic=spec.runner in deterministic,
                          search=spec.mode in d.search_modes))
    return with_twin_kinds(cells)


def external_cells(rep: Reproducer, layout: StatusLayout | None) -> list[Cell]:
    """Each variant's cell; with [control], also one per control mode under the scheduler
    (runner <runner>_ctl: the schedule is the scheduler's, replayed exactly)."""
    native = rep.control is None or rep.control.native
    cells = [Cell(rep.name, rep.runner, v.name, rep.mode,
                  Expectation(v.kind, v.outcome, any_of=v.any_of), v.twin, (i, 0, 0),
                  rep.outcomes(), layout=layout, reproducer=rep, ext_variant=v)
             for i, v in enumerate(rep.variants) if native]
    if rep.control:
        cells += [Cell(rep.name, controlled_runner(rep), v.name, mode,
                       Expectation(v.kind, v.outcome, any_of=v.any_of), v.twin, (i, 1, m),
                       rep.outcomes(), reproducer=rep, ext_variant=v, deterministic=True,
                       search=mode == "exhaustive", controlled=True)
                  for i, v in enumerate(rep.variants) for m, mode in enumerate(rep.control.modes)]
    return with_twin_kinds(cells)


def controlled_runner(rep: Reproducer) -> str:
    return f"{rep.runner}_ctl"


def declaration_files() -> list[Path]:
    """cases/external.toml, then each file ASYNCRACE_EXTERNAL names (os.pathsep between
    them): a user's own reproducers are added to the project's, never put in its place."""
    extra = [Path(p) for p in os.environ.get("ASYNCRACE_EXTERNAL", "").split(os.pathsep) if p]
    return [EXTERNAL, *(p.resolve() for p in extra)]


def discover(bin_dir: Path = BIN, declarations: list[Path] | None = None) -> Catalog:
    """declarations: the files to read reproducers from (default: declaration_files());
    [] for none."""
    catalog = Catalog()
    layout = None
    for program in case_programs(bin_dir):
        catalog.programs.append(program)
        try:
            d = describe(program)
        except ProgramError as e:
            catalog.errors.append(DiscoveryError(program, f"cannot read {program.name}'s cells: {e}"))
            continue
        if layout is None:
            layout = d.status
        catalog.cells += cells_of(program, d)
        catalog.add_order([r.name for r in d.runners], d.modes)
        catalog.versions.update({r.name: r.version for r in d.runners})
        if not d.cells:
            catalog.errors.append(DiscoveryError(program, f"{program.name} --list names no cells"))
    taken = {c.case for c in catalog.cells}
    for path in declaration_files() if declarations is None else declarations:
        try:
            found = external.load(path)
        except DeclarationError as e:
            catalog.declaration_error = str(e)
            return catalog
        for rep in found:
            if rep.name in taken:
                catalog.declaration_error = (f"{rep.source}: reproducer {rep.name}: name: a case "
                                             f"program of {shown(bin_dir)} or another "
                                             f"declaration has that name")
                return catalog
            taken.add(rep.name)
            catalog.reproducers.append(rep)
            catalog.cells += external_cells(rep, layout)
            if rep.control is None or rep.control.native:
                catalog.add_order([rep.runner], [rep.mode])
                catalog.versions.setdefault(rep.runner, external.runner_text(rep))
            if rep.control:
                catalog.add_order([controlled_runner(rep)], rep.control.modes)
                catalog.versions.setdefault(controlled_runner(rep), CONTROLLED_TEXT)
    return catalog


CONTROLLED_TEXT = "under the preloaded scheduler, a process per schedule"


def select(cells: list[Cell], runners: list[str] | None = None,
           cases: list[str] | None = None) -> list[Cell]:
    """The cells of those runners and cases; a name that matches nothing is a ValueError."""
    for wanted, have, what in ((runners, {c.runner for c in cells}, "runner"),
                               (cases, {c.case for c in cells}, "case")):
        unknown = sorted(set(wanted or ()) - have)
        if unknown:
            raise ValueError(f"unknown {what} {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(have)) or 'none (run make)'}")
    return [c for c in cells
            if (not runners or c.runner in runners) and (not cases or c.case in cases)]


def twins_first(cells: list[Cell]) -> list[Cell]:
    """Never cells after the others, so a never cell sized from its twin's rate finds the
    twin already measured in this run."""
    return sorted(cells, key=lambda c: c.expect.kind == NEVER)


NO_PROGRAMS = f"no case programs in {BIN.relative_to(ROOT)}/: run `make` first"
