"""The `stdin` source: a real pipe, a real child process reading its standard input, and an injected stream."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loglake.operators.stdin import StdinConfig, StdinSource
from loglake.schemas.connectors import EndOfInput, SourcePartition
from loglake.schemas.stage import NodeContext
from tests.support import APACHE_LOG

REPO = Path(__file__).resolve().parents[2]

_CHILD = """
import json, sys, time
from loglake.schemas.connectors import EndOfInput
from tests.support import build_source

source = build_source("{type: stdin, batch_size: 4000}")
partition = source.open(*source.partitions(), None)
while True:
    try:
        batch = partition.read()
    except EndOfInput:
        break
    if batch is None:
        time.sleep(0.001)
        continue
    rows = zip(batch.column("_line").to_pylist(), batch.column("source").to_pylist(), batch.column("message").to_pylist())
    sys.stdout.write("".join(json.dumps(row) + "\\n" for row in rows))
sys.stdout.write(json.dumps({"partitions": source.partitions(), "position": partition.position()}) + "\\n")
"""


def _partition(stream: Any, snippet: dict[str, Any] | None = None) -> tuple[SourcePartition, NodeContext]:
    ctx = NodeContext(node="piped")
    config = StdinConfig.model_validate({"type": "stdin", **(snippet or {})})
    source = StdinSource(config, ctx, stream=stream)
    return source.open("stdin", None), ctx


def _next_batch(partition: SourcePartition, timeout: float = 5.0) -> pa.RecordBatch:
    """The next batch, waiting for the reading thread; `EndOfInput` propagates."""
    deadline = time.monotonic() + timeout
    while (batch := partition.read()) is None:
        assert time.monotonic() < deadline, "no batch arrived"
        time.sleep(0.002)
    return batch


def _until_end(partition: SourcePartition) -> list[pa.RecordBatch]:
    batches = []
    with pytest.raises(EndOfInput):
        while True:
            batches.append(_next_batch(partition))
    return batches


def test_a_child_process_reads_the_apache_log_piped_to_its_stdin() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], input=APACHE_LOG.read_bytes(), capture_output=True, cwd=REPO, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    *rows, summary = [json.loads(line) for line in done.stdout.decode().splitlines()]
    expected = APACHE_LOG.read_text(encoding="utf-8").split("\n")[:-1]
    assert rows == [[number, "stdin", message] for number, message in enumerate(expected, start=1)]
    assert summary == {"partitions": ["stdin"], "position": None}


def test_lines_arriving_on_a_pipe_are_read_without_blocking() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as stream, os.fdopen(write_end, "wb", buffering=0) as writer:
        partition, _ = _partition(stream)
        assert partition.read() is None  # nothing written yet: returns at once
        writer.write(b"first\nsecond half")
        assert _next_batch(partition).column("message").to_pylist() == ["first"]
        assert partition.read() is None  # the unfinished line waits for its newline
        writer.write(b" done\r\n")
        batch = _next_batch(partition)
        assert batch.column("message").to_pylist() == ["second half done"]
        assert batch.column("_line").to_pylist() == [2]
        writer.close()
        assert _until_end(partition) == []
        partition.close()


def test_bad_bytes_and_long_lines_are_kept_flagged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    data = b"one\r\ntwo \xff\n" + b"x" * 3000 + b"\nlast without newline"
    partition, ctx = _partition(io.BytesIO(data), {"batch_size": 2, "max_line_size": "1KiB"})
    with caplog.at_level(logging.WARNING):
        batches = _until_end(partition)
    assert [b.num_rows for b in batches] == [2, 1, 1]
    table = pa.concat_tables([pa.Table.from_batches([b]) for b in batches], promote_options="permissive")
    assert table.column("message").to_pylist() == ["one", "two \ufffd", "x" * 1024, "last without newline"]
    assert table.column("_line").to_pylist() == [1, 2, 3, 4]
    assert table.column("source").to_pylist() == ["stdin"] * 4
    assert batches[1].column("_truncated").to_pylist() == [True]
    assert ctx.counters.snapshot() == {"records_in": 4, "invalid_utf8_lines": 1, "truncated_lines": 1}
    assert "first at stdin:2" in caplog.text and "first at stdin:3" in caplog.text
    assert partition.position() is None


def test_an_empty_stream_ends_at_once() -> None:
    partition, ctx = _partition(io.BytesIO(b""))
    assert _until_end(partition) == []
    assert ctx.counters.snapshot() == {}
