"""The `parquet` sink: real Parquet files in a temporary lake, read back with real DuckDB queries."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loglake.operators.parquet import ParquetSink
from loglake.operators.parquet.lock import LOCK_NAME
from loglake.schemas.errors import SpecError, TerminalError
from tests.support import APACHE_LOG, build_sink

REPO = Path(__file__).resolve().parents[2]
FINAL_NAME = re.compile(r"^part-\d{8}T\d{6}-w(\d+)-(\d{6})-[0-9a-f]{8}\.parquet$")
COMBINED = re.compile(
    r'(?P<clientip>\S+) \S+ \S+ \[(?P<timestamp>[^\]]+)\] "(?P<request>[^"]*)" (?P<response>\d{3}) '
    r'(?P<bytes>\S+) "(?P<referrer>[^"]*)" "(?P<agent>[^"]*)"?$'
)
T0 = datetime(2015, 5, 17, 10, 5, 3, tzinfo=timezone.utc)


@cache
def apache_records() -> pa.RecordBatch:
    """The 10,000 real access-log lines as typed records (what grok + timestamp stages would emit)."""
    columns: dict[str, list[Any]] = {name: [] for name in ("timestamp", "clientip", "request", "response", "bytes", "agent")}
    for line in APACHE_LOG.read_text().splitlines():
        match = COMBINED.match(line)
        assert match is not None, line
        columns["timestamp"].append(datetime.strptime(match["timestamp"], "%d/%b/%Y:%H:%M:%S %z"))
        columns["clientip"].append(match["clientip"])
        columns["request"].append(match["request"])
        columns["response"].append(int(match["response"]))
        columns["bytes"].append(None if match["bytes"] == "-" else int(match["bytes"]))
        columns["agent"].append(match["agent"])
    columns["timestamp"] = pa.array(columns["timestamp"], pa.timestamp("us", tz="UTC"))
    return pa.RecordBatch.from_pydict(columns)


def chunks(batch: pa.RecordBatch, size: int) -> list[pa.RecordBatch]:
    """`batch` cut into consecutive batches of `size` records, as a source would emit them."""
    return [batch.slice(start, size) for start in range(0, batch.num_rows, size)]


def write_all(sink: ParquetSink, batches: list[pa.RecordBatch], worker: int = 0) -> None:
    """Write the batches through one writer and close it."""
    writer = sink.open(worker, 1)
    for batch in batches:
        writer.write(batch)
    writer.close()


def query(sink: ParquetSink, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run `sql` with `ds` as the dataset read the way `loglake query` reads it."""
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW ds AS SELECT * FROM read_parquet('{sink.dataset_dir}/**/*.parquet', "
        "hive_partitioning = true, union_by_name = true, filename = true)"
    )
    table = con.sql(sql, params=list(params)).to_arrow_table()  # Arrow: time zones without pytz
    return [tuple(row.values()) for row in table.to_pylist()]


def committed(sink: ParquetSink) -> list[Path]:
    """Committed part files, in the order they were opened (per worker sequence)."""
    files = [p for p in sink.dataset_dir.rglob("*.parquet") if FINAL_NAME.match(p.name)]
    return sorted(files, key=lambda p: (FINAL_NAME.match(p.name).groups(), p.name))  # type: ignore[union-attr]


def every_file(sink: ParquetSink) -> list[Path]:
    """Every data file under the dataset folder, hidden ones (in progress) included; not the dataset lock."""
    return sorted(p for p in sink.dataset_dir.rglob("*") if p.is_file() and p.name != LOCK_NAME)


def garble_pages(path: Path) -> None:
    """Overwrite a file's data pages but keep its footer: it still lists, only reading its records fails."""
    footer = pq.ParquetFile(path).metadata.serialized_size + 8
    data = path.read_bytes()
    path.write_bytes(data[:4] + b"\xff" * (len(data) - footer - 4) + data[-footer:])


def timed(count: int, **columns: list[Any]) -> pa.RecordBatch:
    """`count` records one second apart from T0, with the given extra columns."""
    times = pa.array([T0 + timedelta(seconds=i) for i in range(count)], pa.timestamp("us", tz="UTC"))
    return pa.RecordBatch.from_pydict({"timestamp": times, **columns})


# --- partitions -------------------------------------------------------------------------------------------


