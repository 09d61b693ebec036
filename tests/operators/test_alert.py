"""The `alert` sink: per-minute window rows built from the real Apache log, posted to a real HTTP server on loopback.

The log has only three 5xx answers, so `errors` counts every answer >= 400 (mostly 404s). Services are the
first folder of the request path (`/blog/…` → `blog`; anything unlisted → `site`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pytest

from loglake.operators.alert import AlertSink
from loglake.operators.alert.delivery import redact_url
from loglake.operators.alert.message import Summary
from loglake.operators.alert.rules import AlertRules
from loglake.pipelines.broker import free_port
from loglake.schemas.errors import SpecError, SpecIssue, TerminalError
from tests.support import APACHE_LOG, build_sink

UTC = timezone.utc
MINUTE = timedelta(minutes=1)
LINE = re.compile(r'\S+ \S+ \S+ \[(?P<time>[^\]]+)\] "\S+ (?P<path>\S+)[^"]*" (?P<status>\d{3}) ')
SERVICES = ("blog", "presentations", "projects", "files", "images", "articles")
ROW_SCHEMA = pa.schema(
    [
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("service", pa.string()),
        ("requests", pa.int64()),
        ("errors", pa.int64()),
    ]
)
TICK = pa.RecordBatch.from_pydict({})
Row = dict[str, Any]


# --- window rows from the real log -------------------------------------------------------------------------


@cache
def minute_counts() -> dict[tuple[datetime, str], tuple[int, int]]:
    """(minute, service) → (requests, errors) over the 10,000 real lines: what a 1m window stage computes."""
    counts: dict[tuple[datetime, str], list[int]] = {}
    for line in APACHE_LOG.read_text().splitlines():
        match = LINE.match(line)
        assert match is not None, line
        minute = datetime.strptime(match["time"], "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC).replace(second=0)
        top = match["path"].lstrip("/").split("/")[0].split("?")[0]
        service = top if top in SERVICES else "site"
        count = counts.setdefault((minute, service), [0, 0])
        count[0] += 1
        count[1] += int(match["status"]) >= 400
    return {key: (requests, errors) for key, (requests, errors) in counts.items()}


def window_rows(*services: str) -> list[Row]:
    """The services' per-minute rows at their real times (one busy minute per hour in this log), by window then service."""
    return [
        {"window_start": minute, "window_end": minute + MINUTE, "service": service, "requests": requests, "errors": errors}
        for (minute, service), (requests, errors) in sorted(minute_counts().items())
        if service in services
    ]


def consecutive_rows(service: str, count: int) -> list[Row]:
    """A service's first `count` real per-minute counts replayed as back-to-back minutes from 10:05."""
    start = datetime(2015, 5, 17, 10, 5, tzinfo=UTC)
    rows = window_rows(service)[:count]
    return [{**row, "window_start": start + i * MINUTE, "window_end": start + (i + 1) * MINUTE} for i, row in enumerate(rows)]


def failing(row: Row) -> bool:
    """The condition the tests use, computed in Python."""
    return bool(row["errors"] / row["requests"] > 0.05)


def as_batch(rows: list[Row]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=ROW_SCHEMA)


def as_emitted(rows: list[Row]) -> list[pa.RecordBatch]:
    """One batch per closed window, each followed by an idle tick, as the engine delivers a window stage's output."""
    out: list[pa.RecordBatch] = []
    for end in sorted({row["window_end"] for row in rows}):
        out += [as_batch([row for row in rows if row["window_end"] == end]), TICK]
    return out


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- a real webhook receiver on loopback ---------------------------------------------------------------------


