"""The queries of the lake benchmark, their warm timings, and DuckDB's own evidence of what each one read.

Queries go through loglake's `LakeConnection` (what `loglake query` uses: one view per dataset over
`read_parquet([its files], hive_partitioning = true, …)`, the files listed again before each query) and through
`open_lake` (a plain DuckDB connection whose views glob the dataset's folders); see pipelines/lake.py.
`time_query` runs a query once to warm DuckDB and the page cache, then `runs` times, and reports the median and
min–max in milliseconds, and the first run's time apart: DuckDB reads the footer of every file of a dataset when
it binds the view, before the `date=`/`hour=` filters drop any, and the connection's Parquet metadata cache
(turned on by both) keeps them for later queries, so the first query of a connection pays for all of them.
`evidence` runs `EXPLAIN ANALYZE` once and keeps what the scans say about pruning: `Scanning Files: a/b`
(files left after the `date=`/`hour=` folder filters), `Total Files Read`, `Row Groups Scanned: a / b` (row
groups left after the Parquet min/max statistics, and bloom filters where a file has them), the pushed-down
filters, and the bytes read.

`lake_queries` is the set every lake is measured with: 5xx per minute in the last hour (with and without the
`date`/`hour` predicate, and from the `errors` dataset), the 10 busiest clients (whole lake and last day, by
scanning `access`, and from the hourly `client_hours` rollup where the lake has it), and one client's requests
(whole lake and last day).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["Query", "partition_filter", "lake_queries", "time_query", "evidence"]


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


def _time_range(column: str, since: datetime, until: datetime) -> str:
    return f"{column} >= TIMESTAMPTZ '{since:%Y-%m-%d %H:%M:%S}+00' AND {column} < TIMESTAMPTZ '{until:%Y-%m-%d %H:%M:%S}+00'"


def lake_queries(end: datetime, client: str, rollup: bool) -> list[Query]:
    """The benchmark's queries on a lake whose records end at `end`, for one `client`; `rollup`: it has `client_hours`."""
    hour_ago, day_ago = end - timedelta(hours=1), end - timedelta(days=1)
    last_hour, last_day = partition_filter(hour_ago, end), partition_filter(day_ago, end)
    hour_range = _time_range("timestamp", hour_ago, end)
    per_minute = "SELECT time_bucket(INTERVAL 1 minute, timestamp) AS minute, count(*) AS errors FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1"
    top = "SELECT clientip, count(*) AS requests FROM access{where} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
    top_rollup = "SELECT clientip, sum(requests)::BIGINT AS requests FROM client_hours{where} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
    one = f"SELECT timestamp, verb, request, response, bytes FROM access WHERE clientip = '{client}'{{where}} ORDER BY timestamp"
    queries = [
        Query("errors_per_minute_last_hour", per_minute.format(table="access", where=f"response >= 500 AND {hour_range} AND {last_hour}"),
              "5xx per minute over the last hour, with the date/hour predicate"),
        Query("errors_per_minute_last_hour_no_partition_predicate", per_minute.format(table="access", where=f"response >= 500 AND {hour_range}"),
              "the same with the timestamp range only: DuckDB derives no folder filter from it"),
        Query("errors_per_minute_last_hour_errors_dataset", per_minute.format(table="errors", where=f"{hour_range} AND {last_hour}"),
              "the same from the route's `errors` dataset"),
        Query("top_clients", top.format(where=""), "10 busiest clients over the whole lake: every partition, one column"),
        Query("top_clients_last_day", top.format(where=f" WHERE {last_day}"), "10 busiest clients over the last day"),
        Query("one_client", one.format(where=""), "one client's requests over the whole lake"),
        Query("one_client_last_day", one.format(where=f" AND {last_day}"), "one client's requests over the last day"),
    ]
    if rollup:
        days = f"date BETWEEN DATE '{day_ago:%Y-%m-%d}' AND DATE '{end:%Y-%m-%d}'"
        queries[5:5] = [
            Query("top_clients_rollup", top_rollup.format(where=""), "10 busiest clients over the whole lake, from the hourly client_hours rollup"),
            Query("top_clients_rollup_last_day", top_rollup.format(where=f" WHERE {_time_range('window_start', day_ago, end)} AND {days}"),
                  "10 busiest clients over the last day, from client_hours"),
        ]
    return queries


def time_query(run: Callable[[str], list[Any]], sql: str, runs: int) -> dict[str, Any]:
    """Warm timings in ms of `run(sql)` (which returns the rows): one run first (reported apart as `first_ms`), then
    `runs` timed ones."""
    started = time.perf_counter()
    rows = run(sql)
    first = (time.perf_counter() - started) * 1000
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        run(sql)
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
