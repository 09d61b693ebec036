"""Source positions saved when a run ends cleanly, so the next run resumes where this one stopped."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["PositionTracker", "checkpoint_path", "load_checkpoint", "save_checkpoint"]

log = logging.getLogger(__name__)


class PositionTracker:
    """Thread-safe latest position per (source node, partition), fed by the source adapters."""

    def __init__(self, resume: dict[str, dict[str, Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self._positions: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (resume or {}).items()}
        self._recorded: dict[str, dict[str, Any]] = {}

    def resume_for(self, source: str, partition: str) -> Any | None:
        """The saved position of a partition, or None to start fresh."""
        with self._lock:
            return self._positions.get(source, {}).get(partition)

    def record(self, source: str, partition: str, position: Any) -> None:
        """Remember the position after the latest batch a partition emitted."""
        with self._lock:
            self._positions.setdefault(source, {})[partition] = position
            self._recorded.setdefault(source, {})[partition] = position

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """All positions, for saving."""
        with self._lock:
            return {k: dict(v) for k, v in self._positions.items()}

    def recorded(self) -> dict[str, dict[str, Any]]:
        """Only the positions this process's partitions reached in this run (what a cluster member saves)."""
        with self._lock:
            return {k: dict(v) for k, v in self._recorded.items()}


def checkpoint_path(lake_dir: Path, pipeline: str) -> Path:
    """Where a pipeline's checkpoint lives: `<lake>/_checkpoints/<pipeline>.json` (beside the data it describes)."""
    return lake_dir / "_checkpoints" / f"{pipeline}.json"


def load_checkpoint(path: Path) -> dict[str, dict[str, Any]]:
    """Saved positions, or {} when there is no checkpoint yet."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable checkpoint %s (%s); starting from the configured start", path, exc)
        return {}
    return data.get("positions", {}) if isinstance(data, dict) else {}


def save_checkpoint(path: Path, positions: dict[str, dict[str, Any]], merge: bool = False) -> None:
    """Write positions atomically (temp file, then rename).

    With `merge`, positions are laid over the saved ones under a file lock: each process of a cluster saves
    the partitions it read, and none overwrites another's.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if merge:
            saved = load_checkpoint(path)
            for source, partitions in positions.items():
                saved.setdefault(source, {}).update(partitions)
            positions = saved
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"version": 1, "positions": positions}, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temp, path)
