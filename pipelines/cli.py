"""The `loglake` command: run, validate, graph, schema, query, compact, retention, parse, test, dev-broker, produce, replay."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rich.console import Console
from rich.table import Table

from loglake.pipelines.broker_cli import add_dev_broker_command
from loglake.pipelines.maintenance_cli import add_maintenance_commands
from loglake.pipelines.parse_cli import add_parse_command
from loglake.pipelines.pipeline_tests_cli import add_test_command
from loglake.pipelines.produce_cli import add_produce_command
from loglake.pipelines.replay_cli import add_replay_command
from loglake.schemas.errors import LoglakeError, SpecError, UsageError
from loglake.schemas.units import parse_duration

if TYPE_CHECKING:
    from loglake.pipelines.runner import RunResult

__all__ = ["main", "build_parser"]

EXIT_RUNTIME = 1
EXIT_SPEC = 2

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from loglake.pipelines.local_cluster import write_result
    from loglake.pipelines.runner import RunOptions, run_pipeline

    if args.processes < 1:
        raise UsageError(f"--processes must be at least 1, got {args.processes}")
    if args.processes > 1:
        from loglake.pipelines.local_cluster import ClusterFailed

        try:
            result = _run_local_cluster(args)
        except ClusterFailed as exc:
            if exc.exit_status == EXIT_SPEC:  # process 0 has reported the configuration's problems
                return EXIT_SPEC
            raise
        _print_run(args, result)
        return 0
    options = RunOptions(
        workers=args.workers,
        follow=True if args.follow else None,
        reset=args.reset,
        process_id=args.process_id,
        addresses=tuple(args.addresses),
        recovery_dir=args.recovery_dir,
        snapshot_interval=args.snapshot_interval,
        metrics_port=args.metrics_port,
    )
    if options.addresses and not 0 <= options.process_id < len(options.addresses):
        raise UsageError(f"--process-id {options.process_id} is not an index into --addresses ({len(options.addresses)} given)")
    result = run_pipeline(args.pipeline, options)
    if args.result_json is not None:  # one process of `--processes`: the launcher prints the summary
        write_result(result, args.result_json)
        return 0
    _print_run(args, result)
    return 0


def _run_local_cluster(args: argparse.Namespace) -> RunResult:
    """`--processes N`: the pipeline run by N local processes (pipelines/local_cluster.py)."""
    from loglake.pipelines.local_cluster import run_local_cluster

    if args.addresses:
        raise UsageError("--processes starts its own cluster on this machine; leave out --addresses (or start each process yourself with -i/-a)")
    run_flags = ["-w", str(args.workers), *(["--follow"] if args.follow else []), *(["--reset"] if args.reset else [])]
    if args.recovery_dir is not None:
        run_flags += ["--recovery-dir", str(args.recovery_dir), "--snapshot-interval", f"{args.snapshot_interval.total_seconds():g}s"]
    global_flags = ["-v"] * args.verbose + (["--debug"] if args.debug else [])
    return run_local_cluster(args.pipeline, args.processes, run_flags, global_flags, args.metrics_port)


def _print_run(args: argparse.Namespace, result: RunResult) -> None:
    """The end-of-run summary, the datasets written and how to query them."""
    from loglake.pipelines.summary import summary_headline, summary_table

    stdout.print(summary_headline(result), highlight=False)
    stdout.print(summary_table(result))
    for name, folder in result.datasets.items():
        stdout.print(f"dataset {name}: {_shown(folder)}", highlight=False)
    if result.datasets:
        example = next(iter(result.datasets))
        stdout.print(f'query it: loglake query -p {args.pipeline} "SELECT count(*) FROM {example}"', highlight=False, markup=False)


def _address_list(text: str) -> list[str]:
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise argparse.ArgumentTypeError(f"'{address}' is not host:port")
    return addresses


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shown(path: Path) -> str:
    """A path relative to the current folder when it is below it (shorter to read and to paste)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _cmd_validate(args: argparse.Namespace) -> int:
    from loglake.pipelines.compile import load_and_compile
    from loglake.pipelines.spec import DEAD_LETTER_NODE

    failed = 0
    for file in args.pipelines:
        try:
            compiled = load_and_compile(file)
        except SpecError as exc:
            stderr.print(exc.render(), highlight=False, markup=False)
            failed += 1
            continue
        nodes = [node for node in compiled.graph.nodes if node.name != DEAD_LETTER_NODE]
        counts = {kind: sum(1 for node in nodes if node.kind == kind) for kind in ("source", "stage", "sink")}
        dead = compiled.spec.nodes[DEAD_LETTER_NODE]
        dead_letters = f"; failed records go to {dead.type_name} sink '{DEAD_LETTER_NODE}'" if dead in compiled.graph.nodes else ""
        stdout.print(
            f"{file}: ok — pipeline {compiled.spec.name}, {counts['source']} source(s), "
            f"{counts['stage']} stage(s), {counts['sink']} sink(s){dead_letters}",
            highlight=False,
            markup=False,
        )
    return EXIT_SPEC if failed else 0


def _cmd_graph(args: argparse.Namespace) -> int:
    from loglake.pipelines.graph import build_graph, to_dot, to_mermaid
    from loglake.pipelines.spec import load_pipeline

    graph = build_graph(load_pipeline(args.pipeline))
    sys.stdout.write(to_dot(graph) if args.format == "dot" else to_mermaid(graph))
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from loglake.schemas.pipeline import render_json_schema

    text = render_json_schema()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _lake_argument(args: argparse.Namespace) -> str | None:
    """`--lake`, or ./lake when neither it nor `--pipeline` names where the datasets are."""
    if args.lake:
        return str(args.lake)
    return None if args.pipeline else "lake"


