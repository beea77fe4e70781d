"""python -m asyncrace: run the matrix, list it, pin it, replay a capture, compare, merge,
loop any command, build the external reproducers.

    run [--case NAME] [--runner R] [--shard K/N] [--profile quick|nightly] [--iterations N]
        [--seconds S] [--seed S] [--results-dir D] [--capture-failures] [--baseline F]
        [--progress auto|live|lines|off]
        one line per cell, then matrix.md; the last line is report.html's path; exit 1
        when a cell failed its expectation or the baseline comparison found a regression
    list [--case NAME] [--runner R] [--shard K/N]   the cells and what each must show
    pin                               rewrite cases/cells.txt from the discovered cells and
                                      print the difference
    reference [--from RUN] [--case NAME] [--runner R]
                                      measure the sometimes cells long (profile reference)
                                      or read a finished run, rewrite cases/rates.txt, print
                                      the difference
    replay DIR [--attempts N]         re-run a captured iteration; exit 0 if the same
                                      outcome came back
    explain PATH                      a failing schedule (sim's, or a program's under the
                                      preloaded scheduler: a capture folder or a schedule
                                      file) cut down to the decisions it turns on, each with
                                      its stack; writes the minimal schedule beside it
    compare NEW OLD                   summary.json files (or run folders); exit 1 on
                                      regression or rot
    merge DIR... [--into DIR] [--baseline F]   fold shards and repeats into one run
    loop [options] -- CMD ...         loop a command declared nowhere, with intervals and a
                                      results folder; --control: under the preloaded
                                      scheduler, its failures as schedules that replay
    build                             run the build steps of cases/external.toml
    search CASE --variant V [--strategy dfs|dfs-sleep|dpor|delay] [--bound P|none]
        [--workers W] [--shards N [--jobs J] | --shard K/N] [--out DIR] [--batch N] [--cap N]
                                      the first program's search to its end, whole or in
                                      parts (one per machine); exit 1 on a failure or a part
                                      not searched to its end
    search REPRODUCER --variant V [--strategy S] [--bound P|none] [--out DIR] [--cap N]
                                      a declared reproducer's search (its [reproducer.control])
                                      under the preloaded scheduler, one process per schedule,
                                      stopped at its first failure, which is captured
    search-sum PART.json...           the whole search from parts searched elsewhere
Bad input: one line on stderr, exit 2.
"""
import argparse
import json
import re
import time
import signal
import sys
from pathlib import Path

from . import external, pin, search, search_controlled
from . import reference as references
from .baseline import DRIFT, compare, load_summary
from .capture import RrVerdict, probe_rr, replay
from .controlled import MODES as CONTROL_MODES, PRELOAD, STRATEGIES, not_dynamic
from .external import DeclarationError, parse_reproducer
from .matrix import (CONTROLLED_TEXT, NO_PROGRAMS, Catalog, controlled_runner, discover,
                     external_cells, select, twins_first)
from .merge import MergeError, default_into, merge
from .options import (LIST, LOOP, PROGRESS_MODES, RUN, OneLineParser, add_to_argparse,
                      existing_summary, positive_float, positive_int, shard)
from .paths import BIN, PINNED, ROOT, shown
from .program import ProgramError
from .profiles import PROFILES
from .progress import CellProgress, stdout_sink
from .results import RunDir
from .session import (FAILED, TOLERATED, Settings, capture_text, consequence, finish_run,
                      header_lines, rate_line, run_cell, run_failed)
from .shard import shard_cells


def _catalog(parser: argparse.ArgumentParser) -> Catalog:
    catalog = discover()
    if catalog.declaration_error:
        parser.error(catalog.declaration_error)
    for e in catalog.errors:
        print(f"asyncrace: {e.message}", file=sys.stderr)
    return catalog


def _cells(parser: argparse.ArgumentParser, args: argparse.Namespace, catalog: Catalog,
           settings: Settings) -> list:
    if not catalog.cells and not catalog.errors:
        parser.error(NO_PROGRAMS)
    try:
        cells = select(catalog.cells, args.asyncrace_runner, args.asyncrace_case)
    except ValueError as e:
        parser.error(str(e))
    return shard_cells(twins_first(cells), settings)


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    settings = Settings.from_options(lambda name: getattr(args, name, None), probe_rr())
    try:
        settings.reference
    except references.RatesError as e:
        parser.error(str(e))
    return settings


