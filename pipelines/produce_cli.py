"""`loglake produce`: log lines from files or stdin into a Kafka topic, one message per line, for demos and load tests.

A line becomes a message without its line ending (`\\n` or `\\r\\n`, as the `file` source reads it); `.gz`
files are read decompressed. `--format json` checks that each line is a JSON object, reports each one that
is not as `file:line`, skips it, and exits 1 at the end. `produce_lines` does the same from Python (the
benchmarks load their million messages with it); both print or return one summary: messages, bytes, time, rate.

Every `loglake` command imports this module to build its parser, so the Kafka client (confluent-kafka) is
imported when a producer is made.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

import orjson

from loglake.schemas.errors import LoglakeError

__all__ = ["ProduceError", "ProduceResult", "LineProducer", "produce_lines", "add_produce_command", "run_produce"]

NODE = "produce"
_CHUNK = 10_000
_SHOWN_PROBLEMS = 20
_GZIP_MAGIC = b"\x1f\x8b"

Format = Literal["lines", "json"]
BadLine = Callable[[str, int, str], None]
"""Told about each skipped line: where it came from (file name or `<stdin>`), its 1-based number, and why."""


class ProduceError(LoglakeError):
    """Options or input `loglake produce` cannot work with (a missing file, `--key-field` without `--format json`)."""


@dataclass(frozen=True)
class ProduceResult:
    """What one produce run sent."""

    topic: str
    messages: int
    bytes: int
    seconds: float
    skipped: int = 0

    @property
    def rate(self) -> float:
        """Messages per second, delivery included."""
        return self.messages / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        """`produced 10,000 messages (2.4 MB) to 'access' in 0.05 s (200,000 messages/s)`, plus any skipped lines."""
        text = (
            f"produced {self.messages:,} messages ({self.bytes / 1e6:,.1f} MB) to '{self.topic}' "
            f"in {self.seconds:.2f} s ({self.rate:,.0f} messages/s)"
        )
        return text + (f"; skipped {self.skipped:,} line(s) that are not JSON objects" if self.skipped else "")


def _strip(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


def _json_key(value: Any) -> bytes | None:
    if value is None:
        return None
    return value.encode("utf-8") if isinstance(value, str) else bytes(orjson.dumps(value))


class LineProducer:
    """Sends lines to one topic: validated as JSON objects and keyed on request, paced on request."""

    def __init__(
        self,
        brokers: list[str],
        topic: str,
        *,
        format: Format = "lines",
        key_field: str | None = None,
        rate: float | None = None,
        partition: int | None = None,
        options: dict[str, Any] | None = None,
        connect_timeout: float = 30.0,
        on_bad_line: BadLine | None = None,
    ) -> None:
        if key_field is not None and format != "json":
            raise ProduceError("--key-field needs --format json: keys are read from each line's JSON object")
        if rate is not None and rate <= 0:
            raise ProduceError(f"--rate must be a positive number of messages per second, not {rate:g}")
        self.topic = topic
        self._format = format
        self._key_field = key_field
        self._rate = rate
        self._partition = partition
        self._on_bad_line = on_bad_line
        from loglake.operators.kafka.producer import BULK_TUNING, TrackedProducer

        self._producer = TrackedProducer(brokers, NODE, tuned=BULK_TUNING, options=options, connect_timeout=connect_timeout)
        self._started = time.monotonic()
        self._bytes = 0
        self._skipped = 0

    def send_lines(self, lines: Iterable[bytes], origin: str = "<lines>") -> None:
        """Send every line of `lines` (with or without their line endings); `origin` names them in problem reports."""
        numbered = iter(lines)
        first = 1
        while chunk := list(itertools.islice(numbered, self._chunk_size())):
            values = [_strip(line) for line in chunk]
            keys: list[bytes | None] | None = None
            if self._format == "json":
                values, keys = self._checked(values, origin, first)
            first += len(chunk)
            self._pace()
            self._producer.send_many(self.topic, values, keys, self._partition)
            self._bytes += sum(map(len, values))

    def finish(self, timeout: float = 60.0) -> ProduceResult:
        """Wait for every message to be delivered (a TerminalError if one failed) and say what was sent."""
        self._producer.close(timeout)
        seconds = time.monotonic() - self._started
        return ProduceResult(self.topic, self._producer.sent, self._bytes, seconds, self._skipped)

    def abort(self) -> None:
        """Drop what is not sent yet and release the producer."""
        self._producer.abort()

    def _chunk_size(self) -> int:
        return _CHUNK if self._rate is None else max(1, min(_CHUNK, int(self._rate // 100)))

    def _pace(self) -> None:
        """With a rate, wait until the next message is due (message i is due i/rate seconds after the start)."""
        if self._rate is None:
            return
        due = self._started + self._producer.sent / self._rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _checked(self, values: list[bytes], origin: str, first: int) -> tuple[list[bytes], list[bytes | None] | None]:
        """The lines that are JSON objects and their keys; each other line is reported and counted."""
        kept: list[bytes] = []
        keys: list[bytes | None] = []
        for number, value in enumerate(values, start=first):
            try:
                parsed = orjson.loads(value)
                problem = None if isinstance(parsed, dict) else "JSON, but not an object"
            except orjson.JSONDecodeError as exc:
                problem = f"not JSON: {exc}"
            if problem is not None:
                self._skipped += 1
                if self._on_bad_line is not None:
                    self._on_bad_line(origin, number, problem)
                continue
            kept.append(value)
            if self._key_field is not None:
                keys.append(_json_key(parsed.get(self._key_field)))
        return kept, keys if self._key_field is not None else None


def produce_lines(lines: Iterable[bytes], brokers: list[str] | str, topic: str, **settings: Any) -> ProduceResult:
    """Send `lines` to `topic` and wait for delivery; keyword settings as `LineProducer` takes them (`format`, `rate`, …).

    Example:
        produce_lines(open("access.log", "rb"), "127.0.0.1:9092", "access")
    """
    producer = LineProducer([brokers] if isinstance(brokers, str) else brokers, topic, **settings)
    try:
        producer.send_lines(lines)
    except BaseException:
        producer.abort()
        raise
    return producer.finish()


def _open_input(name: str, stdin: IO[bytes]) -> IO[bytes]:
    if name == "-":
        return stdin
    path = Path(name)
    try:
        handle: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise ProduceError(f"cannot read {name}: {exc.strerror}") from None
    if handle.read(2) == _GZIP_MAGIC:
        handle.close()
        return cast(IO[bytes], gzip.open(path, "rb"))
    handle.seek(0)
    return handle


def _check_files(names: list[str]) -> None:
    """A ProduceError naming every file that cannot be read, before anything is sent."""
    missing = [name for name in names if name != "-" and not Path(name).is_file()]
    if missing:
        raise ProduceError(f"cannot read {', '.join(missing)}: no such file")


def add_produce_command(commands: Any) -> None:
    """Add `produce` to the CLI's sub-command group."""
    produce = commands.add_parser("produce", help="send log lines from files or stdin to a Kafka topic, one message per line")
    produce.add_argument("files", nargs="*", metavar="FILE", help="files to send (.gz read decompressed); none or '-' reads stdin")
    produce.add_argument("--brokers", default="localhost:9092", help="bootstrap servers, comma-separated (default localhost:9092)")
    produce.add_argument("--topic", required=True, help="topic to send to")
    produce.add_argument("--format", choices=("lines", "json"), default="lines", help="json: skip (and report) lines that are not JSON objects")
    produce.add_argument("--key-field", metavar="FIELD", help="with --format json: key each message by this field of its object")
    produce.add_argument("--rate", type=float, metavar="N", help="send at most N messages per second (load tests)")
    produce.add_argument("--partition", type=int, metavar="P", help="send every message to this partition (default: by key, or spread)")
    produce.set_defaults(handler=run_produce)


