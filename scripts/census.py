"""census.py: what libuv, libevent and libev ask of libc and the kernel in our cases.

    /usr/bin/python3 scripts/census.py [--iterations 3] [--only CASE] [--runner NAME]

Runs every variant of every case, natural mode, on each real event-loop runner under
`strace -ff -k` (a stack per system call) and attributes each system call to the loop
library that caused it: the innermost frame in the library's .so, and the libc entry it
called (the frame just inside it; an exported symbol, so its name is exact). A system call
whose innermost library frame has no libc frame inside it is an inline syscall: a call an
interposer on libc symbols cannot see. Beside it, the libc symbols each library imports
(`readelf --dyn-syms`): an import that never shows here either was not reached or made no
system call (an uncontended mutex, clock_gettime through the vDSO), which strace cannot see.

With --calls (root, and perf with uprobes), every libc function the library imports is
probed at its entry, and each call whose return address lies in the library's code is
counted: the calls that make no system call (an uncontended mutex, clock_gettime through
the vDSO) too. Data symbols and functions perf cannot probe are listed as such.

This is issue 14's census: which entries an interposer must cover. A measurement, not a
test: it asserts nothing. Exit 2 on bad input or a missing tool.
"""
import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from programs import BIN, CASES, unbuilt, variants

LIBS = {"libuv": "libuv.so", "libevent": "libevent", "libev": "libev.so"}
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
RECORD = re.compile(r"^(?:<\.\.\. )?(\w+)(?:\(| resumed>)")
FRAME = re.compile(r"^ > (\S+?)\((?:(\S+?)\+0x[0-9a-f]+)?\) \[0x[0-9a-f]+\]$")


