"""The `lookup` stage, built from YAML, joining with real CSV and Parquet files written to tmp_path."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loglake.schemas.errors import SpecError
from tests.support import batch_of, build_stage

HOSTS_CSV = "host,team,owner\nweb-1,frontend,ana\nweb-2,frontend,bo\ndb-1,storage,cy\n"
PORTS_CSV = "host,port,service\nweb-1,80,http\nweb-1,443,https\ndb-1,5432,postgres\n"
RECORDS = batch_of(host=["db-1", "nope", "web-1", None], bytes=[10, 20, 30, 40])


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _parquet(tmp_path: Path, name: str, csv_text: str) -> Path:
    import pyarrow.csv as pa_csv

    path = tmp_path / name
    pq.write_table(pa_csv.read_csv(pa.py_buffer(csv_text.encode())), path)
    return path


@pytest.mark.parametrize("name", ["hosts.csv", "hosts.parquet"], ids=["csv", "parquet"])
def test_single_key_adds_every_non_key_column_in_record_order(tmp_path: Path, name: str) -> None:
    (_write if name.endswith(".csv") else _parquet)(tmp_path, name, HOSTS_CSV)
    stage = build_stage(f"{{type: lookup, table: {name}, on: [host]}}", base_dir=tmp_path)
    out = stage.process(RECORDS)
    assert out.main.schema.names == ["host", "bytes", "team", "owner"]
    assert out.main.column("team").to_pylist() == ["storage", None, "frontend", None]
    assert out.main.column("owner").to_pylist() == ["cy", None, "ana", None]
    assert out.main.column("bytes").to_pylist() == [10, 20, 30, 40]
    assert out.extra == {}
    assert stage.ctx.counters["lookup_missed"] == 2


def test_format_option_overrides_the_extension(tmp_path: Path) -> None:
    _write(tmp_path, "hosts.txt", HOSTS_CSV)
    stage = build_stage("{type: lookup, table: hosts.txt, format: csv, on: [host], columns: [owner]}", base_dir=tmp_path)
    assert stage.process(RECORDS).main.column("owner").to_pylist() == ["cy", None, "ana", None]


@pytest.mark.parametrize(
    "on, records, services",
    [
        ("[host, port]", batch_of(host=["web-1", "web-1", "db-1", "db-1"], port=[443, 80, 80, 5432]),
         ["https", "http", None, "postgres"]),
        ("{server: host, dport: port}", batch_of(server=["db-1", "web-1"], dport=[5432, 443]), ["postgres", "https"]),
        ("[host, port]", batch_of(host=["web-1", "web-1", "web-1"], port=["80", "x", None]), ["http", None, None]),
    ],
    ids=["composite-list", "composite-mapping", "composite-string-port-cast"],
)
def test_composite_keys(tmp_path: Path, on: str, records: pa.RecordBatch, services: list[Any]) -> None:
    _write(tmp_path, "ports.csv", PORTS_CSV)
    out = build_stage(f"{{type: lookup, table: ports.csv, on: {on}}}", base_dir=tmp_path).process(records)
    assert out.main.column("service").to_pylist() == services
    assert out.main.num_rows == records.num_rows


@pytest.mark.parametrize(
    "codes, names",
    [
        ([404, 500, 200], ["Not Found", "Internal Server Error", "OK"]),
        (["404", "oops", "200"], ["Not Found", None, "OK"]),
        ([404.0, 1.5, None], ["Not Found", None, None]),
    ],
    ids=["int-field", "string-field-cast-to-int", "float-field"],
)
def test_key_values_are_cast_to_the_table_key_type(tmp_path: Path, codes: list[Any], names: list[Any]) -> None:
    _write(tmp_path, "codes.csv", "status,reason\n200,OK\n404,Not Found\n500,Internal Server Error\n")
    stage = build_stage("{type: lookup, table: codes.csv, on: [status], on_miss: null}", base_dir=tmp_path)
    assert stage.process(batch_of(status=codes)).main.column("reason").to_pylist() == names


def test_int_field_matches_a_string_table_column(tmp_path: Path) -> None:
    path = tmp_path / "codes.parquet"
    pq.write_table(pa.table({"status": ["200", "404"], "reason": ["OK", "Not Found"]}), path)
    out = build_stage("{type: lookup, table: codes.parquet, on: [status]}", base_dir=tmp_path).process(batch_of(status=[404, 301]))
    assert out.main.column("reason").to_pylist() == ["Not Found", None]


def test_prefix_and_columns(tmp_path: Path) -> None:
    _write(tmp_path, "hosts.csv", HOSTS_CSV)
    stage = build_stage("{type: lookup, table: hosts.csv, on: [host], columns: [owner], prefix: host_}", base_dir=tmp_path)
    out = stage.process(RECORDS)
    assert out.main.schema.names == ["host", "bytes", "host_owner"]
    assert out.main.column("host_owner").to_pylist() == ["cy", None, "ana", None]


@pytest.mark.parametrize(
    "on_miss, hosts, teams, routed",
    [
        ("null", ["db-1", "nope", "web-1", None], ["storage", None, "frontend", None], None),
        ("keep", ["db-1", "nope", "web-1", None], ["storage", "old-b", "frontend", "old-d"], None),
        ("drop", ["db-1", "web-1"], ["storage", "frontend"], None),
        ("route", ["db-1", "web-1"], ["storage", "frontend"], ["lookup: no row for host='nope'", "lookup: no row for host=None"]),
    ],
    ids=["null", "keep", "drop", "route"],
)
def test_on_miss(tmp_path: Path, on_miss: str, hosts: list[Any], teams: list[Any], routed: list[str] | None) -> None:
    _write(tmp_path, "hosts.csv", HOSTS_CSV)
    stage = build_stage(f"{{type: lookup, table: hosts.csv, on: [host], columns: [team], on_miss: {on_miss}}}", name="owners", base_dir=tmp_path)
    records = RECORDS.append_column("team", pa.array(["old-a", "old-b", "old-c", "old-d"]))
    out = stage.process(records)
    assert out.main.column("host").to_pylist() == hosts
    assert out.main.column("team").to_pylist() == teams
    assert stage.ctx.counters["lookup_missed"] == 2
    if routed is None:
        assert out.extra == {}
    else:
        dropped = out.extra["dropped"]
        assert dropped.column("_error").to_pylist() == routed
        assert dropped.column("_error_node").to_pylist() == ["owners", "owners"]
        assert dropped.column("bytes").to_pylist() == [20, 40]


def test_route_miss_names_every_key_field(tmp_path: Path) -> None:
    _write(tmp_path, "ports.csv", PORTS_CSV)
    stage = build_stage("{type: lookup, table: ports.csv, on: [host, port], on_miss: route}", base_dir=tmp_path)
    out = stage.process(batch_of(host=["web-1", "db-9"], port=[80, 22]))
    assert out.extra["dropped"].column("_error").to_pylist() == ["lookup: no row for host='db-9', port=22"]


def test_missing_key_field_is_a_miss_for_every_record(tmp_path: Path) -> None:
    _write(tmp_path, "hosts.csv", HOSTS_CSV)
    stage = build_stage("{type: lookup, table: hosts.csv, on: [host], on_miss: drop}", base_dir=tmp_path)
    out = stage.process(batch_of(message=["a", "b"]))
    assert out.main.num_rows == 0
    assert out.main.schema.names == ["message", "team", "owner"]


def test_empty_batch_gets_the_new_columns(tmp_path: Path) -> None:
    _write(tmp_path, "hosts.csv", HOSTS_CSV)
    out = build_stage("{type: lookup, table: hosts.csv, on: [host]}", base_dir=tmp_path).process(RECORDS.slice(0, 0))
    assert out.main.num_rows == 0
    assert out.main.schema.names == ["host", "bytes", "team", "owner"]


def _touch_later(path: Path, text: str, step: int) -> None:
    """Rewrite `path` and move its mtime on, so the change is seen whatever the filesystem's clock resolution."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + step * 1_000_000_000))