def _cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from loglake.pipelines.lake import LakeConnection

    lake = LakeConnection.open(lake=_lake_argument(args), pipeline=args.pipeline, on_corrupt=args.on_corrupt)
    try:
        result = lake.fetch(args.sql)
    except duckdb.Error as exc:
        raise QueryError(f"{exc}\ndatasets you can query: {', '.join(lake.views()) or 'none (is the lake empty?)'}") from None
    if result is not None:
        _print_rows(result.columns, result.rows, args.format)
    return 0


class QueryError(LoglakeError):
    """A query DuckDB rejected."""


def _print_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    elif fmt in ("json", "jsonl"):
        records = [dict(zip(columns, row)) for row in rows]
        if fmt == "json":
            sys.stdout.write(json.dumps(records, default=str, indent=1) + "\n")
        else:
            sys.stdout.writelines(json.dumps(record, default=str) + "\n" for record in records)
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("NULL" if value is None else str(value) for value in row))
        stdout.print(table)
        stdout.print(f"({len(rows):,} row{'s' if len(rows) != 1 else ''})", style="dim", highlight=False)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the CLI reference test)."""
    parser = argparse.ArgumentParser(prog="loglake", description="One YAML pipeline from log lines to a Parquet lake you query with DuckDB.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a pipeline (bounded input ends by itself; --follow keeps tailing)")
    run.add_argument("pipeline", help="pipeline YAML file")
    run.add_argument("-w", "--workers", type=int, default=1, help="worker threads per process (default 1); threads share one core for the stages that hold Python's GIL")
    run.add_argument("--processes", type=int, default=1, help="run as this many local processes, one core each (default 1); they share the sources' partitions")
    run.add_argument("--follow", action="store_true", help="keep tailing file sources at their end (Ctrl-C to stop cleanly)")
    run.add_argument("--reset", action="store_true", help="ignore the saved checkpoint and recovery snapshots; read sources from their configured start")
    cluster = run.add_argument_group("cluster (several processes share the sources' partitions)")
    cluster.add_argument("-i", "--process-id", type=int, default=int(os.environ.get("LOGLAKE_PROCESS_ID", 0)), help="this process's index in --addresses (default $LOGLAKE_PROCESS_ID or 0)")
    cluster.add_argument("-a", "--addresses", type=_address_list, default=_address_list(os.environ.get("LOGLAKE_ADDRESSES", "")), help="host:port of every process, comma-separated, the same list everywhere (default $LOGLAKE_ADDRESSES)")
    recovery = run.add_argument_group("crash recovery (exactly-once into the lake)")
    recovery.add_argument("--recovery-dir", type=Path, default=None, help="keep snapshots here and resume from the last one after a crash")
    recovery.add_argument("--snapshot-interval", type=_duration, default=timedelta(seconds=10), help="how often to snapshot positions, state and sink commits (default 10s)")
    run.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port at /metrics while running (process K of --processes: port + K)")
    run.add_argument("--result-json", type=Path, default=None, help=argparse.SUPPRESS)  # a --processes member reports to its launcher
    run.set_defaults(handler=_cmd_run)

    validate = commands.add_parser("validate", help="check pipeline files without running them (exit 2 on problems)")
    validate.add_argument("pipelines", nargs="+", help="pipeline YAML files")
    validate.set_defaults(handler=_cmd_validate)

    graph = commands.add_parser("graph", help="print a pipeline's DAG as Mermaid or DOT")
    graph.add_argument("pipeline")
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    graph.set_defaults(handler=_cmd_graph)

    schema = commands.add_parser("schema", help="print the JSON Schema of pipeline YAML (for editors)")
    schema.add_argument("-o", "--output", help="write to this file instead of stdout")
    schema.set_defaults(handler=_cmd_schema)

    add_maintenance_commands(commands)

    add_parse_command(commands)
    add_test_command(commands)
    add_dev_broker_command(commands)
    add_produce_command(commands)
    add_replay_command(commands)

    query = commands.add_parser("query", help="run SQL over the lake (one view per dataset)")
    query.add_argument("sql", help='e.g. "SELECT level, count(*) FROM app GROUP BY 1"')
    query.add_argument("-p", "--pipeline", help="query the datasets this pipeline writes")
    query.add_argument("--lake", help="lake folder (default ./lake unless --pipeline is given)")
    query.add_argument("--format", choices=("table", "csv", "json", "jsonl"), default="table")
    query.add_argument(
        "--on-corrupt",
        choices=("fail", "skip"),
        default="fail",
        help="a file that is not readable Parquet: fail naming it (default), or skip it with a warning naming it",
    )
    query.set_defaults(handler=_cmd_query)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _cluster_member_after_the_first(args: argparse.Namespace) -> bool:
    return getattr(args, "result_json", None) is not None and getattr(args, "process_id", 0) > 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 on success, 2 for spec problems, 1 for runtime failures."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except SpecError as exc:
        if args.debug:
            raise
        if not _cluster_member_after_the_first(args):  # process 0 of `--processes` reports them for all
            stderr.print(exc.render(), highlight=False, markup=False)
        return EXIT_SPEC
    except LoglakeError as exc:
        if args.debug:
            raise
        stderr.print(f"error: {exc}", highlight=False, markup=False)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
