"""Benchmark: the `syslog` stage's `process` on ≥ 1M lines against the obvious per-line parser, on one core.

The input resamples the real-world lines in tests/parsers/cases/syslog_*.log (Linux RFC 3164 files and
network lines, RFC 5424 from rsyslog, apps and the RFC's own examples), half of each format, with
timestamps advancing over one hour, microsecond fractions and SD sequence ids that differ per line, and one
line in a thousand broken, in 10,000-line batches. The baseline is what a newcomer writes: a regex per line
building a dict per line, then `RecordBatch.from_pylist`; both are checked to give the same values before
timing. Runs alternate; the report gives the median with min–max and the ratio, and is appended to
benchmarks/results/syslog_parse.jsonl. pyarrow is held to one thread (one core).

    python benchmarks/syslog_parse.py [--lines 1000000] [--runs 3] [--batch 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from recording import header, rate, record, spread  # type: ignore[import-not-found]
from loglake.parsers.syslog import FACILITIES, SEVERITIES
from loglake.pipelines.nodes import build_node
from loglake.schemas.records import normalize_level
from loglake.schemas.stage import NodeContext

CASES = Path(__file__).resolve().parents[1] / "tests" / "parsers" / "cases"
START = datetime(2023, 10, 11, 20, 0, tzinfo=timezone.utc)
BROKEN = ["", "<34>1 2023-02-30T10:00:00Z host app - - - impossible date", "<999>Oct 11 22:14:15 host x: bad PRI",
          "Oct 11 22:14:15", "plain text that is not syslog"]


def make_lines(count: int, seed: int = 42) -> list[str]:
    """`count` lines resampled deterministically from the case files (see the module docstring)."""
    bsd = (CASES / "syslog_linux.log").read_text(encoding="utf-8").splitlines()
    ietf = (CASES / "syslog_rfc5424.log").read_text(encoding="utf-8").splitlines()
    rng = random.Random(seed)
    lines = []
    for index in range(count):
        when = START + timedelta(seconds=3600 * index / count)
        if rng.random() < 0.001:
            lines.append(rng.choice(BROKEN))
        elif index % 2:
            line = rng.choice(bsd)
            head, _, rest = line.partition(">") if line.startswith("<") else ("", "", line)
            lines.append((f"{head}>" if head else "") + when.strftime("%b %e %H:%M:%S") + rest[15:])
        else:
            pri, _, rest = rng.choice(ietf).partition(" ")
            stamp = (when + timedelta(microseconds=rng.randrange(1_000_000))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            rest = rest.split(" ", 1)[1].replace('sequenceId="29"', f'sequenceId="{index}"')
            lines.append(f"{pri} {stamp} {rest}")
    return lines


_NAIVE_5424 = re.compile(
    r'<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[[^ \]=]+(?: [^ =\]"]+="(?:[^"\\\]]|\\.)*")*\])+)(?: (.*))?$', re.S
)
_NAIVE_3164 = re.compile(r"(?:<(\d{1,3})>)?(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+)(?: (?:([^ \[\]:]+)(?:\[(\d+)\])?: )?(.*))?$", re.S)
_NAIVE_ELEMENT = re.compile(r'\[([^ \]=]+)((?: [^ =\]"]+="(?:[^"\\\]]|\\.)*")*)\]')
_NAIVE_PARAM = re.compile(r' ([^ =\]"]+)="((?:[^"\\\]]|\\.)*)"')


def naive_parse(batch: pa.RecordBatch, year: int) -> tuple[pa.RecordBatch, list[dict[str, Any]]]:
    """What a newcomer writes: per line, a regex, a dict, `fromisoformat`/`strptime`; then `from_pylist`."""
    records: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for line in batch.column("message").to_pylist():
        try:
            records.append(_naive_line(line, year))
        except (ValueError, IndexError) as exc:
            failed.append({"_error": str(exc), "message": line})
    return pa.RecordBatch.from_pylist(records), failed


def _naive_line(line: str, year: int) -> dict[str, Any]:
    match = _NAIVE_5424.match(line)
    if match:
        pri, stamp, host, app, procid, msgid, sd, msg = match.groups()
        data = None
        if sd != "-":
            data = {e[1]: {p[1]: re.sub(r'\\(["\\\]])', r"\1", p[2]) for p in _NAIVE_PARAM.finditer(e[2])} for e in _NAIVE_ELEMENT.finditer(sd)}
        record = {"timestamp": datetime.fromisoformat(stamp), "host": host, "appname": app, "procid": procid,
                  "msgid": msgid, "structured_data": json.dumps(data) if data else None,
                  "message": msg[1:] if msg and msg.startswith("\ufeff") else msg, "version": 1}
    else:
        match = _NAIVE_3164.match(line)
        if not match:
            raise ValueError("not syslog")
        pri, stamp, host, tag, pid, msg = match.groups()
        when = datetime.strptime(f"{year} {stamp}", "%Y %b %d %H:%M:%S").replace(tzinfo=timezone.utc)
        record = {"timestamp": when, "host": host, "appname": tag, "procid": pid, "msgid": None,
                  "structured_data": None, "message": msg, "version": None}
    number = int(pri) if pri else 13
    record.update(priority=number, facility=FACILITIES[number >> 3], severity=SEVERITIES[number & 7],
                  level=normalize_level(SEVERITIES[number & 7]))
    return record


def _check_agreement(ours: pa.RecordBatch, naive: pa.RecordBatch) -> None:
    """Both parsers keep the same lines and give them the same core values (checked before timing)."""
    for name in ("timestamp", "host", "appname", "priority", "message"):
        assert ours.column(name).to_pylist() == naive.column(name).to_pylist(), f"the two parsers disagree on {name}"


def main() -> None:
    """Check that both parsers agree, then time them alternately and record the result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    column = pa.array(make_lines(args.lines), pa.string())
    batches = [pa.RecordBatch.from_arrays([column.slice(i, args.batch)], ["message"]) for i in range(0, args.lines, args.batch)]
    stage = build_node("stage", "parse", {"type": "syslog", "year": 2023}, NodeContext(node="parse"))
    for batch in batches[:5]:
        _check_agreement(stage.process(batch).main, naive_parse(batch, 2023)[0])
    ours, naive = [], []
    for _ in range(args.runs):
        ours.append(rate(stage.process, batches, args.lines))
        naive.append(rate(lambda batch: naive_parse(batch, 2023), batches, args.lines))
    record("syslog_parse", {
        **header(lines=args.lines, runs=args.runs, batch=args.batch, cores_used=1),
        "syslog_stage_lines_per_s": spread(ours),
        "per_line_regex_lines_per_s": spread(naive),
        "ratio_median": round(statistics.median(ours) / statistics.median(naive), 1),
    })


if __name__ == "__main__":
    main()
