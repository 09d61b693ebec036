"""The `file` source on real files: batching, globs, start/resume positions, following, bad bytes and long lines."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from loglake.pipelines.nodes import build_node
from loglake.schemas.connectors import EndOfInput, SourcePartition
from loglake.schemas.errors import SpecError
from loglake.schemas.stage import NodeContext, NodeCounters
from tests.support import APACHE_LOG, build_source, drain

FAST_POLL = "poll_interval: 5ms"


def _open(snippet: str, tmp_path: Path, follow: bool | None = None, resume: Any = None) -> SourcePartition:
    """The first partition of a file source built from `snippet`."""
    source = build_source(snippet, base_dir=tmp_path, follow=follow)
    partition: SourcePartition = source.open(source.partitions()[0], resume)
    return partition


def _counted(snippet: str, tmp_path: Path) -> tuple[SourcePartition, NodeCounters]:
    """Like `_open`, keeping the node's counters (built through the same loader as `build_source`)."""
    ctx = NodeContext(node="source", base_dir=tmp_path)
    source = build_node("source", "source", yaml.safe_load(snippet), ctx)
    return source.open(source.partitions()[0], None), ctx.counters


def _poll(partition: SourcePartition, lines: int, timeout: float = 5.0) -> list[pa.RecordBatch]:
    """Batches of a follower until `lines` lines arrived; then checks that nothing more is pending."""
    batches: list[pa.RecordBatch] = []
    deadline = time.monotonic() + timeout
    while sum(b.num_rows for b in batches) < lines:
        assert time.monotonic() < deadline, f"only {sum(b.num_rows for b in batches)} of {lines} lines arrived"
        batch = partition.read()
        if batch is None:
            time.sleep(0.002)
        else:
            batches.append(batch)
    assert _column(batches, "message")[lines:] == []
    return batches


def _column(batches: list[pa.RecordBatch], name: str) -> list[Any]:
    return [value for batch in batches for value in batch.column(name).to_pylist()]


def _write(path: Path, data: bytes, mode: str = "ab") -> None:
    with open(path, mode) as handle:
        handle.write(data)


def _file_yaml(path: Path | str, *options: str) -> str:
    return "{" + ", ".join([f"type: file, paths: ['{path}']", *options]) + "}"


def test_reads_every_apache_line_with_its_number(tmp_path: Path) -> None:
    partition, counters = _counted(_file_yaml(APACHE_LOG), tmp_path)
    batches = drain(partition)
    expected = APACHE_LOG.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(expected) == 10_000
    assert _column(batches, "message") == expected
    assert _column(batches, "_line") == list(range(1, 10_001))
    assert set(_column(batches, "source")) == {str(APACHE_LOG)}
    assert batches[0].schema.names == ["message", "source", "_line"]
    assert batches[0].schema.field("_line").type == pa.int64()
    assert counters.snapshot() == {"records_in": 10_000}
    assert partition.position() == {"inode": APACHE_LOG.stat().st_ino, "offset": APACHE_LOG.stat().st_size, "line": 10_000}


@pytest.mark.parametrize(
    "batch_size, batch_bytes",
    [(1, "4MiB"), (7, "4MiB"), (10_000, "64KiB"), (250, "1KiB"), (3_000, "1MiB")],
    ids=["one-line", "seven-lines", "64KiB", "1KiB-smaller-than-some-lines", "3000-lines-or-1MiB"],
)
def test_batches_stay_within_batch_size_and_batch_bytes(tmp_path: Path, batch_size: int, batch_bytes: str) -> None:
    snippet = _file_yaml(APACHE_LOG, f"batch_size: {batch_size}", f"batch_bytes: {batch_bytes}")
    batches = drain(_open(snippet, tmp_path))
    limit = int(batch_bytes[:-3]) * {"KiB": 1024, "MiB": 1024**2}[batch_bytes[-3:]]
    sizes = [[len(m.encode()) + 1 for m in batch.column("message").to_pylist()] for batch in batches]
    for batch_sizes, following in zip(sizes, sizes[1:] + [[]]):
        assert len(batch_sizes) <= batch_size
        assert sum(batch_sizes) <= limit or len(batch_sizes) == 1
        if following:  # every batch but the last is full: the next line would not have fitted
            assert len(batch_sizes) == batch_size or sum(batch_sizes) + following[0] > limit
    assert _column(batches, "_line") == list(range(1, 10_001))
    assert _column(batches, "message") == APACHE_LOG.read_text(encoding="utf-8").split("\n")[:-1]


