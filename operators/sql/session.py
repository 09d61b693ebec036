"""What compiling and evaluating SQL expressions share: the per-thread DuckDB connection and the query shape."""

from __future__ import annotations

import threading

import duckdb

__all__ = ["TABLE", "PREFIX", "SUFFIX", "ROWS_COLUMN", "connection", "quote", "reason"]

TABLE = "loglake_batch"
"""Name the batch is scanned under (a Python local found by DuckDB's replacement scan)."""
PREFIX = "SELECT\n"
SUFFIX = f"\nAS v FROM {TABLE}"
ROWS_COLUMN = "loglake_rows"
"""Placeholder column giving DuckDB the row count when an expression reads no column."""
_QUOTE_LIMIT = 80

_connections: dict[int, duckdb.DuckDBPyConnection] = {}
_connections_lock = threading.Lock()


def connection() -> duckdb.DuckDBPyConnection:
    """This OS thread's DuckDB connection (single-threaded, UTC session time zone).

    Keyed by thread id, not `threading.local`: engine worker threads are started outside Python, and each
    callback into Python gets a fresh thread state there, which would empty a thread-local every batch.
    """
    ident = threading.get_ident()
    con = _connections.get(ident)
    if con is None:
        con = duckdb.connect(config={"threads": 1, "autoinstall_known_extensions": False})  # never download at run time
        con.execute("SET TimeZone = 'UTC'")
        with _connections_lock:
            _connections[ident] = con
    return con


def quote(text: str) -> str:
    flat = " ".join(text.split())
    return '"' + (flat if len(flat) <= _QUOTE_LIMIT else flat[: _QUOTE_LIMIT - 1] + "…") + '"'


def reason(exc: BaseException) -> str:
    """DuckDB's message without the echoed query (`LINE 1: …`) and candidate lists."""
    return str(exc).strip().split("\n", 1)[0].strip()
