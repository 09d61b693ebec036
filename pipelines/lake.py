"""The lake as DuckDB sees it: one view per dataset over its Hive-partitioned Parquet files."""

from __future__ import annotations

from pathlib import Path

import duckdb

from loglake.pipelines.spec import PipelineSpec, load_pipeline
from loglake.schemas.stage import NodeContext

__all__ = ["discover_datasets", "pipeline_datasets", "find_datasets", "connect", "open_lake"]


def _has_parquet(folder: Path) -> bool:
    return any(path.is_file() for path in folder.rglob("*.parquet"))


def discover_datasets(lake_dir: Path) -> dict[str, Path]:
    """Every folder directly under the lake that holds Parquet files; `_`/`.` folders (checkpoints) are skipped."""
    if not lake_dir.is_dir():
        return {}
    return {
        child.name: child
        for child in sorted(lake_dir.iterdir())
        if child.is_dir() and not child.name.startswith(("_", ".")) and _has_parquet(child)
    }


def pipeline_datasets(spec: PipelineSpec) -> dict[str, Path]:
    """The datasets a pipeline's Parquet sinks write (name → folder), whether or not they hold data yet."""
    datasets: dict[str, Path] = {}
    for node in spec.of_kind("sink"):
        ctx = NodeContext(node=node.name, base_dir=spec.base_dir, lake_dir=spec.lake_dir)
        sink = node.registration.factory(node.config, ctx)
        if hasattr(sink, "dataset_dir") and hasattr(sink, "dataset_name"):
            datasets[sink.dataset_name] = Path(sink.dataset_dir)
    return datasets


def _partition_keys(folder: Path) -> list[str]:
    """Hive partition keys of a dataset, read off the folder names above its first file."""
    first = next((path for path in folder.rglob("*.parquet") if path.is_file()), None)
    if first is None:
        return []
    return [part.split("=", 1)[0] for part in first.relative_to(folder).parts[:-1] if "=" in part]


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(datasets: dict[str, Path], database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per dataset that has files (partition pruning via hive_partitioning)."""
    con = duckdb.connect(database)
    for name, folder in datasets.items():
        if not _has_parquet(folder):
            continue
        glob = _quote_literal(str(folder / "**" / "*.parquet"))
        # `hour=09` would read as text (leading zero); the lake's hours are integers.
        hive_types = ", hive_types = {'hour': INTEGER}" if "hour" in _partition_keys(folder) else ""
        con.execute(
            f"CREATE OR REPLACE VIEW {_quote_identifier(name)} AS "
            f"SELECT * FROM read_parquet({glob}, hive_partitioning = true, union_by_name = true{hive_types})"
        )
    return con


def open_lake(lake: str | Path | None = None, pipeline: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """The Python API: a DuckDB connection over a lake folder or over the datasets a pipeline file writes.

    >>> con = open_lake(pipeline="examples/app-json/pipeline.yaml")
    >>> con.sql("SELECT level, count(*) FROM app GROUP BY 1").fetchall()
    """
    return connect(find_datasets(lake, pipeline))


def find_datasets(lake: str | Path | None = None, pipeline: str | Path | None = None) -> dict[str, Path]:
    """Datasets by name: those in the pipeline's lake and its sinks, then those in `lake` (which win)."""
    datasets: dict[str, Path] = {}
    if pipeline is not None:
        spec = load_pipeline(pipeline)
        datasets.update(discover_datasets(spec.lake_dir))
        datasets.update(pipeline_datasets(spec))
    if lake is not None:
        datasets.update(discover_datasets(Path(lake)))
    return datasets
