"""`loglake parse PARSER [options]`: lines on stdin, exactly one JSON object per line on stdout, in order.

Each parser's options become a stage config, and the stage's own `parse_lines` does the work, so what the
command prints is what a pipeline would get. A line that fails prints `{"_error": why, "message": line}`;
the exit status stays 0. A bad pattern or option exits 2 before reading anything.

Every `loglake` command imports this module to build its parser, so the stages (pyarrow, pydantic) are
imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

from loglake.schemas.errors import SpecError, SpecIssue
from loglake.schemas.parsing import LineParser, ParseFailure

__all__ = ["ParserCommand", "ParseOptionsError", "PARSER_COMMANDS", "add_parse_command", "run_parse"]

INPUT_FIELD = "message"
_CHUNK = 1024


@dataclass(frozen=True)
class ParserCommand:
    """One `loglake parse` sub-command: its help, its options, and how they become a stage config."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    to_config: Callable[[argparse.Namespace], dict[str, Any]]


class ParseOptionsError(SpecError):
    """Options `loglake parse` cannot build a parser from (exit 2), worded for the command line, not a file."""

    def __init__(self, parser: str, issues: list[SpecIssue]) -> None:
        self.parser = parser
        super().__init__(issues)

    def render(self) -> str:
        """`loglake parse grok: grok pattern '%{NOPE}': unknown pattern name 'NOPE'`, one line per problem."""
        return "\n".join(f"loglake parse {self.parser}: {issue.message}" for issue in self.issues)


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A parser with no options of its own."""


def _definitions(items: list[str] | None) -> dict[str, str]:
    """`NAME=REGEX` options as a mapping (a later definition of a name wins, as in Logstash)."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, regex = item.partition("=")
        if not sep or not name:
            raise ParseOptionsError("grok", [SpecIssue(f"--pattern takes NAME=REGEX, got {item!r}")])
        out[name] = regex
    return out


def _grok_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", help='grok pattern, e.g. "%%{COMBINEDAPACHELOG}"')
    parser.add_argument("--pattern-dir", action="append", default=[], metavar="DIR", help="extra pattern files (repeatable)")
    parser.add_argument("--pattern", dest="definitions", action="append", default=[], metavar="NAME=REGEX", help="define a pattern (repeatable)")


def _grok_config(args: argparse.Namespace) -> dict[str, Any]:
    return {"type": "grok", "patterns": [args.pattern], "pattern_dirs": args.pattern_dir, "pattern_definitions": _definitions(args.definitions)}


def _syslog_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("auto", "rfc3164", "rfc5424"), default="auto")
    parser.add_argument("--year", type=int, help="year for RFC 3164 timestamps, which have none (default: the current year)")
    parser.add_argument("--tz", default="UTC", help="time zone for timestamps without an offset (default UTC)")


def _syslog_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {"type": "syslog", "format": args.format, "timezone": args.tz}
    if args.year is not None:
        config["year"] = args.year
    return config


def _csv_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--delimiter", default=",")
    parser.add_argument("--quote", default='"')
    names = parser.add_mutually_exclusive_group()
    names.add_argument("--header", action="store_true", help="the first line names the columns")
    names.add_argument("--columns", help="column names, comma-separated")
    parser.add_argument("--infer-types", action="store_true", help="turn numbers and booleans into typed values")


def _csv_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {"type": "csv", "delimiter": args.delimiter, "quote": args.quote, "header": args.header, "infer_types": args.infer_types}
    if args.columns:
        config["columns"] = args.columns.split(",")
    return config


def _kv_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--field-split", default=" ", help="separator between pairs (default a space)")
    parser.add_argument("--value-split", default="=", help="separator between key and value (default '=')")
    parser.add_argument("--prefix", default="", help="prefix added to every key")
    parser.add_argument("--include", action="append", default=[], metavar="KEY", help="keep only these keys (repeatable)")
    parser.add_argument("--exclude", action="append", default=[], metavar="KEY", help="drop these keys (repeatable)")


