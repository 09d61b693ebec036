"""`loglake compact` and `loglake retention`: lake maintenance by hand (pipelines can also schedule both).

Every `loglake` command imports this module to build its parser, so the maintenance code (pyarrow, the
Parquet sink's settings) is imported by the commands' handlers.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loglake.schemas.errors import UsageError
from loglake.schemas.units import parse_duration, parse_size

if TYPE_CHECKING:
    from loglake.pipelines.maintenance import LakeDataset

__all__ = ["add_maintenance_commands"]


def add_maintenance_commands(commands: Any) -> None:
    """Register `loglake compact` and `loglake retention` on the CLI's sub-command parser."""
    compact = commands.add_parser("compact", help="merge a dataset's small files per partition, atomically for readers")
    _dataset_arguments(compact)
    compact.add_argument("--target-size", help="bytes a merged file grows to, e.g. 256MiB (default: the sink's max_file_size, else 128MiB)")
    compact.add_argument("--min-age", default="15m", help="leave partitions written to more recently than this (default 15m)")
    compact.add_argument("--dry-run", action="store_true", help="say what would be merged, change nothing")
    compact.set_defaults(handler=_cmd_compact)

    retention = commands.add_parser("retention", help="drop a dataset's partitions older than an age")
    _dataset_arguments(retention)
    retention.add_argument("--older-than", required=True, help="age, e.g. 30d or 12h")
    retention.add_argument("--dry-run", action="store_true", help="list what would be dropped, drop nothing")
    retention.set_defaults(handler=_cmd_retention)


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset name (in --lake or the pipeline's lake) or folder")
    parser.add_argument("-p", "--pipeline", help="find the dataset among this pipeline's (and use its sink's file settings)")
    parser.add_argument("--lake", help="lake folder (default ./lake unless --pipeline is given)")


def _dataset(args: argparse.Namespace) -> LakeDataset:
    from loglake.pipelines.maintenance import find_dataset

    return find_dataset(args.dataset, args.lake, args.pipeline)


def _option(parse: Any, flag: str, text: str) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _cmd_compact(args: argparse.Namespace) -> int:
    from loglake.pipelines.cli import _shown
    from loglake.pipelines.compaction import compact_dataset

    dataset = _dataset(args)
    target = _option(parse_size, "--target-size", args.target_size) if args.target_size else None
    options = dataset.compaction_options(_option(parse_duration, "--min-age", args.min_age), target)
    result = compact_dataset(dataset.folder, (dataset.lake_dir, dataset.name), options, dry_run=args.dry_run)
    verb = "would merge" if args.dry_run else "merged"
    print(
        f"{_shown(dataset.folder)}: {verb} {result.files_in:,} file(s) ({result.bytes_in / 1e6:,.1f} MB) into "
        f"{result.files_out:,} in {result.partitions:,} partition(s)"
        + ("" if args.dry_run else f" ({result.bytes_out / 1e6:,.1f} MB, {result.rows:,} records)")
    )
    for reason, partitions in _by_reason(result.skipped).items():
        shown = ", ".join(p.as_posix() for p in partitions[:3]) + (f" and {len(partitions) - 3} more" if len(partitions) > 3 else "")
        print(f"  left {len(partitions)} partition(s) as they were, {reason}: {shown}")
    return 0


def _by_reason(skipped: list[tuple[Path, str]]) -> dict[str, list[Path]]:
    grouped: dict[str, list[Path]] = {}
    for relative, reason in skipped:
        grouped.setdefault(reason, []).append(relative)
    return grouped


def _cmd_retention(args: argparse.Namespace) -> int:
    from loglake.pipelines.cli import _shown
    from loglake.pipelines.retention import drop_older_than

    dataset = _dataset(args)
    cutoff = datetime.now(timezone.utc) - _option(parse_duration, "--older-than", args.older_than)
    result = drop_older_than(dataset.folder, cutoff, dry_run=args.dry_run)
    verb = "would drop" if args.dry_run else "dropped"
    print(
        f"{_shown(dataset.folder)}: {verb} {len(result.dropped):,} partition(s), {result.files:,} file(s), "
        f"{result.bytes / 1e6:,.1f} MB with event time before {cutoff:%Y-%m-%d %H:%M} UTC"
    )
    for leaf in result.dropped if args.dry_run else []:
        print(f"  {_shown(leaf)}")
    if result.undated:
        print(f"kept {len(result.undated):,} partition(s) without a date= folder")
    return 0
