"""Progress of long cells: a live line on a terminal, plain lines elsewhere, and under
xdist one line per worker on the controller's terminal."""
import os
import pty
import select
import subprocess
import sys
import textwrap

import pytest

from asyncrace.paths import ROOT
from asyncrace.profiles import Budget
from asyncrace.progress import Snapshot, time_left

HARNESS = ROOT / "harness"
SLOW = "#!/bin/sh\nsleep 0.02\n[ $(( ${ASYNCRACE_ITERATION:-0} % 9 )) = 4 ] && exit 3\nexit 0\n"
FAST = {"ASYNCRACE_PROGRESS_AFTER_S": "0.3", "ASYNCRACE_PROGRESS_EVERY_S": "0.5"}


@pytest.fixture
def slow(tmp_path):
    path = tmp_path / "slow.sh"
    path.write_text(SLOW)
    path.chmod(0o755)
    return path


def loop_args(slow, tmp_path, *extra):
    return [sys.executable, "-m", "asyncrace", "loop", "--exit", "lost=3", "--expect", "sometimes:lost",
            "--iterations", "60", "--results-dir", str(tmp_path / "r"), *extra, "--", str(slow)]


def test_the_line_says_iterations_failures_rate_and_time_left():
    snap = Snapshot("c.uv.fixed.natural", 12345, 3, 8.2, 4.4, "gw1")
    assert snap.text() == "[gw1] c.uv.fixed.natural: 12,345 it, 3 failures (0.0243%), 8s, ~4s left"
    assert time_left(Budget(1000, None), 250, 1.0) == pytest.approx(3.0)
    assert time_left(Budget(None, 10.0), 250, 4.0) == pytest.approx(6.0)
    # past its seconds, a never cell still owes its floor
    assert time_left(Budget(3000, 1.5, 1000), 500, 2.0) == pytest.approx(2.0)
    assert time_left(Budget(10, None), 0, 0.0) is None


def test_on_a_terminal_one_live_line(slow, tmp_path):
    main, child = pty.openpty()
    proc = subprocess.Popen(loop_args(slow, tmp_path), stdout=child, stderr=child, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(HARNESS), **FAST})
    os.close(child)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    proc.wait(timeout=60)
    os.close(main)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-2000:]
    assert "\rslow_sh.command.as_given.natural: " in text and " it, " in text and " left\x1b[K" in text
    assert "\r\x1b[K" in text, "the live line is cleared before the cell's result"


def test_elsewhere_a_plain_line_every_few_seconds(slow, tmp_path):
    done = subprocess.run(loop_args(slow, tmp_path), capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(HARNESS), **FAST}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if " it, " in line and "left" in line]
    assert lines and "\r" not in done.stdout and "\x1b" not in done.stdout
    assert lines[0].startswith("slow_sh.command.as_given.natural: ")


def test_under_xdist_each_worker_has_a_line_on_the_controllers_terminal(slow, tmp_path):
    toml = tmp_path / "external.toml"
    toml.write_text(textwrap.dedent(f"""
        [[reproducer]]
        name = "slow"
        runner = "sh"
        [reproducer.outcomes]
        lost = {{ exit = 3 }}
        [reproducer.variants.a]
        command = ["{slow}"]
        expect = {{ kind = "sometimes", outcome = "lost" }}
        [reproducer.variants.b]
        command = ["{slow}"]
        expect = {{ kind = "sometimes", outcome = "lost" }}
    """))
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider",
                           "cases/test_matrix.py", "-k", "slow", f"--results-dir={tmp_path / 'r'}",
                           "--iterations", "60"], capture_output=True, text=True, cwd=ROOT, timeout=180,
                          env={**os.environ, "ASYNCRACE_EXTERNAL": str(toml), **FAST})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if " it, " in line and "left" in line]
    workers = {line.split("]")[0] + "]" for line in lines if line.startswith("[gw")}
    assert workers == {"[gw0]", "[gw1]"}, done.stdout[-3000:]
