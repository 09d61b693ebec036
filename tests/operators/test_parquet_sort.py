"""The `parquet` sink's file layout options: `sort_by` (sorted runs, their statistics) and `column_encoding`.

Real Parquet files from the 10,000 real access-log lines, read back with pyarrow and real DuckDB queries.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loglake.operators.parquet.part_file import FileOptions
from loglake.pipelines.spec import load_pipeline
from loglake.schemas.errors import SpecError, TerminalError
from tests.operators.test_parquet_sink import T0, apache_records, chunks, committed, every_file, query, timed, write_all
from tests.support import build_sink


def rows(table: pa.Table | pa.RecordBatch, columns: list[str]) -> Counter[tuple[Any, ...]]:
    """The rows of `columns` as a multiset."""
    return Counter(zip(*(table.column(name).to_pylist() for name in columns)))


def runs(values: list[Any]) -> list[list[Any]]:
    """`values` cut where they stop ascending: the sorted runs they are made of."""
    out: list[list[Any]] = [[]]
    for value in values:
        if out[-1] and value < out[-1][-1]:
            out.append([])
        out[-1].append(value)
    return out


def at_hour(hour: int, batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with every record's event time moved into `hour` of T0's day (one partition)."""
    when = pa.array([T0.replace(hour=hour)] * batch.num_rows, pa.timestamp("us", tz="UTC"))
    return batch.set_column(batch.schema.get_field_index("timestamp"), "timestamp", when)


def scanned_row_groups(file: Path, client: str) -> str:
    """DuckDB's `Row Groups Scanned: a / b` for one client's rows in `file`."""
    sql = f"EXPLAIN ANALYZE SELECT count(*) FROM read_parquet('{file}') WHERE clientip = ?"
    plan = "\n".join(str(row[1]) for row in duckdb.connect().sql(sql, params=[client]).fetchall())
    found = re.search(r"Row Groups Scanned: (\d+ / \d+)", plan)
    assert found is not None, plan
    return found.group(1)


# --- sort_by ----------------------------------------------------------------------------------------------


def test_sort_by_orders_the_file_and_its_statistics_let_duckdb_skip_row_groups(tmp_path: Path) -> None:
    records = apache_records()
    sink = build_sink(
        "{type: parquet, dataset: access, partition_by: [], row_group_size: 1000, sort_by: [clientip, timestamp]}", base_dir=tmp_path
    )
    write_all(sink, chunks(records, 700))

    [file] = committed(sink)
    table = pq.read_table(file)
    assert rows(table, records.schema.names) == rows(records, records.schema.names)
    keys = list(zip(table.column("clientip").to_pylist(), table.column("timestamp").to_pylist()))
    assert keys == sorted(keys)

    metadata = pq.ParquetFile(file).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [1000] * 10
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    expected_order = (
        pq.SortingColumn(names.index("clientip"), descending=False, nulls_first=False),
        pq.SortingColumn(names.index("timestamp"), descending=False, nulls_first=False),
    )
    assert all(metadata.row_group(i).sorting_columns == expected_order for i in range(10))
    bounds = [metadata.row_group(i).column(names.index("clientip")).statistics for i in range(10)]
    assert all(stats.has_min_max for stats in bounds)
    clients = [client for client, _ in keys]
    assert [(stats.min, stats.max) for stats in bounds] == [(clients[start], clients[start + 999]) for start in range(0, 10000, 1000)]

    busiest = Counter(records.column("clientip").to_pylist()).most_common(1)[0][0]
    groups_with_it = sum(1 for stats in bounds if stats.min <= busiest <= stats.max)
    assert scanned_row_groups(file, busiest) == f"{groups_with_it} / 10"
    assert groups_with_it < 10


def test_sorted_files_in_partitions_keep_every_row(tmp_path: Path) -> None:
    records = apache_records()
    sink = build_sink("{type: parquet, dataset: access, sort_by: [clientip]}", base_dir=tmp_path)
    write_all(sink, chunks(records, 700))

    files = committed(sink)
    assert len(files) == len({p.parent for p in files}) > 10
    for file in files:
        clients = pq.read_table(file, columns=["clientip"]).column("clientip").to_pylist()
        assert clients == sorted(clients), file
    columns = ["timestamp", "clientip", "request", "response", "bytes", "agent"]
    back = query(sink, f"SELECT {', '.join(columns)} FROM ds")
    assert Counter(back) == rows(records, columns)


