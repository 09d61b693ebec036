"""Benchmark: DuckDB queries over a ~10M-row lake written by the nginx benchmark pipeline, with pruning evidence.

The lake is built by the same pipeline as nginx_pipeline.py (benchmarks/nginx/pipeline.yaml: grok → cast →
timestamp → geoip → user_agent → drop `message` → route, windows → Parquet partitioned by date/hour, `access`
sorted by client within each file) with one change: the Kafka source is replaced by a `file` source over a
generated file of `--lines` lines (nginx/file_copy.py; faster to build and nothing else differs downstream;
the Kafka path is what nginx_pipeline.py measures). The lines are resampled as there (nginx/data.py) but
spread over `--days` days, so the lake has 24·days hour partitions. With `--baseline` (default) a second lake
is built from the pipeline as it was before the lake-layout work (nginx_lake_size.py's `before`: `message`
kept, files unsorted, no `client_hours` rollup), and every query runs on both, alternating, in the same
invocation. Each build runs once per setting and pipeline (its time, peak RSS and row count are recorded;
`--rebuild` forces it).

Then each query is timed warm (one untimed run, then the median and min–max of `--runs`) through loglake's
`LakeConnection` (`ms`: what `loglake query` runs) and through `open_lake` (`open_lake.ms`: a plain DuckDB
connection; see nginx/queries.py), and `EXPLAIN ANALYZE` shows what it read: the files left after the
`date=`/`hour=` folder filters, the files opened, and the row groups left after Parquet statistics:

- `errors_per_minute_last_hour`: 5xx per minute in the lake's last hour, with the partition predicate a user
  (or a dashboard) adds; the same without it (the timestamp range only); and from the `errors` dataset;
- `top_clients`: the 10 busiest client addresses, over the whole lake and over its last day, scanning every
  record's `clientip`; `top_clients_rollup`: the same from the pipeline's hourly `client_hours` dataset (its
  result is checked equal to the scan's);
- `one_client`: one client's requests (a client with 500–2,000 of them), over the whole lake and over its last
  day; clientip is no partition key, so the whole-lake query opens every file, and only row-group statistics
  (narrow when files are sorted by client) let it skip data.

The first run of each query is reported apart (`first_ms`): DuckDB opens the footer of every file of a
dataset when it binds the view, before the `date=`/`hour=` filters drop any; both turn DuckDB's Parquet
metadata cache on, so later queries of the connection reuse them.

Appended to benchmarks/results/nginx_queries.jsonl.

    python benchmarks/nginx_queries.py [--lines 10000000] [--days 7] [--runs 5] [--workers 1] [--rebuild] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nginx.children import loglake_summary, run_child  # type: ignore[import-not-found]
from nginx.data import START, WORK, make_input  # type: ignore[import-not-found]
from nginx.file_copy import file_pipeline  # type: ignore[import-not-found]
from recording import compile_sources, header, record  # type: ignore[import-not-found]

BEFORE = {"without": ("slim", "hours", "client_hours"), "without_options": ("sort_by", "column_encoding")}
"""The pipeline before the lake-layout work (nginx_lake_size.py's `before`)."""


def build_lake(source: Path, facts: dict[str, Any], folder: Path, workers: int, rebuild: bool, pipeline_text: str) -> dict[str, Any]:
    """Run the pipeline over the file once (a child process); what it took and wrote is kept in build.json."""
    about = folder / "build.json"
    if about.exists() and not rebuild:
        built: dict[str, Any] = json.loads(about.read_text(encoding="utf-8"))
        if built.get("input") == facts and (folder / "pipeline.yaml").read_text(encoding="utf-8") == pipeline_text:
            return built
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pipeline = folder / "pipeline.yaml"
    pipeline.write_text(pipeline_text, encoding="utf-8")
    run = run_child([sys.executable, "-m", "loglake.pipelines.cli", "run", str(pipeline), "-w", str(workers)], folder / "run.log",
                    {"LOGLAKE_LAKE": str(folder / "lake")})
    summary = loglake_summary(run.output)
    checked = json.loads(run_child([sys.executable, "-m", "nginx.check", f"loglake={folder / 'lake'}"], folder / "check.log").output.strip().splitlines()[-1])["loglake"]
    expected = facts["lines"] - facts["unparsable"]
    if checked["access_rows"] != expected:
        raise SystemExit(f"the lake holds {checked['access_rows']} rows, expected {expected}")
    lake_bytes = sum(path.stat().st_size for path in (folder / "lake").rglob("*.parquet") if not path.name.startswith("."))
    built = {
        "input": facts, "workers": workers, "wall_s": round(run.wall_s, 1), "rss_mib": run.rss_mib,
        "records_per_s": round(facts["lines"] / run.wall_s), "dataflow_s": summary["dataflow_s"],
        "busy_s": {node: values["busy_s"] for node, values in summary["nodes"].items()},
        "access_rows": checked["access_rows"], "access_files": checked["access_files"],
        "bytes_on_disk": checked["bytes_on_disk"], "access_column_bytes": checked["access_column_bytes"],
        "access_over_raw": round(checked["bytes_on_disk"]["access"] / facts["bytes"], 4),
        "lake_over_raw": round(lake_bytes / facts["bytes"], 4),
    }
    about.write_text(json.dumps(built), encoding="utf-8")
    return built


def measure(folders: dict[str, Path], end: datetime, runs: int) -> dict[str, Any]:
    """Time every query warm on every lake, alternating lakes per query, with its EXPLAIN ANALYZE evidence.

    DuckDB is imported only now, after the builds.
    """
    from nginx.queries import evidence, lake_queries, time_query  # type: ignore[import-not-found]

    from loglake.pipelines.lake import LakeConnection, open_lake

    lakes = {name: LakeConnection.open(pipeline=folder / "pipeline.yaml") for name, folder in folders.items()}
    cons = {name: open_lake(pipeline=folder / "pipeline.yaml") for name, folder in folders.items()}
    first = next(iter(cons.values()))
    client = first.sql("SELECT clientip FROM access GROUP BY 1 HAVING count(*) BETWEEN 500 AND 2000 ORDER BY clientip LIMIT 1").fetchall()[0][0]
    results: dict[str, Any] = {}
    plans: dict[str, Any] = {}
    for name, con in cons.items():
        views = {row[0] for row in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        queries = lake_queries(end, client, rollup="client_hours" in views)
        results[name] = {"client": client, "end": end.isoformat(), "queries": {}}
        plans[name] = queries
    names = list(cons)
    for index, query in enumerate(plans[names[0]]):
        for name in names[index % len(names):] + names[:index % len(names)]:
            if query not in plans[name]:
                continue
            lake, con = lakes[name], cons[name]
            timed = time_query(lambda sql, lake=lake: _rows(lake, sql), query.sql, runs)
            plain = time_query(lambda sql, con=con: con.sql(sql).fetchall(), query.sql, runs)
            if plain["result_rows"] != timed["result_rows"] or plain["first_rows"] != timed["first_rows"]:
                raise SystemExit(f"{name}: {query.name} differs between LakeConnection and open_lake")
            results[name]["queries"][query.name] = {"about": query.about, "sql": query.sql, **timed,
                                                    "open_lake": {"ms": plain["ms"], "first_ms": plain["first_ms"]},
                                                    "explain": evidence(lake.connection, query.sql, folders[name] / "plans" / f"{query.name}.txt")}
    for name, con in cons.items():
        queries = results[name]["queries"]
        for scan, rollup in (("top_clients", "top_clients_rollup"), ("top_clients_last_day", "top_clients_rollup_last_day")):
            if rollup in queries:
                same = con.sql(queries[scan]["sql"]).fetchall() == con.sql(queries[rollup]["sql"]).fetchall()
                queries[rollup]["same_result_as"] = {scan: same}
                if not same:
                    raise SystemExit(f"{name}: {rollup} differs from {scan}")
    return results


def _rows(lake: Any, sql: str) -> list[Any]:
    result = lake.fetch(sql)
    return result.rows if result is not None else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7, help="days the lines' timestamps span (default 7: 168 hour partitions)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="workers of the build run (default 1)")
    parser.add_argument("--rebuild", action="store_true", help="build the lakes again even if ones of this setting exist")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the lake of the pipeline before the layout work")
    args = parser.parse_args()
    compile_sources()
    source, facts = make_input(args.lines, span_s=args.days * 86_400)
    base = WORK / f"nginx-queries-{args.lines}-{args.days}d"
    folders = {"pipeline": base}
    if args.baseline:
        folders["before"] = base.with_name(base.name + "-before")
    texts = {"pipeline": file_pipeline(source), "before": file_pipeline(source, **BEFORE)}
    built = {name: build_lake(source, facts, folder, args.workers, args.rebuild, texts[name]) for name, folder in folders.items()}
    launcher_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    measured = measure(folders, START + timedelta(days=args.days), args.runs)
    for name in folders:
        result = {**header(lines=args.lines, days=args.days, runs=args.runs, source="file (see the docstring)"), "lake": name,
                  "build": built[name], "launcher_peak_rss_mib_at_build": launcher_rss, **measured[name]}
        record("nginx_queries", result)
    for name in folders:
        print(f"--- {name}: access/raw {built[name]['access_over_raw']}, lake/raw {built[name]['lake_over_raw']}", file=sys.stderr)
        for query_name, query in measured[name]["queries"].items():
            facts_line = "; ".join(query["explain"].get("lines", []))
            print(f"{query_name:<52} {query['ms']['median']:>7.1f} ms ({query['ms']['min']}–{query['ms']['max']}), first {query['first_ms']:>6.1f} ms, "
                  f"open_lake {query['open_lake']['ms']['median']:>7.1f} ms  {facts_line}", file=sys.stderr)


if __name__ == "__main__":
    main()
