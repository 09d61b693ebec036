"""The multiline stage: Filebeat's pattern/negate/match rules, events across batches, flushing, limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loglake.pipelines.runner import RunOptions, run_pipeline
from loglake.schemas.errors import SpecError
from loglake.schemas.stage import end_marker
from tests.support import batch_of, build_stage

JAVA = [
    "2024-03-01 10:00:00 ERROR Request failed",
    "java.lang.IllegalStateException: boom",
    "    at com.example.Service.handle(Service.java:42)",
    "    at com.example.Server.run(Server.java:7)",
    "Caused by: java.io.IOException: disk",
    "    ... 12 more",
    "2024-03-01 10:00:01 INFO next request",
]
DATE_START = r"^\d{4}-\d{2}-\d{2} "


def _messages(stage: object, *batches: list[str], source: str = "/var/log/app.log") -> list[str]:
    out: list[str] = []
    for lines in batches:
        out += stage.process(batch_of(message=lines, source=[source] * len(lines))).main.column("message").to_pylist()  # type: ignore[attr-defined]
    flushed = stage.flush(source)  # type: ignore[attr-defined]
    return out + (flushed.main.column("message").to_pylist() if flushed else [])


@pytest.mark.parametrize("split", [7, 3, 1], ids=["one-batch", "split-mid-trace", "line-per-batch"])
def test_negated_date_pattern_joins_a_java_trace_across_batches(split: int) -> None:
    stage = build_stage(f"{{type: multiline, pattern: '{DATE_START}', negate: true, match: after}}")
    batches = [JAVA[i:i + split] for i in range(0, len(JAVA), split)]
    assert _messages(stage, *batches) == ["\n".join(JAVA[:6]), JAVA[6]]


def test_continuation_pattern_appends_indented_lines() -> None:
    stage = build_stage(r"{type: multiline, pattern: '^([[:space:]]+(at|\.\.\.) |Caused by:)'}")
    assert _messages(stage, JAVA) == [JAVA[0], "\n".join(JAVA[1:6]), JAVA[6]]


def test_match_before_prepends_lines_ending_in_a_backslash() -> None:
    stage = build_stage(r"{type: multiline, pattern: '\\$', match: before, separator: ' '}")
    lines = ["start \\", "middle \\", "end", "single", "open \\"]
    out = stage.process(batch_of(message=lines, source=["s"] * 5)).main.column("message").to_pylist()
    assert out == ["start \\ middle \\ end", "single"]
    flushed = stage.flush("s")
    assert flushed is not None and flushed.main.column("message").to_pylist() == ["open \\"]


def test_max_lines_splits_an_event_and_loses_nothing() -> None:
    stage = build_stage(f"{{type: multiline, pattern: '{DATE_START}', negate: true, max_lines: 3}}")
    lines = ["2024-03-01 10:00:00 head", *[f"  line {i}" for i in range(7)], "2024-03-01 10:00:01 next"]
    events = _messages(stage, lines[:4], lines[4:])
    assert [event.split("\n") for event in events] == [lines[0:3], lines[3:6], lines[6:8], lines[8:9]]


def test_sources_keep_their_own_open_events() -> None:
    stage = build_stage(f"{{type: multiline, pattern: '{DATE_START}', negate: true}}")
    batch = batch_of(message=["2024-01-01 00:00:00 a1", "2024-01-01 00:00:00 b1", "  a2", "  b2"], source=["a", "b", "a", "b"], _line=[1, 1, 2, 2])
    assert stage.process(batch).main.num_rows == 0
    assert stage.flush("b").main.to_pydict() == {"message": ["2024-01-01 00:00:00 b1\n  b2"], "source": ["b"], "_line": [1]}
    assert stage.flush("a").main.column("message").to_pylist() == ["2024-01-01 00:00:00 a1\n  a2"]
    assert stage.flush("a") is None


def test_an_idle_open_event_is_released_after_the_flush_timeout() -> None:
    stage = build_stage(f"{{type: multiline, pattern: '{DATE_START}', negate: true, flush_timeout: 100ms}}")
    stage.process(batch_of(message=["2024-01-01 00:00:00 x", "  y"], source=["s", "s"]))
    assert stage.flush(None) is None
    time.sleep(0.15)
    flushed = stage.flush(None)
    assert flushed is not None and flushed.main.column("message").to_pylist() == ["2024-01-01 00:00:00 x\n  y"]


def test_bad_pattern_is_a_validate_time_error() -> None:
    with pytest.raises(SpecError) as caught:
        build_stage("{type: multiline, pattern: '(unclosed'}")
    (issue,) = caught.value.issues
    assert issue.path == ("pattern",) and "not a valid RE2 expression" in issue.message


def test_end_marker_name_is_what_flush_receives() -> None:
    from loglake.schemas.stage import ended_partition

    assert ended_partition(end_marker("/var/log/app.log")) == "/var/log/app.log"
    assert ended_partition(batch_of(message=[])) is None


PIPELINE = """
pipeline: traces
sources:
  logs: {{type: file, paths: [app.log], batch_size: 4}}
stages:
  events: {{type: multiline, pattern: '{pattern}', negate: true}}
sinks:
  lake: {{type: parquet, dataset: events, partition_by: []}}
"""


def test_pipeline_flushes_the_last_event_at_the_end_of_the_file(write_pipeline: Callable[[str], Path], tmp_path: Path) -> None:
    lines = JAVA * 3
    (tmp_path / "app.log").write_text("\n".join(lines) + "\n")
    result = run_pipeline(write_pipeline(PIPELINE.format(pattern=DATE_START)), RunOptions(workers=2))
    table = pq.read_table(tmp_path / "lake" / "events").sort_by("_line")
    assert table.column("message").to_pylist() == ["\n".join(JAVA[:6]), JAVA[6]] * 3
    assert table.column("_line").to_pylist() == [1, 7, 8, 14, 15, 21]
    events = next(node for node in result.nodes if node.name == "events")
    assert (events.counts["records_in"], events.counts["records_out"]) == (21, 6)
