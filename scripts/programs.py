"""programs.py: the case programs the measurement scripts run, from build/bin."""
import json
import subprocess
from pathlib import Path

CASES = ["shutdown_order", "inline_repoll", "dropped_writer", "early_writer_drop"]
BIN = Path("build/bin")


def variants(case: str) -> list[dict]:
    """The case's variants, each {"name", "twin"} (twin None: it is meant to fail)."""
    listed = json.loads(subprocess.run([str(BIN / case), "--list"], capture_output=True,
                                       text=True).stdout)
    return [{"name": v["name"], "twin": v["twin"]} for v in listed["variants"]]


def unbuilt(cases: list[str]) -> Path | None:
    """The first of these programs that is not built, or None."""
    return next((BIN / c for c in cases if not (BIN / c).exists()), None)
