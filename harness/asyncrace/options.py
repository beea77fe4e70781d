"""Argument types shared by the command line and pytest's options."""
import argparse
from pathlib import Path

from .baseline import load_summary


def positive_int(text: str) -> int:
    value = int(text, 0)   # decimal or 0x hex, like the programs
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: expected a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: expected a positive number of seconds")
    return value


def seed(text: str) -> int:
    return int(text, 0)


def existing_summary(text: str) -> Path:
    path = Path(text)
    try:
        load_summary(path)
    except (OSError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"{text}: not a readable summary.json ({e})")
    return path
