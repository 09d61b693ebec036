"""The end-of-run summary table: records in/out/dropped per node, files written, elapsed time and rate."""

from __future__ import annotations

from rich.table import Table

from loglake.pipelines.runner import NodeReport, RunResult
from loglake.schemas.stage import BUSY_COUNTER

__all__ = ["summary_table", "summary_headline"]


def _n(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _row(node: NodeReport) -> list[str]:
    counts = node.counts
    busy = f"{counts.get(BUSY_COUNTER, 0) / 1e6:.2f}"
    if node.kind == "source":
        return [node.name, node.type_name, "", _n(counts.get("records_in", 0)), "", "", "", busy]
    if node.kind == "sink":
        files = _n(counts.get("files_written")) if "files_written" in counts else ""
        return [node.name, node.type_name, _n(counts.get("records_out", 0)), "", "", "", files, busy]
    seen, out = counts.get("records_in", 0), counts.get("records_out", 0)
    dropped = counts.get("records_dropped", 0)
    if "late" in counts or node.type_name == "window":  # out counts window rows: what it left out is the late records
        return [node.name, node.type_name, _n(seen), _n(out), _n(dropped), f"{_n(counts.get('late', 0))} late", "", busy]
    return [node.name, node.type_name, _n(seen), _n(out), _n(dropped), _n(max(seen - out - dropped, 0)), "", busy]


def summary_table(result: RunResult) -> Table:
    """One row per node; `filtered` = in − out − dropped (records a filter removed on purpose; for a window, its
    late records), `busy s` = time working."""
    table = Table(title=None, box=None, header_style="bold", pad_edge=False)
    for column in ("node", "type", "in", "out", "dropped", "filtered", "files", "busy s"):
        table.add_column(column, justify="left" if column in ("node", "type") else "right")
    for node in result.nodes:
        table.add_row(*_row(node))
    return table


def summary_headline(result: RunResult) -> str:
    """`pipeline app-json finished in 1.2 s: 10,000 records read (8,300/s)`."""
    verb = "stopped" if result.stopped_early else "finished"
    resumed = " (resumed from checkpoint)" if result.resumed else ""
    processes = f" on {result.processes} processes" if result.processes > 1 else ""
    return (
        f"pipeline {result.pipeline} {verb} in {result.elapsed:.2f} s{processes}{resumed}: "
        f"{result.records_read:,} records read ({result.rate:,.0f}/s)"
    )
