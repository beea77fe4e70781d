"""The sanitizer builds (build/asan/bin, build/tsan/bin): how to run them and read them."""
import os
import re
import shlex

# A report on stderr, whatever the exit status said.
REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|"
                    r"ThreadSanitizer: |runtime error: ")
# Stop at the first report, so the iteration that showed it is the one counted (crash).
OPTIONS = {
    "ASAN_OPTIONS": "abort_on_error=1:detect_leaks=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:abort_on_error=1",
    # atexit_sleep_ms=0: TSan otherwise sleeps a second in every exit, which was half of
    # what a sanitizer cell's 2 s bought.
    "TSAN_OPTIONS": "halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:atexit_sleep_ms=0",
    # TSan runs an iteration several times slower: scale the program's deadline (and ours).
    "ASYNCRACE_TIMEOUT_MULTIPLIER": "3",
}


def environment() -> dict[str, str]:
    """The caller's environment with our defaults where the caller set nothing."""
    return {**OPTIONS, **os.environ}


def reports(stderr: str) -> list[str]:
    """The lines of stderr that are sanitizer reports."""
    return [line for line in stderr.splitlines() if REPORT.search(line)]


def replay_prefix(env: dict[str, str]) -> str:
    """The variables a replay needs to see the run's sanitizer settings: 'K=V ...'."""
    return " ".join(shlex.quote(f"{k}={env[k]}") for k in OPTIONS)
