"""Ways a Parquet file goes bad, applied to the bytes of a real one (for the lake's corrupt-file tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["CORRUPTIONS", "corrupt"]


def _footer_length(data: bytes) -> int:
    return int.from_bytes(data[-8:-4], "little")


def _footer(noise: Callable[[int], bytes]) -> Callable[[bytes], bytes]:
    """The metadata replaced by `noise` of its length, its size and the magic bytes after it intact."""

    def garble(data: bytes) -> bytes:
        size = _footer_length(data)
        return data[: -8 - size] + noise(size) + data[-8:]

    return garble


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "zero-bytes": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
    "not-parquet": lambda data: b"timestamp,level,message\n" * 40,
    "wrong-magic": lambda data: data[:-4] + b"PAR0",
    "bad-footer": _footer(lambda size: b"\xff" * size),  # DuckDB: "don't know what type", naming no file
    "footer-noise": _footer(lambda size: bytes((index * 37 + 11) % 256 for index in range(size))),  # an IO Error
    "footer-length": lambda data: data[:-8] + (len(data) * 2).to_bytes(4, "little") + b"PAR1",
    "bad-page": lambda data: data[:4] + b"\xab" * 150 + data[154:],
}
"""Corruption name → what it does to a file's bytes; all but `bad-page` break the footer."""


def corrupt(path: Path, kind: str) -> None:
    """Rewrite the Parquet file at `path` with corruption `kind` (a key of CORRUPTIONS)."""
    path.write_bytes(CORRUPTIONS[kind](path.read_bytes()))
