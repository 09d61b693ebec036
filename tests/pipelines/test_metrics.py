"""The `/metrics` endpoint: a real run over real log lines, scraped over HTTP, agrees with the run summary."""

from __future__ import annotations

import logging
import re
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import loglake.operators.metrics_sink  # noqa: F401 (registers the `metrics` sink until the registry lists it)
from loglake.pipelines.broker import free_port
from loglake.pipelines.compile import CompiledPipeline, load_and_compile
from loglake.pipelines.metrics import MetricsServer, start_metrics_server
from loglake.pipelines.runner import RunResult, run_compiled
from loglake.schemas.errors import TerminalError
from tests.support import APACHE_LOG

MAX_LINE = 400
PIPELINE = f"""
pipeline: scraped
sources:
  logs: {{type: file, paths: [access.log], batch_size: 100, max_line_size: {MAX_LINE}}}
stages:
  parse: {{type: apache_combined}}
sinks:
  lake: {{type: parquet, dataset: access, partition_by: [date]}}
  per_status: {{type: metrics, inputs: [parse], metrics: {{METRIC: {{type: counter, labels: [response]}}}}}}
"""
"""A pipeline over a file of real lines; METRIC becomes a name of the test's own (log metrics are process-wide)."""
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def lines() -> list[str]:
    """300 real access-log lines (some longer than MAX_LINE) and the one real line that ends cut short."""
    every = APACHE_LOG.read_text(encoding="utf-8").splitlines()
    return every[:300] + [every[8898]]


@pytest.fixture
def metric(request: pytest.FixtureRequest) -> str:
    """The log metric's name for this test."""
    return "requests_" + re.sub(r"\W", "_", request.node.name)[-40:] + "_total"


