"""The `stdout` sink: JSON lines on a real stream, from threads, and on a subprocess's real standard output."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from loglake.operators.stdout import StdoutConfig, StdoutSink
from loglake.schemas.errors import SpecError, TerminalError
from loglake.schemas.stage import NodeContext
from tests.support import APACHE_LOG, build_sink

REPO = Path(__file__).resolve().parents[2]
UTC = timezone.utc


def stdout_sink(stream: Any, node: str = "show") -> StdoutSink:
    """A `stdout` sink that writes to `stream` instead of the process's standard output."""
    return StdoutSink(StdoutConfig(type="stdout"), NodeContext(node=node), stream=stream)


@pytest.mark.parametrize(
    "column, line",
    [
        (pa.array([datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC)], pa.timestamp("us", tz="UTC")), b'{"v":"2015-05-17T10:05:03Z"}'),
        (pa.array([datetime(2015, 5, 17, 10, 5, 3, 250000, tzinfo=UTC)], pa.timestamp("us", tz="UTC")), b'{"v":"2015-05-17T10:05:03.250000Z"}'),
        (pa.array([datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC)], pa.timestamp("ms", tz="+02:00")), b'{"v":"2015-05-17T10:05:03Z"}'),
        (pa.array([{"at": datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC)}], pa.struct([("at", pa.timestamp("us", tz="Europe/Berlin"))])),
         b'{"v":{"at":"2015-05-17T10:05:03Z"}}'),
        (pa.array([datetime(2015, 5, 17, 10, 5, 3)], pa.timestamp("s")), b'{"v":"2015-05-17T10:05:03Z"}'),
        (pa.array([1431857103123456789], pa.timestamp("ns", tz="UTC")), b'{"v":"2015-05-17T10:05:03.123456Z"}'),
        (pa.array([90_000_000_000], pa.duration("ns")), b'{"v":90.0}'),
        (pa.array([date(2015, 5, 17)], pa.date32()), b'{"v":"2015-05-17"}'),
        (pa.array([{"country": "DE", "city": None}]), b'{"v":{"country":"DE","city":null}}'),
        (pa.array([[1, 2]]), b'{"v":[1,2]}'),
        (pa.array([[datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC)]], pa.large_list(pa.timestamp("s", tz="Asia/Tokyo"))),
         b'{"v":["2015-05-17T10:05:03Z"]}'),
        (pa.array([b"\x00\xffok"]), b'{"v":"AP9vaw=="}'),
        (pa.array(["GET"]).dictionary_encode(), b'{"v":"GET"}'),
        (pa.array([None], pa.string()), b'{"v":null}'),
        (pa.array([1.5]), b'{"v":1.5}'),
        (pa.array([True]), b'{"v":true}'),
        (pa.array(["naïve \"quote\"\n"]), b'{"v":"na\xc3\xafve \\"quote\\"\\n"}'),
    ],
    ids=["timestamp", "timestamp-micros", "timestamp-offset", "timestamp-nested-zone", "timestamp-naive", "timestamp-nanos",
         "duration-nanos", "date", "struct", "list", "list-zoned", "bytes",
         "dictionary", "null", "float", "bool", "escapes"],
)
def test_values_become_json(column: pa.Array, line: bytes) -> None:
    out = io.BytesIO()
    writer = stdout_sink(out).open(0, 1)
    writer.write(pa.RecordBatch.from_arrays([column], names=["v"]))
    writer.close()

    assert out.getvalue() == line + b"\n"


def test_access_log_lines_round_trip() -> None:
    lines = APACHE_LOG.read_text().splitlines()[:500]
    batch = pa.RecordBatch.from_pydict({"message": lines, "n": list(range(500))})
    out = io.BytesIO()
    sink = stdout_sink(out)
    writer = sink.open(0, 1)
    writer.write(batch.slice(0, 200))
    writer.write(pa.RecordBatch.from_pydict({}))
    writer.write(batch.slice(200))
    writer.close()

    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert records == [{"message": line, "n": i} for i, line in enumerate(lines)]
    assert sink._ctx.counters.snapshot() == {"records_out": 500}


class _SlowPipe(io.RawIOBase):
    """A stream that takes each write in small pieces and lets other threads run between them, like a pipe."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        for start in range(0, len(data), 64):
            self.pieces.append(data[start : start + 64])
            time.sleep(0)
        return len(data)


def test_concurrent_writers_never_interleave_lines() -> None:
    pipe = _SlowPipe()
    sink = stdout_sink(pipe)

    def work(worker: int) -> None:
        writer = sink.open(worker, 4)
        for n in range(20):
            writer.write(pa.RecordBatch.from_pydict({"worker": [worker] * 25, "n": [n] * 25, "pad": ["x" * 40] * 25}))
        writer.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    records = [orjson.loads(line) for line in b"".join(pipe.pieces).splitlines()]
    assert len(records) == 4 * 20 * 25
    assert sorted({(r["worker"], r["n"]) for r in records}) == [(w, n) for w in range(4) for n in range(20)]
    assert sink._ctx.counters["records_out"] == 2000


def test_closed_stream_is_a_terminal_error() -> None:
    out = io.BytesIO()
    writer = stdout_sink(out, node="show").open(0, 1)
    out.close()

    with pytest.raises(TerminalError, match=r"^show: cannot write to standard output: I/O operation on closed file"):
        writer.write(pa.RecordBatch.from_pydict({"v": [1]}))


def test_writes_to_real_standard_output(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from datetime import datetime, timezone
        import pyarrow as pa
        from tests.support import build_sink
        sink = build_sink("{type: stdout}", name="show")
        writer = sink.open(0, 1)
        when = datetime(2015, 5, 17, 10, 5, 3, tzinfo=timezone.utc)
        writer.write(pa.RecordBatch.from_pydict({"timestamp": [when, when], "level": ["info", None]}))
        writer.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60
    )

    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == (
        b'{"timestamp":"2015-05-17T10:05:03Z","level":"info"}\n{"timestamp":"2015-05-17T10:05:03Z","level":null}\n'
    )


def test_config_rejects_unknown_format() -> None:
    with pytest.raises(SpecError) as caught:
        build_sink("{type: stdout, format: csv}", name="show")
    [issue] = caught.value.issues
    assert (issue.path, issue.node, issue.message) == (("format",), "show", "Input should be 'json'")
