"""The runner conformance suite (runners/conformance/): every test of runner.h's contract,
on every runner, in every build flavour (release, ASan+UBSan, TSan), one pytest id each:
test_conformance[FLAVOUR-RUNNER-TEST]. The tests and runners come from the built program
(--list, --list-runners); it runs once per runner and flavour, and each id reads its line
(runners/selftest.h). A flavour that is not built fails (make), unless
--allow-missing-builds (or ASYNCRACE_ALLOW_MISSING_BUILDS=1) says to skip it."""
import pytest

from asyncrace.pytest_plugin import check_selftest, selftest_params


@pytest.mark.parametrize("flavour, runner, test, problem",
                         selftest_params("conformance", per_runner=True))
def test_conformance(flavour, runner, test, problem, allow_missing_builds):
    check_selftest("conformance", flavour, runner, test, problem, allow_missing_builds)
