"""pytest front end of asyncrace: the hooks, options and fixtures live in
harness/asyncrace/pytest_plugin.py (shared work with ``python -m asyncrace``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))

pytest_plugins = ["asyncrace.pytest_plugin"]