@pytest.fixture
def compiled(write_pipeline: Callable[[str], Path], tmp_path: Path, lines: list[str], metric: str) -> CompiledPipeline:
    (tmp_path / "access.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_and_compile(write_pipeline(PIPELINE.replace("METRIC", metric)))


@pytest.fixture
def server(compiled: CompiledPipeline) -> Iterator[MetricsServer]:
    with start_metrics_server(free_port(), compiled, host="127.0.0.1") as running:
        yield running


def _scrape(server: MetricsServer) -> Samples:
    with urllib.request.urlopen(server.url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def _named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def _run(compiled: CompiledPipeline) -> RunResult:
    result = run_compiled(compiled)
    assert not result.stopped_early
    return result


def test_scraped_counters_equal_the_run_summary(server: MetricsServer, compiled: CompiledPipeline, lines: list[str]) -> None:
    before = _scrape(server)
    assert _named(before, "loglake_records_in_total") == {}, "nothing has run yet"
    result = _run(compiled)
    samples = _scrape(server)
    families = {
        "records_in": "loglake_records_in_total",
        "records_out": "loglake_records_out_total",
        "records_dropped": "loglake_records_dropped_total",
    }
    for node in result.nodes:
        labels = _labels(pipeline="scraped", node=node.name, kind=node.kind, type=node.type_name)
        for counter, metric in families.items():
            assert samples.get((metric, labels)) == node.counts.get(counter), (node.name, counter)
        busy = samples[("loglake_node_busy_seconds_total", labels)]
        assert busy == pytest.approx(node.counts["busy_us"] / 1e6)
    counts = {node.name: node.counts for node in result.nodes}

    # what the summary says is what the data says, computed without loglake
    long = [line for line in lines if len(line.encode()) > MAX_LINE]
    assert 0 < len(long) < len(lines)
    assert counts["logs"]["records_in"] == len(lines) == 301
    errors = _named(samples, "loglake_errors_total")
    assert errors == {_labels(pipeline="scraped", node="logs", type="file", kind="truncated_line"): len(long)}
    assert counts["parse"]["records_dropped"] == len(long) + 1, "cut lines no longer parse"

    for sink, dataset in (("lake", "access"), ("dead_letter", "dead_letter")):
        labels = _labels(pipeline="scraped", node=sink, dataset=dataset)
        assert samples[("loglake_lake_files_written_total", labels)] == counts[sink]["files_written"] >= 1
        assert samples[("loglake_lake_bytes_written_total", labels)] == counts[sink]["bytes_written"] > 0
    assert counts["dead_letter"]["records_out"] == len(long) + 1


def test_log_metrics_are_served_with_the_pipeline_metrics(
    server: MetricsServer, compiled: CompiledPipeline, lines: list[str], metric: str
) -> None:
    _run(compiled)
    parsed = [line for line in lines if len(line.encode()) <= MAX_LINE and line.count('"') == 6]
    expected = Counter(line.split('"')[2].split()[0] for line in parsed)
    served = {dict(labels)["response"]: value for labels, value in _named(_scrape(server), metric).items()}
    assert served == expected
    assert set(expected) == {"200", "301", "304", "404"}


def test_batch_latency_is_a_histogram_per_node(server: MetricsServer) -> None:
    for seconds in (0.0003, 0.003, 0.004, 0.2):
        server.latency.observe("parse", seconds)
    histogram = _named(_scrape(server), "loglake_batch_seconds_bucket")
    buckets = {dict(labels)["le"]: value for labels, value in histogram.items() if dict(labels)["node"] == "parse"}
    assert (buckets["0.0005"], buckets["0.0025"], buckets["0.005"], buckets["0.1"], buckets["+Inf"]) == (1, 1, 3, 3, 4)
    samples = _scrape(server)
    assert samples[("loglake_batch_seconds_count", _labels(pipeline="scraped", node="parse"))] == 4
    assert samples[("loglake_batch_seconds_sum", _labels(pipeline="scraped", node="parse"))] == pytest.approx(0.2073)


class _LaggingSource:
    """The protocol hook a Kafka source offers: messages behind per partition (here: fixed, or failing)."""

    def __init__(self, behind: dict[str, int] | None) -> None:
        self.behind = behind

    def lag(self) -> dict[str, int]:
        if self.behind is None:
            raise ConnectionError("broker unreachable")
        return self.behind


def test_consumer_lag_is_polled_from_sources_that_offer_it(
    server: MetricsServer, compiled: CompiledPipeline, caplog: pytest.LogCaptureFixture
) -> None:
    assert _named(_scrape(server), "loglake_kafka_consumer_lag") == {}, "a file source has no lag()"
    source = _LaggingSource({"nginx-access-0": 42, "nginx-access-1": 0})
    compiled.instances["logs"] = source
    lag = _named(_scrape(server), "loglake_kafka_consumer_lag")
    assert lag == {
        _labels(pipeline="scraped", source="logs", partition="nginx-access-0"): 42,
        _labels(pipeline="scraped", source="logs", partition="nginx-access-1"): 0,
    }
    source.behind = None
    with caplog.at_level(logging.WARNING, logger="loglake.pipelines.metrics"):
        samples = _scrape(server)
        _scrape(server)
    assert _named(samples, "loglake_kafka_consumer_lag") == {}, "the scrape still answers, without the source's lag"
    assert [record.getMessage() for record in caplog.records] == [
        "logs: cannot read consumer lag for /metrics: ConnectionError: broker unreachable"
    ], "warned once, not per scrape"


def test_servers_have_their_own_registries_and_stop(compiled: CompiledPipeline, server: MetricsServer) -> None:
    with start_metrics_server(0, compiled, host="127.0.0.1") as other:
        assert other.port not in (0, server.port)
        other.latency.observe("parse", 1.0)
        assert ("loglake_batch_seconds_count", _labels(pipeline="scraped", node="parse")) in _scrape(other)
        assert ("loglake_batch_seconds_count", _labels(pipeline="scraped", node="parse")) not in _scrape(server)
    with pytest.raises(OSError):
        urllib.request.urlopen(other.url, timeout=5)
    other.stop()  # a second stop does nothing


def test_a_busy_port_is_a_clear_error(compiled: CompiledPipeline, server: MetricsServer) -> None:
    with pytest.raises(TerminalError, match=rf"cannot serve metrics on 127.0.0.1:{server.port}: Address already in use"):
        start_metrics_server(server.port, compiled, host="127.0.0.1")
