"""Which of a dataset's part files are final, i.e. can no longer be rolled back by a crash recovery.

A sink partition's writer lineage is remembered in `<lake>/_checkpoints/writers/<dataset>/p<N>` (its writer
id). A run that keeps snapshots also keeps `p<N>.final`: `<writer id> <sequence>`, the highest file sequence
no resume can delete any more. Resuming deletes the files numbered after the restored snapshot, and a run
resumes from its latest stored snapshot, which is never older than the one before the latest `snapshot`
call; so at each snapshot the writer records the sequence of the previous one. Maintenance that rewrites
files (compaction, `replay --rebuild`) leaves the rest alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["PartName", "parse_part_name", "lineage_folder", "FinalMark", "unfinal_sequences", "write_durably"]

_PART_NAME = re.compile(r"^\.?part-\d{8}T\d{6}-(?P<writer>[A-Za-z0-9]+)-(?P<seq>\d+)-[0-9a-f]+\.parquet(?P<open>\.inprogress)?$")


class PartName:
    """What a part file's name says: the writer that wrote it, its sequence number, and whether it is open."""

    __slots__ = ("writer", "sequence", "in_progress")

    def __init__(self, writer: str, sequence: int, in_progress: bool) -> None:
        self.writer, self.sequence, self.in_progress = writer, sequence, in_progress


def parse_part_name(name: str) -> PartName | None:
    """`part-<time>-<writer>-<seq>-<random>.parquet[.inprogress]` → its parts; None for any other name."""
    match = _PART_NAME.match(name)
    if match is None:
        return None
    return PartName(match["writer"], int(match["seq"]), match["open"] is not None)


def lineage_folder(lake_dir: Path, dataset: str) -> Path:
    """Where the writer lineages of a dataset's sink partitions are remembered."""
    return lake_dir / "_checkpoints" / "writers" / dataset


class FinalMark:
    """Records, at each snapshot, the highest sequence of a writer no resume can delete (`p<N>.final`)."""

    def __init__(self, path: Path, writer_id: str, resumed_at: int) -> None:
        self._path = path
        self._writer_id = writer_id
        self._previous = resumed_at
        write_durably(path, f"{writer_id} {resumed_at}")

    def snapshot_taken(self, sequence: int) -> None:
        """A snapshot covering files up to `sequence` was taken; the one before it is now final."""
        if self._previous:
            write_durably(self._path, f"{self._writer_id} {self._previous}")
        self._previous = sequence


def unfinal_sequences(lake_dir: Path, dataset: str) -> dict[str, int]:
    """Writers whose later files a resume may still delete → the highest sequence of theirs that is final.

    Files of any writer not listed (finished lineages, runs without snapshots) are final.
    """
    folder = lineage_folder(lake_dir, dataset)
    floors: dict[str, int] = {}
    if not folder.is_dir():
        return floors
    for mark in folder.glob("p*.final"):
        current = folder / mark.name.removesuffix(".final")
        writer, _, sequence = mark.read_text(encoding="utf-8").partition(" ")
        if current.is_file() and current.read_text(encoding="utf-8").strip() == writer and sequence.strip().isdigit():
            floors[writer] = int(sequence)
    return floors


def write_durably(path: Path, text: str) -> None:
    """Replace `path`'s content atomically and sync it (it must survive the crash it is there for)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
