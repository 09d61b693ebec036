"""Failed-record warnings: the first at once, then one summary per interval, with an example and its location."""

from __future__ import annotations

import logging
import time

import pyarrow as pa
import pytest

from loglake.pipelines.quality import FailureLog


def _dropped(*lines: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({
        "message": [f"GET /x {n}" for n in lines],
        "source": ["/var/log/app.log"] * len(lines),
        "_line": list(lines),
        "_error": ["status: Conversion Error: could not convert"] * len(lines),
    })


def test_first_failure_at_once_then_a_summary_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(interval=0.2)
    with caplog.at_level(logging.WARNING, logger="loglake.pipelines.quality"):
        failures.record("shape", 100, _dropped(7), 0)
        failures.record("shape", 100, _dropped(150, 151), 0)
        failures.record("shape", 100, None, 0)
        assert len(caplog.records) == 1
        time.sleep(0.25)
        failures.record("shape", 100, _dropped(320), 3)
    first, summary = (record.getMessage() for record in caplog.records)
    assert first == (
        "shape: 1 of 100 records failed so far; e.g. status: Conversion Error: could not convert "
        "(/var/log/app.log:7: 'GET /x 7')"
    )
    assert summary.startswith("shape: 6 of 300 records failed in the last 0.2s; e.g. ")
    assert summary.endswith("(/var/log/app.log:320: 'GET /x 320')")


def test_clean_batches_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(interval=0.0)
    with caplog.at_level(logging.WARNING, logger="loglake.pipelines.quality"):
        for _ in range(5):
            failures.record("parse", 1000, None, 0)
    assert caplog.records == []
