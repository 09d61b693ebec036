"""Durations (`30s`, `1m`) and sizes (`64MiB`) as they are written in pipeline YAML."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = ["parse_duration", "parse_size", "positive_duration", "Duration", "ByteSize"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_duration(value: object) -> timedelta:
    """`"30s"`, `"1m"`, `"500ms"`, `"2h"`, `"1d"` or a number of seconds → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _NUMBER_UNIT.match(str(value))
    if not match or match.group(2).lower() not in _DURATION_UNITS:
        raise ValueError(f"'{value}' is not a duration; write a number and a unit, one of {', '.join(_DURATION_UNITS)} (e.g. 30s)")
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()])


def positive_duration(value: timedelta, name: str) -> timedelta:
    """`value` if longer than zero, else a ValueError naming the option `name`."""
    if value <= timedelta(0):
        raise ValueError(f"{name} must be longer than 0s")
    return value


def parse_size(value: object) -> int:
    """`"64MiB"`, `"1MB"`, `"512KiB"` or a number of bytes → bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _NUMBER_UNIT.match(str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"'{value}' is not a size; write a number and a unit, one of KB, MB, GB, KiB, MiB, GiB (e.g. 64MiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: f"{d.total_seconds():g}s", return_type=str),
    WithJsonSchema({"type": ["string", "number"], "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d)$", "examples": ["30s", "1m"]}),
]
"""A duration written with a unit (`30s`, `1m`, `500ms`)."""

ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"type": ["string", "integer"], "pattern": r"^\d+(\.\d+)?\s*([KMG]i?B|B)?$", "examples": ["64MiB"]}),
]
"""A size in bytes, written with a unit (`64MiB`, `1MB`) or as a plain number."""
