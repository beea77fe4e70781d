"""python -m asyncrace: run the matrix, list it, replay a capture, compare two runs.

    run [--case NAME] [--runner R ...] [--profile quick|nightly] [--iterations N]
        [--seconds S] [--seed S] [--results-dir D] [--capture-failures] [--baseline F]
        one progress line per cell, then matrix.md; exit 1 when a cell failed its
        expectation or the baseline comparison found a regression, else 0
    list [--case NAME] [--runner R]   the cells and what each must show
    replay DIR [--attempts N]         re-run a captured iteration; exit 0 if the same
                                      outcome came back
    compare NEW OLD                   summary.json files (or run folders); exit 1 on
                                      regression or rot
Bad input: one line on stderr, exit 2.
"""
import argparse
import signal
import sys
from pathlib import Path

from .baseline import DRIFT, compare, load_summary
from .options import existing_summary, positive_float, positive_int, seed
from .capture import probe_rr, replay
from .matrix import NO_PROGRAMS, discover, select
from .profiles import PROFILES
from .program import ProgramError
from .session import (CAPTURE_ALL, CAPTURE_NONE, CAPTURE_REGRESSIONS, Settings, capture_text,
                      finish_run, header_lines, is_failure, rate_line, run_cell)


def _cells(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list:
    cells, errors = discover()
    for e in errors:
        print(f"asyncrace: {e.message}", file=sys.stderr)
    if not cells and not errors:
        parser.error(NO_PROGRAMS)
    try:
        return select(cells, args.runner, args.case)
    except ValueError as e:
        parser.error(str(e))


def cmd_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    cells = _cells(parser, args)
    settings = Settings(PROFILES[args.profile], probe_rr(), seed=args.seed,
                        iterations=args.iterations, seconds=args.seconds,
                        results_dir=Path(args.results_dir).resolve(), capture=args.capture)
    print("\n".join(header_lines(settings, cells)), flush=True)
    failed = False
    for cell in cells:
        try:
            record = run_cell(cell, settings)
        except ProgramError as e:  # a harness error: said, never counted as a result
            print(f"{cell.id}: ERROR: {e}", flush=True)
            failed = True
            continue
        print(rate_line(record), flush=True)
        if record["verdict"]["message"]:
            print(f"  {record['verdict']['message']}")
        if record["capture"]:
            print("  " + capture_text(record).replace("\n", "\n  "))
        failed |= is_failure(record, settings.profile)
    summary, findings = finish_run(settings, args.baseline)
    if summary is not None:
        print()
        print((settings.run_dir.path / "matrix.md").read_text(), end="")
    for finding in findings:
        print(finding.text())
    if args.baseline and not findings:
        print(f"baseline {args.baseline}: no regression, rot or drift")
    return 1 if failed or any(f.kind != DRIFT for f in findings) else 0


def cmd_list(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    for cell in _cells(parser, args):
        print(f"{cell.id}  {cell.expect.text()}")
    return 0


def cmd_replay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not (args.dir / "capture.json").is_file():
        parser.error(f"{args.dir}: no capture.json (expected results/<run>/captures/<cell>)")
    same, message = replay(args.dir, args.attempts)
    print(message)
    return 0 if same else 1


def cmd_compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    findings = compare(load_summary(args.new), load_summary(args.old))
    for finding in findings:
        print(finding.text())
    if not findings:
        print("no regression, rot or drift")
    return 1 if any(f.kind != DRIFT for f in findings) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asyncrace", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the matrix (or part) and write results/")
    run.add_argument("--case", action="append", help="only this case (repeatable)")
    run.add_argument("--runner", action="append", help="only this runner (repeatable)")
    run.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    run.add_argument("--iterations", type=positive_int, help="per cell, instead of the profile's")
    run.add_argument("--seconds", type=positive_float, help="per cell, instead of the profile's")
    run.add_argument("--seed", type=seed, default=1)
    run.add_argument("--results-dir", default=str(Path(__file__).resolve().parents[2] / "results"))
    run.add_argument("--capture-failures", dest="capture", action="store_const", const=CAPTURE_ALL,
                     default=CAPTURE_REGRESSIONS, help="capture buggy cells' failures too")
    run.add_argument("--no-capture-failures", dest="capture", action="store_const",
                     const=CAPTURE_NONE, help="capture nothing, not even regressions")
    run.add_argument("--baseline", type=existing_summary, help="an earlier summary.json")
    run.set_defaults(func=cmd_run)

    listing = commands.add_parser("list", help="the cells and their expectations")
    listing.add_argument("--case", action="append")
    listing.add_argument("--runner", action="append")
    listing.set_defaults(func=cmd_list)

    rep = commands.add_parser("replay", help="re-run a captured failure")
    rep.add_argument("dir", type=Path, help="results/<run>/captures/<cell>")
    rep.add_argument("--attempts", type=positive_int, default=1)
    rep.set_defaults(func=cmd_replay)

    cmp = commands.add_parser("compare", help="compare two runs' summary.json")
    cmp.add_argument("new", type=existing_summary)
    cmp.add_argument("old", type=existing_summary)
    cmp.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `list | head` ends quietly
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(parser, args)


if __name__ == "__main__":
    sys.exit(main())