def library_path(case: str, soname: str) -> str | None:
    """The file the case binary loads for a library (ldd), or None."""
    out = subprocess.run(["ldd", str(BIN / case)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if soname in line and "=>" in line:
            return line.split("=>")[1].split("(")[0].strip()
    return None


def imports(path: str) -> set[str]:
    """The libc (GLIBC-versioned) symbols a shared object imports."""
    out = subprocess.run(["readelf", "--dyn-syms", "--wide", path], capture_output=True,
                         text=True).stdout
    names = set()
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 8 and cols[6] == "UND" and "@GLIBC" in cols[7]:
            names.add(cols[7].split("@")[0])
    return names


def traced_calls(trace_dir: Path, lib_file: str) -> collections.Counter:
    """(libc entry or 'INLINE', system call) -> count, over every thread's trace."""
    calls = collections.Counter()
    for f in trace_dir.iterdir():
        name, frames = None, []

        def flush():
            if not name:
                return
            for i, (obj, _sym) in enumerate(frames):
                if Path(obj).resolve() == Path(lib_file).resolve():
                    inner = frames[i - 1] if i else None
                    if inner and "libc.so" in inner[0]:
                        calls[(inner[1] or "?", name)] += 1
                    elif inner is None:
                        calls[("INLINE", name)] += 1
                    return

        for line in f.read_text(errors="replace").splitlines():
            frame = FRAME.match(line)
            if frame:
                frames.append((frame.group(1), frame.group(2)))
                continue
            flush()
            m = RECORD.match(line)
            name, frames = (m.group(1) if m and "unfinished" not in line else None), []
        flush()
    return calls


def probe_all(names: set[str]) -> tuple[list[str], list[str]]:
    """Adds a perf uprobe at each libc function's entry that fetches the return address;
    (probed, not probed)."""
    probed, refused = [], []
    for name in sorted(names):
        done = subprocess.run(["perf", "probe", "-q", "-x", LIBC, "-a",
                               f"ar_{name}={name} ret=+0(%sp):x64"],
                              capture_output=True, text=True)
        (probed if done.returncode == 0 else refused).append(name)
    return probed, refused


def unprobe():
    subprocess.run(["perf", "probe", "-q", "--del", "probe_libc:ar_*"], capture_output=True)


MMAP = re.compile(r"PERF_RECORD_MMAP2 \d+/\d+: \[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) .*\]: r-xp (\S+)")
HIT = re.compile(r"probe_libc:ar_(\w+): \(\w+\) ret=(0x[0-9a-f]+)")


def recorded_calls(cmd: list[str], lib_file: str, data: Path) -> collections.Counter:
    """libc function -> calls from lib_file's code, while cmd ran under perf record (one
    process, its threads sharing one map of the library)."""
    subprocess.run(["perf", "record", "-q", "-e", "probe_libc:ar_*", "-o", str(data), *cmd],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    out = subprocess.run(["perf", "script", "-i", str(data), "--show-mmap-events"],
                         capture_output=True, text=True, errors="replace").stdout
    ranges, calls = [], collections.Counter()
    real = Path(lib_file).resolve()
    for line in out.splitlines():
        m = MMAP.search(line)
        if m and Path(m.group(3)).resolve() == real:
            start = int(m.group(1), 16)
            ranges.append((start, start + int(m.group(2), 16)))
            continue
        h = HIT.search(line)
        if h:
            ret = int(h.group(2), 16)
            if any(lo <= ret < hi for lo, hi in ranges):
                calls[h.group(1)] += 1
    return calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--only", action="append")
    ap.add_argument("--runner", action="append", choices=sorted(LIBS))
    ap.add_argument("--calls", action="store_true",
                    help="also count every libc call from the library (perf uprobes, root)")
    a = ap.parse_args()
    if a.calls and not (shutil.which("perf") and Path(LIBC).exists()):
        print(f"census: --calls needs perf and {LIBC}", file=sys.stderr)
        return 2
    if a.iterations < 1:
        print("census: --iterations must be at least 1", file=sys.stderr)
        return 2
    if not shutil.which("strace"):
        print("census: needs strace (apt-get install strace)", file=sys.stderr)
        return 2
    cases = a.only or CASES
    if unbuilt(cases):
        print(f"census: no {unbuilt(cases)} (run make, or --only names no case)", file=sys.stderr)
        return 2
    for runner in a.runner or sorted(LIBS):
        lib = library_path(cases[0], LIBS[runner])
        if lib is None:
            print(f"census: {BIN / cases[0]} does not load {LIBS[runner]}", file=sys.stderr)
            return 2
        calls = collections.Counter()
        for case in cases:
            for variant in (v["name"] for v in variants(case)):
                with tempfile.TemporaryDirectory() as tmp:
                    subprocess.run(["strace", "-ff", "-k", "-qq", "-o", f"{tmp}/t",
                                    str(BIN / case), "--runner", runner, "--variant", variant,
                                    "--mode", "natural", "--iterations", str(a.iterations)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=300)
                    calls += traced_calls(Path(tmp), lib)
        called, refused = collections.Counter(), []
        if a.calls:
            unprobe()
            probed, refused = probe_all(imports(lib))
            if not probed:
                print("census: perf probe added no uprobe (root? a kernel with uprobes?)",
                      file=sys.stderr)
                return 2
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    for case in cases:
                        for variant in (v["name"] for v in variants(case)):
                            called += recorded_calls(
                                [str(BIN / case), "--runner", runner, "--variant", variant,
                                 "--mode", "natural", "--iterations", str(a.iterations)],
                                lib, Path(tmp) / "perf.data")
            finally:
                unprobe()
        by_entry = collections.defaultdict(collections.Counter)
        for (entry, syscall), n in calls.items():
            by_entry[entry][syscall] += n
        imported = imports(lib)
        print(f"## {runner}: {lib}\n")
        print("| libc entry | system calls it made (count) |\n|---|---|")
        for entry in sorted(by_entry):
            made = ", ".join(f"{s} ({n:,})" for s, n in sorted(by_entry[entry].items()))
            print(f"| `{entry}` | {made} |")
        quiet = sorted(imported - set(by_entry))
        print(f"\nImported from libc and never seen making a system call ({len(quiet)} of "
              f"{len(imported)}): " + ", ".join(f"`{q}`" for q in quiet) + "\n", flush=True)
        if a.calls:
            print("| libc function called from the library | calls |\n|---|---|")
            for name, n in sorted(called.items()):
                print(f"| `{name}` | {n:,} |")
            never = sorted(set(imported) - set(called) - set(refused))
            print(f"\nProbed and never called ({len(never)}): "
                  + ", ".join(f"`{q}`" for q in never))
            print(f"\nNot probed (data, or perf refused) ({len(refused)}): "
                  + ", ".join(f"`{q}`" for q in refused) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