def test_partition_folders_hold_exact_counts(tmp_path: Path) -> None:
    records = apache_records()
    sink = build_sink("{type: parquet, dataset: access}", base_dir=tmp_path)
    write_all(sink, chunks(records, 1000))

    expected = Counter((t.strftime("%Y-%m-%d"), t.hour) for t in records.column("timestamp").to_pylist())
    folders = {p.parent.relative_to(sink.dataset_dir).as_posix() for p in committed(sink)}
    assert folders == {f"date={day}/hour={hour:02d}" for day, hour in expected}
    rows = query(sink, "SELECT strftime(date, '%Y-%m-%d'), hour::INT, count(*) FROM ds GROUP BY ALL")
    assert Counter({(day, hour): n for day, hour, n in rows}) == expected
    assert query(sink, "SELECT sum(bytes)::BIGINT, count(DISTINCT clientip), min(timestamp) FROM ds") == [
        (
            sum(b for b in records.column("bytes").to_pylist() if b is not None),
            len(set(records.column("clientip").to_pylist())),
            min(records.column("timestamp").to_pylist()),
        )
    ]


def test_date_filter_prunes_partitions(tmp_path: Path) -> None:
    records = apache_records()
    sink = build_sink("{type: parquet, dataset: access}", base_dir=tmp_path)
    write_all(sink, chunks(records, 2500))
    for path in committed(sink):
        if "date=2015-05-18" not in path.as_posix():
            garble_pages(path)

    pairs = list(zip(records.column("timestamp").to_pylist(), records.column("request").to_pylist()))
    day = [len(request) for t, request in pairs if t.day == 18]
    day_hour = [len(request) for t, request in pairs if t.day == 18 and t.hour == 3]
    assert 0 < len(day_hour) < len(day) < len(pairs)
    reading = "SELECT count(*), sum(length(request))::BIGINT FROM ds"  # the sum reads data pages, not just footers
    assert query(sink, f"{reading} WHERE date = '2015-05-18'") == [(len(day), sum(day))]
    assert query(sink, f"{reading} WHERE date = '2015-05-18' AND hour = 3") == [(len(day_hour), sum(day_hour))]
    with pytest.raises(duckdb.Error):
        query(sink, reading)


@pytest.mark.parametrize(
    "value, folder",
    [
        ("web", "service=web"),
        ("api/v2", "service=api%2Fv2"),
        ("a=b c", "service=a%3Db%20c"),
        ("café:1", "service=caf%C3%A9%3A1"),
        ("..", "service=.."),
        (None, "service=__HIVE_DEFAULT_PARTITION__"),
    ],
    ids=["plain", "slash", "equals-space", "unicode-colon", "dots", "null"],
)
def test_partition_by_column_round_trips(tmp_path: Path, value: str | None, folder: str) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: [service, hour]}", base_dir=tmp_path)
    write_all(sink, [timed(3, service=[value, "other", value], message=["a", "b", "c"])])

    [file] = [p for p in committed(sink) if p.parent.parent.name == folder]
    assert file.parent.name == "hour=10"
    assert "service" not in pq.read_schema(file).names
    rows = query(sink, "SELECT service, message FROM ds WHERE service IS NOT DISTINCT FROM ? ORDER BY message", value)
    assert rows == [(value, "a"), (value, "c")]


def test_partition_by_missing_column_is_null(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: [service]}", base_dir=tmp_path)
    write_all(sink, [timed(2, message=["a", "b"])])

    assert [p.parent.name for p in committed(sink)] == ["service=__HIVE_DEFAULT_PARTITION__"]
    assert query(sink, "SELECT count(*) FROM ds WHERE service IS NULL") == [(2,)]


def test_partition_by_a_struct_column_stops_with_terminal_error(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: [geo], row_group_size: 1}", base_dir=tmp_path, name="lake")
    writer = sink.open(0, 1)
    writer.write(timed(2, message=["no geo", "yet"]))
    assert [p.parent.name for p in every_file(sink)] == ["geo=__HIVE_DEFAULT_PARTITION__"]

    with pytest.raises(TerminalError) as caught:
        writer.write(timed(1, geo=[{"country": "DE"}]))
    assert str(caught.value) == (
        "lake: cannot partition by column 'geo' of type struct<country: string>: only text, numbers and dates name folders"
    )
    assert every_file(sink) == []


# --- files: codec, rolling, row groups, names -------------------------------------------------------------


