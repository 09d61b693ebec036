"""Durations and sizes as written in YAML."""

from __future__ import annotations

from datetime import timedelta

import pytest

from loglake.schemas.units import parse_duration, parse_size


@pytest.mark.parametrize(
    "text, seconds",
    [("30s", 30), ("1m", 60), ("500ms", 0.5), ("2h", 7200), ("1d", 86400), ("1.5s", 1.5), (10, 10)],
    ids=str,
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text, size",
    [("64MiB", 64 * 1024**2), ("1MB", 10**6), ("512KiB", 512 * 1024), ("100", 100), (4096, 4096), ("1.5GiB", int(1.5 * 1024**3))],
    ids=str,
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["30", "fast", "1 week", "-1s"], ids=str)
def test_bad_durations_say_how_to_write_one(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a duration; write a number and a unit"):
        parse_duration(bad)


def test_bad_size_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size("64 megs")
