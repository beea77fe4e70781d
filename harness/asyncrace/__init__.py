"""asyncrace's driver: run the case programs of build/bin (and the reproducers declared in
cases/external.toml) to a budget and judge them.

The work lives here so that pytest (pytest_plugin.py) and ``python -m asyncrace`` share it:

    contract.py  what a program's --list says (contract 2): outcomes, modes, runners, the
                 status record's layout, variants and twins, the cells
    matrix.py    the cells, from each program's --list and from external.toml
    external.py  cases/external.toml: declarations, checked; needs; build steps
    commands.py  running an external command: it loops itself, or a process per iteration
    program.py   one cell's program run in batches with a status file; resume after a
                 crash or a hang (whose time is not charged to the budget)
    profiles.py  the budgets of the quick and nightly profiles (the numbers live there)
    stats.py     Wilson intervals, the rate text, power
    judge.py     a cell's counts against its expectation: pass, fail, not reproduced
    session.py   one cell end to end: loop, judge, capture, write its JSON; the rot rule
    results.py   the run folder: atomic writes, summary.json, matrix.md, results.csv, latest
    report.py    report.html
    baseline.py  a run against an earlier summary.json: regression, rot, drift
    shard.py     --shard K/N
    merge.py     shards and seed repeats folded into one run
    search.py    one fix's search to its end, whole or in parts over machines, and the sum
    pin.py       cases/cells.txt, the pinned set of cells
    progress.py  the progress line of long cells (terminal, CI, xdist)
    capture.py   the rr probe; rr record/pack, or gdb backtraces + core + race log
    sanitizers.py  how to run build/asan and build/tsan, and spot their reports
    options.py   the option table shared by the command line and pytest
    pytest_plugin.py  pytest's hooks and fixtures
    paths.py     where things are
    __main__.py  the command line: run, list, pin, replay, compare, merge, loop, build,
                 search, search-sum
"""