@pytest.mark.parametrize(
    "options, codec",
    [("", "ZSTD"), ("compression_level: 9", "ZSTD"), ("compression: snappy", "SNAPPY"),
     ("compression: gzip", "GZIP"), ("compression: lz4", "LZ4"), ("compression: none", "UNCOMPRESSED")],
    ids=["default-zstd", "zstd-level", "snappy", "gzip", "lz4", "none"],
)
def test_compression_is_in_file_metadata(tmp_path: Path, options: str, codec: str) -> None:
    sink = build_sink(f"{{type: parquet, dataset: app, partition_by: [] {options and ', ' + options}}}", base_dir=tmp_path)
    write_all(sink, [apache_records().slice(0, 500)])

    [file] = committed(sink)
    metadata = pq.ParquetFile(file).metadata
    assert {metadata.row_group(0).column(i).compression for i in range(metadata.num_columns)} == {codec}
    assert query(sink, "SELECT count(*) FROM ds") == [(500,)]


def test_rolls_by_rows_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: [], max_file_rows: 3000}", base_dir=tmp_path, name="lake")
    with caplog.at_level(logging.INFO, logger="loglake.operators.parquet"):
        write_all(sink, chunks(apache_records(), 700))

    files = committed(sink)
    assert [pq.ParquetFile(p).metadata.num_rows for p in files] == [3000, 3000, 3000, 1000]
    requests = apache_records().column("request").to_pylist()
    assert query(sink, "SELECT count(*), count(DISTINCT request) FROM ds") == [(10000, len(set(requests)))]
    counters = sink._ctx.counters.snapshot()
    assert counters == {"records_out": 10000, "files_written": 4, "bytes_written": sum(p.stat().st_size for p in files)}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert messages[0] == f"lake: committed {files[0]} (3000 rows, {files[0].stat().st_size} bytes)"
    assert len(messages) == 4


def test_rolls_by_age_on_tick(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app, max_file_age: 300ms}", base_dir=tmp_path)
    writer = sink.open(0, 1)
    writer.write(timed(5, message=list("abcde")))
    writer.write(pa.RecordBatch.from_pydict({}))
    assert committed(sink) == []

    time.sleep(0.35)
    writer.write(pa.RecordBatch.from_pydict({}))
    assert query(sink, "SELECT count(*) FROM ds") == [(5,)]
    writer.write(timed(2, message=["f", "g"]))
    assert len(committed(sink)) == 1
    writer.close()
    assert query(sink, "SELECT count(*) FROM ds") == [(7,)]
    assert len(committed(sink)) == 2


def test_rolls_by_size(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: [], max_file_size: 64KiB}", base_dir=tmp_path)
    write_all(sink, chunks(apache_records(), 500))

    sizes = [p.stat().st_size for p in committed(sink)]
    assert len(sizes) >= 3
    assert all(64 * 1024 <= size < 2 * 64 * 1024 for size in sizes[:-1]), sizes
    assert query(sink, "SELECT count(*) FROM ds") == [(10000,)]


def test_small_batches_share_row_groups(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: [], row_group_size: 4096}", base_dir=tmp_path)
    write_all(sink, chunks(apache_records(), 100))

    [file] = committed(sink)
    metadata = pq.ParquetFile(file).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [4096, 4096, 1808]
    assert pq.read_table(file).column("request").to_pylist() == apache_records().column("request").to_pylist()


