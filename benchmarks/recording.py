"""What every benchmark here shares: describing the machine, summarising runs, recording a result line."""

from __future__ import annotations

import json
import os
import compileall
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("pipelines", "operators", "parsers", "schemas")
"""The folders of the `loglake` package (an editable install maps them into `loglake.*`)."""


def compile_sources(root: Path = REPO) -> None:
    """Write the bytecode of loglake's modules (and of the benchmarks') before any timed run.

    `pip install` compiles the packages it installs, but not an editable install's sources: Python writes
    their bytecode at the first import, unless PYTHONDONTWRITEBYTECODE is set (as on the machine these results
    come from). Then every measured `loglake` process would compile ~100 modules again, ~0.35 s of its
    start-up that no user pays twice.
    """
    for folder in [*(root / name for name in CODE_FOLDERS), Path(__file__).resolve().parent]:
        if folder.is_dir() and not compileall.compile_dir(folder, quiet=1, workers=0):
            print(f"could not compile every module under {folder}", file=sys.stderr)


def header(**settings: Any) -> dict[str, Any]:
    """When, on what, and with which settings a result was measured."""
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "bytecode": "compiled before the runs (compile_sources)",
        **settings,
    }


def rate(work: Callable[[Any], object], batches: Iterable[Any], lines: int) -> float:
    """Lines per second of `work` applied to every batch in turn."""
    started = time.perf_counter()
    for batch in batches:
        work(batch)
    return lines / (time.perf_counter() - started)


def spread(rates: list[float]) -> dict[str, int]:
    """Median, min and max of per-run rates (the machine is noisy: never quote one run)."""
    return {"median": round(statistics.median(rates)), "min": round(min(rates)), "max": round(max(rates))}


def record(name: str, result: dict[str, Any]) -> None:
    """Append the result to results/<name>.jsonl and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / f"{name}.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
    print(json.dumps(result, indent=1))
