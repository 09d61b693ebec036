"""Benchmark: the `geoip` + `user_agent` stages against per-record lookups, on ≥ 1M Apache access-log records.

Records are resampled (fixed seed) from ../shared/data/apache_access_10k.log and split into `clientip` and
`agent` columns up front (not timed). The stages get 10,000-record batches; the baseline is what a newcomer
writes: `geoip2` `reader.city()` and `user_agents.parse()` per record. Both use the same database: the demo
GeoLite2 City from `maxminddb-geolite2` if installed, else a small one built with mmdb-writer. Two data sets:
`real` (the log's few hundred distinct agents and addresses) and `distinct` (a counter appended to every
agent and addresses derived from the record index, so nearly every value is new). The per-record baseline
parses a user agent in ~0.5 ms, so it is timed on the first `--baseline-lines` records of each set, and the
distinct set (where both sides parse every agent) has `--distinct-lines`; rates are per line either way.
The report gives medians of the runs with min–max and the ratios, and appends them to
benchmarks/results/enrich.jsonl.

    python benchmarks/enrich.py [--lines 1000000] [--distinct-lines 30000] [--baseline-lines 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import re
import statistics
import sys
import tempfile
from pathlib import Path

import geoip2.database
import geoip2.errors
import pyarrow as pa
import user_agents

from recording import header, rate, record, spread  # type: ignore[import-not-found]
from loglake.pipelines.nodes import build_node
from loglake.schemas.stage import NodeContext


ROOT = Path(__file__).resolve().parents[1]
APACHE_LOG = ROOT.parent / "shared" / "data" / "apache_access_10k.log"
BATCH = 10_000
_LINE = re.compile(r'^(\S+) \S+ \S+ \[[^\]]*\] "[^"]*" \S+ \S+ "[^"]*" "([^"]*)"')


def _database() -> Path:
    """The demo GeoLite2 City database, or a test-sized one built with mmdb-writer when it is not installed."""
    try:
        from _maxminddb_geolite2 import geolite2_database  # type: ignore[import-not-found]

        return Path(geolite2_database())
    except ImportError:
        sys.path.insert(0, str(ROOT))
        from tests.operators.mmdb_fixtures import write_city_db

        return write_city_db(Path(tempfile.mkdtemp()) / "city.mmdb")


def _records(lines: int, distinct: bool) -> tuple[list[str], list[str]]:
    """`lines` (clientip, agent) pairs resampled from the Apache log; with `distinct`, nearly all values unique."""
    parsed = [match.groups() for line in APACHE_LOG.read_text(encoding="utf-8").splitlines() if (match := _LINE.match(line))]
    rng = random.Random(20150517)
    sample = [parsed[rng.randrange(len(parsed))] for _ in range(lines)]
    if not distinct:
        return [ip for ip, _ in sample], [agent for _, agent in sample]
    public = [ip for ip, _ in parsed]
    # Addresses from the index, spread over the /8s the real clients use, so lookups still land in the database.
    ips = [str(ipaddress.IPv4Address((int(ipaddress.IPv4Address(public[i % len(public)])) & 0xFF000000) | (i * 2654435761 & 0xFFFFFF)))
           for i in range(lines)]
    return ips, [f"{agent} n/{i}" for i, (_, agent) in enumerate(sample)]


def _batches(ips: list[str], agents: list[str]) -> list[pa.RecordBatch]:
    return [
        pa.RecordBatch.from_pydict({"clientip": ips[i:i + BATCH], "agent": agents[i:i + BATCH]})
        for i in range(0, len(ips), BATCH)
    ]


def _per_record(reader: geoip2.database.Reader) -> object:
    def enrich(batch: pa.RecordBatch) -> list[tuple[object, object]]:
        out: list[tuple[object, object]] = []
        for ip, agent in zip(batch.column("clientip").to_pylist(), batch.column("agent").to_pylist()):
            try:
                city: object = reader.city(ip)
            except (geoip2.errors.AddressNotFoundError, ValueError):
                city = None
            out.append((city, user_agents.parse(agent)))
        return out

    return enrich


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--distinct-lines", type=int, default=30_000)
    parser.add_argument("--baseline-lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    database = _database()
    reader = geoip2.database.Reader(str(database))  # its default mode, as a newcomer would
    naive = _per_record(reader)
    result = header(lines=args.lines, distinct_lines=args.distinct_lines, baseline_lines=args.baseline_lines,
                    runs=args.runs, batch=BATCH, database=database.name)
    for name, distinct, lines in (("real", False, args.lines), ("distinct", True, args.distinct_lines)):
        ips, agents = _records(lines, distinct)
        batches = _batches(ips, agents)
        baseline_batches = batches[: max(1, min(lines, args.baseline_lines) // BATCH)]
        ours, theirs = [], []
        for _ in range(args.runs):
            # Fresh stages each run, so their caches start empty like a new worker's.
            ctx = NodeContext(node="geo", base_dir=database.parent)
            geo = build_node("stage", "geo", {"type": "geoip", "field": "clientip", "database": database.name}, ctx)
            ua = build_node("stage", "ua", {"type": "user_agent", "field": "agent", "target": "ua"}, NodeContext(node="ua"))
            ours.append(rate(lambda batch: ua.process(geo.process(batch).main), batches, lines))
            theirs.append(rate(naive, baseline_batches, sum(batch.num_rows for batch in baseline_batches)))
        result[name] = {
            "lines": lines,
            "distinct_addresses": len(set(ips)),
            "distinct_agents": len(set(agents)),
            "stages_lines_per_s": spread(ours),
            "per_record_lines_per_s": spread(theirs),
            "ratio_median": round(statistics.median(ours) / statistics.median(theirs), 1),
        }
    record("enrich", result)


if __name__ == "__main__":
    main()
