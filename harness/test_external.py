"""External reproducers (cases/external.toml, docs/external.md), against real small
programs: shell scripts and a C program that panic, crash, hang or loop themselves."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from asyncrace import external
from asyncrace.capture import RrVerdict
from asyncrace.external import DeclarationError, ProcessInvocation, SelfLoopInvocation
from asyncrace.matrix import describe, discover
from asyncrace.options import CAPTURE_ALL
from asyncrace.paths import ROOT, SELFTEST
from asyncrace.profiles import PROFILES, Budget
from asyncrace.program import run_loop
from asyncrace.session import Settings, run_cell

HARNESS = ROOT / "harness"
OUTCOMES = ("ok", "panic", "deadlock", "fatal", "lost", "wrong_thread", "leak", "crash", "hang")

PANICS = """\
#!/bin/sh
# every 4th iteration panics the way Rust prints it
if [ $(( ${ASYNCRACE_ITERATION:-0} % 4 )) = 1 ]; then
    echo "thread 'main' panicked at src/main.rs:7:5: reply channel closed" >&2
    exit 101
fi
exit 0
"""
HANGS = """\
#!/bin/sh
[ $(( ${ASYNCRACE_ITERATION:-0} % 10 )) = 2 ] && exec sleep 60
exit 0
"""
EXITS = """\
#!/bin/sh
[ $(( ${ASYNCRACE_ITERATION:-0} % 3 )) = 0 ] && exit 7
exit 0
"""
# Loops itself: --iterations N --start I --seed S; iteration i panics when i % 4 == 1 and,
# with CRASH_AT, the process dies by SIGSEGV there (no status file: the batch is lost).
SELF_LOOP = """\
#!/bin/sh
while [ $# -gt 0 ]; do
    case $1 in --iterations) n=$2; shift;; --start) start=$2; shift;; --seed) shift;; esac
    shift
done
i=$start; end=$((start + n)); ok=0; panic=0; first=""
while [ $i -lt $end ]; do
    [ -n "$CRASH_AT" ] && [ $i = "$CRASH_AT" ] && kill -SEGV $$
    if [ $((i % 4)) = 1 ]; then panic=$((panic + 1)); [ -z "$first" ] && first=$i; else ok=$((ok + 1)); fi
    i=$((i + 1))
