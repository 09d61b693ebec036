"""examples/nginx end to end: real access logs, parsed and enriched, queried with DuckDB against independent counts."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import user_agents

from loglake.pipelines.lake import open_lake
from tests.conftest import EXAMPLES
from tests.operators.mmdb_fixtures import CITY_NETWORKS, write_city_db
from tests.support import APACHE_LOG

COMBINED = re.compile(r'^(\S+) \S+ \S+ \[[^\]]+\] "[^"]*" (\d{3}) \S+ "[^"]*" "([^"]*)"$')


def test_nginx_example_enriches_every_request(tmp_path: Path) -> None:
    example = tmp_path / "nginx"
    shutil.copytree(EXAMPLES / "nginx", example, ignore=shutil.ignore_patterns("lake"))
    database = write_city_db(tmp_path / "city.mmdb")
    env = {**os.environ, "ACCESS_LOG": str(APACHE_LOG), "GEOIP_DATABASE": str(database), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "loglake.pipelines.cli", "run", str(example / "pipeline.yaml")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr

    parsed = [m for m in map(COMBINED.match, APACHE_LOG.read_text().splitlines()) if m]
    bots = sum(1 for m in parsed if user_agents.parse(m.group(3)).is_bot)
    moscow = ipaddress.ip_network("83.149.0.0/17")
    in_moscow = sum(1 for m in parsed if ipaddress.ip_address(m.group(1)) in moscow)
    con = open_lake(pipeline=example / "pipeline.yaml")
    assert con.sql("SELECT count(*) FROM access").fetchall() == [(len(parsed),)]
    assert con.sql("SELECT count(*) FROM dead_letter").fetchall() == [(10_000 - len(parsed),)]
    assert con.sql("SELECT count(*) FILTER (WHERE ua.is_bot) FROM access").fetchall() == [(bots,)]
    assert con.sql("SELECT count(*) FROM access WHERE geo.city = 'Moscow'").fetchall() == [(in_moscow,)]
    assert con.sql("SELECT count(*) FROM access WHERE status >= 500").fetchall() == [
        (sum(1 for m in parsed if m.group(2).startswith("5")),)
    ]
    assert "83.149.0.0/17" in CITY_NETWORKS and in_moscow > 0