def run_produce(args: argparse.Namespace, stdin: IO[bytes] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Send the files' lines; print one summary line; exit 1 if a line was skipped as not JSON."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    problems = 0

    def report(origin: str, number: int, why: str) -> None:
        nonlocal problems
        problems += 1
        if problems <= _SHOWN_PROBLEMS:
            err.write(f"{origin}:{number}: {why}; skipped\n")

    names = args.files or ["-"]
    _check_files(names)
    source = stdin if stdin is not None else sys.stdin.buffer
    brokers = [part.strip() for part in args.brokers.split(",") if part.strip()]
    producer = LineProducer(
        brokers, args.topic, format=args.format, key_field=args.key_field, rate=args.rate, partition=args.partition, on_bad_line=report
    )
    try:
        for name in names:
            handle = _open_input(name, source)
            try:
                producer.send_lines(handle, "<stdin>" if name == "-" else name)
            except (OSError, EOFError) as exc:  # a truncated or corrupt .gz file, a read error
                raise ProduceError(f"cannot read {name}: {exc}") from None
            finally:
                if handle is not source:
                    handle.close()
    except BaseException:
        producer.abort()
        raise
    result = producer.finish()
    if problems > _SHOWN_PROBLEMS:
        err.write(f"… and {problems - _SHOWN_PROBLEMS:,} more line(s) skipped\n")
    out.write(result.summary() + "\n")
    return 1 if result.skipped else 0
