"""`loglake replay PIPELINE --from …`: the pipeline's own stages over bounded history, with progress and a summary.

The history is files (`--from files GLOB...`), a lake dataset (`--from lake DATASET [--where SQL] [--since T]
[--until T]`), a Kafka range (`--from kafka [--since T] [--until T] | [--offsets P:FROM-TO,...]`) or the
records that failed (`--from dead-letter [--node STAGE] [--where SQL]`). A replay saves no checkpoint, commits
no offsets and keeps out of the recovery folder.

Every `loglake` command imports this module to build its parser, so the replay engine (Bytewax, DuckDB,
pyarrow) is imported by the handler.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rich.console import Console

from loglake.schemas.units import parse_duration

if TYPE_CHECKING:
    from loglake.pipelines.rebuild import RebuildOutcome
    from loglake.pipelines.replay import OffsetRange, ReplayPlan, ReplayRequest
    from loglake.pipelines.runner import RunResult

__all__ = ["add_replay_command"]

_ORIGINS = ("files", "lake", "kafka", "dead-letter")
_USAGE = "--from files GLOB... | --from lake DATASET | --from kafka | --from dead-letter"


def add_replay_command(commands: Any) -> None:
    """Register `loglake replay` on the CLI's sub-command parser."""
    parser = commands.add_parser(
        "replay",
        usage="loglake replay PIPELINE (--from files GLOB... | --from lake DATASET [--where SQL] | --from kafka [--offsets "
        "P:FROM-TO,...] | --from dead-letter [--node STAGE] [--where SQL]) [--since TIME] [--until TIME] [--on-corrupt fail|skip] [--source NAME] "
        "[--to SINK=DATASET|stdout]... [--force] [-w N]",
        help="run a pipeline over bounded history: files, a lake dataset, a Kafka time/offset range or its dead letters",
        description="Run a pipeline's stages over bounded history. Output goes to the pipeline's sinks; writing "
        "where normal runs write is refused unless --force (--from dead-letter writes there: the fixed records join "
        "the live datasets, and leave the dead-letter dataset). No checkpoint is saved and no offset is committed.",
    )
    parser.add_argument("pipeline", help="pipeline YAML file")
    parser.add_argument("--from", dest="origin", nargs="+", required=True, metavar="ORIGIN", help=f"what to replay: {_USAGE}")
    select = parser.add_argument_group("selecting the history")
    select.add_argument("--where", metavar="SQL", help="--from lake or dead-letter: SQL condition (DuckDB) records must meet, e.g. \"response >= 500\"")
    select.add_argument("--node", metavar="STAGE", help="--from dead-letter: replay only the records that failed in this stage")
    select.add_argument("--since", type=_time, metavar="TIME", help="records at or after this ISO-8601 time (no zone: UTC) or age (2h: two hours ago); lake: event time, kafka: message time")
    select.add_argument("--until", type=_time, metavar="TIME", help="records at or before this time or age; kafka stops each partition at its first message after it")
    select.add_argument("--offsets", type=_offsets, default=(), metavar="P:FROM-TO,...", help="--from kafka: offsets FROM to TO (both included) of partition P (or TOPIC/P); FROM- reads to the end")
    select.add_argument("--on-corrupt", choices=("fail", "skip"), help="--from lake or dead-letter: a file that is not readable Parquet stops the replay naming it (fail, default) or is skipped with a warning (skip)")
    select.add_argument("--source", metavar="NAME", help="the source node to replace, when the pipeline has several (the others do not run)")
    output = parser.add_argument_group("output")
    output.add_argument("--to", type=_target, action="append", default=[], metavar="SINK=DATASET|stdout", help="send a sink's records to another dataset of the lake, or print them (repeatable)")
    output.add_argument("--force", action="store_true", help="write into the datasets, topics and webhooks the pipeline writes in normal runs")
    output.add_argument(
        "--rebuild",
        action="store_true",
        help="replace exactly the Parquet partitions --since…--until covers (whole hours or days) with the replay's output, each atomically; never duplicates rows",
    )
    parser.add_argument("-w", "--workers", type=int, default=1, metavar="N", help="worker threads (default 1)")
    parser.set_defaults(handler=_cmd_replay)


