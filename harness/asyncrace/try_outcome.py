"""A try's outcome, told as the driver tells a process's: the preloaded scheduler's explain
runs this after each try when a failure is told by what the program printed
(runners/preload/explain.c, ASYNCRACE_EXPLAIN_JUDGE; explain.explain_preload sets it).

    python3 -m asyncrace.try_outcome INVOCATION OUTCOME CODE SIG STDOUT STDERR

INVOCATION: a ControlledInvocation as JSON (its outcome rules); OUTCOME, CODE, SIG: how the
scheduler saw the try end (its outcome, exit status, signal); STDOUT, STDERR: files of what
the try printed. Prints the outcome, and on a second line what told it (the line a rule
matched); bad input: one line, exit 2.
"""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from .controlled import ControlledInvocation


def outcome(inv: ControlledInvocation, ended: str, code: int, sig: int, stdout: str,
            stderr: str) -> tuple[str, str]:
    """(outcome, detail), as the driver tells a process that ended so."""
    done = SimpleNamespace(returncode=-sig if sig else code, killed=False, stdout=stdout,
                           stderr=stderr)
    return inv.outcome_of({"outcome": ended, "detail": ""}, done)


def main(argv: list[str]) -> int:
    if len(argv) != 6:
        print("usage: python3 -m asyncrace.try_outcome INVOCATION OUTCOME CODE SIG STDOUT STDERR",
              file=sys.stderr)
        return 2
    try:
        inv = ControlledInvocation.from_dict(json.loads(Path(argv[0]).read_text()))
        code, sig = int(argv[2]), int(argv[3])
        out, err = (Path(p).read_text(errors="replace") for p in argv[4:6])
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"asyncrace.try_outcome: {e}", file=sys.stderr)
        return 2
    told, detail = outcome(inv, argv[1], code, sig, out, err)
    print(told)
    print(" ".join(detail.split()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
