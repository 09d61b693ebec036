"""The queries of the lake benchmark, their warm timings, and DuckDB's own evidence of what each one read.

Every query goes through loglake's `open_lake` (one view per dataset over
`read_parquet(…, hive_partitioning = true, union_by_name = true)`). `time_query` runs a query once to warm
DuckDB and the page cache, then `runs` times, and reports the median and min–max in milliseconds, and the
first run's time apart: with `union_by_name` DuckDB reads the footer of every file of a dataset when it binds
the view, before the `date=`/`hour=` filters drop any, and the connection's Parquet metadata cache (which
`open_lake` turns on) keeps them for later queries, so the first query of a connection pays for all of them.
`evidence` runs `EXPLAIN ANALYZE` once and keeps what the scans say about pruning: `Scanning Files: a/b`
(files left after the `date=`/`hour=` folder filters), `Total Files Read`, `Row Groups Scanned: a / b` (row
groups left after the Parquet min/max statistics, and bloom filters where a file has them), the pushed-down
filters, and the bytes read.

`what_if_copies` writes two copies of the `access` dataset with DuckDB, partition by partition, to show what
would let a query on one client skip data: rows sorted by `clientip` within each `date=`/`hour=` partition in
row groups of 10,240 rows (min/max statistics then bound each row group's addresses), and the same rows
unsorted but written by DuckDB, which adds a bloom filter to every dictionary-encoded column chunk.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["Query", "partition_filter", "time_query", "evidence", "what_if_copies"]


@dataclass(frozen=True)
class Query:
    """A named query, and what it is meant to show."""

    name: str
    sql: str
    about: str


def partition_filter(since: datetime, until: datetime) -> str:
    """A condition on the `date`/`hour` partition columns that keeps exactly the hours [since, until) touches."""
    hours: dict[str, list[int]] = {}
    at = since.replace(minute=0, second=0, microsecond=0)
    while at < until:
        hours.setdefault(at.strftime("%Y-%m-%d"), []).append(at.hour)
        at += timedelta(hours=1)
    parts = [
        f"(date = DATE '{day}' AND hour BETWEEN {min(values)} AND {max(values)})" for day, values in hours.items()
    ]
    return "(" + " OR ".join(parts) + ")"


def time_query(con: duckdb.DuckDBPyConnection, sql: str, runs: int) -> dict[str, Any]:
    """Warm timings in ms: one run first (reported apart as `first_ms`), then `runs` timed ones."""
    started = time.perf_counter()
    rows = con.sql(sql).fetchall()
    first = (time.perf_counter() - started) * 1000
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        con.sql(sql).fetchall()
        took.append((time.perf_counter() - started) * 1000)
    return {
        "ms": {"median": round(statistics.median(took), 1), "min": round(min(took), 1), "max": round(max(took), 1)},
        "first_ms": round(first, 1),
        "result_rows": len(rows),
        "first_rows": [[str(value) for value in row] for row in rows[:3]],
    }


_SCAN_FACTS = {
    "scanning_files": re.compile(r"Scanning Files: (\d+)/(\d+)"),
    "files_read": re.compile(r"Total Files Read: (\d+)"),
    "row_groups_scanned": re.compile(r"Row Groups Scanned: (\d+) / (\d+)"),
    "data_read": re.compile(r"Data Read: +([0-9.]+ [KMGT]?i?B)"),
}


def evidence(con: duckdb.DuckDBPyConnection, sql: str, keep: Path) -> dict[str, Any]:
    """What `EXPLAIN ANALYZE` says about the scans (the whole plan is written to `keep`)."""
    plan = "\n".join(str(row[1]) for row in con.sql("EXPLAIN ANALYZE " + sql).fetchall())
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text(plan, encoding="utf-8")
    text = re.sub(r"[│\s]+\n", "\n", plan)
    facts: dict[str, Any] = {"plan_file": str(keep)}
    for name, pattern in _SCAN_FACTS.items():
        found = pattern.findall(text)
        if found:
            facts[name] = ["/".join(item) if isinstance(item, tuple) else item for item in found]
    facts["filters"] = [line.strip(" │") for line in text.splitlines() if re.search(r"Filters:|\(date|hour [<>=]|clientip =", line)][:6]
    facts["lines"] = [line.strip(" │") for line in text.splitlines() if any(key in line for key in ("Scanning Files", "Total Files Read", "Row Groups Scanned", "Data Read"))]
    return facts


def what_if_copies(con: duckdb.DuckDBPyConnection, target: Path) -> dict[str, Path]:
    """Copies of `access` sorted by clientip per partition, and unsorted with DuckDB's bloom filters (see above)."""
    copies = {"access_sorted_by_client": target / "access_sorted_by_client", "access_with_bloom_filters": target / "access_with_bloom_filters"}
    partitions = con.sql("SELECT DISTINCT date, hour FROM access ORDER BY 1, 2").fetchall()
    for day, hour in partitions:
        where = f"date = DATE '{day}' AND hour = {hour}"
        for name, order in (("access_sorted_by_client", " ORDER BY clientip, timestamp"), ("access_with_bloom_filters", "")):
            folder = copies[name] / f"date={day}" / f"hour={hour:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"COPY (SELECT * EXCLUDE (date, hour) FROM access WHERE {where}{order}) TO '{folder / 'data.parquet'}' "
                "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 10240)"
            )
    return copies
