"""sim's scheduler core (runners/sim/selftest.c, build/tools/simtest): every check, in
every build flavour, one pytest id each: test_simtest[FLAVOUR-TEST], from the program's
--list. Among them: a lost update found at bound 1 and not at bound 0, a bug two
preemptions deep found at bound 2 and not at bound 1, a real AB/BA deadlock named with
every wait, a spin ended by the step bound, sleeps on virtual time, TCP reads split by the
strategy, replay in and across processes, refused schedule files, one numbering of
decisions."""
import pytest

from asyncrace.pytest_plugin import check_selftest, selftest_params


@pytest.mark.parametrize("flavour, runner, test, problem", selftest_params("simtest"))
def test_simtest(flavour, runner, test, problem, allow_missing_builds):
    check_selftest("simtest", flavour, runner, test, problem, allow_missing_builds)
