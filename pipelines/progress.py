"""Progress of a bounded run while it lasts: a rich bar on a terminal, otherwise a plain line every few seconds.

The count comes from a callable (the replayed source's `records_in` counter), read from a thread of its own,
so the engine is not involved. The total, where known, may be exact (rows of a dataset, an offset range) or
an estimate (lines in files, from their sizes).
"""

from __future__ import annotations

import gzip
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

__all__ = ["Total", "estimate_lines", "show_progress"]

_SAMPLE_BYTES = 1 << 20
_BAR_REFRESH_S = 0.2


@dataclass(frozen=True)
class Total:
    """How many records a run will read: `count`, and whether it is an estimate."""

    count: int
    approximate: bool = False

    def __str__(self) -> str:
        return f"{'~' if self.approximate else ''}{self.count:,}"


def estimate_lines(paths: list[str]) -> Total:
    """Lines in files, estimated from their sizes and the line length in their first MiB (exact for small files).

    A `.gz` file's size is the decompressed size its trailer records (modulo 4 GiB, as gzip stores it).
    """
    lines, approximate = 0, False
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as handle:
            sample = handle.read(_SAMPLE_BYTES + 1)
        if len(sample) <= _SAMPLE_BYTES:
            lines += sample.count(b"\n") + (1 if sample and not sample.endswith(b"\n") else 0)
            continue
        size = _gzip_size(path) if path.endswith(".gz") else os.path.getsize(path)
        lines += round(size * sample.count(b"\n") / len(sample))
        approximate = True
    return Total(lines, approximate)


def _gzip_size(path: str) -> int:
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return int.from_bytes(handle.read(4), "little")


class _CountColumn(ProgressColumn):
    """`12,345 of ~50,000 records` (`~` for an estimate), or `12,345 records` without a total."""

    def __init__(self, approximate: bool) -> None:
        super().__init__()
        self._about = "~" if approximate else ""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        text = f"{done} records" if task.total is None else f"{done} of {self._about}{int(task.total):,} records"
        return Text(text, style="progress.download")


class _RateColumn(ProgressColumn):
    """Records per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} records/s", style="progress.data.speed")


@contextmanager
def show_progress(
    read: Callable[[], int], total: Total | None, label: str, stream: TextIO, interval: float = 5.0
) -> Iterator[None]:
    """Report `read()` records until the block ends: a bar with rate and ETA when `stream` is a terminal,
    else `label: N of ~M records (P%), R/s, ETA S` every `interval` seconds."""
    stop = threading.Event()
    if stream.isatty():
        worker = threading.Thread(target=_bar, args=(read, total, label, stream, stop), daemon=True)
    else:
        worker = threading.Thread(target=_lines, args=(read, total, label, stream, stop, interval), daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def _bar(read: Callable[[], int], total: Total | None, label: str, stream: TextIO, stop: threading.Event) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        _CountColumn(total is not None and total.approximate),
        _RateColumn(),
        TimeRemainingColumn(),
    )
    console = Console(file=stream)
    with Progress(*columns, console=console, transient=True, redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task(label, total=total.count if total else None)
        while not stop.wait(_BAR_REFRESH_S):
            done = read()
            bar.update(task, completed=done, total=_grown(total, done))


def _grown(total: Total | None, done: int) -> int | None:
    """The total to show: an estimate that turned out short grows with the count."""
    if total is None:
        return None
    return max(total.count, done) if total.approximate else total.count


def _lines(read: Callable[[], int], total: Total | None, label: str, stream: TextIO, stop: threading.Event, interval: float) -> None:
    started = time.monotonic()
    while not stop.wait(interval):
        done, elapsed = read(), time.monotonic() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{label}: {done:,}"
        if total is not None and total.count > 0:
            text += f" of {total} records ({min(done / total.count, 1.0):.0%}), {rate:,.0f}/s"
            if rate > 0 and done < total.count:
                text += f", ETA {_clock((total.count - done) / rate)}"
        else:
            text += f" records, {rate:,.0f}/s"
        stream.write(text + "\n")
        stream.flush()


def _clock(seconds: float) -> str:
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