def _run_cells(cells: list, settings: Settings, catalog: Catalog, baseline_given: bool) -> int:
    settings.run_dir.path.mkdir(parents=True, exist_ok=True)   # it is named in the header
    print("\n".join(header_lines(settings, catalog, cells)), flush=True)
    try:
        return _cells_to_results(cells, settings, catalog, baseline_given)
    except KeyboardInterrupt:
        # run_cell wrote the interrupted cell (what it ran) after its process group was
        # killed; the cells before it are in cells/ too: compose the run from them.
        summary, _ = finish_run(settings, catalog)
        done = len((summary or {}).get("cells", {}))
        print(f"\nasyncrace: interrupted: {done} cell{'' if done == 1 else 's'} written to "
              f"{settings.run_dir.path}{', the last one as far as it ran' if done else ''}",
              file=sys.stderr, flush=True)
        return 130


def _cells_to_results(cells: list, settings: Settings, catalog: Catalog,
                      baseline_given: bool) -> int:
    failed = False
    sink = stdout_sink(settings.progress)
    for cell in cells:
        budget = settings.budget(cell)
        progress = CellProgress(cell.id, budget, sink) if sink else None
        try:
            record = run_cell(cell, settings, progress)
        except ProgramError as e:  # a harness error: said, never counted as a result
            print(f"{cell.id}: ERROR: {e}", flush=True)
            failed = True
            continue
        print(rate_line(record), flush=True)
        outcome = consequence(record, settings.profile)
        if record["verdict"]["message"] and outcome != "skipped":
            tolerated = " (tolerated in this profile)" if outcome == TOLERATED else ""
            print(f"  {record['verdict']['message']}{tolerated}")
        if record["capture"]:
            print("  " + capture_text(record).replace("\n", "\n  "))
        failed |= outcome == FAILED
    summary, findings = finish_run(settings, catalog)
    if summary is not None:
        print()
        print((settings.run_dir.path / "matrix.md").read_text(), end="")
    for finding in findings:
        print(finding.text())
    if baseline_given and not findings:
        print(f"baseline {settings.baseline}: no regression, rot or drift")
    if summary is not None:
        print(f"report: {settings.run_dir.path / 'report.html'}")
    return 1 if failed or run_failed(summary, findings, settings.profile) else 0


def cmd_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    catalog = _catalog(parser)
    settings = _settings(args, parser)
    cells = _cells(parser, args, catalog, settings)
    return _run_cells(cells, settings, catalog, args.asyncrace_baseline is not None)


