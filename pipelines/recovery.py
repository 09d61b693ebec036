"""The folder where Bytewax keeps one process's recovery snapshots: created on first use, wiped on `--reset`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bytewax.recovery import init_db_dir

from loglake.schemas.errors import TerminalError

__all__ = ["prepare_recovery_dir"]


def prepare_recovery_dir(folder: Path, process_id: int, processes: int, reset: bool = False) -> bool:
    """Make sure `folder` holds this process's recovery partition (`part-<process_id>.sqlite3` of `processes`).

    Whether it existed already (an earlier run used it; False when it was created now).

    Each process of a cluster keeps its own partition on its own disk; Bytewax gathers them when it resumes.
    A partition left by a cluster of a different size cannot be resumed and is reported, not replaced.
    """
    folder.mkdir(parents=True, exist_ok=True)
    mine = folder / f"part-{process_id}.sqlite3"
    if reset:
        for stale in folder.glob("part-*.sqlite3*"):
            stale.unlink()
    others = sorted(p.name for p in folder.glob("part-*.sqlite3") if p != mine)
    if others and processes == 1:
        raise TerminalError(f"recovery folder {folder} holds {', '.join(others)} from a cluster run; use that cluster's layout or --reset")
    if mine.exists():
        return True
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        init_db_dir(Path(scratch), processes)  # type: ignore[no-untyped-call]
        shutil.move(str(Path(scratch) / mine.name), mine)
    return False
