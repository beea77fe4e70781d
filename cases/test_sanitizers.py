"""Every never cell of a case program (fixed, control; every mode), run briefly under the
ASan+UBSan and TSan builds: no failure, and no sanitizer report on stderr. A missing
sanitizer build fails (make sanitizers) unless --allow-missing-builds (or
ASYNCRACE_ALLOW_MISSING_BUILDS=1) says to skip."""
import os

import pytest

from asyncrace import sanitizers
from asyncrace.judge import counts_text
from asyncrace.matrix import Cell
from asyncrace.paths import SANITIZER_BIN, shown
from asyncrace.program import run_loop
from asyncrace.session import Settings
from asyncrace.stats import rate_text


def test_sanitizer(sanitizer_cell: tuple[str, Cell], asyncrace_settings: Settings,
                   allow_missing_builds: bool, record_property) -> None:
    flavour, cell = sanitizer_cell
    program = SANITIZER_BIN[flavour] / cell.case
    if not (program.is_file() and os.access(program, os.X_OK)):
        message = f"{shown(program)} is missing: run make {flavour}"
        if allow_missing_builds:
            pytest.skip(message + " (skipped: --allow-missing-builds)")
        pytest.fail(message + " (or pass --allow-missing-builds to skip)", pytrace=False)
    inv = cell.invocation(asyncrace_settings.seed, program)
    env = sanitizers.environment()
    loop = run_loop(inv, asyncrace_settings.sanitizer_budget(), env=env)
    found = sanitizers.reports(loop.stderr)
    record_property("rate", rate_text(loop.failures, loop.iterations))
    if loop.failures or found or not loop.iterations:
        ff = loop.first_failure
        replay = ff["replay"] if ff else inv.command(0, max(loop.iterations, 1))
        stderr = f"\nstderr (tail):\n{loop.stderr[-3000:]}" if loop.stderr else ""
        pytest.fail(f"{flavour} {cell.id}: expected no failure and no sanitizer report in "
                    f"{loop.iterations} iterations, got "
                    f"{counts_text({k: v for k, v in loop.outcomes.items() if k != 'ok'})}"
                    f" and {len(found)} report lines" + "".join(f"\n  {r}" for r in found[:10])
                    + f"{stderr}\nreplay: {sanitizers.replay_prefix(env)} {replay}", pytrace=False)
