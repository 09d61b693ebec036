"""What every Kafka client loglake makes shares: its settings, its log lines, and waiting for a cluster that is slow to answer.

librdkafka retries connections by itself, forever, and writes its log lines to stderr unless told otherwise.
Each client here gets a `KafkaLog` as its `logger` and `error_cb`, which sends those lines through Python
logging (problems as rate-limited WARNINGs), and every blocking call at start goes through `with_backoff`,
which gives up after `connect_timeout` with a `TerminalError` naming the brokers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from loglake.schemas.errors import ConfigError, TerminalError

__all__ = ["Throttle", "KafkaLog", "client_settings", "check_settings", "with_backoff", "error_text"]

log = logging.getLogger(__name__)

T = TypeVar("T")

WARNING_INTERVAL_S = 10.0
"""At most one WARNING per client (or per kind of data problem) in this many seconds."""
_FIRST_WAIT_S = 0.5
_MAX_WAIT_S = 5.0
_UNREACHABLE = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE}
"""Error codes that mean no broker answered (as opposed to one answering with an error)."""


class Throttle:
    """Lets one event through per interval and counts the ones held back in between."""

    def __init__(self, interval: float = WARNING_INTERVAL_S) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._next = 0.0
        self._held_back = 0

    def allow(self) -> int | None:
        """The number of events held back since the last one let through, or None to hold this one back too."""
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._held_back += 1
                return None
            held, self._held_back = self._held_back, 0
            self._next = now + self.interval
            return held


class KafkaLog:
    """One client's librdkafka log lines and error callbacks, through Python logging.

    Problems (librdkafka lines at WARNING and above, error callbacks) become WARNING records, at most one per
    interval with a count of those held back; other lines are DEBUG. The last problem is kept for error
    messages, and a fatal error (an idempotent producer that cannot go on) for the owner to raise.
    """

    def __init__(self, node: str, interval: float = WARNING_INTERVAL_S) -> None:
        self.node = node
        self.last_problem: str | None = None
        self.fatal: str | None = None
        self._throttle = Throttle(interval)

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """librdkafka's `logger` hook: it calls `log(level, "%s [%s] %s", facility, client, text)`."""
        text = str(args[-1]) if args else fmt
        if level >= logging.WARNING:
            self.problem(text)
        else:
            log.debug("%s: librdkafka: %s", self.node, text)

    def error(self, error: KafkaError) -> None:
        """librdkafka's `error_cb` hook."""
        if error.fatal():
            self.fatal = error.str()
        self.problem(error.str())

    def problem(self, text: str) -> None:
        """Record a problem and log it as a WARNING unless one was logged within the interval."""
        self.last_problem = text
        held = self._throttle.allow()
        if held is None:
            return
        more = f" (and {held} more in the last {self._throttle.interval:g}s)" if held else ""
        log.warning("%s: kafka: %s%s", self.node, text, more)


def client_settings(
    brokers: list[str], node: str, kafka_log: KafkaLog, tuned: dict[str, Any], options: dict[str, Any], owned: dict[str, Any]
) -> dict[str, Any]:
    """librdkafka settings: loglake's tuned defaults, then the user's `options` over them, then the keys loglake owns."""
    return {
        "bootstrap.servers": ",".join(brokers),
        "client.id": f"loglake-{node}",
        "logger": kafka_log,
        "error_cb": kafka_log.error,
        **tuned,
        **options,
        **owned,
    }


def check_settings(settings: dict[str, Any], kind: Literal["consumer", "producer"], node: str) -> None:
    """A ConfigError on `options` if librdkafka refuses the settings (an unknown key, a bad value); connects nowhere."""
    offline = {key: value for key, value in settings.items() if key not in ("bootstrap.servers", "logger", "error_cb")}
    offline["logger"] = KafkaLog(node)
    try:
        client: Any = Consumer({"group.id": "loglake-check", **offline}) if kind == "consumer" else Producer(offline)
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError(f"librdkafka refuses these settings: {error_text(exc)}", field="options") from None
    client.close() if kind == "consumer" else client.flush(0)


def error_text(exc: BaseException) -> str:
    """A Kafka exception as one readable line (`Local: Broker transport failure`, …)."""
    first = exc.args[0] if exc.args else None
    if isinstance(first, KafkaError):
        return str(first.str())
    return str(exc)


def with_backoff(
    call: Callable[[float], T], what: str, brokers: list[str], timeout: float, node: str, kafka_log: KafkaLog, client: Any
) -> T:
    """`call(attempt_timeout)` until it returns, retrying with exponential backoff for up to `timeout` seconds.

    Only failures worth it are retried (no broker answering, a retriable Kafka error); the first is logged as a
    WARNING. Any other failure, or giving up, raises a TerminalError: when no broker answered, it names the
    brokers and the last problem librdkafka reported. `client.poll(0)` after each failure hands librdkafka's
    queued log lines and errors to `kafka_log` (it must not be assigned partitions: a poll could take a message).
    """
    deadline = time.monotonic() + timeout
    wait = _FIRST_WAIT_S
    attempt = 0
    while True:
        started = time.monotonic()
        try:
            return call(max(min(wait, deadline - started), 0.05))
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            unreachable = error is not None and error.code() in _UNREACHABLE
            if error is None or not (unreachable or error.retriable()):
                raise TerminalError(f"cannot {what}: {error_text(exc)}", node) from None
            problem = error_text(exc)
        client.poll(0)
        attempt += 1
        now = time.monotonic()
        if now >= deadline:
            if unreachable:
                raise TerminalError(
                    f"cannot {what}: no answer from the brokers {', '.join(brokers)} within {timeout:g}s "
                    f"(last problem: {kafka_log.last_problem or problem}); check `brokers` and that Kafka is running",
                    node,
                )
            raise TerminalError(f"cannot {what} within {timeout:g}s: {problem}", node)
        if attempt == 1:
            log.warning("%s: cannot %s yet (%s); retrying with backoff for up to %gs", node, what, problem, timeout)
        time.sleep(max(0.0, min(wait - (now - started), deadline - now)))
        wait = min(wait * 2, _MAX_WAIT_S)
