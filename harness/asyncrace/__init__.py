"""asyncrace's driver: run the case programs of build/bin to a budget and judge them.

The work lives here so that conftest.py (pytest) and ``python -m asyncrace`` share it:

    matrix.py    the cells, from each program's ``--list`` (no second list in Python)
    program.py   one cell's program run in batches with a status file; resume after a
                 crash or a hang
    profiles.py  the budgets of the quick and nightly profiles (the numbers live there)
    stats.py     Wilson intervals and the rate text
    judge.py     a cell's counts against its expectation: pass, fail, not reproduced
    session.py   one cell end to end: loop, judge, capture, write its JSON
    results.py   the run folder: atomic writes, summary.json, matrix.md, results.csv, latest
    baseline.py  a run against an earlier summary.json: regression, rot, drift
    capture.py   the rr probe; rr record/pack, or gdb backtraces + core + race log
    sanitizers.py  how to run build/asan and build/tsan, and spot their reports
    options.py   argument types shared by the command line and pytest's options
    __main__.py  the command line: run, list, replay, compare
"""
