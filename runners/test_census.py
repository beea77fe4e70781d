"""The census (issue 14): every libc function that libuv, libevent and libev import is
interposed, caught, or plain for a stated reason (runners/controlled/census.txt), and the
build holds to it. A library that starts importing something new fails here, named,
before a controlled run could call it unseen; so does a name the census calls interposed
or caught that the interposer stopped defining, or one it calls plain that the
interposer took. docs/census.md's measurement of what the cases reach is checked
against the census too."""
import re
import shutil
import subprocess

import pytest

from asyncrace.paths import BIN, BUILD, ROOT

CENSUS = ROOT / "runners" / "controlled" / "census.txt"
MEASURED = ROOT / "docs" / "census.md"
INTERPOSER = BUILD / "obj" / "runners" / "controlled"
CASE = BIN / "shutdown_order"        # every case program links every loop library
LOOP_LIBRARIES = re.compile(r"^(libuv\.so|libevent[-_.]|libev\.so)")


def read_census() -> dict:
    """name -> (class, group) from census.txt; a name listed twice is an error."""
    names, current = {}, None
    for number, line in enumerate(CENSUS.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("@"):
            cls, _, group = line[1:].partition(" ")
            assert cls in ("interposed", "caught", "plain"), \
                f"census.txt:{number}: unknown class {cls!r}"
            current = (cls, group.split(":")[0])
            continue
        assert current, f"census.txt:{number}: names before the first @class line"
        for name in line.split():
            assert name not in names, f"census.txt:{number}: {name} listed twice"
            names[name] = current
    return names


def nm(*args) -> list:
    return subprocess.run(["nm", *args], capture_output=True, text=True, check=True).stdout.split("\n")


def loop_libraries() -> list:
    """The loop libraries the case programs load, as the dynamic linker finds them."""
    out = subprocess.run(["ldd", str(CASE)], capture_output=True, text=True, check=True).stdout
    found = re.findall(r"^\s*(\S+) => (\S+)", out, re.M)
    return sorted(path for name, path in found if LOOP_LIBRARIES.match(name))


def glibc_imports(library: str) -> set:
    return {f.split()[-1].split("@")[0] for f in nm("-D", "--undefined-only", library)
            if "@GLIBC" in f}


def defined(*objects) -> set:
    return {f.split()[-1] for f in nm("-g", "--defined-only", *map(str, objects))
            if len(f.split()) == 3}


@pytest.fixture
def built(allow_missing_builds):
    if not shutil.which("nm"):
        pytest.fail("nm is missing (binutils)", pytrace=False)
    if not CASE.is_file() or not (INTERPOSER / "caught.o").is_file():
        if allow_missing_builds:
            pytest.skip(f"{CASE} is not built (skipped: --allow-missing-builds)")
        pytest.fail(f"{CASE} is not built: run make", pytrace=False)


def test_every_import_of_the_loop_libraries_is_in_the_census(built):
    census = read_census()
    libraries = loop_libraries()
    assert len(libraries) >= 4, f"expected libuv, libevent, libevent_pthreads, libev: {libraries}"
    missing = {lib: sorted(glibc_imports(lib) - set(census)) for lib in libraries}
    missing = {lib: names for lib, names in missing.items() if names}
    assert not missing, "imports the census does not classify (add each to " \
        "runners/controlled/census.txt: interposed, caught, or plain with a reason):\n" + \
        "\n".join(f"  {lib}: {' '.join(names)}" for lib, names in missing.items())


def test_the_interposer_defines_what_the_census_says(built):
    census = read_census()
    objects = sorted(p for p in INTERPOSER.glob("*.o") if p.name != "selftest.o")
    caught = defined(INTERPOSER / "caught.o")
    interposed = defined(*[p for p in objects if p.name != "caught.o"])
    exported = defined("-D", CASE)
    problems = []
    for name, (cls, group) in sorted(census.items()):
        if cls == "interposed" and name not in interposed:
            problems.append(f"{name} ({group}) is marked interposed; runners/controlled/ does "
                            f"not define it")
        if cls == "caught" and name not in caught:
            problems.append(f"{name} ({group}) is marked caught; caught.c does not define it")
        if cls == "plain" and name in interposed | caught:
            problems.append(f"{name} is marked plain ({group}), but the interposer defines it")
        if cls != "plain" and name not in exported:
            problems.append(f"{name} is not in {CASE.name}'s dynamic symbols: the libraries' "
                            f"calls would not reach the interposer's definition")
    assert not problems, "\n".join(problems)


def reached() -> dict:
    """docs/census.md's uprobe tables: library -> the libc functions the cases called."""
    found, library, table = {}, None, False
    for line in MEASURED.read_text().splitlines():
        if line.startswith("## "):
            library, table = line[3:].split(":")[0], False
        elif "libc function called from the library" in line:
            table = True
        elif table and line.startswith("| `"):
            found.setdefault(library, set()).add(line.split("`")[1])
        elif table and not line.strip():
            table = False
    return found


def test_what_the_cases_reach_is_interposed_or_plain(built):
    census = read_census()
    measured = reached()
    assert set(measured) >= {"libuv", "libevent", "libev"}, \
        f"docs/census.md has no call table for {sorted({'libuv', 'libevent', 'libev'} - set(measured))}"
    problems = [f"{lib}: {name} is {census[name][0] if name in census else 'not in the census'}"
                for lib, names in sorted(measured.items()) for name in sorted(names)
                if census.get(name, ("missing",))[0] not in ("interposed", "plain")]
    assert not problems, "reached by the cases, so it must be interposed or plain (a caught " \
        "one would end every run):\n" + "\n".join(problems)