def test_two_workers_write_one_dataset(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: access, max_file_rows: 1500}", base_dir=tmp_path)
    workers = [threading.Thread(target=write_all, args=(sink, chunks(apache_records(), 300), w)) for w in (0, 1)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()

    names = [p.name for p in committed(sink)]
    assert len(names) == len(set(names))
    assert {FINAL_NAME.match(n).group(1) for n in names} == {"0", "1"}  # type: ignore[union-attr]
    assert every_file(sink) == sorted(committed(sink))
    rows = query(sink, "SELECT regexp_extract(filename, '-w(\\d)-', 1) AS w, count(*) FROM ds GROUP BY w ORDER BY w")
    assert rows == [("0", 10000), ("1", 10000)]


def test_dataset_folder_resolution(tmp_path: Path) -> None:
    default = build_sink("{type: parquet, dataset: app}", base_dir=tmp_path)
    explicit = build_sink("{type: parquet, dataset: app, path: out/app_v2}", base_dir=tmp_path)
    path_only = build_sink("{type: parquet, path: lake/access}", base_dir=tmp_path)

    assert (default.dataset_name, default.dataset_dir) == ("app", tmp_path / "lake" / "app")
    assert (explicit.dataset_name, explicit.dataset_dir) == ("app", tmp_path / "out" / "app_v2")
    assert (path_only.dataset_name, path_only.dataset_dir) == ("access", tmp_path / "lake" / "access")


# --- atomic commit, abort, disk full ----------------------------------------------------------------------


def test_close_leaves_only_final_files(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: access, row_group_size: 20}", base_dir=tmp_path)
    writer = sink.open(3, 4)
    for batch in chunks(apache_records(), 1000):
        writer.write(batch)
    in_progress = [p.name for p in every_file(sink)]
    assert in_progress and all(n.startswith(".part-") and n.endswith(".parquet.inprogress") for n in in_progress)
    assert committed(sink) == []

    writer.close()
    files = every_file(sink)
    assert files == committed(sink) and all("-w3-" in p.name for p in files)
    assert query(sink, "SELECT count(*) FROM ds") == [(10000,)]


def test_abort_removes_uncommitted_files(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: [], max_file_rows: 5000, row_group_size: 1000}", base_dir=tmp_path)
    writer = sink.open(0, 1)
    writer.write(apache_records().slice(0, 7000))
    assert len(committed(sink)) == 1 and len(every_file(sink)) == 2

    writer.abort()
    assert every_file(sink) == committed(sink)
    assert query(sink, "SELECT count(*) FROM ds") == [(5000,)]
    assert sink._ctx.counters["records_out"] == 5000


DISK_FULL_SCRIPT = textwrap.dedent(
    """
    import os, resource, signal, sys
    from datetime import datetime, timezone
    from pathlib import Path
    import pyarrow as pa
    from loglake.schemas.errors import TerminalError
    from tests.support import build_sink

    options = "partition_by: [], row_group_size: 1000" + sys.argv[2]
    sink = build_sink("{type: parquet, dataset: app, " + options + "}", name="lake", base_dir=Path(sys.argv[1]))
    when = datetime(2015, 5, 17, 10, tzinfo=timezone.utc)
    small = pa.RecordBatch.from_pydict({"timestamp": [when] * 10, "message": ["fits"] * 10})
    first = sink.open(0, 1)
    first.write(small)
    first.close()

    noise = pa.RecordBatch.from_pydict({"timestamp": [when] * 4000, "message": [os.urandom(200).hex() for _ in range(4000)]})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
    second = sink.open(0, 1)
    try:
        second.write(noise)
        second.close()
    except TerminalError as exc:
        sys.stderr.write(f"{exc}\\n")
        sys.exit(3)
    """
)


@pytest.mark.parametrize("options", ["", ", sort_by: [message], sort_buffer: 256KiB"], ids=["row-groups", "sorted-run-in-background"])
def test_disk_full_aborts_with_terminal_error(tmp_path: Path, options: str) -> None:
    """The file that cannot be written is named, whether the engine's thread wrote it or the thread writing sorted
    runs did (the noise is over half the sort buffer, so it goes to that thread before `close`)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", DISK_FULL_SCRIPT, str(tmp_path), options], capture_output=True, text=True, env=env, timeout=60
    )
    dataset = tmp_path / "lake" / "app"
    assert done.returncode == 3, done.stderr
    assert re.fullmatch(rf"lake: cannot write {dataset}/part-\S+\.parquet: File too large\n", done.stderr), done.stderr
    files = sorted(p.name for p in dataset.iterdir() if p.name != LOCK_NAME)
    assert len(files) == 1 and FINAL_NAME.match(files[0]), files
    assert pq.read_table(dataset / files[0]).column("message").to_pylist() == ["fits"] * 10


# --- schemas and event time -------------------------------------------------------------------------------


def test_schema_changes_fit_or_start_new_files(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: []}", base_dir=tmp_path)
    steps = [
        timed(1, message=["b1"], status=pa.array([1], pa.int64())),
        timed(1, message=["b2"]),  # missing column → null
        timed(1, message=["b3"], status=pa.nulls(1)),  # null-typed column
        timed(1, message=["b4"], status=pa.array([4], pa.int32())),  # widens to int64
        timed(1, message=["b5"], status=["ok"]),  # string: new file
        timed(1, message=["b6"], status=["ok2"], user=["ann"]),  # new column: new file
        timed(1, message=["b7"], status=pa.array([1.5])),  # double does not fit string: new file
        timed(1, message=["b8"], status=pa.array([7], pa.int64())),  # int64 widens to double
    ]
    write_all(sink, steps)

    assert [pq.ParquetFile(p).metadata.num_rows for p in committed(sink)] == [4, 1, 1, 2]
    assert [pq.read_schema(p).field("status").type for p in committed(sink)] == [pa.int64(), pa.string(), pa.string(), pa.float64()]
    assert query(sink, "SELECT message, status, user FROM ds ORDER BY message") == [
        ("b1", "1", None), ("b2", None, None), ("b3", None, None), ("b4", "4", None),
        ("b5", "ok", None), ("b6", "ok2", "ann"), ("b7", "1.5", None), ("b8", "7.0", None),
    ]


def test_records_without_event_time_get_ingest_time(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app}", base_dir=tmp_path)
    before = datetime.now(timezone.utc)
    write_all(sink, [
        pa.RecordBatch.from_pydict({"timestamp": pa.array([T0, None], pa.timestamp("us", tz="UTC")), "message": ["has", "lacks"]}),
        pa.RecordBatch.from_pydict({"message": ["no column"]}),
    ])
    after = datetime.now(timezone.utc)

    rows = query(sink, "SELECT message, timestamp, _timestamp_defaulted, date FROM ds ORDER BY message")
    assert [(m, d) for m, _, d, _ in rows] == [("has", False), ("lacks", True), ("no column", True)]
    assert rows[0][1] == T0 and rows[0][3] == T0.date()
    for _, stamp, _, day in rows[1:]:
        assert before <= stamp <= after and day == stamp.date()


# --- configuration errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, path, message",
    [
        ("dataset: my data", ("dataset",), "dataset name 'my data' must start with a letter or '_'"),
        ("dataset: 2xx", ("dataset",), "dataset name '2xx' must start with a letter or '_'"),
        ("dataset: app, max_file_size: 12 parsecs", ("max_file_size",), "'12 parsecs' is not a size"),
        ("dataset: app, max_file_age: 0s", ("max_file_age",), "max_file_age must be longer than 0s"),
        ("dataset: app, partition_by: [date, a/b]", ("partition_by",), "partition name 'a/b' must start"),
        ("dataset: app, partition_by: [hour, hour]", ("partition_by",), "partition names repeat: hour"),
        ("dataset: app, compression: lzma", ("compression",), "Input should be 'zstd', 'snappy', 'gzip', 'lz4' or 'none'"),
        ("dataset: app, compression: snappy, compression_level: 3", (), "compression_level cannot be set with compression 'snappy'"),
        ("dataset: app, compression: gzip, compression_level: 42", ("compression_level",), "compression 'gzip' rejects level 42"),
        ("dataset: app, max_rows: 5", ("max_rows",), "unknown key 'max_rows'; did you mean 'max_file_rows'?"),
        ("dataset: app, path: taken", ("path",), "is a file, not a folder"),
        ("compression: zstd", (), "give 'dataset' (a dataset name in the lake) or 'path' (a folder), or both"),
        ("path: out/my-data", (), "dataset name (the last folder of 'path') 'my-data' must start"),
    ],
    ids=["space", "digit-first", "size-unit", "zero-age", "partition-slash", "partition-twice", "codec", "level-snappy",
         "level-range", "unknown-key", "path-is-file", "no-dataset-no-path", "path-name-not-a-name"],
)
def test_bad_config_is_a_spec_error(tmp_path: Path, options: str, path: tuple[str, ...], message: str) -> None:
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(SpecError) as caught:
        build_sink(f"{{type: parquet, {options}}}", base_dir=tmp_path, name="lake")

    [issue] = caught.value.issues
    assert (issue.path, issue.node, issue.node_type) == (path, "lake", "parquet")
    assert message in issue.message


def test_row_groups_are_written_once_they_buffer_16_mib(tmp_path: Path) -> None:
    """However many rows a group may hold, a file writes its group out at 16 MiB of records: its memory is bounded."""
    sink = build_sink("{type: parquet, dataset: app, partition_by: [], row_group_size: 1000000}", base_dir=tmp_path)
    records = apache_records()
    write_all(sink, [records] * 30)  # 300,000 records, ~50 MiB in Arrow: one row group by the row count alone

    [file] = committed(sink)
    metadata = pq.ParquetFile(file).metadata
    groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    budget = 16 * 2**20 // (records.nbytes // records.num_rows)
    assert sum(groups) == 300_000 and len(groups) >= 3, groups
    assert all(budget <= rows <= budget + records.num_rows for rows in groups[:-1]), (groups, budget)
    requests = len(set(records.column("request").to_pylist()))
    assert query(sink, "SELECT count(*), count(DISTINCT request) FROM ds") == [(300_000, requests)]
