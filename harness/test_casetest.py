"""The self-test of the layers every case stands on (harness/case/casetest.c,
build/tools/casetest): the race layer and the task runtime, on every runner and in every
build flavour, one pytest id per C test: test_casetest[FLAVOUR-RUNNER-TEST], from the
program's own --list, in the result lines conformance and simtest print too."""
import pytest

from asyncrace.pytest_plugin import check_selftest, selftest_params


@pytest.mark.parametrize("flavour, runner, test, problem",
                         selftest_params("casetest", per_runner=True))
def test_casetest(flavour, runner, test, problem, allow_missing_builds):
    check_selftest("casetest", flavour, runner, test, problem, allow_missing_builds)
