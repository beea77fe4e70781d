"""Where things are in the repository."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
BIN = BUILD / "bin"
TOOLS = BUILD / "tools"
SELFTEST = TOOLS / "selftest"
SANITIZER_BIN = {"asan": BUILD / "asan" / "bin", "tsan": BUILD / "tsan" / "bin"}
# ASYNCRACE_EXTERNAL names another declarations file (the driver's tests use their own).
EXTERNAL = Path(os.environ.get("ASYNCRACE_EXTERNAL", ROOT / "cases" / "external.toml"))
PINNED = ROOT / "cases" / "cells.txt"
RESULTS = ROOT / "results"


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