def test_reload_after_the_file_changes(tmp_path: Path) -> None:
    path = _write(tmp_path, "hosts.csv", HOSTS_CSV)
    stage = build_stage("{type: lookup, table: hosts.csv, on: [host], columns: [team], reload_interval: 0s}", base_dir=tmp_path)
    assert stage.process(RECORDS).main.column("team").to_pylist() == ["storage", None, "frontend", None]
    _touch_later(path, "host,team\ndb-1,dba\nnope,found\n", 1)
    assert stage.process(RECORDS).main.column("team").to_pylist() == ["dba", "found", None, None]


def test_reload_waits_for_the_interval_and_can_be_off(tmp_path: Path) -> None:
    path = _write(tmp_path, "hosts.csv", HOSTS_CSV)
    slow = build_stage("{type: lookup, table: hosts.csv, on: [host], columns: [team], reload_interval: 1h}", base_dir=tmp_path)
    off = build_stage("{type: lookup, table: hosts.csv, on: [host], columns: [team], reload: false, reload_interval: 0s}", base_dir=tmp_path)
    _touch_later(path, "host,team\ndb-1,dba\n", 1)
    for stage in (slow, off):
        assert stage.process(RECORDS).main.column("team").to_pylist() == ["storage", None, "frontend", None]


@pytest.mark.parametrize(
    "bad",
    ["host,team\ndb-1,a\ndb-1,b\n", "name,team\ndb-1,a\n", "host,team\n\"unterminated,a\n"],
    ids=["duplicates", "key-column-gone", "corrupt"],
)
def test_failed_reload_keeps_the_old_table_and_warns_once(tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, "hosts.csv", HOSTS_CSV)
    stage = build_stage("{type: lookup, table: hosts.csv, on: [host], columns: [team], reload_interval: 0s}", name="owners", base_dir=tmp_path)
    _touch_later(path, bad, 1)
    with caplog.at_level(logging.WARNING, logger="loglake.operators.lookup"):
        for _ in range(3):
            assert stage.process(RECORDS).main.column("team").to_pylist() == ["storage", None, "frontend", None]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("owners: reloading the table failed, keeping the old one: table 'hosts.csv'")
    _touch_later(path, "host,team\ndb-1,dba\n", 2)
    assert stage.process(RECORDS).main.column("team").to_pylist() == ["dba", None, None, None]


