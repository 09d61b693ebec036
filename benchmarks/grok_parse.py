"""Benchmark: the `grok` stage against pygrok per line, `%{COMBINEDAPACHELOG}` on ≥ 1M real Apache lines, one process.

The input resamples ../shared/data/apache_access_10k.log with a fixed seed and rewrites each timestamp so
the lines spread over one hour: nearly every line is distinct, as in a real log, so the stage's
once-per-distinct-line matching gains nothing and the per-line loop is what is measured. The baseline is
pygrok's own API, `Grok(pattern)` built once and `.match(line)` per line in a plain loop. Both get the same
10,000-line batches, alternating run by run; the report gives the median of the runs with min–max and the
ratio, and appends it to benchmarks/results/grok_parse.jsonl.

    python benchmarks/grok_parse.py [--lines 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pygrok import Grok  # type: ignore[import-untyped]

from recording import header, rate, record, spread  # type: ignore[import-not-found]
from loglake.pipelines.nodes import build_node
from loglake.schemas.stage import NodeContext

HERE = Path(__file__).resolve().parent
APACHE_LOG = HERE.parent.parent / "shared" / "data" / "apache_access_10k.log"
"""10,000 real Apache access-log lines (elastic/examples, Apache License 2.0)."""
WORK = HERE / "work"
PATTERN = "%{COMBINEDAPACHELOG}"
BATCH = 10_000
START = datetime(2015, 5, 17, 10, 0, tzinfo=timezone.utc)


def make_input(lines: int, seed: int = 42) -> Path:
    """`lines` Apache lines resampled from the shared 10k-line log, timestamps rewritten over one hour."""
    target = WORK / f"apache-{lines}.log"
    if not target.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(_resampled(lines, random.Random(seed))), encoding="utf-8")
    return target


def _resampled(lines: int, rng: random.Random) -> Iterator[str]:
    """Random lines of the sample, each with its time replaced by the next step of the hour."""
    sample = APACHE_LOG.read_text(encoding="utf-8").splitlines()
    for index in range(lines):
        head, _, rest = rng.choice(sample).partition(" [")
        when = START + timedelta(seconds=3600 * index / lines)
        yield f"{head} [{when:%d/%b/%Y:%H:%M:%S +0000}{rest[rest.index(']'):]}\n"


def _batches(path: Path) -> list[pa.RecordBatch]:
    """The file as 10,000-line batches with a `message` column, as a source would emit them."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [pa.RecordBatch.from_pydict({"message": lines[i:i + BATCH]}) for i in range(0, len(lines), BATCH)]


def _pygrok(grok: Grok) -> Callable[[pa.RecordBatch], object]:
    """The baseline: pygrok's `match` on each line of a batch, in a plain loop."""
    def run(batch: pa.RecordBatch) -> object:
        match = grok.match
        return [match(line) for line in batch.column("message").to_pylist()]

    return run


def _measure(contenders: dict[str, Callable[[pa.RecordBatch], object]], batches: list[pa.RecordBatch], runs: int) -> dict[str, list[float]]:
    """Lines per second of each contender over all batches, run after run, the contenders taking turns."""
    lines = sum(batch.num_rows for batch in batches)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, work in contenders.items():
            rates[name].append(rate(work, batches, lines))
    return rates


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--lines", type=int, default=1_000_000, help="lines to resample (at least 1M for the record)")
    options.add_argument("--runs", type=int, default=3, help="runs of each contender; the median is reported")
    args = options.parse_args()
    batches = _batches(make_input(args.lines))
    distinct = statistics.mean(len(pc.unique(batch.column("message"))) / batch.num_rows for batch in batches)
    stage = build_node("stage", "parse", {"type": "grok", "patterns": [PATTERN]}, NodeContext(node="parse"))
    matched = sum(stage.process(batch).main.num_rows for batch in batches)
    rates = _measure({"stage": stage.process, "pygrok": _pygrok(Grok(PATTERN))}, batches, args.runs)
    record("grok_parse", {
        **header(lines=args.lines, runs=args.runs, batch=BATCH, pattern=PATTERN),
        "distinct_lines_per_batch": round(distinct, 4),
        "lines_matched": matched,
        "grok_stage_lines_per_s": spread(rates["stage"]),
        "pygrok_match_per_line_lines_per_s": spread(rates["pygrok"]),
        "ratio_median": round(statistics.median(rates["stage"]) / statistics.median(rates["pygrok"]), 1),
    })


if __name__ == "__main__":
    main()