def _time(text: str) -> datetime:
    """An ISO-8601 time (UTC when it names no zone) or an age before now (`2h`, `30m`)."""
    try:
        return datetime.now(timezone.utc) - parse_duration(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is neither an ISO-8601 time (e.g. 2015-05-17T10:00:00Z) nor an age (e.g. 2h)") from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _offsets(text: str) -> tuple[OffsetRange, ...]:
    from loglake.pipelines.replay import OffsetRange

    try:
        return tuple(OffsetRange.parse(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _target(text: str) -> tuple[str, str]:
    sink, equals, target = text.partition("=")
    if not (sink and equals and target):
        raise argparse.ArgumentTypeError(f"'{text}' is not SINK=DATASET or SINK=stdout")
    return sink, target


def _request(args: argparse.Namespace) -> ReplayRequest:
    from loglake.pipelines.replay import ReplayError, ReplayRequest

    origin, *rest = args.origin
    if origin not in _ORIGINS:
        raise ReplayError(f"--from {origin}: replay from {_USAGE}")
    if origin == "lake" and len(rest) != 1:
        raise ReplayError(f"--from lake takes one dataset name, not {len(rest)}")
    if origin in ("kafka", "dead-letter") and rest:
        says = "the pipeline's kafka source" if origin == "kafka" else "the pipeline's dead_letter sink"
        raise ReplayError(f"--from {origin} takes no argument (got {' '.join(rest)}); {says} says where")
    return ReplayRequest(
        origin=origin,
        paths=tuple(rest) if origin == "files" else (),
        dataset=rest[0] if origin == "lake" else None,
        where=args.where,
        since=args.since,
        until=args.until,
        offsets=tuple(args.offsets),
        source=args.source,
        node=args.node,
        to=tuple(args.to),
        force=args.force,
        rebuild=args.rebuild,
        on_corrupt=args.on_corrupt,
    )


def _cmd_replay(args: argparse.Namespace) -> int:
    from loglake.pipelines.progress import show_progress
    from loglake.pipelines.replay import NothingToReplay, plan_replay, run_replay

    try:
        plan = plan_replay(args.pipeline, _request(args))
    except NothingToReplay as nothing:
        Console(soft_wrap=True).print(f"0 records: nothing to replay in {nothing}", highlight=False, markup=False)
        return 0
    with show_progress(plan.records_in, plan.total, f"replay {plan.source}", sys.stderr):
        result = run_replay(plan, args.workers)
    _report(plan, result)
    return 0


def _report(plan: ReplayPlan, result: RunResult) -> None:
    from loglake.pipelines.summary import summary_headline, summary_table

    console = Console(soft_wrap=True, stderr=_prints_records(plan))
    if result.records_read == 0:
        console.print(f"0 records: nothing to replay in {plan.description}", highlight=False, markup=False)
    console.print(f"replay of {plan.description}: {summary_headline(result)}", highlight=False, markup=False)
    console.print(summary_table(result))
    if plan.dead_letters is not None:
        console.print(_dead_letter_outcome(plan, result), highlight=False, markup=False)
    if plan.rebuilt is not None:
        console.print(_rebuild_outcome(plan.rebuilt), highlight=False, markup=False)
    for name, folder in result.datasets.items():
        if folder.is_dir():
            console.print(f"dataset {name}: {folder}", highlight=False, markup=False)


def _rebuild_outcome(outcome: RebuildOutcome) -> str:
    """`rebuilt access: 3 partition(s) replaced, 1 emptied; 12 record(s) outside the range discarded`."""
    datasets = sorted({*outcome.replaced, *outcome.emptied})
    parts = [f"{name}: {outcome.replaced.get(name, 0)} partition(s) replaced, {outcome.emptied.get(name, 0)} emptied" for name in datasets]
    text = "rebuilt " + ("; ".join(parts) if parts else "nothing: no partition of the range had data before or after")
    return text + (f"; {outcome.outside:,} record(s) outside the range discarded" if outcome.outside else "")


def _prints_records(plan: ReplayPlan) -> bool:
    """Whether a sink prints records to stdout, so the summary goes to stderr and stdout stays records only."""
    from loglake.pipelines.replay import STDOUT

    return any(node.type_name == STDOUT for node in plan.compiled.graph.nodes if node.kind == "sink")


def _dead_letter_outcome(plan: ReplayPlan, result: RunResult) -> str:
    """`dead letters: 3 re-run, 2 landed, 1 failed again, 3 removed from …`; landed counts records the sinks
    other than dead_letter wrote (a record two sinks write counts twice)."""
    from loglake.pipelines.spec import DEAD_LETTER_NODE

    assert plan.dead_letters is not None
    written = {node.name: node.counts.get("records_out", 0) for node in result.nodes if node.kind == "sink"}
    failed = written.pop(DEAD_LETTER_NODE, 0)
    return (
        f"dead letters: {result.records_read:,} re-run, {sum(written.values()):,} landed, {failed:,} failed again, "
        f"{plan.dead_letters.removed:,} removed from {plan.dead_letters.folder}"
    )