def _kv_config(args: argparse.Namespace) -> dict[str, Any]:
    return {"type": "kv", "field_split": args.field_split, "value_split": args.value_split, "prefix": args.prefix,
            "include_keys": args.include, "exclude_keys": args.exclude}


def _regex_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", help="regular expression with named groups, e.g. '(?P<level>\\w+): (?P<msg>.*)'")


def _preset(name: str) -> ParserCommand:
    return ParserCommand(f"the {name} preset", _no_arguments, lambda args: {"type": name})


PARSER_COMMANDS: dict[str, ParserCommand] = {
    "json": ParserCommand("each line a JSON object (strict RFC 8259), kept nested", _no_arguments, lambda args: {"type": "json"}),
    "grok": ParserCommand("grok patterns with Logstash semantics", _grok_arguments, _grok_config),
    "syslog": ParserCommand("RFC 5424 and RFC 3164 syslog lines", _syslog_arguments, _syslog_config),
    "csv": ParserCommand("delimited values", _csv_arguments, _csv_config),
    "kv": ParserCommand("key=value pairs", _kv_arguments, _kv_config),
    "regex": ParserCommand("a regular expression with named groups", _regex_arguments, lambda args: {"type": "regex", "pattern": args.pattern}),
    **{name: _preset(name) for name in ("apache_combined", "apache_common", "apache_error", "nginx_access", "nginx_error")},
}
"""The parsers `loglake parse` knows, each mapped onto its stage's config."""


def add_parse_command(commands: Any) -> None:
    """Add `parse` and its per-parser sub-commands to the CLI's sub-command group."""
    parse = commands.add_parser("parse", help="parse lines from stdin with one parser; one JSON object per line on stdout")
    parsers = parse.add_subparsers(dest="parser", required=True, metavar="PARSER")
    for name, command in PARSER_COMMANDS.items():
        sub = parsers.add_parser(name, help=command.help)
        command.add_arguments(sub)
        sub.set_defaults(handler=run_parse, parser_command=command)


def _lines(stream: IO[bytes]) -> Iterator[tuple[str, str | None]]:
    """(text, problem) per line: split on "\\n" only, a trailing "\\r" stripped, invalid UTF-8 reported."""
    for raw in stream:
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            yield raw.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            yield raw.decode("utf-8", errors="replace"), f"invalid UTF-8 at byte {exc.start}"


def _chunks(stream: IO[bytes], size: int) -> Iterator[list[tuple[str, str | None]]]:
    chunk: list[tuple[str, str | None]] = []
    for item in _lines(stream):
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _encode(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_encode)


def run_parse(args: argparse.Namespace, stdin: IO[bytes] | None = None, stdout: IO[str] | None = None) -> int:
    """Build the parser (exit 2 via SpecError on bad options), then stream stdin to stdout."""
    from loglake.pipelines.nodes import build_node
    from loglake.schemas.stage import NodeContext

    command: ParserCommand = args.parser_command
    config = {"field": INPUT_FIELD, "on_error": "keep", **command.to_config(args)}
    try:
        stage = build_node("stage", args.parser, config, NodeContext(node=args.parser))
    except SpecError as exc:
        raise ParseOptionsError(args.parser, exc.issues) from None
    assert isinstance(stage, LineParser), f"{args.parser} has no parse_lines"
    source = stdin if stdin is not None else sys.stdin.buffer
    sink = stdout if stdout is not None else sys.stdout
    size = 1 if source.isatty() else _CHUNK
    for chunk in _chunks(source, size):
        texts = [text for text, problem in chunk if problem is None]
        parsed = iter(stage.parse_lines(texts))
        out = []
        for text, problem in chunk:
            result: Any = ParseFailure(problem) if problem is not None else next(parsed)
            if isinstance(result, ParseFailure):
                out.append(_dump({"_error": result.reason, "message": text}))
            else:
                out.append(_dump(result))
        sink.write("\n".join(out) + "\n")
        sink.flush()
    return 0