def test_globs_expand_to_sorted_distinct_files_one_partition_each(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for name in ("b.log", "sub/a.log", "sub/deeper/c.log", "notes.txt"):
        (logs / name).parent.mkdir(parents=True, exist_ok=True)
        (logs / name).write_text(f"first of {name}\nsecond of {name}\n")
    (logs / "folder.log").mkdir()  # a directory the glob matches is not a file to read
    source = build_source("{type: file, paths: ['logs/**/*.log', logs/b.log]}", base_dir=tmp_path)
    names = ["b.log", "sub/a.log", "sub/deeper/c.log"]
    assert source.partitions() == sorted(str(logs / name) for name in names)
    for partition in source.partitions():
        batches = drain(source.open(partition, None))
        name = os.path.relpath(partition, logs)
        assert _column(batches, "message") == [f"first of {name}", f"second of {name}"]
        assert _column(batches, "source") == [partition, partition]


def test_start_at_end_reads_only_lines_written_later(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"old 1\nold 2\nstill being writ")
    partition = _open(_file_yaml("app.log", "start_at: end", FAST_POLL), tmp_path, follow=True)
    assert partition.read() is None
    assert partition.position() == {"inode": path.stat().st_ino, "offset": 12, "line": 2}
    _write(path, b"ten\nnew 4\n")
    batches = _poll(partition, 2)
    assert _column(batches, "message") == ["still being written", "new 4"]
    assert _column(batches, "_line") == [3, 4]


def test_start_at_end_of_a_bounded_file_reads_nothing(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(b"old 1\nold 2\n")
    assert drain(_open(_file_yaml("app.log", "start_at: end"), tmp_path)) == []


@pytest.mark.parametrize("start_at", ["beginning", "end"])
def test_resume_continues_just_after_the_last_line_returned(tmp_path: Path, start_at: str) -> None:
    path = tmp_path / "app.log"
    path.write_text("".join(f"line {n}\n" for n in range(1, 11)))
    first = _open(_file_yaml("app.log", "batch_size: 3"), tmp_path)
    head = [first.read(), first.read()]
    saved = json.loads(json.dumps(first.position()))
    first.close()
    assert saved == {"inode": path.stat().st_ino, "offset": len("".join(f"line {n}\n" for n in range(1, 7))), "line": 6}
    rest = drain(_open(_file_yaml("app.log", "batch_size: 3", f"start_at: {start_at}"), tmp_path, resume=saved))
    assert _column(head, "_line") + _column(rest, "_line") == list(range(1, 11))
    assert _column(rest, "message") == [f"line {n}" for n in range(7, 11)]


@pytest.mark.parametrize("change", ["rotated", "truncated"])
def test_resume_reads_from_the_start_when_the_file_changed_while_stopped(
    tmp_path: Path, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "app.log"
    path.write_text("".join(f"old {n}\n" for n in range(1, 11)))
    first = _open(_file_yaml("app.log", "batch_size: 4"), tmp_path)
    first.read()
    saved = first.position()
    first.close()
    if change == "rotated":
        path.rename(tmp_path / "app.log.1")
    path.write_text("new 1\nnew 2\n")
    with caplog.at_level(logging.WARNING):
        batches = drain(_open(_file_yaml("app.log"), tmp_path, resume=saved))
    assert _column(batches, "message") == ["new 1", "new 2"]
    assert _column(batches, "_line") == [1, 2]
    assert f"{path} changed while stopped" in caplog.text


def test_follow_picks_up_appended_lines(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("a\n")
    partition = _open(_file_yaml("app.log", FAST_POLL), tmp_path, follow=True)
    assert _column(_poll(partition, 1), "message") == ["a"]
    assert partition.read() is None  # at the end: waits instead of ending
    _write(path, b"b\nc\n")
    batches = _poll(partition, 2)
    assert _column(batches, "message") == ["b", "c"]
    assert _column(batches, "_line") == [2, 3]
    assert partition.position()["offset"] == 6


def test_follow_survives_rotation_without_losing_or_doubling_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "app.log"
    path.write_text("a1\na2\n")
    partition = _open(_file_yaml("app.log", FAST_POLL), tmp_path, follow=True)
    assert _column(_poll(partition, 2), "message") == ["a1", "a2"]
    _write(path, b"a3\n")
    path.rename(tmp_path / "app.log.1")
    _write(tmp_path / "app.log.1", b"a4\na5 without newline")  # the writer still holds the old file
    path.write_text("b1\nb2\n")
    with caplog.at_level(logging.INFO):
        batches = _poll(partition, 5)
    assert _column(batches, "message") == ["a3", "a4", "a5 without newline", "b1", "b2"]
    assert _column(batches, "_line") == [3, 4, 5, 1, 2]
    assert partition.position() == {"inode": path.stat().st_ino, "offset": 6, "line": 2}
    assert f"{path} was rotated" in caplog.text
    for _ in range(5):
        assert partition.read() is None


def test_follow_restarts_a_truncated_file_from_its_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "app.log"
    path.write_text("one\ntwo\nthree\n")
    partition = _open(_file_yaml("app.log", FAST_POLL), tmp_path, follow=True)
    _poll(partition, 3)
    with caplog.at_level(logging.WARNING):
        path.write_text("x\n")  # copytruncate: same file, now shorter than what was read
        batches = _poll(partition, 1)
    assert _column(batches, "message") == ["x"]
    assert _column(batches, "_line") == [1]
    assert f"{path} was truncated" in caplog.text


def test_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    partition = _open(_file_yaml("later.log", FAST_POLL), tmp_path, follow=True)
    assert partition.read() is None
    assert partition.position() == {"inode": None, "offset": 0, "line": 0}
    (tmp_path / "later.log").write_text("here now\n")
    assert _column(_poll(partition, 1), "message") == ["here now"]


@pytest.mark.parametrize(
    "config_follow, cli_follow, follows",
    [("false", True, True), ("true", False, False), ("true", None, True)],
    ids=["cli-turns-it-on", "cli-turns-it-off", "config-alone"],
)
def test_cli_follow_overrides_the_config(tmp_path: Path, config_follow: str, cli_follow: bool | None, follows: bool) -> None:
    (tmp_path / "app.log").write_text("a\n")
    partition = _open(_file_yaml("app.log", f"follow: {config_follow}", FAST_POLL), tmp_path, follow=cli_follow)
    first = partition.read()
    assert first is not None and first.column("message").to_pylist() == ["a"]
    if follows:
        assert partition.read() is None
    else:
        with pytest.raises(EndOfInput):
            partition.read()


def test_a_bounded_read_emits_a_last_line_without_newline(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(b"a\nb")
    batches = drain(_open(_file_yaml("app.log"), tmp_path))
    assert _column(batches, "message") == ["a", "b"]
    assert _column(batches, "_line") == [1, 2]


def test_a_follower_waits_for_the_newline_of_a_last_line(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"a\nb")
    partition = _open(_file_yaml("app.log", FAST_POLL), tmp_path, follow=True)
    assert _column(_poll(partition, 1), "message") == ["a"]
    assert partition.read() is None
    assert partition.position()["offset"] == 2
    _write(path, b"c\n")
    batches = _poll(partition, 1)
    assert _column(batches, "message") == ["bc"]
    assert _column(batches, "_line") == [2]


@pytest.mark.parametrize(
    "data, messages",
    [
        (b"a\r\nb\r\n\r\nx\ry\r\n", ["a", "b", "", "x\ry"]),
        (b"unix\nwindows\r\nunix again\n", ["unix", "windows", "unix again"]),
        (b"\n\n", ["", ""]),
    ],
    ids=["crlf", "mixed", "empty-lines"],
)
def test_line_endings_are_removed(tmp_path: Path, data: bytes, messages: list[str]) -> None:
    (tmp_path / "app.log").write_bytes(data)
    assert _column(drain(_open(_file_yaml("app.log"), tmp_path)), "message") == messages


def test_invalid_utf8_is_replaced_counted_and_located(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"ok\nbad \xff\xfe here\n\xc3\x28\n" + "fine é\n".encode())
    partition, counters = _counted(_file_yaml("app.log"), tmp_path)
    with caplog.at_level(logging.WARNING):
        batches = drain(partition)
    assert _column(batches, "message") == ["ok", "bad \ufffd\ufffd here", "\ufffd(", "fine é"]
    assert _column(batches, "_line") == [1, 2, 3, 4]
    assert counters["invalid_utf8_lines"] == 2
    assert counters["records_in"] == 4
    assert f"first at {path}:2" in caplog.text


def test_other_encodings_decode_without_replacement(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes("café\r\nnaïve\n".encode("latin-1"))
    partition, counters = _counted(_file_yaml("app.log", "encoding: latin-1"), tmp_path)
    assert _column(drain(partition), "message") == ["café", "naïve"]
    assert counters["invalid_utf8_lines"] == 0


@pytest.mark.parametrize(
    "line",
    ["x" * 1_000_000, "é" * 600_000],
    ids=["1MB-ascii", "1.2MB-multibyte-across-read-chunks"],
)
def test_a_long_line_under_the_limit_passes_intact(tmp_path: Path, line: str) -> None:
    (tmp_path / "app.log").write_text(f"before\n{line}\nafter\n", encoding="utf-8")
    batches = drain(_open(_file_yaml("app.log"), tmp_path))
    assert _column(batches, "message") == ["before", line, "after"]
    assert _column(batches, "_line") == [1, 2, 3]
    assert all("_truncated" not in b.schema.names for b in batches)


def test_a_line_longer_than_batch_bytes_and_than_one_read_makes_a_batch_of_its_own(tmp_path: Path) -> None:
    line = "q" * (5 * 2**20)  # one read() call takes about 1 MiB here: the line needs five
    (tmp_path / "app.log").write_text(f"a\n{line}\nb\n")
    batches = drain(_open(_file_yaml("app.log", "batch_bytes: 1KiB"), tmp_path))
    assert [b.column("message").to_pylist() for b in batches] == [["a"], [line], ["b"]]
    assert _column(batches, "_line") == [1, 2, 3]


@pytest.mark.parametrize(
    "limit, line, kept",
    [
        ("1KiB", "y" * 5000, "y" * 1024),
        ("1001", "é" * 1000, "é" * 500),
        ("1KiB", "z" * (3 * 2**20), "z" * 1024),
    ],
    ids=["ascii", "never-half-a-utf8-character", "longer-than-a-read-chunk"],
)
def test_a_line_over_the_limit_is_truncated_flagged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, limit: str, line: str, kept: str
) -> None:
    path = tmp_path / "app.log"
    path.write_text(f"first\n{line}\nlast\n", encoding="utf-8")
    partition, counters = _counted(_file_yaml("app.log", f"max_line_size: {limit}"), tmp_path)
    with caplog.at_level(logging.WARNING):
        batches = drain(partition)
    table = pa.Table.from_batches(batches)
    assert table.column("message").to_pylist() == ["first", kept, "last"]
    assert table.column("_truncated").to_pylist() == [False, True, False]
    assert table.column("_line").to_pylist() == [1, 2, 3]
    assert counters["truncated_lines"] == 1
    assert counters["invalid_utf8_lines"] == 0
    assert f"first at {path}:2" in caplog.text
    assert partition.position()["offset"] == path.stat().st_size


def test_an_unfinished_line_over_the_limit_is_held_bounded_until_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"a\n" + b"w" * (3 * 2**20))
    partition = _open(_file_yaml("app.log", "max_line_size: 100", FAST_POLL), tmp_path, follow=True)
    assert _column(_poll(partition, 1), "message") == ["a"]
    assert partition.read() is None
    _write(path, b"w\r\nz\n")
    batches = _poll(partition, 2)
    assert _column(batches, "message") == ["w" * 100, "z"]
    assert _column(batches, "_truncated") == [True, False]
    assert partition.position() == {"inode": path.stat().st_ino, "offset": path.stat().st_size, "line": 3}


@pytest.mark.parametrize(
    "options, setup, path, words",
    [
        ("paths: ['logs/*.log']", None, ("paths",), ["no file matches", "logs/*.log"]),
        ("paths: [missing.log]", None, ("paths",), ["missing.log", "does not exist"]),
        ("paths: [logs]", "logs", ("paths",), ["'logs'", "is a directory"]),
        ("paths: [a.log, 'nothing/**/*.log']", "a.log", ("paths",), ["nothing/**/*.log"]),
        ("paths: [a.log], encoding: klingon", "a.log", ("encoding",), ["unknown encoding 'klingon'"]),
        ("paths: [a.log], encoding: utf-16", "a.log", ("encoding",), ["utf-16", "newline"]),
        ("paths: []", None, ("paths",), ["at least 1"]),
    ],
    ids=["glob-matches-nothing", "missing-file", "directory", "one-bad-pattern-of-two", "unknown-encoding", "utf-16", "no-paths"],
)
def test_bad_config_is_a_located_spec_error(
    tmp_path: Path, options: str, setup: str | None, path: tuple[str, ...], words: list[str]
) -> None:
    (tmp_path / "logs").mkdir()
    if setup == "a.log":
        (tmp_path / "a.log").write_text("x\n")
    with pytest.raises(SpecError) as caught:
        build_source(f"{{type: file, {options}}}", name="access", base_dir=tmp_path)
    [issue] = caught.value.issues
    assert issue.path == path
    assert issue.node == "access"
    for word in words:
        assert word in issue.message


def test_an_unreadable_file_is_a_located_spec_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret.log").write_text("x\n")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # tests run as root, who may read anything
    with pytest.raises(SpecError) as caught:
        build_source("{type: file, paths: [secret.log]}", base_dir=tmp_path)
    [issue] = caught.value.issues
    assert issue.path == ("paths",)
    assert issue.message == f"cannot read 'secret.log' ({tmp_path / 'secret.log'}): permission denied"


# --- follow mode: files that appear after the start ---------------------------------------------------


def _poll_all(source: object, partitions: dict[str, object], rounds: int = 40) -> list[tuple[str, int]]:
    """(file name, line) of everything the partitions return within a few polls."""
    seen: list[tuple[str, int]] = []
    for _ in range(rounds):
        for partition in partitions.values():
            batch = partition.read()  # type: ignore[attr-defined]
            if batch is not None and batch.num_rows:
                seen += [(Path(s).name, n) for s, n in zip(batch.column("source").to_pylist(), batch.column("_line").to_pylist())]
        time.sleep(0.01)
    return seen


def test_follow_picks_up_files_that_appear_later_and_resumes_them(tmp_path: Path) -> None:
    from loglake.operators.file_follow import DISCOVERY_PREFIX

    (tmp_path / "app-1.log").write_text("a1\na2\n")
    snippet = "{type: file, paths: ['*.log'], poll_interval: 10ms}"
    source = build_source(snippet, base_dir=tmp_path, follow=True)
    names = source.partitions()
    assert names == [str(tmp_path / "app-1.log"), DISCOVERY_PREFIX + str(tmp_path / "*.log")]
    partitions = {name: source.open(name, None) for name in names}
    assert _poll_all(source, partitions) == [("app-1.log", 1), ("app-1.log", 2)]
    (tmp_path / "app-2.log").write_text("b1\nb2\n")
    partitions[names[1]]._next_scan = 0  # type: ignore[attr-defined]  (don't wait a scan interval)
    assert _poll_all(source, partitions) == [("app-2.log", 1), ("app-2.log", 2)]
    saved = {name: partition.position() for name, partition in partitions.items()}  # type: ignore[attr-defined]
    assert set(saved[names[1]]) == {str(tmp_path / "app-2.log")}

    # Restart: app-2.log now exists at start and gets its own partition; its position carries over.
    with (tmp_path / "app-2.log").open("a") as handle:
        handle.write("b3\n")
    again = build_source(snippet, base_dir=tmp_path, follow=True)
    remapped = again.remap_positions(saved)
    assert set(again.partitions()) == {str(tmp_path / "app-1.log"), str(tmp_path / "app-2.log"), names[1]}
    resumed = {name: again.open(name, remapped.get(name)) for name in again.partitions()}
    assert _poll_all(again, resumed) == [("app-2.log", 3)]


def test_a_glob_matching_nothing_yet_is_fine_in_follow_mode(tmp_path: Path) -> None:
    source = build_source("{type: file, paths: ['logs/*.log']}", base_dir=tmp_path, follow=True)
    assert [name.split(":")[0] for name in source.partitions()] == ["discover"]
    with pytest.raises(SpecError, match="no file matches"):
        build_source("{type: file, paths: ['logs/*.log']}", base_dir=tmp_path, follow=False)