def test_sort_buffer_bounds_the_runs_a_file_holds(tmp_path: Path) -> None:
    """A worker buffering more than half its `sort_buffer` writes its buffered records out as one sorted run (the
    other half is for the run being written): a file holds several."""
    records = apache_records()
    batches = chunks(records, 500)
    sink = build_sink("{type: parquet, dataset: access, partition_by: [], sort_by: [clientip], sort_buffer: 512KiB}", base_dir=tmp_path)
    write_all(sink, batches)

    expected_runs, held_rows, held_bytes = [], 0, 0
    for batch in batches:
        held_rows, held_bytes = held_rows + batch.num_rows, held_bytes + batch.nbytes
        if held_bytes > 512 * 1024 // 2:
            expected_runs.append(held_rows)
            held_rows, held_bytes = 0, 0
    expected_runs.append(held_rows)
    [file] = committed(sink)
    clients = pq.read_table(file, columns=["clientip"]).column("clientip").to_pylist()
    assert [len(run) for run in runs(clients)] == expected_runs
    assert len(expected_runs) > 2
    assert Counter(clients) == Counter(records.column("clientip").to_pylist())


def test_sorted_files_roll_by_size_once_their_runs_are_written(tmp_path: Path) -> None:
    """Runs are written on the writer's thread; a file counts each run once it is on disk, so files still roll
    at `max_file_size`. Runs here are ~40 KB on disk (128 KiB of records), so a file past the limit also holds
    the run that crossed it and what its commit writes out: ~90 KB, as when runs were written in place."""
    records = apache_records()
    options = "partition_by: [], sort_by: [clientip], sort_buffer: 256KiB, max_file_size: 48KiB"
    sink = build_sink(f"{{type: parquet, dataset: access, {options}}}", base_dir=tmp_path)
    write_all(sink, chunks(records, 250))

    files = committed(sink)
    sizes = [file.stat().st_size for file in files]
    assert len(files) >= 3, sizes
    assert all(48 * 1024 <= size < 3 * 48 * 1024 for size in sizes[:-1]), sizes
    assert Counter(pq.read_table(files).column("clientip").to_pylist()) == Counter(records.column("clientip").to_pylist())


def test_a_file_that_stopped_growing_is_written_out_first(tmp_path: Path) -> None:
    """Over half its `sort_buffer`, the worker writes out the file it appended to least recently (an hour that has
    ended), not the largest one, so the hour still growing keeps one long run."""
    records = apache_records()
    ended = at_hour(10, records.slice(0, 1500))
    growing = [at_hour(11, batch) for batch in chunks(records.slice(1500, 4000), 500)]
    limit = 2 * (ended.nbytes + sum(batch.nbytes for batch in growing[:6]))  # the 7th of 8 batches tips half of it over
    sink = build_sink(f"{{type: parquet, dataset: access, sort_by: [clientip], sort_buffer: {limit}}}", base_dir=tmp_path)
    write_all(sink, [ended, *growing])

    hour_10, hour_11 = committed(sink)
    assert [len(run) for run in runs(pq.read_table(hour_10).column("clientip").to_pylist())] == [1500]
    assert [len(run) for run in runs(pq.read_table(hour_11).column("clientip").to_pylist())] == [4000]


