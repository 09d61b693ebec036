"""examples/access-windows end to end: hourly windows, routes and their counts against plain Python over the log."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
import user_agents

from loglake.pipelines.lake import open_lake
from loglake.pipelines.runner import run_pipeline
from tests.conftest import EXAMPLES
from tests.support import APACHE_LOG

COMBINED = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "[^"]*" (\d{3}) \S+ "[^"]*" "([^"]*)"$')


def test_hourly_windows_and_routes_match_independent_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = tmp_path / "access-windows"
    shutil.copytree(EXAMPLES / "access-windows", example, ignore=shutil.ignore_patterns("lake"))
    monkeypatch.setitem(os.environ, "ACCESS_LOG", str(APACHE_LOG))

    run_pipeline(example / "pipeline.yaml")

    parsed = [m for m in map(COMBINED.match, APACHE_LOG.read_text().splitlines()) if m]
    per_hour = Counter()
    for match in parsed:
        when = datetime.strptime(match.group(2), "%d/%b/%Y:%H:%M:%S %z").astimezone(timezone.utc)
        per_hour[(when.replace(minute=0, second=0), int(match.group(3)))] += 1
    lake = open_lake(pipeline=example / "pipeline.yaml")
    rows = lake.sql("SELECT window_start, response, requests FROM hourly").fetchall()
    assert {(start, response): requests for start, response, requests in rows} == dict(per_hour)
    assert len(rows) == len(per_hour)
    bots = sum(1 for m in parsed if user_agents.parse(m.group(4)).is_bot)
    assert lake.sql("SELECT count(*) FROM bots").fetchall() == [(bots,)]
    assert lake.sql("SELECT count(*) FROM errors").fetchall() == [(sum(1 for m in parsed if m.group(3).startswith("5")),)]
