"""A py-spy profile of one loglake run, summarised by function (self time) and by stage (cumulative time).

`profile_loglake` runs the command under `py-spy record --format raw --full-filenames --nolineno` (100
samples/s, threads that are not idle; not timed: sampling slows the run) and reads the collapsed stacks:

- self time: samples whose innermost frame is the function;
- by stage: each sample is charged to `imports` if it has a frame of importlib's loader (start-up), else to
  the outermost frame in loglake's `operators/` or `parsers/`, by module or package (`operators/user_agent`,
  `parsers/grok`: the `process` of the stage or connector the engine called; shared helpers such as
  `distinct_cache` count for the stage that called them), else to the innermost engine function in
  `pipelines/` (`runner.py:run_compiled` is time inside Bytewax's Rust runtime, which has no Python frame),
  else to `other`.

The raw file stays next to the run's lake (benchmarks/work/nginx-runs/profile/), for flame graphs:
`py-spy`'s raw format is what `flamegraph.pl` and speedscope import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["profile_loglake", "summarise"]

REPO = Path(__file__).resolve().parents[2]
PY_SPY = Path(os.environ.get("PY_SPY", shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")))
"""py-spy: $PY_SPY, else on the PATH, else beside the Python running this."""


def profile_loglake(argv: list[str], env: dict[str, str], out: Path, top: int = 5) -> dict[str, Any]:
    """Profile `argv` (a `loglake run`) with py-spy into `out`/profile.txt and summarise it."""
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "profile.txt"
    command = [str(PY_SPY), "record", "--format", "raw", "--full-filenames", "--nolineno", "-r", "100", "-o", str(raw), "--", *argv]
    with (out / "run.log").open("wb") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    return {"raw": str(raw), **summarise(raw, top)}


def _frame(text: str) -> tuple[str, str]:
    """`function (path)` → (function, path)."""
    name, _, rest = text.rpartition(" (")
    return (name, rest.rstrip(")")) if name else (text, "")


def _short(path: str) -> str:
    return path.removeprefix(str(REPO) + "/") if path.startswith(str(REPO)) else path.rsplit("site-packages/", 1)[-1]


def _stage(frames: list[tuple[str, str]]) -> str:
    if any(path.startswith("<frozen importlib") for _, path in frames):
        return "imports"
    for _, path in frames:
        short = _short(path)
        if short.startswith(("operators/", "parsers/")):
            return "/".join(short.removesuffix(".py").split("/")[:2])  # the module, or the package (`operators/window`)
    for name, path in reversed(frames):
        if _short(path).startswith("pipelines/"):
            return f"engine {_short(path)}:{name}"  # `runner.py:run_compiled`: inside Bytewax's Rust code, no Python frame below
    return "other"


def summarise(raw: Path, top: int = 5) -> dict[str, Any]:
    """Samples in all, the `top` functions by self time and every stage by cumulative time (each with its share)."""
    own: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_frame(part) for part in stack.split(";")]
        name, path = frames[-1]
        own[f"{name} ({_short(path)})"] += samples
        stages[_stage(frames)] += samples
        total += samples

    def share(counter: Counter[str], limit: int | None) -> list[dict[str, Any]]:
        return [{"what": what, "samples": n, "share": round(n / total, 3)} for what, n in counter.most_common(limit)]

    return {"samples": total, "self_top": share(own, top), "by_stage": share(stages, None)}
