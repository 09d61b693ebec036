"""Benchmark: DuckDB queries over a ~10M-row lake written by the nginx benchmark pipeline, with pruning evidence.

The lake is built by the same pipeline as nginx_pipeline.py (benchmarks/nginx/pipeline.yaml: grok → cast →
timestamp → geoip → user_agent → route, window → Parquet partitioned by date/hour), with one change: the
Kafka source is replaced by a `file` source over a generated file of `--lines` lines (faster to build and
nothing else differs downstream; the Kafka path is what nginx_pipeline.py measures). The lines are
resampled as there (nginx/data.py) but spread over `--days` days, so the lake has 24·days hour partitions.
The build runs once per setting (its time, peak RSS and row count are recorded; `--rebuild` forces it).

Then, through loglake's `open_lake`, each query is timed warm (one untimed run, then the median and min–max
of `--runs`), and `EXPLAIN ANALYZE` shows what it read (nginx/queries.py): the files left after the
`date=`/`hour=` folder filters, the files opened, and the row groups left after Parquet statistics:

- `errors_per_minute_last_hour`: 5xx per minute in the lake's last hour, with the partition predicate a user
  (or a dashboard) adds; the same without it (the timestamp range only); and from the `errors` dataset;
- `top_clients`: the 10 busiest client addresses, over the whole lake and over its last day;
- `one_client`: one client's requests (a client with 500–2,000 of them), over the whole lake and over its last
  day; clientip is no partition key, so the whole-lake query cannot prune folders. With `--what-if` (default)
  it also runs on two copies of `access` (sorted by clientip per partition / with DuckDB's bloom filters) to
  show what would let it skip row groups.

The first run of each query is reported apart (`first_ms`): the views read with `union_by_name = true`,
so DuckDB opens the footer of every file of a dataset when it binds the view, before the `date=`/`hour=`
filters drop any; `open_lake` turns DuckDB's Parquet metadata cache on, so later queries of the connection
reuse them (before it did, a query that read one of 169 files took ~110 ms instead of ~25).

Appended to benchmarks/results/nginx_queries.jsonl.

    python benchmarks/nginx_queries.py [--lines 10000000] [--days 7] [--runs 5] [--workers 1] [--rebuild] [--no-what-if]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nginx.children import BENCHMARKS, loglake_summary, run_child  # type: ignore[import-not-found]
from nginx.data import START, WORK, make_input  # type: ignore[import-not-found]
from recording import header, record  # type: ignore[import-not-found]

PIPELINE = BENCHMARKS / "nginx" / "pipeline.yaml"
_KAFKA_SOURCE = re.compile(r"  access_log:\n    type: kafka\n(?:    .*\n)+?    stop_at: end\n")


def file_pipeline(source: Path) -> str:
    """benchmarks/nginx/pipeline.yaml with its Kafka source replaced by a file source over `source`."""
    text = PIPELINE.read_text(encoding="utf-8")
    replaced, count = _KAFKA_SOURCE.subn(f"  access_log: {{type: file, paths: [\"{source}\"]}}\n", text)
    if count != 1:
        raise SystemExit(f"cannot find the kafka source block in {PIPELINE}")
    return replaced


def build_lake(source: Path, facts: dict[str, Any], folder: Path, workers: int, rebuild: bool) -> dict[str, Any]:
    """Run the pipeline over the file once (a child process); what it took and wrote is kept in build.json."""
    about = folder / "build.json"
    if about.exists() and not rebuild:
        built: dict[str, Any] = json.loads(about.read_text(encoding="utf-8"))
        if built.get("input") == facts:
            return built
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pipeline = folder / "pipeline.yaml"
    pipeline.write_text(file_pipeline(source), encoding="utf-8")
    run = run_child([sys.executable, "-m", "loglake.pipelines.cli", "run", str(pipeline), "-w", str(workers)], folder / "run.log",
                    {"LOGLAKE_LAKE": str(folder / "lake")})
    summary = loglake_summary(run.output)
    checked = json.loads(run_child([sys.executable, "-m", "nginx.check", f"loglake={folder / 'lake'}"], folder / "check.log").output.strip().splitlines()[-1])["loglake"]
    expected = facts["lines"] - facts["unparsable"]
    if checked["access_rows"] != expected:
        raise SystemExit(f"the lake holds {checked['access_rows']} rows, expected {expected}")
    built = {
        "input": facts, "workers": workers, "wall_s": round(run.wall_s, 1), "rss_mib": run.rss_mib,
        "records_per_s": round(facts["lines"] / run.wall_s), "dataflow_s": summary["dataflow_s"],
        "busy_s": {node: values["busy_s"] for node, values in summary["nodes"].items()},
        "access_rows": checked["access_rows"], "access_files": checked["access_files"],
        "bytes_on_disk": checked["bytes_on_disk"], "lake_over_raw": round(checked["bytes_on_disk"]["access"] / facts["bytes"], 3),
    }
    about.write_text(json.dumps(built), encoding="utf-8")
    return built


def measure(folder: Path, end: datetime, runs: int, what_if: bool) -> dict[str, Any]:
    """Time every query warm and collect its EXPLAIN ANALYZE evidence (DuckDB is imported only now, after the build)."""
    from nginx.queries import Query, evidence, partition_filter, time_query, what_if_copies  # type: ignore[import-not-found]

    from loglake.pipelines.lake import connect, open_lake

    con = open_lake(pipeline=folder / "pipeline.yaml")
    last_hour, last_day = partition_filter(end - timedelta(hours=1), end), partition_filter(end - timedelta(days=1), end)
    hour_range = f"timestamp >= TIMESTAMPTZ '{end - timedelta(hours=1):%Y-%m-%d %H:%M:%S}+00' AND timestamp < TIMESTAMPTZ '{end:%Y-%m-%d %H:%M:%S}+00'"
    client = con.sql("SELECT clientip FROM access GROUP BY 1 HAVING count(*) BETWEEN 500 AND 2000 ORDER BY clientip LIMIT 1").fetchall()[0][0]
    per_minute = "SELECT time_bucket(INTERVAL 1 minute, timestamp) AS minute, count(*) AS errors FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1"
    top = "SELECT clientip, count(*) AS requests FROM access{where} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
    one = "SELECT timestamp, verb, request, response, bytes FROM {table} WHERE clientip = '{client}'{where} ORDER BY timestamp"
    queries = [
        Query("errors_per_minute_last_hour", per_minute.format(table="access", where=f"response >= 500 AND {hour_range} AND {last_hour}"),
              "5xx per minute over the last hour, with the date/hour predicate"),
        Query("errors_per_minute_last_hour_no_partition_predicate", per_minute.format(table="access", where=f"response >= 500 AND {hour_range}"),
              "the same with the timestamp range only: DuckDB derives no folder filter from it"),
        Query("errors_per_minute_last_hour_errors_dataset", per_minute.format(table="errors", where=f"{hour_range} AND {last_hour}"),
              "the same from the route's `errors` dataset"),
        Query("top_clients", top.format(where=""), "10 busiest clients over the whole lake: every partition, one column"),
        Query("top_clients_last_day", top.format(where=f" WHERE {last_day}"), "10 busiest clients over the last day"),
        Query("one_client", one.format(table="access", client=client, where=""), "one client's requests over the whole lake"),
        Query("one_client_last_day", one.format(table="access", client=client, where=f" AND {last_day}"), "one client's requests over the last day"),
    ]
    result: dict[str, Any] = {"client": client, "end": end.isoformat(), "queries": {}}
    for query in queries:
        result["queries"][query.name] = {"about": query.about, "sql": query.sql, **time_query(con, query.sql, runs),
                                         "explain": evidence(con, query.sql, folder / "plans" / f"{query.name}.txt")}
    if what_if:
        copies = what_if_copies(con, folder / "what_if")
        alt = connect(copies)
        for name in copies:
            sql = one.format(table=name, client=client, where="")
            result["queries"][f"one_client_{name}"] = {"about": f"one client's requests over a copy: {name}", "sql": sql, **time_query(alt, sql, runs),
                                                      "explain": evidence(alt, sql, folder / "plans" / f"one_client_{name}.txt")}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7, help="days the lines' timestamps span (default 7: 168 hour partitions)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="workers of the build run (default 1)")
    parser.add_argument("--rebuild", action="store_true", help="build the lake again even if one of this setting exists")
    parser.add_argument("--no-what-if", dest="what_if", action="store_false", help="skip the sorted and bloom-filter copies")
    args = parser.parse_args()
    source, facts = make_input(args.lines, span_s=args.days * 86_400)
    folder = WORK / f"nginx-queries-{args.lines}-{args.days}d"
    built = build_lake(source, facts, folder, args.workers, args.rebuild)
    launcher_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    measured = measure(folder, START + timedelta(days=args.days), args.runs, args.what_if)
    result = {**header(lines=args.lines, days=args.days, runs=args.runs, source="file (see the docstring)"), "build": built,
              "launcher_peak_rss_mib_at_build": launcher_rss, **measured}
    record("nginx_queries", result)
    for name, query in measured["queries"].items():
        facts_line = "; ".join(query["explain"].get("lines", []))
        print(f"{name:<52} {query['ms']['median']:>7.1f} ms ({query['ms']['min']}–{query['ms']['max']}), first {query['first_ms']:>6.1f} ms  "
              f"{facts_line}", file=sys.stderr)


if __name__ == "__main__":
    main()