def test_deleted_table_keeps_the_old_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "hosts.csv", HOSTS_CSV)
    stage = build_stage("{type: lookup, table: hosts.csv, on: [host], columns: [team], reload_interval: 0s}", base_dir=tmp_path)
    path.unlink()
    assert stage.process(RECORDS).main.column("team").to_pylist() == ["storage", None, "frontend", None]


DUPLICATED = "host,team\n" + "".join(f"h{i},a\nh{i},b\n" for i in range(7)) + "ok,c\n"


@pytest.mark.parametrize(
    "files, snippet, path, message",
    [
        ({}, "{type: lookup, table: nowhere.csv, on: [host]}", ("table",), "table file 'nowhere.csv' not found"),
        ({"hosts.csv": DUPLICATED}, "{type: lookup, table: hosts.csv, on: [host]}", ("table",),
         "table 'hosts.csv' has 7 duplicate key(s): host='h0', host='h1', host='h2', host='h3', host='h4' … 2 more"),
        ({"ports.csv": "host,port,s\na,1,x\na,1,y\na,2,z\n"}, "{type: lookup, table: ports.csv, on: [host, port]}", ("table",),
         "table 'ports.csv' has 1 duplicate key(s): host='a', port=1"),
        ({"hosts.csv": HOSTS_CSV}, "{type: lookup, table: hosts.csv, on: [hostname]}", ("on",),
         "table 'hosts.csv' has no key column 'hostname'; it has host, team, owner"),
        ({"hosts.csv": HOSTS_CSV}, "{type: lookup, table: hosts.csv, on: {server: hostname}}", ("on", "server"),
         "table 'hosts.csv' has no key column 'hostname'"),
        ({"hosts.csv": HOSTS_CSV}, "{type: lookup, table: hosts.csv, on: [host], columns: [team, rack]}", ("columns",),
         "table 'hosts.csv' has no column 'rack'; it has host, team, owner"),
        ({"hosts.parquet": "not parquet at all"}, "{type: lookup, table: hosts.parquet, on: [host]}", ("table",),
         "table 'hosts.parquet' cannot be read as parquet"),
        ({"hosts.json": HOSTS_CSV}, "{type: lookup, table: hosts.json, on: [host]}", ("table",),
         "cannot tell the format of 'hosts.json' from its extension"),
        ({}, "{type: lookup, table: hosts.csv, on: []}", ("on",), "at least 1 item"),
        ({}, "{type: lookup, table: hosts.csv, on: [host], on_miss: skip}", ("on_miss",), "'null', 'keep', 'drop' or 'route'"),
    ],
    ids=["missing-file", "duplicates", "composite-duplicates", "missing-key-column", "missing-mapped-key-column",
         "missing-requested-column", "corrupt-parquet", "unknown-extension", "empty-on", "bad-on-miss"],
)
def test_bad_table_or_config_is_a_located_spec_error(
    tmp_path: Path, files: dict[str, str], snippet: str, path: tuple[str, ...], message: str
) -> None:
    for name, text in files.items():
        _write(tmp_path, name, text)
    with pytest.raises(SpecError) as caught:
        build_stage(snippet, name="owners", base_dir=tmp_path)
    [issue] = caught.value.issues
    assert issue.path == path
    assert issue.node == "owners"
    assert message in issue.message
