"""Where things are in the repository."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
BIN = BUILD / "bin"
TOOLS = BUILD / "tools"
SELFTEST = TOOLS / "selftest"
SANITIZER_BIN = {"asan": BUILD / "asan" / "bin", "tsan": BUILD / "tsan" / "bin"}
# The project's declarations; ASYNCRACE_EXTERNAL adds files of a user's own (matrix.py).
EXTERNAL = ROOT / "cases" / "external.toml"
PINNED = ROOT / "cases" / "cells.txt"
RESULTS = ROOT / "results"


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