def cmd_list(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    settings = Settings(PROFILES["quick"], RrVerdict(False, "not probed"), shard=args.asyncrace_shard)
    for cell in _cells(parser, args, _catalog(parser), settings):
        print(f"{cell.id}  {cell.expect.text()}" + (f"  (twin {cell.twin})" if cell.twin else ""))
    return 0


def cmd_pin(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Rewrites cases/cells.txt, and the pin file beside each declarations file of the
    user's own (ASYNCRACE_EXTERNAL), and prints the difference."""
    catalog = _catalog(parser)
    for path, found in pin.groups(catalog.cells).items():
        path = args.file if path == PINNED else path
        missing, extra = pin.difference(found, set(pin.read(path)))
        pin.write(found, path)
        for line in pin.diff_lines(missing, extra):
            print(line)
        print(f"{shown(path)}: {len(found)} cells ({len(extra)} added, {len(missing)} removed)")
    return 0


def cmd_reference(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """cases/rates.txt (and my.rates.txt beside a declarations file of the user's own) from
    a long measurement of the sometimes cells (or from --from RUN): the selected cells'
    rates are replaced, the others kept, cells that no longer exist dropped. Exit 1 when a
    selected cell showed nothing: it cannot have a rate."""
    catalog = _catalog(parser)
    if args.source:
        records = list(load_summary(args.source)["cells"].values())
        selected = {r["cell"] for r in records}
        measured, problems = references.from_records(records)
        note = f"from {args.source}"
    else:
        settings = _settings(args, parser)
        cells = [c for c in _cells(parser, args, catalog, settings)
                 if references.needs_reference(c)]
        if not cells:
            parser.error("reference: no sometimes cell selected")
        budget = PROFILES["reference"].sometimes
        measured, problems = {}, []
        for cell in cells:
            rate, why = references.measure(cell, budget, lambda line: print(line, flush=True))
            if rate is None:
                problems.append(f"{cell.id}: {why}: nothing to take as its rate; declare what "
                                f"{cell.runner} {cell.mode} can show (rarely) or give it a "
                                f"larger budget")
            else:
                measured[cell.id] = rate
        selected = {c.id for c in cells}
        note = (f"measured {time.strftime('%Y-%m-%d')}, {budget.text()} a count, idle and "
                f"loaded (two copies at once)")
    wanted = [c for c in catalog.cells if references.needs_reference(c)]
    files: dict[Path, list] = {}
    for c in wanted:
        path = references.rates_file(c)
        files.setdefault(args.file if path == references.RATES else path, []).append(c.id)
    try:
        for path, ids in files.items():
            old = references.read(path)
            rates = {c: r for c, r in old.items() if c in ids and c not in selected}
            rates.update({c: r for c, r in measured.items() if c in ids})
            references.write(rates, path, note)
            for line in references.diff_lines(old, rates):
                print(line)
            missing = sorted(set(ids) - set(rates))
            print(f"{shown(path)}: {len(rates)} rates; {len(missing)} sometimes cells without "
                  f"one" + (f" ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})"
                            if missing else ""))
    except references.RatesError as e:
        parser.error(str(e))
    for line in problems:
        print(f"no rate: {line}")
    return 1 if problems else 0


def cmd_replay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not (args.dir / "capture.json").is_file():
        parser.error(f"{args.dir}: no capture.json (expected results/<run>/captures/<cell>)")
    same, message = replay(args.dir, args.attempts)
    print(message)
    return 0 if same else 1


def cmd_explain(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .explain import ExplainError, Target, explain, explain_preload, target_of
    path: Path = args.path
    try:
        if (path / "capture.json").is_file():
            info = json.loads((path / "capture.json").read_text())
            if info.get("method") == "preload-schedule":
                from .controlled import ControlledInvocation
                schedule = Path(info["schedule"])
                told = explain_preload(ControlledInvocation.from_dict(info["invocation"]),
                                       schedule, schedule.with_suffix(""), info.get("outcome"))
                print(told["text"], end="")
                return 0
            if info.get("method") != "sim-schedule":
                parser.error(f"{path}: a {info.get('method')} capture has no schedule to explain "
                             f"(only schedules are explained: sim's and the preloaded scheduler's)")
            inv = info["invocation"]
            target, schedule = Target(Path(inv["program"]), inv["variant"], inv["mode"]), \
                Path(info["schedule"])
        elif path.is_file():
            try:
                target, schedule = target_of(path), path
            except ExplainError as e:
                parser.error(str(e))
        else:
            parser.error(f"{path}: neither a capture folder nor a schedule file")
        prefix = schedule.with_suffix("") if schedule.suffix == ".json" else schedule
        told = explain(target, schedule, prefix)
    except ExplainError as e:
        print(f"asyncrace: {e}", file=sys.stderr)
        return 1
    print(told["text"], end="")
    return 0


def cmd_compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    findings = compare(load_summary(args.new), load_summary(args.old))
    for finding in findings:
        print(finding.text())
    if not findings:
        print("no regression, rot or drift")
    return 1 if any(f.kind != DRIFT for f in findings) else 0


def cmd_merge(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    into = RunDir(args.into.resolve().parent, args.into.resolve().name) if args.into \
        else default_into(Path(args.results_dir).resolve())
    baseline = load_summary(args.baseline) if args.baseline else None
    try:
        summary, findings = merge(args.runs, into, baseline, str(args.baseline) if args.baseline else None)
    except MergeError as e:
        parser.error(f"refused: {e}")
    print((into.path / "matrix.md").read_text(), end="")
    for finding in findings:
        print(finding.text())
    missing = []
    if args.check_pinned:
        missing, extra = pin.difference(set(summary["cells"]), set(pin.read()))
        for line in pin.diff_lines(missing, extra):
            print(f"pinned cells: {line}")
    print(f"merged {len(args.runs)} runs into {into.path}")
    print(f"report: {into.path / 'report.html'}")
    profile = PROFILES.get(summary.get("profile"), PROFILES["quick"])
    return 1 if run_failed(summary, findings, profile) or missing else 0


def cmd_search(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    shards, only = (args.shard.count, args.shard.index) if args.shard else (args.shards, None)
    try:
        if not (BIN / args.case).exists():       # not a case program: a declared reproducer
            if args.shard or shards > 1 or args.workers:
                raise search.SearchError(f"{args.case}: --shard, --shards and --workers are "
                                         f"for case programs; a reproducer's search runs whole")
            return search_controlled.search(args.case, args.variant, args.strategy, args.bound,
                                            args.out, args.cap)
        return search.run(args.case, args.variant, args.strategy, args.bound, args.workers,
                          shards, only, args.jobs, args.out, args.cap, args.batch)
    except search.SearchError as e:
        parser.error(str(e))


def cmd_search_sum(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        return search.add_files(args.parts)
    except search.SearchError as e:
        parser.error(f"refused: {e}")


RULE = re.compile(r"^([A-Za-z0-9_]+)=(.*)$", re.DOTALL)
DEFAULT_CONTROL_MODES = ",".join(CONTROL_MODES)


class RuleOption(argparse.Action):
    """--stderr/--stdout/--exit/--signal OUTCOME=VALUE and --timeout-is OUTCOME: every rule
    goes into one list, in the order given, which is the order they apply in (the same as
    a declaration's [outcomes], top to bottom)."""

    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, "rules", [*(getattr(namespace, "rules", None) or []), (self.const, value)])


def loop_rules(parser: argparse.ArgumentParser, given: list[tuple[str, str]]) -> list[tuple[str, dict]]:
    """(outcome, rule) pairs in the order given."""
    pairs = []
    for on, text in given:
        if on == "timeout":
            pairs.append((text, {"timeout": True}))
            continue
        match = RULE.match(text)
        if not match:
            parser.error(f"--{on} {text!r}: expected OUTCOME=VALUE")
        name, value = match.groups()
        if on == "exit":
            value = [int(v) for v in value.split(",") if v.strip().isdigit()] or value
        elif on == "signal" and value != "any":
            value = [int(v) if v.isdigit() else v for v in value.split(",")]
        pairs.append((name, {on: value}))
    return pairs


def cmd_loop(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    command = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("loop: no command: python -m asyncrace loop [options] -- CMD ...")
    kind, _, named = args.expect.partition(":")
    names = [n for n in named.split(",") if n]
    expect = ({"kind": kind} if kind == "never" else
              {"kind": kind, "any_of": names} if len(names) > 1 else {"kind": kind, "outcome": named})
    name = args.name or re.sub(r"[^A-Za-z0-9_]", "_", Path(command[0]).name) or "command"
    declaration = {"name": name, "runner": args.runner_name, "mode": args.mode_name,
                   "loop": args.loop, "timeout_s": args.timeout_s, "status": args.status,
                   "outcomes": loop_rules(parser, getattr(args, "rules", None) or []),
                   "scratch": args.scratch,
                   "variants": {args.variant_name: {"command": command, "expect": expect}}}
    if args.cwd:
        declaration["cwd"] = str(Path(args.cwd).resolve())
    if args.control:
        if args.loop == "self":
            parser.error("loop: --control runs one process per schedule: not with --loop self "
                         "(give the program's one-iteration arguments instead)")
        declaration["control"] = {"modes": [m for m in args.modes.split(",") if m],
                                  "points": [p for p in (args.points or "").split(",") if p],
                                  "timeout_s": args.timeout_s, "native": False}
        if args.strategy:
            declaration["control"]["strategy"] = args.strategy
    elif args.strategy or args.points or args.modes != DEFAULT_CONTROL_MODES:
        parser.error("loop: --strategy, --points and --modes go with --control")
    try:
        rep = parse_reproducer(declaration, "command line", 0)
    except DeclarationError as e:
        parser.error(str(e).replace("command line: reproducer ", "loop: "))
    layout = None
    if args.status:             # the contract's status record, as a built program lays it out
        catalog = discover(declarations=[])
        layout = next((c.layout for c in catalog.cells if c.program is not None), None)
        if layout is None:
            parser.error(f"loop: --status needs a built case program for the record's layout "
                         f"({NO_PROGRAMS})")
    settings = _settings(args, parser)
    cells = external_cells(rep, layout)
    if rep.control:             # only under the scheduler
        if not PRELOAD.is_file():
            parser.error(f"loop: --control needs {shown(PRELOAD)}: run `make` first")
        why = not_dynamic(str(Path(args.cwd or ROOT) / command[0]) if "/" in command[0]
                          else command[0])
        if why:
            parser.error(f"loop: --control: {why}")
        cells = [c for c in cells if c.controlled]
        loop_catalog = Catalog(cells=cells, runners=[controlled_runner(rep)],
                               modes=list(rep.control.modes),
                               versions={controlled_runner(rep): CONTROLLED_TEXT})
        return _run_cells(cells, settings, loop_catalog, args.asyncrace_baseline is not None)
    loop_catalog = Catalog(cells=cells, runners=[rep.runner], modes=[rep.mode],
                           versions={rep.runner: external.runner_text(rep)})
    return _run_cells(cells, settings, loop_catalog, args.asyncrace_baseline is not None)


def cmd_build(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    catalog = _catalog(parser)
    failed = False
    for rep in catalog.reproducers:
        unmet = rep.unmet()
        if unmet:
            print(f"{rep.name}: skipped: " + "; ".join(n.text() for n in unmet))
            continue
        ok, text = external.run_build(rep) if rep.build else (True, "no build step")
        print(f"{rep.name}: {'ok' if ok else 'FAILED'}: {text}")
        failed |= not ok
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m asyncrace", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="subcommand", required=True)

    run = commands.add_parser("run", help="run the matrix (or part) and write results/")
    add_to_argparse(run, RUN)
    run.set_defaults(func=cmd_run)

    listing = commands.add_parser("list", help="the cells and their expectations")
    add_to_argparse(listing, LIST)
    listing.set_defaults(func=cmd_list)

    pinning = commands.add_parser("pin", help="rewrite cases/cells.txt, print the difference")
    pinning.add_argument("--file", type=Path, default=PINNED, help=argparse.SUPPRESS)
    pinning.set_defaults(func=cmd_pin)

    ref = commands.add_parser("reference", help="measure the sometimes cells' rates into "
                                                "cases/rates.txt")
    ref.add_argument("--from", dest="source", type=existing_summary, metavar="RUN",
                     help="take the rates of a finished run instead of measuring them")
    ref.add_argument("--case", action="append", dest="asyncrace_case", metavar="NAME")
    ref.add_argument("--runner", action="append", dest="asyncrace_runner", metavar="NAME")
    ref.add_argument("--progress", choices=PROGRESS_MODES, default="auto", dest="asyncrace_progress")
    ref.add_argument("--file", type=Path, default=references.RATES, help=argparse.SUPPRESS)
    ref.set_defaults(func=cmd_reference, asyncrace_profile="reference", asyncrace_seed=1,
                     asyncrace_results_dir=str(Path(__file__).resolve().parents[2] / "results"),
                     asyncrace_capture="none")
    rep = commands.add_parser("replay", help="re-run a captured failure")
    rep.add_argument("dir", type=Path, help="results/<run>/captures/<cell>")
    rep.add_argument("--attempts", type=positive_int, default=1)
    rep.set_defaults(func=cmd_replay)

    exp = commands.add_parser("explain", help="the decisions a failing schedule turns on")
    exp.add_argument("path", type=Path, help="results/<run>/captures/<cell>, or a schedule file")
    exp.set_defaults(func=cmd_explain)

    cmp = commands.add_parser("compare", help="compare two runs' summary.json")
    cmp.add_argument("new", type=existing_summary)
    cmp.add_argument("old", type=existing_summary)
    cmp.set_defaults(func=cmd_compare)

    mrg = commands.add_parser("merge", help="fold shard runs and seed repeats into one run")
    mrg.add_argument("runs", nargs="+", type=Path, metavar="DIR", help="run folders (or summary.json)")
    mrg.add_argument("--into", type=Path, metavar="DIR", help="the merged run's folder "
                                                              "(default results/<new id>-merged)")
    mrg.add_argument("--baseline", type=existing_summary, metavar="FILE",
                     help="an earlier summary.json to compare the merged run with")
    mrg.add_argument("--check-pinned", action="store_true",
                     help="exit 1 when a cell of cases/cells.txt is in none of the runs")
    mrg.add_argument("--results-dir", default=str(Path(__file__).resolve().parents[2] / "results"),
                     help=argparse.SUPPRESS)
    mrg.set_defaults(func=cmd_merge)

    loop = commands.add_parser("loop", help="loop a command declared nowhere",
                               description="python -m asyncrace loop [options] -- CMD ...: one "
                               "process per iteration (or --loop self), outcome rules from the "
                               "options in the order given, first match wins; no match: exit 0 "
                               "is ok, a timeout a hang, anything else a crash.")
    add_to_argparse(loop, LOOP)
    loop.add_argument("--loop", choices=external.LOOPS, default="process")
    loop.add_argument("--timeout-s", type=positive_float, default=10.0,
                      help="per process (process) or per iteration (self)")
    loop.add_argument("--status", action="store_true", help="(self) the program writes --status FILE")
    for flag, meta in (("--stderr", "OUTCOME=REGEX"), ("--stdout", "OUTCOME=REGEX"),
                       ("--exit", "OUTCOME=CODE[,CODE]"), ("--signal", "OUTCOME=any|SIG[,SIG]")):
        loop.add_argument(flag, action=RuleOption, const=flag[2:], metavar=meta, dest="rules",
                          help="a rule (repeatable; rules apply in the order given)")
    loop.add_argument("--timeout-is", action=RuleOption, const="timeout", metavar="OUTCOME",
                      dest="rules", help="the outcome of a timeout (default hang)")
    loop.add_argument("--expect", default="never",
                      metavar="never|sometimes:OUTCOME[,OUTCOME]|always:OUTCOME[,OUTCOME]")
    loop.add_argument("--cwd", metavar="DIR", help="run the command in DIR (default: the "
                                                   "repository root)")
    loop.add_argument("--scratch", action="store_true",
                      help="run the cell in a fresh copy of its working folder, under the "
                           "run's folder")
    loop.add_argument("--name", help="the cell's case name (default: the command's)")
    loop.add_argument("--control", action="store_true",
                      help="run it under the preloaded scheduler (docs/preload.md): one process "
                           "per schedule, failures captured as schedules that replay")
    loop.add_argument("--strategy", choices=STRATEGIES,
                      help="(--control) the strategy of every mode (default: natural pos, chaos "
                           "pct, exhaustive delay bound 2)")
    loop.add_argument("--modes", default=DEFAULT_CONTROL_MODES,
                      help="(--control) comma-separated: natural, chaos, exhaustive")
    loop.add_argument("--points", metavar="NAMES",
                      help="(--control) comma-separated function names of the executable whose "
                           "entries are scheduling points (code that runs long without a "
                           "system call: tokio's task polls)")
    loop.add_argument("--runner-name", default="command", help=argparse.SUPPRESS)
    loop.add_argument("--mode-name", default="natural", help=argparse.SUPPRESS)
    loop.add_argument("--variant-name", default="as_given", help=argparse.SUPPRESS)
    loop.add_argument("command", nargs=argparse.REMAINDER)
    loop.set_defaults(func=cmd_loop)

    bld = commands.add_parser("build", help="run the build steps of cases/external.toml")
    bld.set_defaults(func=cmd_build)

    srch = commands.add_parser("search", help="a fix's search to its end, whole or in parts")
    srch.add_argument("case", help="a case program of build/bin (shutdown_order, ...), or a "
                      "reproducer declared with [reproducer.control] (tokio_shutdown_order, ...)")
    srch.add_argument("--variant", required=True)
    srch.add_argument("--strategy", default="dfs-sleep", choices=search.STRATEGIES)
    srch.add_argument("--bound", type=search.bound, default=2, metavar="P",
                      help="preemptions (delays, for delay): 0 to 16, or none")
    srch.add_argument("--workers", type=positive_int)
    parts = srch.add_mutually_exclusive_group()
    parts.add_argument("--shards", type=positive_int, default=1, metavar="N",
                       help="run all N parts here (--jobs at a time)")
    parts.add_argument("--shard", type=shard, metavar="K/N", help="run part K of N only")
    srch.add_argument("--jobs", type=positive_int, default=1)
    srch.add_argument("--out", type=Path, default=ROOT / "results" / "search", metavar="DIR",
                      help="where each part's result goes (default results/search)")
    srch.add_argument("--batch", type=positive_int, default=500_000, metavar="N",
                      help="schedules per process of a part (its state carried between them)")
    srch.add_argument("--cap", type=positive_int, metavar="N",
                      help="stop a part after N schedules (then not searched to its end)")
    srch.set_defaults(func=cmd_search)

    ssum = commands.add_parser("search-sum", help="add up the parts of one search")
    ssum.add_argument("parts", nargs="+", type=Path, metavar="PART.json")
    ssum.set_defaults(func=cmd_search_sum)
    return parser


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `list | head` ends quietly
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(parser, args)
    except KeyboardInterrupt:      # elsewhere than a run (which says what it wrote)
        print("asyncrace: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
