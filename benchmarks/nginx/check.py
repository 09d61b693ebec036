"""What a run wrote, counted with DuckDB in a child process (so DuckDB's memory never counts in a measured run).

    python -m nginx.check NAME=FOLDER …      (from benchmarks/)

For each loglake lake (a NAME starting `loglake`; datasets `access`, `errors`, `bots`, `per_minute`, `dead_letter`):
the rows of each, the window rows and the records they count, the dead letters by stage, whether every
(partition, offset) is in `access` once, the distinct client addresses and agents, the bytes on disk per
dataset and, for `access`, per column (compressed, from the Parquet footers) and the number of files. For each
baseline output folder (any other NAME, with the same four datasets): the rows of each and the records its
windows count. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import duckdb

DATASETS = ("access", "errors", "bots", "per_minute")


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.parquet") if path.is_file() and not path.name.startswith("."))


def _scan(folder: Path) -> str:
    return f"read_parquet('{folder}/**/*.parquet', hive_partitioning = false, union_by_name = true)"


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    rows = con.sql(sql).fetchall()
    return rows[0][0] if rows else None


def _counts(con: duckdb.DuckDBPyConnection, root: Path) -> dict[str, Any]:
    """Rows per dataset (0 when it has no file), window rows and the records they count."""
    out: dict[str, Any] = {}
    for name in DATASETS:
        out[f"{name}_rows"] = int(_one(con, f"SELECT count(*) FROM {_scan(root / name)}")) if _files(root / name) else 0
    out["window_records"] = int(_one(con, f"SELECT coalesce(sum(requests), 0) FROM {_scan(root / 'per_minute')}")) if _files(root / "per_minute") else 0
    return out


def check_lake(con: duckdb.DuckDBPyConnection, lake: Path) -> dict[str, Any]:
    out = _counts(con, lake)
    access = _scan(lake / "access")
    dead = lake / "dead_letter"
    out["dead_letters_by_node"] = (
        dict(con.sql(f"SELECT _error_node, count(*) FROM {_scan(dead)} GROUP BY 1 ORDER BY 1").fetchall()) if _files(dead) else {}
    )
    out["distinct_partition_offsets"] = int(_one(con, f"SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM {access}")) \
        if "kafka_offset" in con.sql(f"SELECT * FROM {access} LIMIT 0").columns else None
    out["distinct_clients"] = int(_one(con, f"SELECT count(DISTINCT clientip) FROM {access}"))
    out["distinct_agents"] = int(_one(con, f"SELECT count(DISTINCT agent) FROM {access}"))
    out["bots_in_access"] = int(_one(con, f"SELECT count(*) FROM {access} WHERE ua.is_bot AND response < 500"))
    out["errors_in_access"] = int(_one(con, f"SELECT count(*) FROM {access} WHERE response >= 500"))
    out["bytes_on_disk"] = {name: sum(path.stat().st_size for path in _files(lake / name)) for name in (*DATASETS, "dead_letter")}
    out["access_files"] = len(_files(lake / "access"))
    columns = con.sql(f"""
        SELECT split_part(path_in_schema, ',', 1) AS col, sum(total_compressed_size)::BIGINT AS bytes
        FROM parquet_metadata('{lake}/access/**/*.parquet') GROUP BY 1 ORDER BY 2 DESC""").fetchall()
    out["access_column_bytes"] = dict(columns)
    return out


def main(outputs: list[str]) -> None:
    con = duckdb.connect()
    result: dict[str, Any] = {}
    for item in outputs:
        name, _, folder = item.partition("=")
        result[name] = check_lake(con, Path(folder)) if name.startswith("loglake") else _counts(con, Path(folder))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