def with_dictionary_agents(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with `agent` dictionary-encoded: each batch brings its own dictionary, as a stage's output would."""
    index = batch.schema.get_field_index("agent")
    return batch.set_column(index, "agent", pc.dictionary_encode(batch.column("agent")))


def test_a_sorted_run_of_dictionary_struct_and_null_columns_keeps_every_value(tmp_path: Path) -> None:
    """A run is sorted after each column's batches are joined into one array: dictionaries that differ between
    batches, struct columns and null sort keys come out as they went in, null keys last."""
    records = access_with_struct_and_float()
    clients = records.column("clientip").to_pylist()
    missing = pa.array([None if i % 97 == 0 else client for i, client in enumerate(clients)], pa.string())
    records = records.set_column(records.schema.get_field_index("clientip"), "clientip", missing)
    batches = [with_dictionary_agents(batch) for batch in chunks(records, 700)]
    assert batches[0].column("agent").dictionary != batches[1].column("agent").dictionary
    sink = build_sink(
        "{type: parquet, dataset: access, partition_by: [], row_group_size: 3000, sort_by: [clientip, timestamp]}", base_dir=tmp_path
    )
    write_all(sink, batches)

    [file] = committed(sink)
    table = pq.read_table(file)
    assert pq.ParquetFile(file).metadata.num_row_groups == 4
    flat = [name for name in records.schema.names if name != "req"]
    assert rows(table, flat) == rows(records, flat)
    assert rows(table.flatten(), ["req.verb", "req.path", "clientip", "timestamp"]) == rows(
        pa.Table.from_batches([records]).flatten(), ["req.verb", "req.path", "clientip", "timestamp"]
    )
    keys = list(zip(table.column("clientip").to_pylist(), table.column("timestamp").to_pylist()))
    present = [key for key in keys if key[0] is not None]
    assert keys == present + [key for key in keys if key[0] is None]
    assert present == sorted(present)
    assert len(present) == len(keys) - (len(keys) + 96) // 97


def test_writing_a_run_takes_the_buffered_batches_over(tmp_path: Path) -> None:
    """`write_run` empties the list it is given: the writer holds the only copy of the records while it writes."""
    sink = build_sink("{type: parquet, dataset: access, partition_by: [], sort_by: [clientip]}", base_dir=tmp_path)
    batches = chunks(apache_records(), 1000)
    buffered = list(batches)
    target = tmp_path / "run.parquet"
    options = FileOptions.from_config(sink.config)
    writer = options.parquet_writer(pa.OSFile(str(target), "wb"), batches[0].schema)
    options.write_run(writer, buffered, batches[0].schema)
    writer.close()

    assert buffered == []
    clients = pq.read_table(target, columns=["clientip"]).column("clientip").to_pylist()
    assert clients == sorted(c for batch in batches for c in batch.column("clientip").to_pylist())


def test_sort_by_a_missing_column_keeps_arrival_order_and_says_nothing_is_sorted(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: [], sort_by: [service]}", base_dir=tmp_path)
    write_all(sink, [timed(5, message=list("edcba"))])

    [file] = committed(sink)
    assert pq.read_table(file).column("message").to_pylist() == list("edcba")
    assert pq.ParquetFile(file).metadata.row_group(0).sorting_columns == ()


def test_sort_by_a_struct_column_stops_with_terminal_error(tmp_path: Path) -> None:
    sink = build_sink("{type: parquet, dataset: app, partition_by: [], sort_by: [geo]}", base_dir=tmp_path, name="lake")
    writer = sink.open(0, 1)
    with pytest.raises(TerminalError) as caught:
        writer.write(timed(1, geo=[{"country": "DE"}]))
    assert str(caught.value) == "lake: cannot sort by column 'geo' of type struct<country: string>: only text, numbers, booleans and times sort"
    assert every_file(sink) == []


# --- column_encoding --------------------------------------------------------------------------------------


def access_with_struct_and_float() -> pa.RecordBatch:
    """The real records plus a struct (`req`: verb and path of the request) and a float (`kib`) column."""
    records = apache_records()
    parts = pc.split_pattern(records.column("request"), " ", max_splits=2)
    verb, path = pc.list_element(parts, 0), pc.list_element(parts, 1)
    kib = pc.divide(pc.cast(records.column("bytes"), pa.float64()), 1024.0)
    req = pa.StructArray.from_arrays([verb, path], names=["verb", "path"])
    return pa.RecordBatch.from_arrays([*records.columns, req, kib], names=[*records.schema.names, "req", "kib"])


def test_column_encoding_is_in_file_metadata_and_reads_back(tmp_path: Path) -> None:
    records = access_with_struct_and_float()
    sink = build_sink(
        "{type: parquet, dataset: app, partition_by: [], column_encoding: "
        "{bytes: delta, request: delta, kib: byte_stream_split, agent: plain, req.path: delta, not_there: delta}}",
        base_dir=tmp_path,
    )
    write_all(sink, chunks(records, 1000))

    [file] = committed(sink)
    metadata = pq.ParquetFile(file).metadata
    encodings = {metadata.row_group(0).column(i).path_in_schema: set(metadata.row_group(0).column(i).encodings) - {"RLE"}
                 for i in range(metadata.num_columns)}
    assert encodings == {
        "timestamp": {"PLAIN", "RLE_DICTIONARY"}, "clientip": {"PLAIN", "RLE_DICTIONARY"},
        "request": {"DELTA_BYTE_ARRAY"}, "response": {"PLAIN", "RLE_DICTIONARY"}, "bytes": {"DELTA_BINARY_PACKED"},
        "agent": {"PLAIN"}, "req.verb": {"PLAIN", "RLE_DICTIONARY"}, "req.path": {"DELTA_BYTE_ARRAY"}, "kib": {"BYTE_STREAM_SPLIT"},
    }
    columns = ["timestamp", "clientip", "request", "response", "bytes", "agent", "kib"]
    assert Counter(query(sink, f"SELECT {', '.join(columns)} FROM ds")) == rows(records, columns)
    assert Counter(query(sink, "SELECT req.verb, req.path FROM ds")) == Counter(
        zip(*(records.column("req").field(name).to_pylist() for name in ("verb", "path")))
    )


@pytest.mark.parametrize(
    "encoding, message",
    [
        ("{kib: delta}", "column_encoding: 'delta' fits integers, times and text; column 'kib' is double"),
        ("{agent: byte_stream_split}", "column_encoding: 'byte_stream_split' fits floats, decimals, integers and times; column 'agent' is string"),
        ("{req: plain}", "column_encoding: 'req' is a struct; name its fields, e.g. 'req.verb'"),
    ],
    ids=["delta-on-float", "split-on-text", "struct"],
)
def test_an_encoding_that_does_not_fit_stops_with_terminal_error(tmp_path: Path, encoding: str, message: str) -> None:
    sink = build_sink(f"{{type: parquet, dataset: app, partition_by: [], column_encoding: {encoding}}}", base_dir=tmp_path, name="lake")
    writer = sink.open(0, 1)
    with pytest.raises(TerminalError) as caught:
        writer.write(access_with_struct_and_float().slice(0, 10))
    assert str(caught.value) == f"lake: {message}"
    assert every_file(sink) == []


# --- configuration ----------------------------------------------------------------------------------------

PIPELINE = """
pipeline: app
sources:
  logs: {type: file, paths: [access.log]}
sinks:
  lake:
    type: parquet
    dataset: access
    partition_by: [date, service]
    OPTION
"""


@pytest.mark.parametrize(
    "option, expected",
    [
        ("sort_by: [clientip, clientip]", "sinks.lake.sort_by  sort columns repeat: clientip (node 'lake', type parquet) @9:5"),
        ("sort_by: [service, clientip]", "sinks.lake.sort_by  'service' is in partition_by: a partition's value is its folder name, "
                                         "the same for a whole file (node 'lake', type parquet) @9:5"),
        ("sort_buffer: 16MiB", "sinks.lake  sort_buffer is set but sort_by is not: give the columns to sort by, or drop sort_buffer "
                               "(node 'lake', type parquet) @5:3"),
        ("sort_buffer: lots", "sinks.lake.sort_buffer  'lots' is not a size; write a number and a unit, one of KB, MB, GB, KiB, MiB, GiB "
                              "(e.g. 64MiB) (node 'lake', type parquet) @9:18"),
        ("column_encoding: {kafka_offset: delta_binary}", "sinks.lake.column_encoding.kafka_offset  Input should be 'delta', "
                                                          "'byte_stream_split' or 'plain' (node 'lake', type parquet) @9:37"),
        ("column_encoding: {service: plain}", "sinks.lake.column_encoding  'service' is in partition_by: a partition's value is its "
                                              "folder name, not a column of its files (node 'lake', type parquet) @9:5"),
    ],
    ids=["sort-repeat", "sort-partition", "buffer-without-sort", "buffer-size", "encoding-name", "encoding-partition"],
)
def test_bad_layout_options_name_node_key_and_line(write_pipeline: Callable[[str], Path], option: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_pipeline(write_pipeline(PIPELINE.replace("OPTION", option)))
    assert [issue.render().split("  ", 1)[1] + f" @{issue.line}:{issue.column}" for issue in caught.value.issues] == [expected]

