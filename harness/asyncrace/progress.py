"""Progress of a cell that runs longer than a few seconds: iterations, failures so far,
the rate so far and the time left, read from the status file the program keeps.

    on a terminal   one live line, rewritten in place (\\r)
    elsewhere (CI)  a plain line every 10 s (ASYNCRACE_PROGRESS_EVERY_S changes it)

A cell shows progress once it has run 3 s (ASYNCRACE_PROGRESS_AFTER_S changes it).

Under pytest-xdist a worker's stdout and stderr never reach the terminal, so a worker
writes its line to a file in the run folder (.progress/<worker>.json) and the controller,
which owns the terminal, tails those files from a thread and prints one line per worker,
prefixed with the worker id. Without xdist, pytest's own process writes the line with
capture suspended (as live logging does).
"""
import json
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, TextIO

from .profiles import Budget
from .stats import percent

LIVE_EVERY_S = 0.25
FILE_EVERY_S = 0.5


def _seconds(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default


def lines_every_s() -> float:
    """ASYNCRACE_PROGRESS_EVERY_S: how often a plain line is printed (default 10 s)."""
    return max(0.1, _seconds("ASYNCRACE_PROGRESS_EVERY_S", 10.0))


def show_after_s() -> float:
    """ASYNCRACE_PROGRESS_AFTER_S: a cell shorter than this shows nothing (default 3 s)."""
    return _seconds("ASYNCRACE_PROGRESS_AFTER_S", 3.0)


@dataclass
class Snapshot:
    cell: str
    iterations: int
    failures: int
    elapsed_s: float
    left_s: float | None
    worker: str = ""

    def text(self) -> str:
        rate = f"{percent(self.failures / self.iterations)}%" if self.iterations else "-"
        left = "?" if self.left_s is None else f"~{self.left_s:.0f}s"
        prefix = f"[{self.worker}] " if self.worker else ""
        return (f"{prefix}{self.cell}: {self.iterations:,} it, {self.failures:,} failures "
                f"({rate}), {self.elapsed_s:.0f}s, {left} left")


def time_left(budget: Budget, iterations: int, charged_s: float) -> float | None:
    """Seconds until the budget is reached at the speed so far; None before any speed."""
    if iterations <= 0 or charged_s <= 0:
        return None
    per_s = iterations / charged_s
    lefts = []
    if budget.iterations is not None:
        lefts.append(max(0, budget.iterations - iterations) / per_s)
    if budget.seconds is not None:
        by_time = max(0.0, budget.seconds - charged_s)
        floor = max(0, budget.min_iterations - iterations) / per_s
        lefts.append(max(by_time, floor))
    return min(lefts) if lefts else None


class Sink:
    def show(self, snap: Snapshot) -> None: ...
    def clear(self) -> None: ...


class CellProgress:
    """program.Progress for one cell: turns counts into snapshots for a sink."""

    def __init__(self, cell: str, budget: Budget, sink: Sink, worker: str = "") -> None:
        self.cell, self.budget, self.sink, self.worker = cell, budget, sink, worker
        self.began = time.monotonic()
        self.after = show_after_s()
        self.shown = False

    def update(self, iterations: int, failures: int, charged_s: float) -> None:
        elapsed = time.monotonic() - self.began
        if elapsed < self.after:
            return
        self.shown = True
        self.sink.show(Snapshot(self.cell, iterations, failures, elapsed,
                                time_left(self.budget, iterations, charged_s), self.worker))

    def close(self) -> None:
        if self.shown:
            self.sink.clear()


class StreamSink(Sink):
    """A terminal (live: one \\r line) or a log (a line every lines_every_s())."""

    def __init__(self, stream: TextIO, live: bool,
                 before: Callable[[], None] | None = None, after: Callable[[], str] | None = None) -> None:
        self.stream, self.live = stream, live
        self.every = LIVE_EVERY_S if live else lines_every_s()
        self.last = -math.inf
        # pytest: the partial line its reporter has written (dots), to put back after ours
        self.after = after
        self.before = before

    def show(self, snap: Snapshot) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        if self.live:
            width = _width(self.stream)
            self.stream.write("\r" + snap.text()[:width - 1] + "\x1b[K")
        else:
            if self.before:
                self.before()
            self.stream.write(snap.text() + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[K" + (self.after() if self.after else ""))
            self.stream.flush()


def _width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns if columns > 20 else 120   # a pty may report 0


class FileSink(Sink):
    """An xdist worker's line, for the controller to print (atomic rewrite)."""

    def __init__(self, path: Path) -> None:
        self.path, self.last = path, -math.inf

    def show(self, snap: Snapshot) -> None:
        now = time.monotonic()
        if now - self.last < FILE_EVERY_S:
            return
        self.last = now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(asdict(snap)))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class Tail:
    """The xdist controller's thread: prints the workers' progress files."""

    def __init__(self, folder: Path, stream: TextIO, live: bool,
                 current_line: Callable[[], str]) -> None:
        self.folder, self.stream, self.live = folder, stream, live
        self.current_line = current_line    # what pytest's reporter has on the line now
        self.every = LIVE_EVERY_S * 2 if live else lines_every_s()
        self.lock = threading.Lock()
        self.showing = False
        self.quiet_until = 0.0
        self.after_ours = ""   # pytest's partial line when we last printed (lines mode)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="asyncrace-progress", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _snapshots(self) -> list[Snapshot]:
        snaps = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                snaps.append(Snapshot(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue   # a worker just removed or is rewriting it
        return snaps

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            snaps = self._snapshots()
            with self.lock:
                if self.stopped.is_set() or time.monotonic() < self.quiet_until:
                    continue
                if self.live:
                    if not snaps:
                        self._erase()
                        continue
                    line = " | ".join(s.text() for s in snaps)
                    self.stream.write("\r" + line[:_width(self.stream) - 1] + "\x1b[K")
                    self.showing = True
                else:
                    if not snaps:
                        continue
                    line = self.current_line()
                    if line and line != self.after_ours:   # pytest wrote since: end its line
                        self.stream.write("\n")
                    self.stream.write("".join(s.text() + "\n" for s in snaps))
                    self.after_ours = line
                self.stream.flush()

    def _erase(self) -> None:
        if self.showing:
            self.stream.write("\r\x1b[K" + self.current_line())
            self.stream.flush()
            self.showing = False

    def yield_line(self) -> None:
        """pytest is about to write: take the live line away, keep quiet a moment."""
        with self.lock:
            self._erase()
            self.quiet_until = time.monotonic() + 0.5

    def stop(self) -> None:
        with self.lock:
            self.stopped.set()
            self._erase()
        self.thread.join(timeout=2)


def stream_is_live(mode: str, stream: TextIO) -> bool | None:
    """live (True), lines (False), or nothing (None), for --progress MODE."""
    if mode == "off":
        return None
    if mode == "auto":
        return bool(getattr(stream, "isatty", lambda: False)())
    return mode == "live"


def stdout_sink(mode: str) -> Sink | None:
    live = stream_is_live(mode, sys.stdout)
    return None if live is None else StreamSink(sys.stdout, live)