done
echo "asyncrace-counts iterations=$n ok=$ok panic=$panic${first:+ first_failure=$first first_outcome=panic}"
"""
CRASHES_C = r"""
#include <stdlib.h>
int main(void) {
    const char *i = getenv("ASYNCRACE_ITERATION");
    if (i && atoi(i) % 5 == 3)
        *(volatile int *)0 = 1;   /* the crash the capture must catch */
    return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("programs")
    made = {}
    for name, text in (("panics.sh", PANICS), ("hangs.sh", HANGS), ("exits.sh", EXITS),
                       ("self_loop.sh", SELF_LOOP)):
        path = folder / name
        path.write_text(text)
        path.chmod(0o755)
        made[name] = path
    source = folder / "crashes.c"
    source.write_text(CRASHES_C)
    done = subprocess.run(["cc", "-g", "-O0", "-o", str(folder / "crashes"), str(source)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    made["crashes"] = folder / "crashes"
    return made


def declare(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "external.toml"
    path.write_text(textwrap.dedent(text))
    return path


def reproducers(tmp_path: Path, text: str) -> list:
    return external.load(declare(tmp_path, text))


GOOD = """\
[[reproducer]]
name = "panics"
runner = "sh"
loop = "process"
timeout_s = 5
[reproducer.outcomes]
panic = {{ stderr = "panicked at" }}
[reproducer.variants.buggy]
command = ["{panics}"]
expect = {{ kind = "sometimes", outcome = "panic" }}
[reproducer.variants.fixed]
command = ["true"]
expect = {{ kind = "never" }}
twin = "buggy"
"""


@pytest.mark.parametrize("change, words", [
    (("runner = \"sh\"\n", ""), "reproducer panics: runner: missing"),
    (("kind = \"sometimes\", outcome = \"panic\"", "kind = \"sometimes\", outcome = \"panik\""),
     "variants.buggy.expect.outcome: unknown outcome 'panik'"),
    (("stderr = \"panicked at\"", "stderr = \"panicked (at\""),
     "outcomes.panic.stderr: regex 'panicked (at' does not compile"),
    (("command = [\"true\"]", "command = [\"/nonexistent/fixed\"]"),
     "variants.fixed.command: /nonexistent/fixed does not exist"),
    (("timeout_s = 5", "timeout_s = 5\ncolour = \"red\""), "colour: unknown key"),
    (("loop = \"process\"", "loop = \"forever\""), "loop: 'forever'"),
    (("twin = \"buggy\"", "twin = \"nosuch\""), "variants.fixed.twin"),
    (("panic = { stderr", "panik = { stderr"), "expect.outcome: 'panic': no rule in [outcomes] gives it"),
    (("kind = \"sometimes\", outcome = \"panic\"", "kind = \"sometimes\", any_of = [\"panic\", \"oops\"]"),
     "variants.buggy.expect.any_of: unknown outcome 'oops'"),
    (("runner = \"sh\"", "runner = \"sim\""), "runner: 'sim' is a built-in runner's name"),
    (("timeout_s = 5", "timeout_s = 5\ncwd = \"no/such/folder\""), "cwd: 'no/such/folder': expected a folder"),
    (("[reproducer.variants.fixed]", "[reproducer.variants.\"fixed.one\"]"), "letters, digits"),
])
def test_a_declaration_mistake_is_one_line_naming_file_entry_and_key(tmp_path, programs, change, words):
    text = GOOD.format(**{"panics": programs["panics.sh"]}).replace(*change)
    with pytest.raises(DeclarationError) as e:
        reproducers(tmp_path, text)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "external.toml"))
    assert words in message, message


def test_a_declaration_mistake_stops_the_cli_and_pytest_before_anything_runs(tmp_path, programs):
    bad = declare(tmp_path, GOOD.format(panics=programs["panics.sh"]).replace("runner = \"sh\"\n", ""))
    env = {**os.environ, "PYTHONPATH": str(HARNESS), "ASYNCRACE_EXTERNAL": str(bad)}
    done = subprocess.run([sys.executable, "-m", "asyncrace", "run", "--results-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "runner: missing" in done.stderr and not (tmp_path / "r").exists()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--results-dir={tmp_path / 'p'}", "cases/test_matrix.py"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 4 and "runner: missing" in done.stderr, done.stdout + done.stderr
    assert not (tmp_path / "p").exists()


def process(programs, name: str, rules: dict, timeout_s: float = 5.0) -> ProcessInvocation:
    rep = external.parse_reproducer(
        {"name": "t", "runner": "sh", "loop": "process", "timeout_s": timeout_s, "outcomes": rules,
         "variants": {"v": {"command": [str(programs[name])], "expect": {"kind": "never"}}}},
        "test", 0)
    return external.invocation(rep, rep.variants[0], 1, rep.outcomes(), None)


def test_one_process_per_iteration_read_by_the_declared_rules(programs):
    inv = process(programs, "panics.sh", {"panic": {"stderr": "panicked at"}})
    loop = run_loop(inv, Budget(20, None))
    assert (loop.iterations, loop.outcomes["panic"], loop.outcomes["ok"]) == (20, 5, 15)
    ff = loop.first_failure
    assert ff["iteration"] == 1 and "panicked at src/main.rs" in ff["detail"]
    assert ff["replay"].startswith("ASYNCRACE_ITERATION=1 ASYNCRACE_SEED=1 ")


def test_an_unmapped_exit_is_a_crash_and_a_mapped_one_its_outcome(programs):
    plain = run_loop(process(programs, "exits.sh", {}), Budget(9, None))
    assert (plain.outcomes["crash"], plain.outcomes["ok"]) == (3, 6)
    assert "exit 7: no rule maps it" in plain.first_failure["detail"]
    mapped = run_loop(process(programs, "exits.sh", {"lost": {"exit": 7}}), Budget(9, None))
    assert (mapped.outcomes["lost"], mapped.outcomes["crash"]) == (3, 0)


def test_a_process_past_its_timeout_is_a_hang_and_the_loop_goes_on(programs):
    loop = run_loop(process(programs, "hangs.sh", {}, timeout_s=0.3), Budget(12, None))
    assert (loop.iterations, loop.outcomes["hang"], loop.outcomes["ok"]) == (12, 1, 11)
    assert [(i.iteration, i.outcome) for i in loop.interruptions] == [(2, "hang")]


def test_a_signal_is_a_crash_unless_a_rule_names_it(programs):
    loop = run_loop(process(programs, "crashes", {}), Budget(10, None))
    assert (loop.outcomes["crash"], loop.outcomes["ok"]) == (2, 8)
    assert all("SIGSEGV" in i.reason for i in loop.interruptions)
    named = run_loop(process(programs, "crashes", {"fatal": {"signal": "SIGSEGV"}}), Budget(10, None))
    assert named.outcomes["fatal"] == 2


def self_loop(programs, **kwargs) -> SelfLoopInvocation:
    return SelfLoopInvocation("t", (str(programs["self_loop.sh"]),), 1, OUTCOMES, 5.0, (), None)


def test_a_program_that_loops_itself_is_read_from_its_counts_line(programs):
    loop = run_loop(self_loop(programs), Budget(40, None), first_batch=7)
    assert (loop.iterations, loop.outcomes["panic"], loop.uncounted) == (40, 10, 0)
    assert len(loop.batches) >= 2 and loop.first_failure["iteration"] == 1
    assert "--start 1 --seed 1" in loop.first_failure["replay"]


def test_a_crash_without_a_status_file_costs_its_batch_and_says_so(programs):
    inv = self_loop(programs)
    loop = run_loop(inv, Budget(30, None), first_batch=10, env={**os.environ, "CRASH_AT": "15"})
    # batch [10, 30) dies at 15: its crash counts, its other 19 iterations cannot; the
    # budget (30 counted iterations) is still reached, with later iterations
    assert (loop.outcomes["crash"], loop.uncounted, loop.iterations) == (1, 19, 30)
    (interruption,) = loop.interruptions
    assert "keeps no status file" in interruption.reason and f"other {loop.uncounted} iterations" in interruption.reason


def test_a_self_looping_program_with_a_status_file_loses_nothing_to_a_crash():
    """The selftest program, declared as an external: its status file says where it died."""
    d = describe(SELFTEST)
    inv = SelfLoopInvocation("selftest", (str(SELFTEST), "--runner", "epoll", "--variant", "segv",
                                          "--mode", "natural"), 1, d.outcomes, 5.0, (), d.status)
    loop = run_loop(inv, Budget(250, None))
    assert (loop.iterations, loop.outcomes["crash"], loop.uncounted) == (250, 3, 0)
    assert [i.iteration for i in loop.interruptions] == [7, 107, 207]


def settings(tmp_path, **kwargs) -> Settings:
    return Settings(PROFILES["quick"], RrVerdict(False, "not asked"), iterations=20,
                    results_dir=tmp_path / "results", **kwargs)


def test_cells_whose_needs_are_not_met_skip_naming_the_package(tmp_path, programs):
    text = GOOD.format(panics=programs["panics.sh"]).replace(
        "timeout_s = 5", "timeout_s = 5\nneeds = [{ command = \"no-such-tool-xyz\", package = \"xyz-tools\" }]")
    catalog = discover(declarations=[declare(tmp_path, text)])
    cell = next(c for c in catalog.cells if c.case == "panics")
    record = run_cell(cell, settings(tmp_path))
    assert record["verdict"]["status"] == "skipped" and record["iterations"] == 0
    assert record["verdict"]["message"] == "panics: needs command no-such-tool-xyz: apt-get install xyz-tools"


@pytest.mark.parametrize("wrapped", [False, True], ids=["elf", "behind-a-wrapper-script"])
def test_a_failing_external_keeps_its_core_compressed_and_every_backtrace(tmp_path, programs,
                                                                          wrapped):
    """Whatever the outcome is called (here `fatal`, by a signal rule) and even behind a
    shell wrapper, the capture keeps the core, gzip-compressed with its sizes said, and
    every thread's backtrace read from it."""
    assert shutil.which("gdb"), "gdb is not installed: run make deps"
    command = [str(programs["crashes"])]
    if wrapped:
        wrapper = tmp_path / "wrapper.sh"
        wrapper.write_text(f"#!/bin/sh\n{programs['crashes']}\nexit $?\n")
        wrapper.chmod(0o755)
        command = [str(wrapper)]
    text = f"""
    [[reproducer]]
    name = "crashes"
    runner = "c"
    [reproducer.outcomes]
    fatal = [{{ signal = "SIGSEGV" }}, {{ exit = 139 }}]
    [reproducer.variants.buggy]
    command = {json.dumps(command)}
    expect = {{ kind = "sometimes", outcome = "fatal" }}
    """
    catalog = discover(declarations=[declare(tmp_path, text)])
    (cell,) = [c for c in catalog.cells if c.case == "crashes"]
    record = run_cell(cell, settings(tmp_path, capture=CAPTURE_ALL))
    assert record["verdict"]["status"] == "pass" and record["first_failure"]["iteration"] == 3
    info = record["capture"]
    assert info["method"] == "core" and info["reproduced"], info
    folder = Path(info["replay_sh"]).parent
    assert (folder / "core.gz").stat().st_size > 0 and not (folder / "core").exists()
    assert any("kept as core.gz" in note and "MiB" in note for note in info["notes"]), info["notes"]
    backtrace = (folder / "backtrace.txt").read_text()
    assert "SIGSEGV" in backtrace and "main" in backtrace, backtrace[-2000:]
    assert "ASYNCRACE_ITERATION=3" in (folder / "replay.sh").read_text()
    assert "A re-run, not a replay" in (folder / "replay.sh").read_text()


def test_pytest_k_selects_external_cells_and_they_join_the_results(tmp_path, programs):
    toml = declare(tmp_path, GOOD.format(panics=programs["panics.sh"]))
    env = {**os.environ, "ASYNCRACE_EXTERNAL": str(toml)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
                           "cases/test_matrix.py", "-k", "panics", f"--results-dir={tmp_path / 'r'}",
                           "--iterations", "40"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert sorted(summary["cells"]) == ["panics.sh.buggy.natural", "panics.sh.fixed.natural"]
    buggy, fixed = summary["cells"]["panics.sh.buggy.natural"], summary["cells"]["panics.sh.fixed.natural"]
    assert buggy["failures"] == 10 and buggy["ci"][0] > 0 and buggy["external"]
    assert fixed["power"]["twin"] == "panics.sh.buggy.natural" and fixed["power"]["value"] > 0.99
    assert "sh natural" in (tmp_path / "r" / "latest" / "matrix.md").read_text()


def test_loop_runs_a_command_declared_nowhere(tmp_path, programs):
    env = {**os.environ, "PYTHONPATH": str(HARNESS)}
    done = subprocess.run([sys.executable, "-m", "asyncrace", "loop", "--stderr", "panic=panicked at",
                           "--expect", "sometimes:panic", "--iterations", "40",
                           "--results-dir", str(tmp_path), "--", str(programs["panics.sh"])],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "panics_sh.command.as_given.natural: PASS; expect sometimes panic; 25% [" in done.stdout
    header = done.stdout.splitlines()[0]   # a process per iteration has no report to read
    assert "(native, a process per iteration)" in header and "from its report" not in header
    assert "seed 1 (in ASYNCRACE_SEED only" in header
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("report: ") and Path(last[len("report: "):]).is_file()
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    assert summary["cells"]["panics_sh.command.as_given.natural"]["iterations"] == 40


# ---- issue 17: budgets, Ctrl-C, rules, working folders, files of one's own ----------------

def loop_cli(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 120
             ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asyncrace", "loop", "--progress", "off",
                           "--results-dir", str(tmp_path / "r"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, **(env or {})})


def cell_of(tmp_path: Path) -> dict:
    (record,) = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())["cells"].values()
    return record


@pytest.mark.parametrize("script, timeout_is, timeout_s", [
    ("sleep 5", "deadlock", 0.5),                          # every run times out: deadlock
    # 10 ms for the first 10 runs, then 0.3 s: the next batch used to be sized from the
    # first 10 and never checked again
    ("if [ $ASYNCRACE_ITERATION -lt 10 ]; then sleep 0.01; else sleep 0.3; fi", None, 5.0),
])
def test_a_time_budget_holds_whatever_a_timeout_is_called(tmp_path, script, timeout_is, timeout_s):
    """A 2 s budget ends within 10 % of it plus one process's timeout, also when a timeout
    is mapped to an outcome other than hang (it used to run on: 150 one-second timeouts
    took 158.8 s on a 20 s budget) and when runs slow down after the first batch."""
    rule = ["--timeout-is", timeout_is, "--expect", f"always:{timeout_is}"] if timeout_is else []
    began = time.monotonic()
    done = loop_cli(tmp_path, "--iterations", "150", "--seconds", "2", "--timeout-s", str(timeout_s),
                    *rule, "--", "sh", "-c", script)
    took = time.monotonic() - began
    record = cell_of(tmp_path)
    assert record["elapsed_s"] <= 2 * 1.1 + timeout_s, (record["elapsed_s"], done.stdout[-500:])
    assert record["iterations"] < 150 and took < 2 * 1.1 + timeout_s + 5, took
    if timeout_is:
        assert record["outcomes"][timeout_is] == record["iterations"] >= 3


def test_ctrl_c_kills_the_program_writes_what_ran_and_exits_130(tmp_path):
    """Ctrl-C (SIGINT to the driver's process group, as a terminal sends it) during a
    `loop` whose command hangs: no traceback, one line, exit 130, the run folder written
    with the interrupted cell, and nothing left running."""
    marker = f"asyncrace-ctrl-c-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-m", "asyncrace", "loop", "--progress", "off",
                             "--results-dir", str(tmp_path / "r"), "--iterations", "100",
                             "--timeout-s", "60", "--", "bash", "-c", f"exec -a {marker} sleep 60"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    def running() -> bool:       # /proc, not pgrep: a bare root has no procps
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if cmdline.read_bytes().startswith(marker.encode()):
                    return True
            except OSError:
                pass
        return False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not running():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out[-1000:], err)
    assert "Traceback" not in err and err.strip().splitlines() == [
        next(line for line in err.splitlines() if line.startswith("asyncrace: interrupted"))], err
    record = cell_of(tmp_path)
    assert record["verdict"]["status"] == "interrupted", record["verdict"]
    assert not running(), "the program was left running"


ASSERTS = """\
#!/bin/sh
# the C assert way: a line on stderr, then SIGABRT; iteration 2 of every 3 exits 6
case $(( ${ASYNCRACE_ITERATION:-0} % 3 )) in
1) echo "prog: queue.c:17: pop: Assertion 'n > 0' failed." >&2; kill -ABRT $$ ;;
2) exit 6 ;;
esac
exit 0
"""


@pytest.mark.parametrize("order, got", [
    (["--stderr", "assertion=Assertion", "--signal", "crash=SIGABRT"], "assertion"),
    (["--signal", "crash=SIGABRT", "--stderr", "assertion=Assertion"], "crash"),
])
def test_rules_apply_in_the_order_given_with_several_per_outcome_and_an_ok_rule(tmp_path, order, got):
    """The command line applies its rules in the order given, like a declaration's
    [outcomes] top to bottom; `--exit ok=6` makes a success status of 6; an outcome of
    one's own (assertion) needs no built program to be checked."""
    script = tmp_path / "asserts.sh"
    script.write_text(ASSERTS)
    script.chmod(0o755)
    done = loop_cli(tmp_path, "--iterations", "9", *order, "--exit", "ok=6",
                    "--expect", f"sometimes:{got}", "--", str(script))
    record = cell_of(tmp_path)
    assert record["outcomes"][got] == 3 and record["outcomes"]["ok"] == 6, record["outcomes"]
    assert done.returncode == 0, done.stdout[-1500:]
    declared = declare(tmp_path, f"""
        [[reproducer]]
        name = "asserts"
        runner = "sh"
        [reproducer.outcomes]
        ok = {{ exit = 6 }}
        assertion = [{{ stderr = "Assertion" }}, {{ signal = "SIGABRT" }}]
        [reproducer.variants.buggy]
        command = ["{script}"]
        expect = {{ kind = "sometimes", any_of = ["assertion", "crash"] }}
        """)
    (rep,) = external.load(declared)
    assert [(r.outcome, r.on) for r in rep.rules] == [("ok", "exit"), ("assertion", "stderr"),
                                                      ("assertion", "signal")]
    assert rep.declared == ("assertion",) and rep.variants[0].any_of == ("assertion", "crash")


def test_any_of_accepts_either_failure(tmp_path, programs):
    """A sometimes cell that may fail by its assertion or by a crash shows the bug either
    way (an uncaught exception instead of the assertion used to read FAIL)."""
    done = loop_cli(tmp_path, "--iterations", "20", "--stderr", "panic=panicked at",
                    "--expect", "sometimes:assertion,panic", "--", str(programs["panics.sh"]))
    assert done.returncode == 2 and "unknown outcome 'assertion'" in done.stderr, done.stderr
    done = loop_cli(tmp_path, "--iterations", "20", "--stderr", "panic=panicked at",
                    "--exit", "assertion=7", "--expect", "sometimes:assertion,panic", "--",
                    str(programs["panics.sh"]))
    record = cell_of(tmp_path)
    assert done.returncode == 0 and record["verdict"]["status"] == "pass", done.stdout[-1500:]
    assert record["expect"]["any_of"] == ["assertion", "panic"]


READS_INPUT = """\
#!/bin/sh
# reads ./input, appends to ./output: it must run where its input is, alone
[ -f input ] || { echo "no ./input here: $(pwd)" >&2; exit 9; }
cat input >> output
exit 0
"""


def test_a_cwd_runs_the_command_where_its_files_are_and_scratch_gives_each_cell_its_copy(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "input").write_text("x\n")
    (folder / "reads.sh").write_text(READS_INPUT)
    (folder / "reads.sh").chmod(0o755)
    declared = declare(tmp_path, f"""
        [[reproducer]]
        name = "reads"
        runner = "sh"
        cwd = "{folder}"
        scratch = true
        [reproducer.variants.one]
        command = ["./reads.sh"]
        expect = {{ kind = "never" }}
        [reproducer.variants.two]
        command = ["./reads.sh"]
        expect = {{ kind = "never" }}
        """)
    cells = [c for c in discover(declarations=[declared]).cells if c.case == "reads"]
    s = settings(tmp_path)
    for cell in cells:
        record = run_cell(cell, s)
        assert record["outcomes"]["ok"] == 20, record["outcomes"]
    for variant in ("one", "two"):   # each cell wrote into its own copy, 20 lines
        out = s.run_dir.path / "scratch" / f"reads.sh.{variant}.natural" / "output"
        assert out.read_text() == "x\n" * 20
    assert not (folder / "output").exists(), "the original folder was written to"


def test_a_declarations_file_of_ones_own_is_added_and_pinned_beside_it(tmp_path, programs):
    """ASYNCRACE_EXTERNAL adds a file to cases/external.toml (the tokio cells stay), and
    `pin` pins its cells beside it, in its own .cells.txt: the project's list is not
    touched, and the pinned-cells test checks both."""
    mine = tmp_path / "mine.toml"
    mine.write_text(textwrap.dedent(GOOD.format(panics=programs["panics.sh"])))
    env = {**os.environ, "ASYNCRACE_EXTERNAL": str(mine)}
    listed = subprocess.run([sys.executable, "-m", "asyncrace", "list"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=60)
    assert "panics.sh.buggy.natural" in listed.stdout and "tokio_shutdown_order" in listed.stdout
    project = tmp_path / "cells.txt"
    project.write_text((ROOT / "cases" / "cells.txt").read_text())
    pinned = subprocess.run([sys.executable, "-m", "asyncrace", "pin", "--file", str(project)],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert pinned.returncode == 0, pinned.stderr
    assert (tmp_path / "mine.cells.txt").read_text().split("\n", 2)[2].split() == [
        "panics.sh.buggy.natural", "panics.sh.fixed.natural"]
    assert project.read_text() == (ROOT / "cases" / "cells.txt").read_text()
    checked = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "cases/test_pinned.py", "-k", "discovered"], capture_output=True,
                             text=True, cwd=ROOT, env=env, timeout=120)
    assert checked.returncode == 0 and "2 passed" in checked.stdout, checked.stdout[-1500:]


def test_the_built_in_outcome_names_are_the_programs(tmp_path):
    """What a declaration is checked against before anything is built is exactly what the
    case programs list (contract.BUILTIN_OUTCOMES)."""
    from asyncrace.contract import BUILTIN_OUTCOMES
    catalog = discover(declarations=[])
    assert catalog.programs, "no case programs: run make"
    for program in catalog.programs:
        assert describe(program).outcomes == BUILTIN_OUTCOMES, program


def test_a_rerun_of_an_external_failure_says_it_is_one_with_its_odds(tmp_path, programs):
    record = run_cell(next(c for c in discover(declarations=[declare(
        tmp_path, GOOD.format(panics=programs["panics.sh"]))]).cells
        if c.id == "panics.sh.buggy.natural"), settings(tmp_path, capture=CAPTURE_ALL))
    folder = Path(record["capture"]["replay_sh"]).parent
    from asyncrace.capture import replay
    same, message = replay(folder)
    assert "a re-run, not a replay" in message and "once in 4" in message, message


def test_not_reproduced_on_a_first_try_says_what_the_budget_could_see(tmp_path):
    """No "(reproducer rot?)" on a first try: what 0 failures in n rules out."""
    done = loop_cli(tmp_path, "--iterations", "30", "--stderr", "panic=never printed",
                    "--expect", "sometimes:panic", "--", "true")
    record = cell_of(tmp_path)
    message = record["verdict"]["message"]
    assert done.returncode == 1 and record["verdict"]["status"] == "not_reproduced"
    assert "rot" not in message and "a rate above 11.4% would have shown (95 %)" in message, message


def test_the_bundled_reproducers_status_records_have_the_contract_layout(tmp_path):
    """The driver reads an external program's status record with the C programs' layout:
    a record of another size reads as "not written yet", so a long batch looks stalled and
    is killed as a hang. (The tokio original kept 9 counts when `uncontrolled` made 10.)"""
    catalog = discover(declarations=[])
    layout = describe(catalog.programs[0]).status
    for rep in external.load(ROOT / "cases" / "external.toml"):
        if not rep.status:
            continue
        built, why = external.run_build(rep)
        assert built, why
        variant = rep.variants[0]
        path = tmp_path / f"{rep.name}.status"
        done = subprocess.run([*variant.command, "--iterations", "3", "--status", str(path)],
                              cwd=ROOT / (rep.cwd or "."), capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr[-500:]
        assert path.stat().st_size == layout.size, \
            f"{rep.name}: a {path.stat().st_size}-byte status record; the contract's is {layout.size}"
        status = layout.read(path)
        assert status is not None and status.done == 3 and len(status.counts) == len(rep.outcomes())
