"""The scheduler core on real threads (runners/controlled/selftest.c, build/tools/ctltest):
ordinary pthread programs, unmodified, under the interposer. Every check, in every build
flavour, one pytest id each: an overdraft found at bound 1 and not at 0 and its fix
exhausted clean at bound 2, a lost wake-up found and named, AB/BA deadlocks whose
abandoned threads all exit, virtual clocks and sleeps, tasks that are real threads, a
mutex made in recycled memory numbered as new, what the scheduler does not order (a
syscall() past it, a foreign thread, a task blocked in the kernel, a spin, a poll the
interposer catches) ended and named, an abandoned run's descriptors closed, semaphores,
rwlocks, a once and a barrier searched to the end, read sizes and ready events chosen by
the strategy (an edge-triggered event never held back),
one run hash per seed and a failing schedule replayed, and a real libuv loop woken from
another thread and a libuv TCP echo over 127.0.0.1, each one run hash per seed. Beside
them: one seed gives one run hash in two processes while both CPUs are busy."""
import re
import subprocess
import sys
import time

import pytest

from asyncrace.pytest_plugin import check_selftest, program, selftest_params


@pytest.mark.parametrize("flavour, runner, test, problem", selftest_params("ctltest"))
def test_ctltest(flavour, runner, test, problem, allow_missing_builds):
    check_selftest("ctltest", flavour, runner, test, problem, allow_missing_builds)


@pytest.mark.parametrize("test", ["replay", "libuv_async", "libuv_tcp_echo"])
def test_one_run_hash_across_processes_under_load(test, allow_missing_builds):
    """The checks compare two searches in one process; this compares two processes, with
    both CPUs kept busy: loopback TCP, eventfds and epoll included."""
    path = program("ctltest", "release")
    if not path.is_file():
        if allow_missing_builds:
            pytest.skip(f"{path} is not built (skipped: --allow-missing-builds)")
        pytest.fail(f"{path} is not built: run make", pytrace=False)
    spin = "import time\nt = time.time() + 30\nwhile time.time() < t: pass\n"
    load = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    try:
        time.sleep(0.2)
        hashes = []
        for _ in range(2):
            out = subprocess.run([str(path), "--test", test], capture_output=True, text=True,
                                 timeout=120).stdout
            assert f"PASS {test}" in out, out
            hashes.append(re.search(r"run hash ([0-9a-f]{16})", out).group(1))
    finally:
        for p in load:
            p.kill()
            p.wait()
    assert hashes[0] == hashes[1], f"one seed, two processes under load: run hashes {hashes}"
