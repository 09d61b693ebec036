"""Baseline (b): the same plain-Bytewax flow, hand-tuned, still one Python dict per record.

    python -m nginx.tuned_flow BROKERS TOPIC OUTPUT_DIR      (from benchmarks/)

What an experienced Python programmer does to (a) without leaving the per-record model:

- one `op.filter_map` for parse + time + GeoIP + user agent (fewer Bytewax steps, so less per-item overhead);
- parse with one `re` pattern compiled once (`nginx.data.COMBINED`: grok's COMBINEDAPACHELOG fields, quoted
  referrer and agent as grok captures them) instead of pygrok;
- time: `datetime.strptime` once per distinct minute and zone (`functools.lru_cache`), plus the seconds;
- GeoIP and user agents: the same `reader.city()` and `user_agents.parse()`, behind `functools.lru_cache`
  with loglake's default cache sizes (100,000 addresses, 10,000 agents), results cached as the final dicts.

Source, route, window and sinks are `bytewax_flow`'s, as for (a).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

from nginx.bytewax_flow import add_outputs, agent_fields, city_fields, kafka_source
from nginx.data import COMBINED

MATCH = COMBINED.match


@lru_cache(maxsize=4096)
def _minute(prefix: str, zone: str) -> datetime:
    return datetime.strptime(f"{prefix}:00 {zone}", "%d/%b/%Y:%H:%M:%S %z")


def _time(text: str) -> datetime:
    """`17/May/2015:10:05:03 +0000`: the minute parsed once per distinct minute and zone, then the seconds added."""
    return _minute(text[:17], text[21:]) + timedelta(seconds=int(text[18:20]))


_geo = lru_cache(maxsize=100_000)(city_fields)
_ua = lru_cache(maxsize=10_000)(agent_fields)


def enrich(line: str) -> dict[str, Any] | None:
    found = MATCH(line)
    if found is None:
        return None
    record: dict[str, Any] = found.groupdict()
    record["message"] = line
    record["response"] = int(record["response"])
    size = record["bytes"]
    record["bytes"] = None if size == "-" else int(size)
    record["timestamp"] = _time(record["timestamp"])
    record["geo"] = _geo(record["clientip"])
    record["ua"] = _ua(record["agent"])
    return record


def build_flow(brokers: str, topic: str, target: Path) -> Dataflow:
    flow = Dataflow("nginx_tuned")
    records = op.filter_map("enrich", kafka_source(flow, brokers, topic), enrich)
    add_outputs(records, target)
    return flow


if __name__ == "__main__":
    run_main(build_flow(sys.argv[1], sys.argv[2], Path(sys.argv[3])))  # type: ignore[no-untyped-call]