@dataclass
class Received:
    """One POST the receiver got and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    answered: bool = False

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST; `answers` are the statuses for the next ones (then 200)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    error_body: bytes = b'{"error": "invalid_payload"}'
    retry_after: str | None = None
    gate: threading.Event | None = None
    """When set to an Event, each request waits (up to 5 s) for it before being answered."""
    arrived: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[Any]:
        """The JSON bodies answered with 2xx, in arrival order."""
        with self.lock:
            return [request.json() for request in self.requests if request.status < 300]

    def statuses(self) -> list[int]:
        with self.lock:
            return [request.status for request in self.requests]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                status = receiver.answers.pop(0) if receiver.answers else 200
                request = Received(self.path, dict(self.headers), body, status)
                receiver.requests.append(request)
            receiver.arrived.release()
            if receiver.gate is not None:
                receiver.gate.wait(5)
            request.answered = True
            payload = b"ok" if status < 300 else receiver.error_body
            self.send_response(status)
            if receiver.retry_after is not None and status >= 300:
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


# --- helpers -------------------------------------------------------------------------------------------------


def alert(url: str, **options: Any) -> AlertSink:
    """An `alert` sink named `errors` built from YAML, with test-sized backoff."""
    config = {"type": "alert", "condition": "errors / requests > 0.05", "webhook": url, "backoff": "10ms", "max_backoff": "40ms", **options}
    sink: AlertSink = build_sink(json.dumps(config), name="errors")
    return sink


def run(sink: AlertSink, batches: list[pa.RecordBatch]) -> None:
    """Write the batches through one writer and close it (which waits for delivery)."""
    writer = sink.open(0, 1)
    for batch in batches:
        writer.write(batch)
    writer.close()


def events(receiver: Receiver) -> list[tuple[str, dict[str, Any], str]]:
    """(status, group, window_end) of every delivered notification."""
    return [(body["status"], body["group"], body["window_end"]) for body in receiver.delivered()]


def spec_issue(**options: Any) -> SpecIssue:
    """The single problem building the sink with `options` reports."""
    with pytest.raises(SpecError) as caught:
        alert("https://hooks.example.com/loglake", **options)
    assert len(caught.value.issues) == 1, caught.value.render()
    return caught.value.issues[0]


# --- state machine -------------------------------------------------------------------------------------------


def test_each_service_fires_once_per_bad_streak_and_resolves_on_its_own(receiver: Receiver) -> None:
    rows = window_rows(*SERVICES, "site")
    expected: list[tuple[str, dict[str, Any], str]] = []
    bad: dict[str, bool] = {}
    for row in rows:  # a `for: 0s` alert notifies exactly at each rise and fall of a service's error rate
        now, was = failing(row), bad.get(row["service"], False)
        if now != was:
            expected.append(("firing" if now else "resolved", {"service": row["service"]}, iso(row["window_end"])))
        bad[row["service"]] = now

    sink = alert(receiver.url, group_by=["service"], summary="{service}: {errors} of {requests} requests failed")
    run(sink, as_emitted(rows))

    assert events(receiver) == expected
    files_firing = [event for event in expected if event[:2] == ("firing", {"service": "files"})]
    assert sum(failing(row) for row in rows if row["service"] == "files") > 2 * len(files_firing) > 0  # long streaks
    assert {event[1]["service"] for event in expected} == {"blog", "presentations", "projects", "files", "articles", "site"}
    assert sink.ctx.counters["notifications_sent"] == len(expected)


def test_json_body_describes_the_row_that_fired(receiver: Receiver) -> None:
    rows = window_rows("files")
    first = rows[0]
    assert failing(first)
    sink = alert(receiver.url, group_by=["service"], summary="{errors} of {requests} failed ({service})", headers={"Authorization": "Bearer t0ken"})
    run(sink, [as_batch(rows[:1])])

    (request,) = receiver.requests
    assert request.json() == {
        "status": "firing",
        "alert": "errors",
        "group": {"service": "files"},
        "condition": "errors / requests > 0.05",
        "summary": f"{first['errors']} of {first['requests']} failed (files)",
        "values": {"requests": first["requests"], "errors": first["errors"]},
        "window_start": "2015-05-17T11:05:00Z",
        "window_end": "2015-05-17T11:06:00Z",
        "since": "2015-05-17T11:05:00Z",
    }
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer t0ken"


def test_fires_only_after_the_condition_held_for_long_enough(receiver: Receiver) -> None:
    rows = consecutive_rows("files", 31)
    assert "".join("X" if failing(row) else "." for row in rows) == "X.X.XXX.XX.XX.XXXXXXXXXXXXXXXX."
    run(alert(receiver.url, **{"for": "3m"}), as_emitted(rows))

    # Streaks of one and two minutes stay pending; the 3rd bad minute of a streak fires it, with `since` at its start.
    got = [(body["status"], body["window_end"], body["since"]) for body in receiver.delivered()]
    assert got == [
        ("firing", iso(rows[6]["window_end"]), iso(rows[4]["window_start"])),
        ("resolved", iso(rows[7]["window_end"]), iso(rows[4]["window_start"])),
        ("firing", iso(rows[16]["window_end"]), iso(rows[14]["window_start"])),
        ("resolved", iso(rows[30]["window_end"]), iso(rows[14]["window_start"])),
    ]
    assert iso(rows[16]["window_end"]) == "2015-05-17T10:22:00Z"


def test_for_is_event_time_so_quiet_periods_between_rows_count(receiver: Receiver) -> None:
    rows = window_rows("blog")  # one busy minute per hour: three bad hours in a row span 2h01m
    flags = "".join("X" if failing(row) else "." for row in rows)
    streak = flags.index("XXX")
    assert "XX" not in flags.replace("XXX", "...")
    run(alert(receiver.url, **{"for": "2h"}), as_emitted(rows))

    assert events(receiver) == [
        ("firing", {}, iso(rows[streak + 2]["window_end"])),
        ("resolved", {}, iso(rows[streak + 3]["window_end"])),
    ]


def test_cooldown_suppresses_firing_again_soon_after_resolving(receiver: Receiver) -> None:
    rows = consecutive_rows("files", 31)  # X.X.XXX.XX.XX.XXXXXXXXXXXXXXXX.
    run(alert(receiver.url, cooldown="5m"), as_emitted(rows))

    # Resolved at row 1 (10:07): rows 2, 4 and 5 are too soon; row 6 (10:12) fires, its streak began at row 4.
    got = [(body["status"], body["window_end"], body["since"]) for body in receiver.delivered()]
    assert got == [
        ("firing", iso(rows[0]["window_end"]), iso(rows[0]["window_start"])),
        ("resolved", iso(rows[1]["window_end"]), iso(rows[0]["window_start"])),
        ("firing", iso(rows[6]["window_end"]), iso(rows[4]["window_start"])),
        ("resolved", iso(rows[7]["window_end"]), iso(rows[4]["window_start"])),
        ("firing", iso(rows[12]["window_end"]), iso(rows[11]["window_start"])),
        ("resolved", iso(rows[13]["window_end"]), iso(rows[11]["window_start"])),
        ("firing", iso(rows[18]["window_end"]), iso(rows[14]["window_start"])),
        ("resolved", iso(rows[30]["window_end"]), iso(rows[14]["window_start"])),
    ]


def test_one_firing_while_the_condition_keeps_holding_in_many_batches(receiver: Receiver) -> None:
    rows = consecutive_rows("files", 31)[14:31]  # 16 bad minutes, then a good one
    writer = alert(receiver.url).open(0, 1)
    for row in rows[:-1]:
        writer.write(as_batch([row]))
        writer.write(TICK)
    writer.close()  # delivered, and still firing: nothing more is sent
    assert [body["status"] for body in receiver.delivered()] == ["firing"]

    writer = alert(receiver.url).open(0, 1)
    writer.write(as_batch(rows))
    writer.close()
    assert [body["status"] for body in receiver.delivered()] == ["firing", "firing", "resolved"]


def test_rows_are_taken_in_window_order_and_late_rows_are_ignored(receiver: Receiver) -> None:
    rows = consecutive_rows("files", 8)  # X.X.XXX.
    sink = alert(receiver.url)
    writer = sink.open(0, 1)
    writer.write(as_batch(rows[:2][::-1]))  # one batch, out of order: fires at row 0, resolves at row 1
    writer.write(as_batch(rows[2:3]))  # fires again
    writer.write(as_batch(rows[1:2]))  # late (good) row: would resolve if it counted
    writer.close()

    assert [(body["status"], body["window_end"]) for body in receiver.delivered()] == [
        ("firing", iso(rows[0]["window_end"])), ("resolved", iso(rows[1]["window_end"])), ("firing", iso(rows[2]["window_end"])),
    ]
    assert sink.ctx.counters["records_late"] == 1


def test_a_row_whose_condition_fails_leaves_its_alert_unchanged(receiver: Receiver) -> None:
    rows = [{**row, "level": level} for row, level in zip(consecutive_rows("images", 3), ["5", "five", "1"])]
    batch = pa.RecordBatch.from_pylist(rows, schema=ROW_SCHEMA.append(pa.field("level", pa.string())))
    sink = alert(receiver.url, condition="CAST(level AS INTEGER) > 3")
    run(sink, [batch])

    assert [(body["status"], body["window_end"]) for body in receiver.delivered()] == [
        ("firing", iso(rows[0]["window_end"])), ("resolved", iso(rows[2]["window_end"])),
    ]
    assert sink.ctx.counters["condition_errors"] == 1


def test_memory_holds_only_groups_that_are_pending_firing_or_cooling_down() -> None:
    rules = AlertRules(hold=timedelta(0), cooldown=5 * MINUTE)
    t0 = datetime(2015, 5, 17, 10, 5, tzinfo=UTC)
    statuses = []
    for i in range(1000):  # a thousand short-lived groups (a high-cardinality group_by), each fires and resolves
        start = t0 + i * MINUTE
        statuses += [rules.observe((i,), True, start, start + MINUTE), rules.observe((i,), False, start + MINUTE, start + 2 * MINUTE)]
    rules.observe(("pending",), True, t0, t0 + MINUTE)
    rules.prune()

    assert [t.status if t else None for t in statuses] == ["firing", "resolved"] * 1000
    assert len(rules) == 1 + 5  # the pending group, and the groups resolved in the last 5 minutes of event time


# --- formats -------------------------------------------------------------------------------------------------


def test_slack_format_is_one_escaped_text(receiver: Receiver) -> None:
    rows = consecutive_rows("files", 2)
    summary = "{service}: {errors} of {requests} requests failed (> 5%), {ratio:.0%}"
    batch = as_batch(rows).append_column("ratio", pa.array([row["errors"] / row["requests"] for row in rows]))
    run(alert(receiver.url, format="slack", group_by=["service"], summary=summary), [batch])

    firing, resolved = [body["text"] for body in receiver.delivered()]
    first, second = rows
    assert firing == (
        f":rotating_light: *FIRING* errors (service=files): files: {first['errors']} of {first['requests']} requests failed "
        f"(&gt; 5%), {first['errors'] / first['requests']:.0%}\n"
        "`errors / requests &gt; 0.05` since 2015-05-17T10:05:00Z; window 2015-05-17T10:05:00Z – 2015-05-17T10:06:00Z"
    )
    assert resolved.startswith(f":white_check_mark: *RESOLVED* errors (service=files): files: {second['errors']} of ")
    assert [set(body) for body in receiver.delivered()] == [{"text"}, {"text"}]


@pytest.mark.parametrize(
    "template, text",
    [
        ("{service}: {errors} of {requests} failed", "files: 3 of 40 failed"),
        ("{ratio:.1%} {errors:>4d} {{literal}}", "7.5%    3 {literal}"),
        ("{service!r} {note}", "'files' null"),
        ("{service:.1%}", "files"),
    ],
    ids=["plain", "format-specs", "conversion-and-null", "spec-misfit-shows-plain-value"],
)
def test_summary_renders_row_values(template: str, text: str) -> None:
    row = {"service": "files", "errors": 3, "requests": 40, "ratio": 0.075, "note": None}
    assert Summary(template).render(row) == text


# --- delivery ------------------------------------------------------------------------------------------------


def test_server_errors_and_429_are_retried_until_accepted(receiver: Receiver) -> None:
    receiver.answers = [500, 429, 503]
    receiver.retry_after = "0"
    sink = alert(receiver.url, retries=3)
    run(sink, [as_batch(consecutive_rows("files", 1))])

    assert receiver.statuses() == [500, 429, 503, 200]
    assert len({request.body for request in receiver.requests}) == 1
    assert sink.ctx.counters["notifications_sent"] == 1


@pytest.mark.parametrize("status, reason", [(400, "Bad Request"), (403, "Forbidden"), (302, "Found")], ids=["400", "403", "redirect"])
def test_client_errors_and_redirects_are_not_retried_and_close_raises(status: int, reason: str, receiver: Receiver) -> None:
    receiver.answers = [status] * 10
    writer = alert(receiver.url, group_by=["service"]).open(0, 1)
    writer.write(as_batch(consecutive_rows("files", 1)))
    with pytest.raises(TerminalError) as caught:
        writer.close()

    assert receiver.statuses() == [status]
    message = str(caught.value)
    assert message.startswith(f"errors: webhook {receiver.url}: HTTP {status} {reason}: ")
    assert '{"error": "invalid_payload"}' in message
    assert "firing notification for service=files not sent; not retried" in message


def test_a_failed_delivery_surfaces_on_the_next_tick(receiver: Receiver) -> None:
    receiver.answers = [404]
    writer = alert(receiver.url).open(0, 1)
    writer.write(as_batch(consecutive_rows("files", 1)))
    deadline = time.monotonic() + 10
    with pytest.raises(TerminalError, match="HTTP 404"):
        while time.monotonic() < deadline:
            writer.write(TICK)
            time.sleep(0.01)
    writer.abort()


def test_retries_run_out_on_an_unreachable_webhook_whose_url_is_redacted() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX?token=s3cr3t&channel=ops"
    writer = alert(url, retries=2).open(0, 1)
    writer.write(as_batch(consecutive_rows("files", 1)))
    with pytest.raises(TerminalError) as caught:
        writer.close()

    message = str(caught.value)
    assert "/services/T00000000/B00000000/***?token=***&channel=***: cannot reach it: " in message
    assert "gave up after 3 attempts" in message
    assert "s3cr3t" not in message and "XXXXXXXX" not in message and "ops" not in message


def test_writing_does_not_wait_for_the_webhook(receiver: Receiver) -> None:
    receiver.gate = threading.Event()
    writer = alert(receiver.url).open(0, 1)
    writer.write(as_batch(consecutive_rows("files", 2)))  # firing and resolved, queued
    assert receiver.arrived.acquire(timeout=5)  # the first POST is held open by the server...
    assert [request.answered for request in receiver.requests] == [False]  # ...and write() has returned all the same
    receiver.gate.set()
    writer.close()
    assert [body["status"] for body in receiver.delivered()] == ["firing", "resolved"]


def test_abort_does_not_wait_for_retries(receiver: Receiver) -> None:
    receiver.answers = [500] * 10
    writer = alert(receiver.url, retries=5, backoff="10s", max_backoff="10s").open(0, 1)
    writer.write(as_batch(consecutive_rows("files", 2)))
    assert receiver.arrived.acquire(timeout=5)
    started = time.monotonic()
    writer.abort()
    assert time.monotonic() - started < 4  # the first retry would wait at least 5 s
    assert receiver.statuses() == [500]


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://hooks.example.com/loglake", "https://hooks.example.com/loglake"),
        ("https://hooks.slack.com/services/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", "https://hooks.slack.com/services/T0AB12CD3/B0AB12CD3/***"),
        ("https://ops:hunter2@alerts.example.com:8443/in?key=abc&x", "https://***@alerts.example.com:8443/in?key=***&***"),
        ("http://[::1]:9000/hook#frag", "http://[::1]:9000/hook"),
    ],
    ids=["plain", "slack-token-in-path", "user-info-and-query", "ipv6-fragment"],
)
def test_redacted_urls_keep_the_shape_and_drop_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- validation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, path, message",
    [
        ({"condition": "errors / requests >"}, ("condition",), "invalid SQL expression"),
        ({"condition": "count(*) > 5"}, ("condition",), "aggregate function 'count'"),
        ({"webhook": "ftp://hooks.example.com/x"}, ("webhook",), "webhook must be an http:// or https:// URL (scheme: 'ftp:')"),
        ({"webhook": "hooks.example.com/x"}, ("webhook",), "webhook must be an http:// or https:// URL (scheme: none)"),
        ({"webhook": "https:///x"}, ("webhook",), "webhook URL has no host"),
        ({"summary": "{errors failed"}, ("summary",), "expected '}' before end of string"),
        ({"summary": "{} failed"}, ("summary",), "positional placeholder {}"),
        ({"summary": "{geo.country}"}, ("summary",), "placeholder {geo.country} must be a column name"),
        ({"summary": "{rate:.1z}"}, ("summary",), "format '.1z' of {rate} fits neither numbers nor text"),
        ({"group_by": ["service", "window_end"]}, ("group_by",), "group_by cannot hold window_end"),
        ({"for": "-1m"}, ("for",), "is not a duration"),
        ({"format": "teams"}, ("format",), "'json' or 'slack'"),
        ({"headers": {"X Team": "ops"}}, ("headers",), "header 'X Team' is not a valid HTTP header"),
        ({"retries": -1}, ("retries",), "greater than or equal to 0"),
        ({"backoff": "2s", "max_backoff": "1s"}, (), "max_backoff must be at least backoff"),
    ],
    ids=["sql-syntax", "sql-aggregate", "webhook-scheme", "webhook-no-scheme", "webhook-no-host", "summary-syntax",
         "summary-positional", "summary-attribute", "summary-format", "group-by-window", "for-negative", "format", "header",
         "retries", "backoff-cap"],
)
def test_bad_config_is_a_located_spec_issue(options: dict[str, Any], path: tuple[str, ...], message: str) -> None:
    issue = spec_issue(**options)
    assert issue.path == path
    assert message in issue.message
    assert issue.node == "errors"


@pytest.mark.parametrize(
    "options, columns, message",
    [
        ({"condition": "failures / requests > 0.05"}, None, "condition column 'failures' is not in the rows"),
        ({"group_by": ["host"]}, None, "group_by column 'host' is not in the rows"),
        ({"summary": "{service} at {hostname}"}, None, "summary column 'hostname' is not in the rows"),
        ({}, ["window_start", "service", "requests", "errors"], "'window_end' must be a timestamp column"),
    ],
    ids=["condition", "group-by", "summary", "window"],
)
def test_rows_without_the_columns_the_alert_reads_stop_it(options: dict[str, Any], columns: list[str] | None, message: str, receiver: Receiver) -> None:
    batch = as_batch(consecutive_rows("files", 1))
    if columns is not None:
        batch = batch.select(columns)
    writer = alert(receiver.url, **options).open(0, 1)
    with pytest.raises(TerminalError, match=re.escape(message)) as caught:
        writer.write(batch)
    assert "(the rows have: " in str(caught.value)
    writer.close()
    assert receiver.requests == []
