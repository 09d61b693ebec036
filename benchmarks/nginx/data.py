"""The benchmark input: real Apache combined-format lines, resampled with a fixed seed, with rewritten timestamps.

Lines are drawn (with replacement, `random.Random(seed)`) from the 10,000 real requests of
../shared/data/apache_access_10k.log. Line i gets the time START + span·i/lines (one hour by default), and
about 1% of lines are moved back by 1–30 s, so the window's `allowed_lateness: 30s` matters. The sample's one
cut-off line (8,899) is drawn like any other and matches no pattern: those lines are counted here
(`unparsable`), so the checks know how many records the lake must miss.

`distinct=True` makes the values that caches and compression like mostly distinct: every user agent gets a
counter token (`… n/<i>"`, except `-`, which stays `-`), and every client address is rebuilt from the line
index (the first octet of the real client, the low 24 bits a multiplicative hash of i), so nearly every
address is new and still lands in the GeoIP database's ranges.

The file and a JSON file of facts about it are written once per setting to benchmarks/work/ (ignored by git).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

__all__ = ["APACHE_LOG", "WORK", "START", "COMBINED", "make_input"]

BENCHMARKS = Path(__file__).resolve().parents[1]
APACHE_LOG = BENCHMARKS.parents[1] / "shared" / "data" / "apache_access_10k.log"
"""10,000 real Apache access-log lines (elastic/examples, Apache License 2.0)."""
WORK = BENCHMARKS / "work"
START = datetime(2015, 5, 17, 10, 0, tzinfo=timezone.utc)
OUT_OF_ORDER = 0.01
MAX_DELAY_S = 30

COMBINED = re.compile(
    r'^(?P<clientip>\S+) (?P<ident>\S+) (?P<auth>\S+) \[(?P<timestamp>[^\]]+)\] '
    r'"(?:(?P<verb>\w+) (?P<request>\S+)(?: HTTP/(?P<httpversion>[0-9.]+))?|(?P<rawrequest>[^"]*))" '
    r'(?P<response>\d+) (?P<bytes>\d+|-) (?P<referrer>"[^"]*") (?P<agent>"[^"]*")'
)
"""Apache combined, with the fields (and the quoted referrer and agent) grok's COMBINEDAPACHELOG captures."""


def make_input(lines: int, distinct: bool = False, span_s: int = 3600, seed: int = 42) -> tuple[Path, dict[str, Any]]:
    """The input file and what was done to it, generated once per (lines, distinct, span, seed)."""
    name = f"nginx-{lines}{'-distinct' if distinct else ''}{'' if span_s == 3600 else f'-{span_s}s'}-{seed}"
    target = WORK / f"{name}.log"
    about = WORK / f"{name}.json"
    if target.exists() and about.exists():
        facts: dict[str, Any] = json.loads(about.read_text(encoding="utf-8"))
        return target, facts
    WORK.mkdir(parents=True, exist_ok=True)
    counts = {"out_of_order": 0, "unparsable": 0}
    partial = target.with_suffix(f".{os.getpid()}.tmp")  # two invocations at once each write their own, then rename
    with partial.open("w", encoding="utf-8") as out:
        out.writelines(_lines(lines, distinct, span_s, random.Random(seed), counts))
    partial.rename(target)
    facts = {
        "file": target.name, "lines": lines, "bytes": target.stat().st_size, "seed": seed, "distinct": distinct,
        "span_s": span_s, "start": START.isoformat(), "max_delay_s": MAX_DELAY_S, **counts,
    }
    about.write_text(json.dumps(facts), encoding="utf-8")
    return target, facts


def _lines(lines: int, distinct: bool, span_s: int, rng: random.Random, counts: dict[str, int]) -> Iterator[str]:
    sample = APACHE_LOG.read_text(encoding="utf-8").splitlines()
    parses = [COMBINED.match(line) is not None for line in sample]
    for index in range(lines):
        pick = rng.randrange(len(sample))
        head, _, rest = sample[pick].partition(" [")
        when = START + timedelta(seconds=span_s * index / lines)
        if rng.random() < OUT_OF_ORDER:
            when -= timedelta(seconds=rng.randint(1, MAX_DELAY_S))
            counts["out_of_order"] += 1
        counts["unparsable"] += not parses[pick]
        tail = rest[rest.index("]"):]
        if distinct:
            head, tail = _distinct(head, tail, index)
        yield f"{head} [{when:%d/%b/%Y:%H:%M:%S +0000}{tail}\n"


def _distinct(head: str, tail: str, index: int) -> tuple[str, str]:
    """The line's address rebuilt from `index`, and a counter token appended to its agent (a `-` agent kept)."""
    address, _, rest = head.partition(" ")
    try:
        first = int(ipaddress.IPv4Address(address)) & 0xFF000000
        address = str(ipaddress.IPv4Address(first | (index * 2654435761 & 0xFFFFFF)))
    except ValueError:
        pass  # not an IPv4 address: kept
    if tail.endswith('"') and not tail.endswith(' "-"'):
        tail = f'{tail[:-1]} n/{index}"'
    return f"{address} {rest}", tail
